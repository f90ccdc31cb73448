"""The direct lane: the machine requests services make most (RFC 7662 introspection, the
client_credentials, refresh and authorization code grants with HTTP Basic client credentials,
and userinfo with a bearer token) answered without Django's request cycle.

Building the request, resolving the URL, running the middleware and rendering the response cost
a Django view four times what granian's bare WSGI costs (bench/compare "floors"), more than the
work of these answers, which come from per-process caches (idp.oidc.introspection, .userinfo).
The lane answers only requests of the common shape, and only a success or an `active: false`;
anything else (another shape, a refusal, an error, a store outage) goes on to the machine stack
(idp.machine), which answers it exactly as before. So every refusal and error keeps one source.

What the machine middleware does is done here too, from the same settings and functions (the
list `HONOURED` is checked against settings.MIDDLEWARE by a test, so a middleware added later
is not skipped unseen): the Host header checked by Django's own rule, the HTTPS redirect left to
Django, the client's address behind trusted proxies and the request id bound for logs, the
security headers, the request counted, and the database connection checked and recycled before
and after, as Django's request_started / request_finished receivers do.
"""

from __future__ import annotations

import functools
import io
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.db import connection
from django.http import HttpRequest
from django.urls import resolve
from django.utils.cache import add_never_cache_headers
from django.utils.http import http_date
from oauthlib.oauth2.rfc6749 import errors

from core import context, http_metrics
from core.client_ip import client_ip
from core.outages import STORE_OUTAGES
from idp.oidc import (
    client_auth,
    client_credentials,
    code_grant,
    introspection,
    refresh,
    responses,
    token_rate,
    userinfo,
)
from idp.oidc.dpop import HEADER as DPOP_HEADER

log = logging.getLogger(__name__)

# Each machine middleware and what the lane does in its place (tests/idp/test_lane.py compares
# this with settings.MIDDLEWARE, and the lane's answers with the machine stack's).
HONOURED = {
    "core.http_metrics.RequestMetricsMiddleware": "http_metrics.observe, same route label",
    "core.client_ip.ClientIPMiddleware": "client_ip() for the bound context",
    "django.middleware.security.SecurityMiddleware": "HTTPS redirect left to Django; its headers",
    "idp.security_headers.SecurityHeadersMiddleware": "HTML only: the lane answers JSON",
    "core.context.RequestContextMiddleware": "context bound, X-Request-ID",
    "idp.nul_bytes.RejectNulBytesMiddleware": "exact paths and no query string: nothing to refuse",
    "django.middleware.common.CommonMiddleware": "exact paths; DISALLOWED_USER_AGENTS left to Django",
    "django.middleware.clickjacking.XFrameOptionsMiddleware": "X-Frame-Options",
    "core.outages.StoreOutageMiddleware": "an outage goes on to the machine stack's 503",
}

# Form bodies this small hold one JWT (verify_access_token refuses longer ones); larger ones are
# Django's to read and limit.
_MAX_BODY = 16384
_FORM = "application/x-www-form-urlencoded"
_NO_STORE = [("Cache-Control", "no-store"), ("Pragma", "no-cache")]

Answer = tuple[list[tuple[str, str]], str]  # extra headers, JSON body


def honours(middleware: list[str]) -> bool:
    """Whether the lane does what each of this machine stack's middleware does; a stack with one
    it does not know (OpenTelemetry's, when tracing is on) gets no lane."""
    return set(middleware) <= HONOURED.keys()


class _Probe(HttpRequest):
    """Just enough of a request for Django's own host and scheme rules (get_host, is_secure)."""

    def __init__(self, environ: dict[str, Any]) -> None:
        self.META = environ

    def _get_scheme(self) -> str:
        return self.META.get("wsgi.url_scheme", "http")


def _form(environ: dict[str, Any]) -> dict[str, list[str]] | None:
    """The urlencoded body as lists of values, or None for a body of another kind or size. The
    body read is put back for the machine stack."""
    media_type, _, parameters = environ.get("CONTENT_TYPE", "").partition(";")
    if media_type.strip().lower() != _FORM or parameters.strip().lower() not in ("", "charset=utf-8"):
        return None
    try:
        length = int(environ.get("CONTENT_LENGTH") or "")
    except ValueError:
        return None
    if not 0 < length <= _MAX_BODY:
        return None
    body = environ["wsgi.input"].read(length)
    environ["wsgi.input"] = io.BytesIO(body)
    try:
        text = body.decode("ascii")  # urlencoded; anything else is Django's to decode
    except UnicodeDecodeError:
        return None
    fields: dict[str, list[str]] = {}
    for name, value in parse_qsl(text, keep_blank_values=True):
        fields.setdefault(name, []).append(value)
    return fields


