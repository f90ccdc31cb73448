"""accounts.user_rows as userinfo uses it: the user's row kept per process, and every change of
it heard, whichever door made it (the ORM, a queryset update, raw SQL on another connection, a
deletion), against the real PostgreSQL and its NOTIFY."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection, connections

from accounts.models import User
from accounts.user_rows import RowCache
from idp.oidc import userinfo
from idp.oidc.issuance import issue_tokens
from tests.wsgi import wsgi_call

pytestmark = [pytest.mark.needs("postgresql"), pytest.mark.django_db(transaction=True)]


def _eventually(check: Callable[[], bool], seconds: float = 3.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


def _on_another_connection(sql: str, params: list[Any]) -> None:
    """A change made by another service's connection, outside Django's models."""
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute(sql, params)
    finally:
        other.close()


@pytest.fixture
def listening():
    assert _eventually(lambda: userinfo.ROWS.listener.live), "the listener did not start"
    userinfo.ROWS.clear()


@pytest.fixture
def ask(rp_user):
    token = issue_tokens(user=rp_user, channel="rest", scope="openid profile email").access_token

    def answer() -> dict[str, Any]:
        response = wsgi_call("GET", "/o/userinfo/", AUTHORIZATION=f"Bearer {token}")
        return {"status": response["status"], **json.loads(response["body"])}

    return answer


def test_a_kept_row_is_served_without_the_database(listening, ask, django_assert_num_queries):
    assert ask()["email"] == "ivan@acme.example"
    with django_assert_num_queries(0):
        assert ask()["email"] == "ivan@acme.example"


def test_every_door_that_changes_the_row_is_heard(listening, ask, rp_user):
    assert ask()["preferred_username"] == "ivan"

    # The ORM in this process: dropped on commit, before the next request.
    rp_user.email = "ivan@new.example"
    rp_user.save(update_fields=["email"])
    assert ask()["email"] == "ivan@new.example"

    # A queryset update (no signal): PostgreSQL's announcement.
    User.objects.filter(pk=rp_user.pk).update(username="ivan.petrov")
    assert _eventually(lambda: ask()["preferred_username"] == "ivan.petrov")

    # Raw SQL on another connection.
    _on_another_connection("UPDATE users SET email = %s WHERE id = %s", ["ivan@third.example", rp_user.pk])
    assert _eventually(lambda: ask()["email"] == "ivan@third.example")

    # Deleted: userinfo has no user to describe.
    User.objects.filter(pk=rp_user.pk).delete()
    assert _eventually(lambda: ask()["status"] == 401)


def test_a_row_read_while_a_change_is_announced_is_not_kept():
    cache, reads = RowCache(max_rows=10), []

    def load_then_hear_a_change() -> tuple[str]:
        reads.append(1)
        cache.forget("u1")  # announced between the read and the store
        return ("old",)

    cache.listener.stop()
    live = type(cache.listener).live
    try:
        type(cache.listener).live = property(lambda self: True)
        assert cache.get("u1", load_then_hear_a_change) == ("old",)
        assert cache.get("u1", lambda: ("new",)) == ("new",)  # read again, not the old copy
        assert cache.get("u1", lambda: ("newer",)) == ("new",)  # now kept
    finally:
        type(cache.listener).live = live


def test_the_oldest_row_goes_first_when_full():
    cache = RowCache(max_rows=2)
    live = type(cache.listener).live
    try:
        type(cache.listener).live = property(lambda self: True)
        for key in ("a", "b", "c"):
            cache.get(key, lambda key=key: (key,))
        assert cache.get("a", lambda: ("a again",)) == ("a again",)
        assert cache.get("c", lambda: ("c again",)) == ("c",)
    finally:
        type(cache.listener).live = live


def test_while_the_channel_is_not_heard_every_read_goes_to_the_database(listening, ask, rp_user):
    assert ask()["email"] == "ivan@acme.example"
    _on_another_connection(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN%%' AND datname = %s",
        [connection.settings_dict["NAME"]],
    )
    assert _eventually(lambda: not userinfo.ROWS.listener.live)
    # Changed while no announcement can be heard: read from the database meanwhile...
    _on_another_connection("UPDATE users SET email = %s WHERE id = %s", ["ivan@down.example", rp_user.pk])
    assert ask()["email"] == "ivan@down.example"
    # ...and once the channel is heard again, nothing kept from before is served.
    assert _eventually(lambda: userinfo.ROWS.listener.live)
    _on_another_connection("UPDATE users SET email = %s WHERE id = %s", ["ivan@back.example", rp_user.pk])
    assert _eventually(lambda: ask()["email"] == "ivan@back.example")
