"""Client authentication from the per-process client cache (idp.oidc.client_cache), for the
endpoints that answer without oauthlib: the client_credentials grant, introspection.

The same rules as DOT's `authenticate_client`: HTTP Basic (RFC 6749 §2.3.1, form-encoded id and
secret), else `client_id` and `client_secret` in the body; only a confidential client can
authenticate; the secret is checked against its stored hash.
"""

from __future__ import annotations

import base64
import binascii
from urllib.parse import unquote_plus

from django.conf import settings
from django.contrib.auth.hashers import check_password, identify_hasher
from django.http import HttpRequest
from django.utils.crypto import constant_time_compare

from idp.oidc.client_cache import ClientRecord, clients
from idp.oidc.models import Application


def authenticate(request: HttpRequest) -> ClientRecord | None:
    """The confidential client the request authenticates as, or None."""
    credentials = basic_credentials(request) or (
        request.POST.get("client_id", ""),
        request.POST.get("client_secret", ""),
    )
    client_id, secret = credentials
    if not client_id or not secret:
        return None
    client = clients.get(client_id)
    if client is None or client.client_type != Application.CLIENT_CONFIDENTIAL:
        return None
    return client if _check_secret(secret, client.client_secret) else None


def basic_credentials(request: HttpRequest) -> tuple[str, str] | None:
    """The (client_id, client_secret) of an HTTP Basic header, or None."""
    auth_type, _, value = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    if auth_type != "Basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value).decode(request.encoding or settings.DEFAULT_CHARSET)
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
