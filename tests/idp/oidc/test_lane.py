"""idp.lane: introspection, userinfo, the client_credentials, refresh and code grants of the
common shape answered without Django's request cycle, as the machine stack answers them (headers
included), and everything else left to that stack."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice
from oauthlib.common import Request as OAuthlibRequest

from accounts import services as accounts
from accounts.models import Role
from audit.models import AuditLog, OutboxEvent
from audit.registry import AuditAction
from core import http_metrics
from idp import lane, machine
from idp.oidc import revocation, userinfo
from idp.oidc.issuance import issue_tokens
from idp.oidc.models import AccessToken, Application
from idp.oidc.tokens import generate_access_token
from tests.core.test_pgbackend import drop_our_connection
from tests.idp.oidc.conftest import PASSWORD, REDIRECT_URI, basic_auth, make_app
from tests.idp.oidc.test_code_exchange import _code
from tests.idp.oidc.test_dpop import claims_of
from tests.idp.oidc.test_refresh import PER_TOKEN, family
from tests.wsgi import wsgi_call

pytestmark = pytest.mark.django_db(transaction=True)

FORM = "application/x-www-form-urlencoded"


class Counted(lane.Lane):
    """The lane, counting the requests it answered itself."""

    def __init__(self) -> None:
        super().__init__()
        self.answered = 0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        answer = super().__call__(environ, start_response)
        self.answered += answer is not None
        return answer


def _apps() -> tuple[machine.Application, machine.Application]:
    """The application with a counting lane, and the same without a lane (the machine stack
    alone); built now, as the settings stand."""
    with_lane, without = machine.Application(), machine.Application()
    with_lane.lane, without.lane = Counted(), None
    return with_lane, without


def _comparable(answer: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
    headers = dict(answer["headers"])
    assert headers.pop("X-Request-ID")  # each request gets its own
    body = answer["body"]
    return answer["status"], json.loads(body) if body.startswith(b"{") else body, headers


def _behind_the_gateway(settings: Any, secure: bool) -> dict[str, str]:
    """The production settings when `secure` (HSTS on a request the gateway marks as HTTPS);
    the headers such a request carries."""
    if not secure:
        return {}
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_HSTS_SECONDS = 3600
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    return {"X_FORWARDED_PROTO": "https"}


def _form(**fields: str) -> bytes:
    return urlencode(fields).encode()


@pytest.fixture
def world(rp_user):
    ivan = rp_user
    api, api_secret = make_app(name="Parcel API", grant=Application.GRANT_CLIENT_CREDENTIALS)
    api.resource_server = True
    api.save()
    nosy, nosy_secret = make_app(name="Nosy partner", grant=Application.GRANT_CLIENT_CREDENTIALS)
    issued = issue_tokens(user=ivan, channel="rest", scope="openid profile email")
    revoked = issue_tokens(user=ivan, channel="rest", scope="openid").access_token
    revocation.revoke_presented(access_token=revoked, refresh_token="")
    # A token bound to a DPoP key (RFC 9449 cnf.jkt), for a request that shows no proof.
    request = OAuthlibRequest("")
    request.client, request.client_id, request.user = api, api.client_id, ivan
    request.scopes, request.grant_type, request.idp_amr = ["openid", "profile"], "password", ["pwd"]
    request.idp_dpop_jkt = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
    bound = generate_access_token(request)
    assert claims_of(bound)["cnf"] == {"jkt": request.idp_dpop_jkt}
    return {
        "ivan": ivan,
        "token": issued.access_token,
        "bound": bound,
        "refresh": issued.refresh_token,
        "revoked": revoked,
        "as_api": basic_auth(api.client_id, api_secret),
        "as_nosy": basic_auth(nosy.client_id, nosy_secret),
        "api": (api.client_id, api_secret),
    }


def _introspections(world: dict[str, Any]) -> dict[str, tuple[bytes, dict[str, str], str, str]]:
    """Cases: (body, headers, query string, content type)."""
    token, as_api = world["token"], world["as_api"]
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    client_id, secret = world["api"]
    return {
        # The lane's shape: answered by it.
        "a resource server, a user's token": (_form(token=token), {"AUTHORIZATION": as_api}, "", FORM),
        "a hint": (_form(token=token, token_type_hint="access_token"), {"AUTHORIZATION": as_api}, "", FORM),
        "an empty hint": (_form(token=token, token_type_hint=""), {"AUTHORIZATION": as_api}, "", FORM),
        "charset given": (_form(token=token), {"AUTHORIZATION": as_api}, "", f"{FORM}; charset=UTF-8"),
        "another client's token": (_form(token=token), {"AUTHORIZATION": world["as_nosy"]}, "", FORM),
        "revoked": (_form(token=world["revoked"]), {"AUTHORIZATION": as_api}, "", FORM),
        "forged": (_form(token=forged), {"AUTHORIZATION": as_api}, "", FORM),
        "a request id": (_form(token=token), {"AUTHORIZATION": as_api, "X_REQUEST_ID": "rs-42"}, "", FORM),
        # Every other shape: the machine stack's.
        # The lane has read this body: the stack reads it again (see the assertions).
        "not a JWT": (_form(token="abc"), {"AUTHORIZATION": as_api}, "", FORM),
        "secret in the body": (_form(token=token, client_id=client_id, client_secret=secret), {}, "", FORM),
        "a refresh token": (
            _form(token=world["refresh"], token_type_hint="refresh_token"),
            {"AUTHORIZATION": as_api},
            "",
            FORM,
        ),
        "two tokens": (b"token=" + token.encode() + b"&token=x.y.z", {"AUTHORIZATION": as_api}, "", FORM),
        "no token": (b"", {"AUTHORIZATION": as_api}, "", FORM),
        "wrong secret": (_form(token=token), {"AUTHORIZATION": basic_auth(client_id, "nope")}, "", FORM),
        "a query string": (_form(token=token), {"AUTHORIZATION": as_api}, "q=1", FORM),
        "JSON": (json.dumps({"token": token}).encode(), {"AUTHORIZATION": as_api}, "", "application/json"),
        "another charset": (_form(token=token), {"AUTHORIZATION": as_api}, "", f"{FORM}; charset=latin-1"),
        "a foreign host": (_form(token=token), {"AUTHORIZATION": as_api, "HOST": "evil.example"}, "", FORM),
    }


def _ask_introspection(app: Any, case: tuple[bytes, dict[str, str], str, str]) -> dict[str, Any]:
    body, headers, query, content_type = case
    path = "/o/introspect/" + (f"?{query}" if query else "")
    host = headers.pop("HOST", "localhost") if "HOST" in headers else "localhost"
    return wsgi_call("POST", path, body=body, content_type=content_type, host=host, app=app, **headers)


@pytest.mark.parametrize("secure", [False, True], ids=["http", "https behind the gateway"])
def test_introspection_through_the_lane_is_the_machine_stacks_answer(world, settings, secure):
    extra = _behind_the_gateway(settings, secure)
    with_lane, without = _apps()
    cases = _introspections(world)

    answers = {
        name: _comparable(_ask_introspection(with_lane, (b, {**h, **extra}, q, t)))
        for name, (b, h, q, t) in cases.items()
    }
    assert with_lane.lane.answered == 8  # the first eight
    assert answers == {
        name: _comparable(_ask_introspection(without, (b, {**h, **extra}, q, t)))
        for name, (b, h, q, t) in cases.items()
    }

    status, seen, headers = answers["a resource server, a user's token"]
    assert status == 200
    assert seen["active"] is True
    assert seen["sub"] == str(world["ivan"].pk)
    assert headers["Cache-Control"] == "no-store"
    assert headers["X-Frame-Options"] == "DENY"
    assert ("Strict-Transport-Security" in headers) is secure
    for inactive in ("another client's token", "revoked", "forged"):
        assert answers[inactive][1] == {"active": False}, inactive
    # The stack read the body the lane had read: without it, the answer is "no token"'s.
    assert answers["not a JWT"][:2] == (200, {"active": False})
    assert answers["no token"][0] == 400
    assert answers["wrong secret"][0] == 401
    assert answers["a foreign host"][0] == 400


def test_the_lane_echoes_a_request_id_and_counts_the_request(world):
    with_lane, _ = _apps()
    counter = http_metrics.REQUESTS.labels("POST", "/o/introspect/", "200")
    before = counter._value.get()

    answer = wsgi_call(
        "POST",
        "/o/introspect/",
        body=_form(token=world["token"]),
        app=with_lane,
        AUTHORIZATION=world["as_api"],
        X_REQUEST_ID="rs-42",
    )

    assert with_lane.lane.answered == 1
    assert dict(answer["headers"])["X-Request-ID"] == "rs-42"
    assert counter._value.get() == before + 1


def _userinfo_cases(world: dict[str, Any]) -> dict[str, tuple[str, str, dict[str, str]]]:
    """Cases: (method, query string, headers)."""
    token = world["token"]
    return {
        "a bearer token": ("GET", "", {"AUTHORIZATION": f"Bearer {token}"}),
        "lower-case scheme": ("GET", "", {"AUTHORIZATION": f"bearer {token}"}),
        "POST": ("POST", "", {"AUTHORIZATION": f"Bearer {token}"}),
        "revoked": ("GET", "", {"AUTHORIZATION": f"Bearer {world['revoked']}"}),
        "no token": ("GET", "", {}),
        "two spaces": ("GET", "", {"AUTHORIZATION": f"Bearer  {token}"}),
        "a DPoP proof beside a bearer token": (
            "GET",
            "",
            {"AUTHORIZATION": f"Bearer {token}", "DPOP": "x.y.z"},
        ),
        "a query string": ("GET", "a=1", {"AUTHORIZATION": f"Bearer {token}"}),
        "a DPoP-bound token without its proof": ("GET", "", {"AUTHORIZATION": f"Bearer {world['bound']}"}),
    }


def test_userinfo_through_the_lane_is_the_machine_stacks_answer(world):
    with_lane, without = _apps()

    def ask(app: Any, method: str, query: str, headers: dict[str, str]) -> Any:
        path = "/o/userinfo/" + (f"?{query}" if query else "")
        return _comparable(wsgi_call(method, path, app=app, **headers))

    cases = _userinfo_cases(world)
    answers = {name: ask(with_lane, *case) for name, case in cases.items()}
    assert with_lane.lane.answered == 2
    assert answers == {name: ask(without, *case) for name, case in cases.items()}
    assert answers["a bearer token"][1]["preferred_username"] == "ivan"
    assert answers["revoked"][0] == 401
    assert answers["a DPoP-bound token without its proof"][0] == 401  # the key's proof is owed


def _token_cases(world: dict[str, Any]) -> dict[str, tuple[bytes, dict[str, str], str, str]]:
    """Cases: (body, headers, query string, content type)."""
    api = world["as_api"]
    client_id, secret = world["api"]
    cc = _form(grant_type="client_credentials")

    def as_api(**fields: str) -> tuple[bytes, dict[str, str], str, str]:
        """The service's own credentials in the header, these form fields in the body."""
        return _form(**fields), {"AUTHORIZATION": api}, "", FORM

    return {
        # The lane's shape: answered by it.
        "a service": (cc, {"AUTHORIZATION": api}, "", FORM),
        "a service scope": as_api(grant_type="client_credentials", scope="permissions"),
        "an empty scope": as_api(grant_type="client_credentials", scope=""),
        "charset given": (cc, {"AUTHORIZATION": api}, "", f"{FORM}; charset=UTF-8"),
        "a request id": (cc, {"AUTHORIZATION": api, "X_REQUEST_ID": "svc-7"}, "", FORM),
        # Every other shape, and every refusal: the machine stack's.
        "a user scope": as_api(grant_type="client_credentials", scope="openid"),
        "an unknown scope": as_api(grant_type="client_credentials", scope="admin"),
        "two scopes": (cc + b"&scope=permissions&scope=permissions", {"AUTHORIZATION": api}, "", FORM),
        "a resource": (cc + b"&resource=https%3A%2F%2Fapi.example", {"AUTHORIZATION": api}, "", FORM),
        "wrong secret": (cc, {"AUTHORIZATION": basic_auth(client_id, "nope")}, "", FORM),
        "secret in the body": (
            _form(grant_type="client_credentials", client_id=client_id, client_secret=secret),
            {},
            "",
            FORM,
        ),
        "not allowed the grant": (cc, {"AUTHORIZATION": world["as_portal"]}, "", FORM),
        "a DPoP proof": (cc, {"AUTHORIZATION": api, "DPOP": "x.y.z"}, "", FORM),
        "bound tokens required": (cc, {"AUTHORIZATION": world["as_bound"]}, "", FORM),
        "a query string": (cc, {"AUTHORIZATION": api}, "a=1", FORM),
        "another grant": as_api(grant_type="refresh_token", refresh_token="x"),
    }


