"""accounts.session_store: Django's cached_db sessions, each save one statement on PostgreSQL, with
Django's own rules for a taken key and a session ended meanwhile; a sign-in's new key written once,
with its data."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.backends.base import CreateError, UpdateError
from django.contrib.sessions.models import Session
from django.core.cache import caches
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts import services
from accounts.session_store import SessionStore

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="elsewhere Django's own save runs"),
]


def _stored(key: str) -> dict:
    """The session as the database keeps it (not the cached copy)."""
    row = Session.objects.get(session_key=key)
    return SessionStore().decode(row.session_data)


def test_a_new_session_and_its_changes_reach_the_database_and_the_cache(django_assert_num_queries):
    store = SessionStore()
    store["step"] = 1
    with django_assert_num_queries(1):
        store.save()  # a new key, inserted
    key = store.session_key
    assert len(key) == 32
    assert _stored(key) == {"step": 1}

    store["step"] = 2
    with django_assert_num_queries(1):
        store.save()  # the same key, updated
    assert _stored(key) == {"step": 2}
    expires = Session.objects.get(session_key=key).expire_date
    assert abs(expires - store.get_expiry_date()) < timedelta(seconds=5)
    assert caches["default"].get(store.cache_key) == {"step": 2}
    caches["default"].delete(store.cache_key)
    assert SessionStore(key).load() == {"step": 2}  # read back from the database


def test_a_taken_key_is_refused_and_the_session_draws_another(monkeypatch):
    first = SessionStore()
    first["who"] = "first"
    first.save()
    taken = first.session_key

    second = SessionStore()
    second._session_key = taken
    second["who"] = "second"
    with pytest.raises(CreateError):
        second.save(must_create=True)
    assert _stored(taken) == {"who": "first"}  # untouched

    keys = iter([taken, "k" * 32])
    monkeypatch.setattr(SessionStore, "_get_new_session_key", lambda self: next(keys))
    third = SessionStore()
    third["who"] = "third"
    third.create()
    assert third.session_key == "k" * 32
    assert _stored(taken) == {"who": "first"}
    assert _stored("k" * 32) == {"who": "third"}


def test_saving_a_session_ended_meanwhile_is_refused_and_writes_nothing():
    store = SessionStore()
    store["who"] = "x"
    store.save()
    Session.objects.filter(session_key=store.session_key).delete()  # ended elsewhere (logout, admin)

    store["who"] = "y"
    with pytest.raises(UpdateError):
        store.save()
    assert not Session.objects.filter(session_key=store.session_key).exists()


def test_a_refused_insert_leaves_the_callers_transaction_usable():
    taken = SessionStore()
    taken.save()
    with transaction.atomic():
        again = SessionStore()
        again._session_key = taken.session_key
        with pytest.raises(CreateError):
            again.save(must_create=True)
        assert Session.objects.filter(session_key=taken.session_key).exists()  # no aborted transaction


def test_a_new_key_for_a_sign_in_is_written_once_with_its_data(django_assert_num_queries):
    store = SessionStore()
    store["before"] = 1
    store.save()
    old = store.session_key

    store.cycle_key()  # the old row goes; the new key has no row yet
    new = store.session_key
    assert new != old
    assert len(new) == 32
    assert not Session.objects.filter(session_key__in=[old, new]).exists()
    assert caches["default"].get(store.cache_key) is None

    store["signed_in"] = True
    with django_assert_num_queries(1):  # one INSERT, holding the signed-in data
        store.save()
    assert _stored(new) == {"before": 1, "signed_in": True}
    assert caches["default"].get(store.cache_key) == {"before": 1, "signed_in": True}

    store["later"] = 2
    with django_assert_num_queries(1):  # from then on an UPDATE, as before
        store.save()
    assert _stored(new)["later"] == 2


def test_a_new_key_that_turns_out_taken_is_drawn_again_on_save(monkeypatch):
    first = SessionStore()
    first["who"] = "first"
    first.save()
    taken = first.session_key

    keys = iter([taken, "n" * 32])
    monkeypatch.setattr(SessionStore, "_get_new_session_key", lambda self: next(keys))
    second = SessionStore()
    second.cycle_key()
    assert second.session_key == taken  # drawn, not yet written
    second["who"] = "second"
    second.save()
    assert second.session_key == "n" * 32
    assert _stored(taken) == {"who": "first"}  # the other session is untouched
    assert _stored("n" * 32) == {"who": "second"}


def test_a_sign_in_writes_its_session_once(client):
    """Django's login() on a visitor without a session: the session's row is inserted once, by
    the response, with the signed-in data (before: an empty row, then an UPDATE)."""
    user = services.create_user(actor=None, username="ivan", password="Correct-horse-9!")
    with CaptureQueriesContext(connection) as queries:
        response = client.post(
            reverse("accounts:login"), {"username": "ivan", "password": "Correct-horse-9!"}
        )
    assert response.status_code == 302
    writes = [q["sql"] for q in queries.captured_queries if "django_session" in q["sql"]]
    assert len(writes) == 1, writes
    assert writes[0].startswith("INSERT"), writes
    key = client.cookies[settings.SESSION_COOKIE_NAME].value
    assert _stored(key)[SESSION_KEY] == str(user.pk)
    assert Session.objects.count() == 1
