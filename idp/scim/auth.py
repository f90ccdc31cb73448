"""Who calls /scim/v2/: an organisation's directory, known by its SCIM token (clients.scim_tokens).

A token works while it is not revoked and its organisation is active. It speaks for the
organisation's directory, as the organisation's SSO provider does when it signs a person in
(accounts.sso.provisioning): the changes it asks for are made by the system (`actor=None` in
accounts.services), bounded here as they are there: only that organisation's users, only its own
two roles (what a B2B client administrator may hand out, never more), no admin access, no
passwords. Whoever may configure the organisation's SSO may make and revoke its tokens. The token
is named in every audit record of what it changed (core.context `via`)."""

from __future__ import annotations

from dataclasses import dataclass

from django.http import HttpRequest

from clients.models import Organisation, ScimToken
from clients.scim_tokens import find_scim_token


@dataclass(frozen=True)
class Caller:
    token: ScimToken
    organisation: Organisation

    @property
    def via(self) -> str:
        return f"scimToken:{self.token.pk}"

    @property
    def via_label(self) -> str:
        return f"SCIM token {self.token}"


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
    # Not tied to its maker's account: the directory must be able to deprovision the very
    # administrator who made its token.
    return Caller(token=token, organisation=token.organisation)
