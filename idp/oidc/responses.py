"""The answer of the endpoints that skip oauthlib (client_credentials, refresh, introspection):
JSON that no cache keeps, as RFC 6749 §5.1 asks of token responses and oauthlib sends for RFC 7662."""

from __future__ import annotations

from django.http import HttpResponse

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def no_store_json(body: str, status: int = 200, headers: dict[str, str] | None = None) -> HttpResponse:
    response = HttpResponse(body, status=status, content_type="application/json")
    for name, value in {**_NO_STORE, **(headers or {})}.items():
        response[name] = value
    return response