def _introspection(environ: dict[str, Any]) -> Answer | None:
    """POST, HTTP Basic, `token` and `token_type_hint` only, as introspection.answerable takes
    them."""
    if environ["REQUEST_METHOD"] != "POST" or environ.get("QUERY_STRING"):
        return None
    credentials = client_auth.parse_basic(environ.get("HTTP_AUTHORIZATION", ""), settings.DEFAULT_CHARSET)
    if credentials is None:
        return None
    form = _form(environ)
    if form is None or not form.keys() <= {"token", "token_type_hint"}:
        return None
    token = introspection.answerable(form.get("token", []), form.get("token_type_hint", []))
    if token is None:
        return None
    caller = client_auth.by_secret(*credentials)
    return None if caller is None else (_NO_STORE, introspection.answer(token, caller))


def _userinfo(environ: dict[str, Any]) -> Answer | None:
    """GET with `Authorization: Bearer`, no DPoP header, no query, as userinfo.fast_response
    takes it."""
    if environ["REQUEST_METHOD"] != "GET" or environ.get("QUERY_STRING") or DPOP_HEADER in environ:
        return None
    presented = userinfo.presented_token(environ.get("HTTP_AUTHORIZATION", ""))
    if presented is None or presented[0] != "bearer":
        return None
    claims = userinfo.bearer_answer(presented[1])
    return None if claims is None else ([], claims)


def _token(environ: dict[str, Any]) -> Answer | None:
    """POST, HTTP Basic, no DPoP proof, and either `grant_type=client_credentials` with at most
    one `scope`, or `grant_type=refresh_token` with one `refresh_token`, or
    `grant_type=authorization_code` with `code`, `redirect_uri` and `code_verifier`, the last two
    without `Origin`: the rate limits counted (and the count left for the machine stack should it
    answer), then what the token view calls for that grant (client_credentials.grant and .issue,
    refresh.answer, code_grant.answer)."""
    if environ["REQUEST_METHOD"] != "POST" or environ.get("QUERY_STRING") or DPOP_HEADER in environ:
        return None
    credentials = client_auth.parse_basic(environ.get("HTTP_AUTHORIZATION", ""), settings.DEFAULT_CHARSET)
    if credentials is None:
        return None
    form = _form(environ)
    if form is None or any(len(values) > 1 for values in form.values()):
        return None
    grant_type = form.get("grant_type", [""])[0]
    if grant_type == client_credentials.GRANT_TYPE:
        if not form.keys() <= {"grant_type", "scope"}:
            return None
    elif grant_type == refresh.GRANT_TYPE:
        # Origin: a browser's request, whose CORS headers are oauthlib's business.
        if form.keys() != {"grant_type", "refresh_token"} or "HTTP_ORIGIN" in environ:
            return None
    elif grant_type == code_grant.GRANT_TYPE:
        if form.keys() != code_grant.PARAMS or "HTTP_ORIGIN" in environ:
            return None
    else:
        return None
    decision = token_rate.hit(environ.get("REMOTE_ADDR", ""), credentials[0])
    environ[token_rate.COUNTED] = decision
    if not decision.allowed:
        return None
    client = client_auth.by_secret(*credentials)
    if client is None:
        return None
    if grant_type == refresh.GRANT_TYPE:
        body = refresh.answer(client, form["refresh_token"][0], None)
        return None if body is None else (_never_cached(), body)
    if grant_type == code_grant.GRANT_TYPE:
        code, uri, verifier = (form[name][0] for name in ("code", "redirect_uri", "code_verifier"))
        body = code_grant.answer(client, code=code, redirect_uri=uri, verifier=verifier, proof=None)
        return None if body is None else (_never_cached(), body)
    if client.require_dpop:
        return None
    try:
        scopes, apis = client_credentials.grant(client, form.get("scope", [""])[0], [])
        body = client_credentials.issue(client, scopes, apis, None)
    except errors.OAuth2Error:
        return None
    return _never_cached(), body


def _never_cached() -> list[tuple[str, str]]:
    """The caching headers of the token view's answers: responses.no_store_json's, then
    never_cache's; Expires is this second."""
    return [*_constant_caching_headers(), ("Expires", http_date())]