def _token_comparable(answer: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
    """A token endpoint's answer without what differs between two tokens issued a moment apart,
    whichever door issued them."""
    status, body, headers = _comparable(answer)
    assert headers.pop("Expires", None) is not None  # this second (never_cache), on every answer
    if status == 200:
        # Each token's `iat` and `exp` come from one clock reading: its lifetime is exact.
        for name in ("access_token", "id_token"):
            if name in body:
                claims = claims_of(body.pop(name))
                body[f"{name} lifetime"] = claims["exp"] - claims["iat"]
                body[name] = {k: v for k, v in claims.items() if k not in PER_TOKEN | {"sid"}}
        if "refresh_token" in body:
            body["refresh_token"] = len(body["refresh_token"])
        headers.pop("Content-Length")  # the tokens' lengths vary with their signatures' encoding
    return status, body, headers


@pytest.mark.parametrize("secure", [False, True], ids=["http", "https behind the gateway"])
def test_client_credentials_through_the_lane_are_the_machine_stacks_answer(world, settings, secure):
    extra = _behind_the_gateway(settings, secure)
    _portal, portal_secret = make_app(name="Portal")  # the authorization code grant only
    bound, bound_secret = make_app(name="Bound service", grant=Application.GRANT_CLIENT_CREDENTIALS)
    bound.dpop_bound_access_tokens = True
    bound.save()
    world = {
        **world,
        "as_portal": basic_auth(_portal.client_id, portal_secret),
        "as_bound": basic_auth(bound.client_id, bound_secret),
    }
    with_lane, without = _apps()

    def ask(app: Any, case: tuple[bytes, dict[str, str], str, str]) -> Any:
        body, headers, query, content_type = case
        path = "/o/token/" + (f"?{query}" if query else "")
        return _token_comparable(
            wsgi_call("POST", path, body=body, content_type=content_type, app=app, **headers, **extra)
        )

    cases = _token_cases(world)
    issued = lambda: (  # noqa: E731
        AccessToken.objects.count(),
        AuditLog.objects.filter(action=AuditAction.TOKEN_ISSUED).count(),
        OutboxEvent.objects.count(),
    )
    start = issued()
    answers = {name: ask(with_lane, case) for name, case in cases.items()}
    through_lane = issued()
    assert with_lane.lane.answered == 5  # the first five
    assert answers == {name: ask(without, case) for name, case in cases.items()}
    granted = [name for name, answer in answers.items() if answer[0] == 200]
    assert len(granted) == 7  # the lane's five, "secret in the body" and "a query string"
    # Each token granted was written, audited and published once, by either door.
    assert [b - a for a, b in zip(start, through_lane, strict=True)] == [7, 7, 7]
    assert [b - a for a, b in zip(through_lane, issued(), strict=True)] == [7, 7, 7]

    status, body, headers = answers["a service"]
    assert status == 200
    assert body["token_type"] == "Bearer"
    assert body["access_token"]["client_id"] == world["api"][0]
    assert headers["Cache-Control"] == "no-store, max-age=0, no-cache, must-revalidate, private"
    assert ("Strict-Transport-Security" in headers) is secure
    assert answers["a request id"][0] == 200
    assert answers["a service scope"][1]["scope"] == "permissions"
    assert answers["a user scope"][1]["error"] == "invalid_scope"
    assert answers["wrong secret"][0] == 401
    assert answers["not allowed the grant"][1]["error"] == "unauthorized_client"
    assert answers["bound tokens required"][0] == 400
    # The stack read the body the lane had read: "secret in the body" authenticated from it.
    assert answers["secret in the body"][0] == 200


@pytest.mark.parametrize("secure", [False, True], ids=["http", "https behind the gateway"])
def test_refresh_grants_through_the_lane_are_the_machine_stacks_answer(world, settings, secure):
    extra = _behind_the_gateway(settings, secure)
    ivan = world["ivan"]
    portal, secret = make_app(name="Portal")
    other, other_secret = make_app(name="Other portal")
    as_portal = basic_auth(portal.client_id, secret)
    # A user who enrolled a second factor after signing in with a password and a code that was
    # not ours ("otp" without "mfa"): the policy now refuses the refresh (accounts.assurance).
    olga = accounts.create_user(
        actor=None,
        username="olga",
        password=PASSWORD,
        email="olga@acme.example",
        role=Role.CLIENT_USER,
        organisation=ivan.organisation,
    )
    TOTPDevice.objects.create(user=olga, name="phone", confirmed=True)

    def grant(value: str, **extra: str) -> bytes:
        return _form(grant_type="refresh_token", refresh_token=value, **extra)

    def reused() -> str:
        value = family(portal, ivan)
        rotated = Client().post(
            "/o/token/", {"grant_type": "refresh_token", "refresh_token": value}, HTTP_AUTHORIZATION=as_portal
        )
        assert rotated.status_code == 200
        return value

    # Each case makes its own token family: a refresh token is used once.
    cases: dict[str, Callable[[], tuple[bytes, dict[str, str]]]] = {
        # The lane's shape: answered by it.
        "a portal": lambda: (grant(family(portal, ivan)), {"AUTHORIZATION": as_portal}),
        "a request id": lambda: (
            grant(family(portal, ivan)),
            {"AUTHORIZATION": as_portal, "X_REQUEST_ID": "rp-9"},
        ),
        # Every other shape, and every refusal: the machine stack's.
        "secret in the body": lambda: (
            grant(family(portal, ivan), client_id=portal.client_id, client_secret=secret),
            {},
        ),
        "a narrowed scope": lambda: (
            grant(family(portal, ivan), scope="openid"),
            {"AUTHORIZATION": as_portal},
        ),
        "a browser's Origin": lambda: (
            grant(family(portal, ivan)),
            {"AUTHORIZATION": as_portal, "ORIGIN": "https://rp.example.com"},
        ),
        "a DPoP proof": lambda: (grant(family(portal, ivan)), {"AUTHORIZATION": as_portal, "DPOP": "x.y.z"}),
        "wrong secret": lambda: (
            grant(family(portal, ivan)),
            {"AUTHORIZATION": basic_auth(portal.client_id, "no")},
        ),
        "another client's token": lambda: (
            grant(family(portal, ivan)),
            {"AUTHORIZATION": basic_auth(other.client_id, other_secret)},
        ),
        "a rotated token again": lambda: (grant(reused()), {"AUTHORIZATION": as_portal}),
        "an unknown token": lambda: (grant("no-such-token"), {"AUTHORIZATION": as_portal}),
        "two tokens": lambda: (
            grant(family(portal, ivan)) + b"&refresh_token=x",
            {"AUTHORIZATION": as_portal},
        ),
        "a second factor now owed": lambda: (grant(family(portal, olga)), {"AUTHORIZATION": as_portal}),
    }
    with_lane, without = _apps()

    def ask(app: Any, case: Callable[[], tuple[bytes, dict[str, str]]]) -> Any:
        body, headers = case()
        return _token_comparable(wsgi_call("POST", "/o/token/", body=body, app=app, **headers, **extra))

    refreshed = lambda: (  # noqa: E731
        AuditLog.objects.filter(action=AuditAction.TOKEN_REFRESHED).count(),
        OutboxEvent.objects.filter(payload__action=AuditAction.TOKEN_REFRESHED).count(),
    )
    start = refreshed()
    answers = {name: ask(with_lane, case) for name, case in cases.items()}
    through_lane = refreshed()
    assert with_lane.lane.answered == 2  # the first two
    assert answers == {name: ask(without, case) for name, case in cases.items()}
    granted = [name for name, answer in answers.items() if answer[0] == 200]
    assert granted == [
        "a portal",
        "a request id",
        "secret in the body",
        "a narrowed scope",
        "a browser's Origin",
    ]
    # Each rotation was audited and published once, by either door (and reused() rotated once).
    assert [b - a for a, b in zip(start, through_lane, strict=True)] == [6, 6]
    assert [b - a for a, b in zip(through_lane, refreshed(), strict=True)] == [6, 6]

    _status, body, headers = answers["a portal"]
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "openid profile email"
    assert body["id_token"]["sub"] == str(ivan.pk)
    assert headers["Cache-Control"] == "no-store, max-age=0, no-cache, must-revalidate, private"
    assert ("Strict-Transport-Security" in headers) is secure
    assert answers["a narrowed scope"][1]["scope"] == "openid"
    assert answers["wrong secret"][0] == 401
    for refused in (
        "another client's token",
        "a rotated token again",
        "an unknown token",
        "a second factor now owed",
    ):
        assert answers[refused][1]["error"] == "invalid_grant", refused


@pytest.mark.parametrize("secure", [False, True], ids=["http", "https behind the gateway"])
def test_code_exchanges_through_the_lane_are_the_machine_stacks_answer(world, settings, secure):
    extra = _behind_the_gateway(settings, secure)
    ivan = world["ivan"]
    portal, secret = make_app(name="Portal")
    other, other_secret = make_app(name="Other portal")
    as_portal = basic_auth(portal.client_id, secret)
    verifier = secrets.token_urlsafe(48)

    def exchange(code: str, verifier: str = verifier, **extra: str) -> bytes:
        fields = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}
        return _form(**fields, code_verifier=verifier, **extra)

    def fresh(verifier: str = verifier) -> str:
        return _code(portal, ivan, verifier).code

    def used() -> str:
        code = fresh()
        assert wsgi_call("POST", "/o/token/", body=exchange(code), AUTHORIZATION=as_portal)["status"] == 200
        return code

    # Each case makes its own code: a code is used once.
    cases: dict[str, Callable[[], tuple[bytes, dict[str, str]]]] = {
        # The lane's shape: answered by it.
        "a portal": lambda: (exchange(fresh()), {"AUTHORIZATION": as_portal}),
        "a request id": lambda: (exchange(fresh()), {"AUTHORIZATION": as_portal, "X_REQUEST_ID": "rp-9"}),
        # Every other shape, and every refusal: the machine stack's.
        "secret in the body": lambda: (
            exchange(fresh(), client_id=portal.client_id, client_secret=secret),
            {},
        ),
        "a browser's Origin": lambda: (
            exchange(fresh()),
            {"AUTHORIZATION": as_portal, "ORIGIN": "https://rp.example.com"},
        ),
        "a DPoP proof": lambda: (exchange(fresh()), {"AUTHORIZATION": as_portal, "DPOP": "x.y.z"}),
        "wrong secret": lambda: (exchange(fresh()), {"AUTHORIZATION": basic_auth(portal.client_id, "no")}),
        "another client's code": lambda: (
            exchange(fresh()),
            {"AUTHORIZATION": basic_auth(other.client_id, other_secret)},
        ),
        "a used code again": lambda: (exchange(used()), {"AUTHORIZATION": as_portal}),
        "an unknown code": lambda: (exchange("no-such-code"), {"AUTHORIZATION": as_portal}),
        "a wrong verifier": lambda: (
            exchange(fresh(), verifier=secrets.token_urlsafe(48)),
            {"AUTHORIZATION": as_portal},
        ),
        # RFC 7636 §4.1: a verifier of 43 characters at least, even one whose challenge matches.
        "a short verifier": lambda: (
            exchange(fresh("short"), verifier="short"),
            {"AUTHORIZATION": as_portal},
        ),
        "two codes": lambda: (exchange(fresh()) + b"&code=x", {"AUTHORIZATION": as_portal}),
    }
    with_lane, without = _apps()

    def ask(app: Any, case: Callable[[], tuple[bytes, dict[str, str]]]) -> Any:
        body, headers = case()
        return _token_comparable(wsgi_call("POST", "/o/token/", body=body, app=app, **headers, **extra))

    issued = lambda: (  # noqa: E731
        AuditLog.objects.filter(action=AuditAction.TOKEN_ISSUED).count(),
        OutboxEvent.objects.filter(payload__action=AuditAction.TOKEN_ISSUED).count(),
    )
    start = issued()
    answers = {name: ask(with_lane, case) for name, case in cases.items()}
    through_lane = issued()
    assert with_lane.lane.answered == 2  # the first two
    assert answers == {name: ask(without, case) for name, case in cases.items()}
    granted = [name for name, answer in answers.items() if answer[0] == 200]
    assert granted == ["a portal", "a request id", "secret in the body", "a browser's Origin"]
    # Each exchange was audited and published once, by either door (and used() exchanged once).
    assert [b - a for a, b in zip(start, through_lane, strict=True)] == [5, 5]
    assert [b - a for a, b in zip(through_lane, issued(), strict=True)] == [5, 5]

    _status, body, headers = answers["a portal"]
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "openid profile"
    assert body["id_token"]["sub"] == str(ivan.pk)
    assert body["id_token"]["nonce"] == "n-0S6_WzA2Mj"
    assert headers["Cache-Control"] == "no-store, max-age=0, no-cache, must-revalidate, private"
    assert ("Strict-Transport-Security" in headers) is secure
    assert answers["wrong secret"][0] == 401
    assert answers["a short verifier"][1]["error"] == "invalid_request"
    for refused in ("another client's code", "a used code again", "an unknown code", "a wrong verifier"):
        assert answers[refused][1]["error"] == "invalid_grant", refused


