from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _http_loopback_upstreams(settings) -> None:
    settings.IDP_OUTBOUND_ALLOW_LOOPBACK = True  # test upstreams listen on 127.0.0.1, plain http
