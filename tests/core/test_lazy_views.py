"""The web-only libraries (pysaml2, scim2-models with pydantic, py_webauthn) are loaded where they
are used: not by the worker, beat, the consumer or the gRPC server, and not by a web worker until
a SAML, SCIM or passkey request comes (core.lazy_views). Each is 25-50 MB in every process that
loads it (bench/stack/RESULTS.md)."""

from __future__ import annotations

import json

import pytest
from django.urls import get_resolver

from core.lazy_views import resolve
from tests.idp.test_configuration import manage

WEB_ONLY = ("saml2", "scim2_models", "pydantic", "webauthn")

# What each long-running process imports before it serves: the Celery app with its task modules
# (worker and beat; Celery's own system checks are off, idp/celery.py), the gRPC servicer, the
# consumer's handlers, and the commands themselves (they run no system checks either).
STARTUP = """
import json, sys
from django.core.management import get_commands, load_command_class
from core.process_command import ProcessCommand
from idp.celery import app
app.loader.import_default_modules()
from idp.api import grpc_server
from audit import consumer
consumer.registered_handlers()
for name in ("grpcserver", "consume_events", "relay_outbox"):
    command = load_command_class(get_commands()[name], name)
    assert isinstance(command, ProcessCommand) and command.requires_system_checks == [], name
loaded = {"processes": [m for m in %(web_only)r if m in sys.modules]}
from django.urls import get_resolver
get_resolver().url_patterns  # the web tier's URLconf, with the admin's pages
loaded["urlconf"] = [m for m in %(web_only)r if m in sys.modules]
print(json.dumps(loaded))
"""


def test_the_processes_and_the_urlconf_load_no_web_only_library(tmp_path):
    result = manage("shell", "-c", STARTUP % {"web_only": WEB_ONLY}, env={"IDP_DATA_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded == {"processes": [], "urlconf": []}


def _lazy_routes(patterns=None, prefix=""):
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        if hasattr(pattern, "url_patterns"):
            yield from _lazy_routes(pattern.url_patterns, prefix + str(pattern.pattern))
        elif hasattr(pattern.callback, "lazy_target"):
            yield prefix + str(pattern.pattern), pattern.callback


def test_each_lazy_view_declares_what_django_reads_from_the_real_one():
    routes = list(_lazy_routes())
    # SCIM (13 routes) and the passkey ceremonies (3).
    assert len(routes) == 16
    for route, view in routes:
        real = resolve(view.lazy_target)
        assert view.csrf_exempt == getattr(real, "csrf_exempt", False), route


@pytest.mark.django_db
def test_a_lazy_view_answers_as_the_real_one(client):
    # SCIM without a token: the real view's 401 in SCIM's error shape, not CSRF's 403.
    response = client.post("/scim/v2/Users", data="{}", content_type="application/scim+json")
    assert response.status_code == 401
    assert response.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    # A passkey ceremony's options without a CSRF token: refused by Django's CSRF check first.
    csrf_client = type(client)(enforce_csrf_checks=True)
    assert csrf_client.post("/accounts/passkey/options/", {"purpose": "login"}).status_code == 403