def test_a_token_request_the_lane_counted_is_not_counted_again(world, settings):
    """The lane counts a token request against the rate limits before it knows whether it will
    answer; a request it leaves to the machine stack is not counted there a second time."""
    settings.IDP_RATE_LIMITS = {**settings.IDP_RATE_LIMITS, "token-client": (2, 60)}
    with_lane, _ = _apps()
    client_id, _secret = world["api"]

    def ask(authorization: str) -> int:
        body = _form(grant_type="client_credentials")
        return wsgi_call("POST", "/o/token/", body=body, app=with_lane, AUTHORIZATION=authorization)["status"]

    refused = ask(basic_auth(client_id, "nope"))  # counted by the lane, answered by the stack
    granted = ask(world["as_api"])  # the second of two
    limited = wsgi_call(
        "POST",
        "/o/token/",
        body=_form(grant_type="client_credentials"),
        app=with_lane,
        AUTHORIZATION=world["as_api"],
    )
    assert (refused, granted, limited["status"]) == (401, 200, 429)
    assert json.loads(limited["body"])["error"] == "temporarily_unavailable"
    assert int(dict(limited["headers"])["Retry-After"]) > 0
    assert with_lane.lane.answered == 1


def test_a_dropped_database_connection_is_left_to_the_machine_stack(world, settings):
    """The lane's read fails on a connection PostgreSQL ended; it closes it, and the machine
    stack answers on a new one (no 500, nothing logged as the lane's failure)."""
    settings.DB_HEALTH_CHECK_INTERVAL = 3600  # the check would not find it
    with_lane, _ = _apps()
    ask = lambda: wsgi_call("GET", "/o/userinfo/", app=with_lane, AUTHORIZATION=f"Bearer {world['token']}")  # noqa: E731
    assert ask()["status"] == 200
    drop_our_connection()
    userinfo.ROWS.clear()  # the row is read again, as a user's first call would

    answer = ask()

    assert answer["status"] == 200
    assert json.loads(answer["body"])["preferred_username"] == "ivan"
    assert with_lane.lane.answered == 1  # the first; the second was the stack's


