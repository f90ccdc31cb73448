"""ChannelFollower: a failed periodic reload keeps the subscription (and the copy live)."""

from __future__ import annotations

import logging
import time

import pytest

from core.pubsub import ChannelFollower, redis_client


@pytest.mark.needs("redis")
def test_a_failed_periodic_reload_keeps_the_copy_live(caplog):
    calls = []

    def reload() -> None:
        calls.append(time.monotonic())
        if len(calls) == 2:  # once: the thread outlives the test and must not keep failing
            raise RuntimeError("the database blinked")

    follower = ChannelFollower(
        "idp:test:follower",
        client=redis_client,
        on_subscribed=reload,
        on_message=lambda _m: None,
        reload_seconds=0.2,
    )
    deadline = time.monotonic() + 10
    with caplog.at_level(logging.WARNING, logger="core.pubsub"):
        while len(calls) < 3 and time.monotonic() < deadline:
            assert follower.live or len(calls) == 0
            time.sleep(0.05)
    assert len(calls) >= 3
    assert follower.live
    assert "periodic reload for idp:test:follower failed: the database blinked" in caplog.text
    assert "lost the subscription" not in caplog.text
