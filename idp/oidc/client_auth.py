"""Client authentication from the per-process client cache (idp.oidc.client_cache), for the
endpoints that answer without oauthlib (the client_credentials and refresh grants,
introspection) and, through the validator, for those that do.

A confidential client authenticates the way it is registered for, and only that way:
- a secret: HTTP Basic (RFC 6749 §2.3.1, form-encoded id and secret), else `client_id` and
  `client_secret` in the body, checked against its stored hash (DOT's rules);
- `private_key_jwt`: a signed assertion in the body (idp.oidc.client_assertion).
"""

from __future__ import annotations

import base64
import binascii
from urllib.parse import unquote_plus

from django.conf import settings
from django.contrib.auth.hashers import check_password, identify_hasher
from django.http import HttpRequest
from django.utils.crypto import constant_time_compare

from idp.oidc import client_assertion
from idp.oidc.client_cache import ClientRecord, clients
from idp.oidc.models import Application


def authenticate(request: HttpRequest) -> ClientRecord | None:
    """The confidential client the request authenticates as, or None."""
    if client_assertion.present(request.POST):
        return by_assertion(request)
    credentials = basic_credentials(request) or (
        request.POST.get("client_id", ""),
        request.POST.get("client_secret", ""),
    )
    return by_secret(*credentials)


def by_secret(client_id: str, secret: str) -> ClientRecord | None:
    """The confidential client registered for a secret whose id and secret these are, or None."""
    if not client_id or not secret:
        return None
    client = clients.get(client_id)
    if (
        client is None
        or client.client_type != Application.CLIENT_CONFIDENTIAL
        or client.authentication != Application.AUTH_SECRET
    ):
        return None
    return client if _check_secret(secret, client.client_secret) else None


def by_assertion(request: HttpRequest) -> ClientRecord | None:
    """The client a `private_key_jwt` assertion authenticates, checked once per request: an
    assertion is single use, and a request may pass our path and then DOT's."""
    if not hasattr(request, "idp_assertion_client"):
        request.idp_assertion_client = _verify_assertion(request)
    return request.idp_assertion_client


def _verify_assertion(request: HttpRequest) -> ClientRecord | None:
    form = request.POST
    if "HTTP_AUTHORIZATION" in request.META:  # one method per request (RFC 6749 §2.3)
        return None
    if any(
        len(form.getlist(name)) > 1 for name in ("client_id", "client_assertion", "client_assertion_type")
    ):
        return None
    return client_assertion.authenticate(form, endpoint_path=request.path)


def basic_credentials(request: HttpRequest) -> tuple[str, str] | None:
    """The (client_id, client_secret) of an HTTP Basic header, or None."""
    return parse_basic(
        request.META.get("HTTP_AUTHORIZATION", ""), request.encoding or settings.DEFAULT_CHARSET
    )


def parse_basic(header: str, encoding: str) -> tuple[str, str] | None:
    """The (client_id, client_secret) of an `Authorization: Basic` value, or None."""
    auth_type, _, value = header.partition(" ")
    if auth_type != "Basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value).decode(encoding)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    client_id, colon, secret = decoded.partition(":")
    return (unquote_plus(client_id), unquote_plus(secret)) if colon else None


def _check_secret(provided: str, stored: str) -> bool:
    try:
        identify_hasher(stored)
    except ValueError:  # a secret stored before hashing was on (DOT keeps those working)
        return constant_time_compare(provided, stored)
    return check_password(provided, stored)