def test_a_token_whose_write_meets_a_dropped_connection_is_issued_by_the_machine_stack(world, settings):
    """The lane's INSERT fails on a connection PostgreSQL ended, so nothing of its token is
    written; it closes the connection and the machine stack issues the token on a new one: one
    token, one audit record, one event, and no 500."""
    settings.DB_HEALTH_CHECK_INTERVAL = 3600  # the check would not find it
    with_lane, _ = _apps()

    def ask() -> dict[str, Any]:
        body = _form(grant_type="client_credentials")
        return wsgi_call("POST", "/o/token/", body=body, app=with_lane, AUTHORIZATION=world["as_api"])

    assert ask()["status"] == 200
    before = (AccessToken.objects.count(), AuditLog.objects.count(), OutboxEvent.objects.count())
    drop_our_connection()

    answer = ask()

    assert answer["status"] == 200
    assert json.loads(answer["body"])["token_type"] == "Bearer"
    assert with_lane.lane.answered == 1  # the first; the second was the stack's
    after = (AccessToken.objects.count(), AuditLog.objects.count(), OutboxEvent.objects.count())
    assert [b - a for a, b in zip(before, after, strict=True)] == [1, 1, 1]


def test_a_refresh_whose_lookup_meets_a_dropped_connection_is_rotated_once_by_the_machine_stack(
    world, settings
):
    """The lane's read of the refresh token fails on a connection PostgreSQL ended, before it
    wrote anything; the machine stack rotates the token on a new connection: one new family
    member, one audit record, and the token presented is not taken for a reuse."""
    settings.DB_HEALTH_CHECK_INTERVAL = 3600  # the check would not find it
    portal, secret = make_app(name="Portal")
    with_lane, _ = _apps()

    def ask(value: str) -> dict[str, Any]:
        body = _form(grant_type="refresh_token", refresh_token=value)
        return wsgi_call(
            "POST", "/o/token/", body=body, app=with_lane, AUTHORIZATION=basic_auth(portal.client_id, secret)
        )

    assert ask(family(portal, world["ivan"]))["status"] == 200  # the connection is open
    value = family(portal, world["ivan"])
    before = AuditLog.objects.filter(action=AuditAction.TOKEN_REFRESHED).count()
    drop_our_connection()

    answer = ask(value)

    assert answer["status"] == 200
    assert with_lane.lane.answered == 1  # the first; the second was the stack's
    after = AuditLog.objects.filter(action=AuditAction.TOKEN_REFRESHED).count()
    assert after - before == 1
    assert not AuditLog.objects.filter(action=AuditAction.REFRESH_TOKEN_REUSED).exists()
    assert ask(json.loads(answer["body"])["refresh_token"])["status"] == 200  # its successor is live


def test_every_machine_middleware_is_honoured_or_there_is_no_lane(settings):
    assert set(machine.machine_middleware()) == lane.HONOURED.keys()
    assert machine.Application().lane is not None

    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "django.middleware.gzip.GZipMiddleware"]
    assert machine.Application().lane is None


def test_the_served_application_has_the_lane():
    from idp.wsgi import application

    assert isinstance(application.lane, lane.Lane)
