"""Who calls /scim/v2/: an organisation's SCIM token (clients.scim_tokens), and the administrator
whose authority it carries.

A token works while it is not revoked, its organisation is active, and the administrator who
made it is still active and may still see that organisation's users; every change it asks for is
then checked by accounts.services as that administrator's own would be (accounts.authority), so
a token never does more than its maker could."""

from __future__ import annotations

from dataclasses import dataclass

from django.http import HttpRequest

from accounts import rbac
from accounts.models import User
from clients.models import Organisation, ScimToken
from clients.scim_tokens import find_scim_token
from core.permissions import Permission


@dataclass(frozen=True)
class Caller:
    token: ScimToken
    organisation: Organisation
    actor: User

    @property
    def via(self) -> str:
        return f"scimToken:{self.token.pk}"


def bearer(request: HttpRequest) -> str:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def authenticate(request: HttpRequest) -> Caller | None:
    presented = bearer(request)
    if not presented:
        return None
    token = find_scim_token(presented)
    if token is None:
        return None
    maker = token.created_by
    if maker is None or not maker.is_active:
        return None
    allowed, _reason = rbac.decide(maker, Permission.USER_READ, organisation_id=token.organisation_id)
    if not allowed:
        return None
    return Caller(token=token, organisation=token.organisation, actor=maker)
