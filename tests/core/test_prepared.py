"""core.prepared: a queryset compiled once returns, for any values, what the queryset returns."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from accounts.models import LoginFailures, User, UserSession
from core.prepared import PreparedQuery, insert

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="compiled on PostgreSQL only; elsewhere the queryset itself"
)


def _candidates(login):
    return (
        User.objects.filter(Q(username__iexact=login) | Q(email__iexact=login))
        .select_related("organisation", "login_failures")
        .order_by("created_at")[:16]
    )


def _by_pk(pk):
    return User.objects.select_related("organisation").filter(pk=pk)[:1]


def _state(obj):
    """Everything a caller can read from an instance: its columns and what select_related cached."""
    columns = {f.attname: getattr(obj, f.attname) for f in obj._meta.concrete_fields}
    cached = {}
    for name in ("organisation", "login_failures"):
        if not isinstance(obj, User):
            break
        field = obj._meta.get_field(name)
        if field.is_cached(obj):
            related = field.get_cached_value(obj)
            cached[name] = None if related is None else _state(related)
    return columns, cached, obj._state.adding, obj._state.db


@pytest.fixture
def people(db, acme):
    early = timezone.now() - timedelta(days=2)
    alice = User.objects.create_user(username="Alice", email="ALICE@example.com", password="x" * 12)
    User.objects.filter(pk=alice.pk).update(created_at=early)
    # Another account whose login is Alice's e-mail: the seed's shared logins.
    shared = User.objects.create_user(username="alice@example.com", password="y" * 12, organisation=acme)
    LoginFailures.objects.create(user=shared, failed_count=2)
    User.objects.create_user(username="bob", email="bob@example.com", password="z" * 12)
    return alice, shared


@pytest.mark.parametrize(
    "login", ["alice", "ALICE@EXAMPLE.COM", "alice@example.com", "bob", "nobody", "%", "a_ice"]
)
def test_fetch_returns_what_the_queryset_returns(people, login):
    prepared = PreparedQuery(_candidates, f"sample-{uuid.uuid4()}")
    assert [_state(u) for u in prepared.fetch(login)] == [_state(u) for u in _candidates(login)]


def test_related_rows_are_cached_as_select_related_caches_them(people):
    alice, shared = people
    found = PreparedQuery(_candidates, "sample-x").fetch("alice@example.com")
    assert [u.pk for u in found] == [alice.pk, shared.pk]  # oldest first
    with pytest.raises(User.login_failures.RelatedObjectDoesNotExist):
        found[0].login_failures  # noqa: B018  (none, and known to be none: no query)
    assert found[0].organisation is None
    assert found[1].login_failures.failed_count == 2
    assert found[1].organisation.slug == "acme"


def test_one_statement_per_fetch_and_none_to_compile_again(people, django_assert_num_queries):
    alice, _ = people
    prepared = PreparedQuery(_by_pk, uuid.uuid4())
    with django_assert_num_queries(1):
        assert prepared.first(alice.pk).username == "Alice"
    with django_assert_num_queries(1) as captured:
        assert prepared.first(uuid.uuid4()) is None
    assert "LIMIT 1" in captured.captured_queries[0]["sql"]


def test_values_must_have_their_samples_type(people):
    prepared = PreparedQuery(_by_pk, uuid.uuid4())
    with pytest.raises(TypeError):
        prepared.fetch(str(people[0].pk))
    with pytest.raises(TypeError):
        prepared.fetch()


def test_a_sample_that_is_not_a_parameter_is_refused(db):
    prepared = PreparedQuery(lambda login: User.objects.filter(username__iexact="fixed"), "sample-unused")
    with pytest.raises(ValueError, match="not parameters"):
        prepared.fetch("x")


def _columns(obj):
    return {f.attname: getattr(obj, f.attname) for f in obj._meta.concrete_fields if not f.primary_key}


def test_insert_writes_the_row_save_writes_and_takes_the_database_made_key(db, django_assert_num_queries):
    from audit.models import AuditLog  # a database-made key (a sequence) and JSON

    when = timezone.now()
    fields = {
        "occurred_at": when,
        "action": "t.insert",
        "actor_label": "a",
        "ip": "192.0.2.1",
        "details": {"k": [1, "ü"]},
    }
    saved = AuditLog(**fields)
    saved.save(force_insert=True)
    written = AuditLog(**fields)
    with django_assert_num_queries(1):
        assert insert(written) is written
    assert isinstance(written.pk, int)
    assert written.pk > saved.pk
    assert (written._state.adding, written._state.db) == (False, "default")
    assert _columns(AuditLog.objects.get(pk=written.pk)) == _columns(AuditLog.objects.get(pk=saved.pk))


def test_insert_keeps_a_key_made_here(people):
    alice, _ = people
    row = UserSession(
        user=alice, session_key="k" * 32, sid="s", created_at=timezone.now(), last_seen_at=timezone.now()
    )
    key = row.pk
    insert(row)
    assert row.pk == key
    assert UserSession.objects.get(pk=key).session_key == "k" * 32
