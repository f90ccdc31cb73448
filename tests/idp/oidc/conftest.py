"""A relying party's view of the provider: a real HTTP server (pytest-django's live server) and
Authlib's OAuth 2.0 / OIDC client, with the login form submitted like a browser would."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, quote_plus, urljoin, urlsplit

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from django.db import connection

from accounts import services as accounts
from accounts.models import Role, User
from idp.oidc.models import Application
from tests.conftest import Provider
from tests.idp.oidc.backchannel_receiver import celery_retrying_in_process, receiver  # noqa: F401 - fixtures

REDIRECT_URI = "https://rp.example.com/callback"
LOGOUT_REDIRECT_URI = "https://rp.example.com/signed-out"
PASSWORD = "rp-user-password-1"


def make_app(
    *,
    name: str = "Parcel portal",
    skip_authorization: bool = False,
    public: bool = False,
    grant: str = Application.GRANT_AUTHORIZATION_CODE,
) -> tuple[Application, str]:
    secret = secrets.token_urlsafe(32)
    app = Application.objects.create(
        name=name,
        client_type=Application.CLIENT_PUBLIC if public else Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=grant,
        redirect_uris=REDIRECT_URI if grant == Application.GRANT_AUTHORIZATION_CODE else "",
        post_logout_redirect_uris=LOGOUT_REDIRECT_URI,
        algorithm=Application.RS256_ALGORITHM,
        client_secret=secret,
        skip_authorization=skip_authorization,  # first party: no consent screen
    )
    return app, secret


@pytest.fixture
def rp_app(transactional_db: None) -> tuple[Application, str]:
    return make_app(skip_authorization=True)


@pytest.fixture
def rp_user(transactional_db: None, acme: Any) -> User:
    return accounts.create_user(
        actor=None,
        username="ivan",
        password=PASSWORD,
        email="ivan@acme.example",
        phone="+79990001122",
        role=Role.CLIENT_ADMIN,
        organisation=acme,
    )


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


class Browser:
    """A cookie jar that follows redirects by hand and fills in forms, like a person would."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = requests.Session()

    def get(self, url: str) -> requests.Response:
        return self.http.get(urljoin(self.base, url), allow_redirects=False, timeout=10)

    def submit(
        self, page: requests.Response, data: dict[str, str], button: str | None = None, url: str | None = None
    ) -> requests.Response:
        """Post a form of `page` (its hidden fields, `data`, the CSRF token) to the page itself, or
        to `url` (a form whose action is another address)."""
        fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text))
        fields.update(
            re.findall(r'<input[^>]*name="([^"]+)"[^>]*type="hidden"[^>]*value="([^"]*)"', page.text)
        )
        fields.update(data)
        if button:
            fields[button] = "1" if button != "allow" else "Authorize"
        fields["csrfmiddlewaretoken"] = self.http.cookies.get(
            "csrftoken", fields.get("csrfmiddlewaretoken", "")
        )
        return self.http.post(
            urljoin(self.base, url) if url else page.url,
            data=fields,
            allow_redirects=False,
            timeout=10,
            headers={"Referer": page.url},
        )

    def follow(self, response: requests.Response, limit: int = 10) -> requests.Response:
        """Follow redirects inside the provider; stop at a page or at a redirect leaving it."""
        for _ in range(limit):
            location = response.headers.get("Location", "")
            leaving = location.startswith(("http://", "https://")) and not location.startswith(self.base)
            if response.status_code not in (301, 302, 303) or leaving:
                return response
            response = self.get(location)
        raise AssertionError("too many redirects")

    def open(self, url: str) -> requests.Response:
        return self.follow(self.get(url))

    def sign_in(self, page: requests.Response, login: str, password: str) -> requests.Response:
        assert "id_username" in page.text, page.text[:500]
        return self.follow(self.submit(page, {"username": login, "password": password}))


def exchange_code(
    provider: Provider,
    app: Application,
    secret: str,
    code: str,
    verifier: str | None,
    redirect_uri: str | None = REDIRECT_URI,
) -> requests.Response:
    """The client's back-channel half of the code flow: the code (and verifier) for tokens."""
    data = {"grant_type": "authorization_code", "code": code}
    if redirect_uri is not None:
        data["redirect_uri"] = redirect_uri
    if verifier is not None:
        data["code_verifier"] = verifier
    return requests.post(f"{provider.url}/o/token/", auth=(app.client_id, secret), data=data, timeout=10)


def query_of(response: requests.Response) -> dict[str, str]:
    location = response.headers["Location"]
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def authorize_url(
    provider: Provider,
    client_id: str,
    *,
    challenge: str | None,
    scope: str = "openid profile email",
    **extra: str,
) -> str:
    session = OAuth2Session(client_id, redirect_uri=REDIRECT_URI, scope=scope)
    kwargs: dict[str, str] = dict(extra)
    if challenge:
        kwargs.update(code_challenge=challenge, code_challenge_method="S256")
    url, _state = session.create_authorization_url(provider.metadata()["authorization_endpoint"], **kwargs)
    return url


def basic_auth(client_id: str, secret: str) -> str:
    """An HTTP Basic header value as RFC 6749 §2.3.1 asks: id and secret form-encoded first."""
    return "Basic " + base64.b64encode(f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()).decode()


class FastPathSpy:
    """Counts the requests a fast path (a module's `name` function returning a response or None)
    answered itself rather than handing them to DOT/oauthlib."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> None:
        self.answered = 0
        real = getattr(module, name)

        def counting(request: Any) -> Any:
            response = real(request)
            self.answered += response is not None
            return response

        monkeypatch.setattr(module, name, counting)


def at_once(work: Callable[[], Any], times: int = 2) -> list[Any]:
    """Run `work` in `times` threads released together, each on its own database connection;
    their results, in the order they finished."""
    barrier = threading.Barrier(times)
    results: list[Any] = []

    def run() -> None:
        barrier.wait()
        try:
            results.append(work())
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(times)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results
