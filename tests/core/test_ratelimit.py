"""GCRA limits checked together: one round trip, refused if any bucket is empty, charged to none then."""

from __future__ import annotations

import pytest

from core import ratelimit
from core.ratelimit import Limit


@pytest.fixture(params=["redis", "local"])
def backend(request, settings):
    settings.IDP_RATE_LIMITS_ENABLED = True
    if request.param == "local":
        settings.REDIS_URL = ""
    elif not settings.REDIS_URL:
        pytest.skip("no Redis configured")
    ratelimit.reset_local()
    yield request.param
    ratelimit.reset_local()


def test_a_refused_request_is_charged_to_no_bucket(backend, db):
    tight, loose = Limit("t-tight", 1, 60), Limit("t-loose", 3, 60)
    assert ratelimit.hit_all((tight, "a"), (loose, "b")).allowed
    refused = ratelimit.hit_all((tight, "a"), (loose, "b"))
    assert not refused.allowed
    assert 1 <= refused.retry_after <= 60
    # The loose bucket paid only for the first request: two more fit, then it is empty.
    assert ratelimit.hit(loose, "b").allowed
    assert ratelimit.hit(loose, "b").allowed
    assert not ratelimit.hit(loose, "b").allowed


def test_buckets_are_per_subject(backend, db):
    limit = Limit("t-subject", 1, 60)
    assert ratelimit.hit(limit, "x").allowed
    assert not ratelimit.hit(limit, "x").allowed
    assert ratelimit.hit(limit, "y").allowed
