"""The client's address behind our own proxies: believed only from a trusted peer, right to left."""

from __future__ import annotations

import pytest
from django.test import Client

from audit.models import AuditLog
from core.client_ip import client_ip


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("10.0.0.5", "203.0.113.7", "203.0.113.7"),  # the gateway names the client
        ("10.0.0.5", "198.51.100.1, 203.0.113.7", "203.0.113.7"),  # the left hop is the client's claim
        ("10.0.0.5", "203.0.113.7, 10.0.0.9", "203.0.113.7"),  # a second trusted hop is skipped
        ("10.0.0.5", "", "10.0.0.5"),
        ("10.0.0.5", "not-an-ip", "10.0.0.5"),
        ("10.0.0.5", "10.0.0.6", "10.0.0.5"),  # only proxies in the chain
        ("192.0.2.44", "203.0.113.7", "192.0.2.44"),  # an untrusted peer cannot choose its address
    ],
)
def test_client_ip(settings, peer, forwarded, expected):
    settings.IDP_TRUSTED_PROXIES = ["10.0.0.0/24"]
    assert client_ip(peer, forwarded) == expected


def test_without_trusted_proxies_the_header_is_ignored(settings):
    settings.IDP_TRUSTED_PROXIES = []
    assert client_ip("10.0.0.5", "203.0.113.7") == "10.0.0.5"


@pytest.mark.django_db
def test_audit_records_and_rate_limits_see_the_client_behind_the_gateway(settings):
    settings.IDP_TRUSTED_PROXIES = ["10.0.0.5"]
    Client().post(
        "/api/v1/auth/login",
        {"login": "nobody", "password": "wrong-password-1"},
        content_type="application/json",
        REMOTE_ADDR="10.0.0.5",
        HTTP_X_FORWARDED_FOR="203.0.113.7",
    )
    assert AuditLog.objects.get(action="login.failed").ip == "203.0.113.7"
