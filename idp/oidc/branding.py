"""Which B2B client's branding a page shows (clients.branding): that of the application the
sign-in is for (the authorization request's `client_id`, on the consent page, in the login
page's `next`, or kept for the second factor), else that of the work domain in the login hint.
A template context processor: pages only, never the machine paths."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from django.http import HttpRequest

from accounts.mfa_views import NEXT
from clients import branding, domains
from clients.models import Organisation
from idp.oidc.client_cache import clients


def _query_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query) if url else {}


def _organisation_of(request: HttpRequest) -> Organisation | None:
    session = getattr(request, "session", None)
    kept = session.get(NEXT, "") if session is not None else ""  # the second factor's way back
    next_url = request.GET.get("next") or request.POST.get("next") or kept
    asked = _query_of(next_url if isinstance(next_url, str) else "")
    client_id = request.GET.get("client_id") or (asked.get("client_id") or [""])[0]
    if client_id:
        app = clients.application(client_id[:100])
        if app is not None and app.organisation_id is not None:
            return app.organisation
    hint = request.GET.get("login_hint") or (asked.get("login_hint") or [""])[0]
    return domains.organisation_for_login(hint) if hint else None


def brand(request: HttpRequest) -> dict[str, Any]:
    return {"brand": branding.brand_of(_organisation_of(request))}