@functools.cache
def _constant_caching_headers() -> tuple[tuple[str, str], ...]:
    # Made once by the same functions the view's answer goes through (their result depends on
    # no setting): a response and Django's header patching cost a tenth of a token's CPU.
    response = responses.no_store_json("")
    add_never_cache_headers(response)
    return tuple((name, response[name]) for name in ("Cache-Control", "Pragma"))


_HANDLERS: dict[str, Callable[[dict[str, Any]], Answer | None]] = {
    "/o/introspect/": _introspection,
    "/o/userinfo/": _userinfo,
    "/o/token/": _token,
}
_USE_DATABASE = frozenset({"/o/userinfo/", "/o/token/"})  # introspection reads only caches


def security_headers(secure: bool) -> list[tuple[str, str]]:
    """The headers SecurityMiddleware and XFrameOptionsMiddleware give a JSON answer."""
    headers = []
    if settings.SECURE_HSTS_SECONDS and secure:
        value = f"max-age={settings.SECURE_HSTS_SECONDS}"
        if settings.SECURE_HSTS_INCLUDE_SUBDOMAINS:
            value += "; includeSubDomains"
        if settings.SECURE_HSTS_PRELOAD:
            value += "; preload"
        headers.append(("Strict-Transport-Security", value))
    if settings.SECURE_CONTENT_TYPE_NOSNIFF:
        headers.append(("X-Content-Type-Options", "nosniff"))
    policy = settings.SECURE_REFERRER_POLICY
    if policy:
        values = [v.strip() for v in policy.split(",")] if isinstance(policy, str) else policy
        headers.append(("Referrer-Policy", ",".join(values)))
    if settings.SECURE_CROSS_ORIGIN_OPENER_POLICY:
        headers.append(("Cross-Origin-Opener-Policy", settings.SECURE_CROSS_ORIGIN_OPENER_POLICY))
    headers.append(("X-Frame-Options", settings.X_FRAME_OPTIONS.upper()))
    return headers


class Lane:
    """Answers a request of the lane's shapes, or returns None for the machine stack to."""

    def __init__(self) -> None:
        # The route label RequestMetricsMiddleware gives the same URL.
        self.routes = {path: "/" + resolve(path).route for path in _HANDLERS}
        # Read from the settings once, as SecurityMiddleware reads them when it is made.
        self.headers = {secure: security_headers(secure) for secure in (False, True)}

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes] | None:
        path = environ.get("PATH_INFO", "")
        handler = _HANDLERS.get(path)
        if handler is None or settings.DISALLOWED_USER_AGENTS:
            return None
        started = time.perf_counter()
        probe = _Probe(environ)
        try:
            probe.get_host()
        except DisallowedHost:
            return None  # Django answers 400 and logs it
        secure = probe.is_secure()
        if settings.SECURE_SSL_REDIRECT and not secure:
            return None
        peer = environ.get("REMOTE_ADDR", "")
        request = context.RequestContext(
            request_id=context.request_id(environ.get("HTTP_X_REQUEST_ID", "")),
            ip=client_ip(peer, environ.get("HTTP_X_FORWARDED_FOR", "")) or None,
            user_agent=environ.get("HTTP_USER_AGENT", "")[:512],
        )
        database = connection if path in _USE_DATABASE else None
        if database is not None:
            # What request_started and request_finished do for the one connection used: a broken
            # or aged connection is closed and opened again. (The signals' full round over every
            # connection and cache cost as much as the introspection itself.)
            database.close_if_unusable_or_obsolete()
        try:
            with context.bind(request):
                answer = handler(environ)
        except STORE_OUTAGES:
            answer = None  # the machine stack meets it too: it replaces the connection, or answers 503
        except Exception:
            log.exception("the direct lane failed on %s; the machine stack answers", path)
            answer = None
        finally:
            if database is not None:
                database.close_if_unusable_or_obsolete()
        if answer is None:
            return None
        extra, text = answer
        body = text.encode()
        start_response(
            "200 OK",
            [
                ("Content-Type", "application/json"),
                *extra,
                *self.headers[secure],
                ("X-Request-ID", request.request_id),
                ("Content-Length", str(len(body))),
            ],
        )
        http_metrics.observe(environ["REQUEST_METHOD"], self.routes[path], 200, time.perf_counter() - started)
        return [body]
