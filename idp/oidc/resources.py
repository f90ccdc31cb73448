"""Resource indicators (RFC 8707): which API a token is for.

A client names the API with `resource` (on the authorization request, at the token endpoint,
or both to narrow); each must be a registered ResourceServer. The access token's `aud` is then
the API's identifier (a list for several) instead of the platform's audience, so it is good at
that API only: the platform's validators (gRPC, REST, userinfo) check the platform's audience,
and introspection answers about it only to the API's own client and the client it was issued to.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.conf import settings
from oauth2_provider.oauth2_validators import OAuth2Validator
from oauthlib.common import Request as OAuthlibRequest
from oauthlib.oauth2.rfc6749 import errors

from idp.oidc.models import ResourceServer


class UnknownResourceError(Exception):
    """A `resource` that names no registered API (RFC 8707 §2: `invalid_target`)."""


def servers(identifiers: Iterable[str]) -> list[ResourceServer]:
    """The registered APIs `identifiers` name, in order; raises UnknownResourceError."""
    wanted = list(dict.fromkeys(identifiers))
    if not wanted:
        return []
    found = {server.identifier: server for server in ResourceServer.objects.filter(identifier__in=wanted)}
    unknown = [identifier for identifier in wanted if identifier not in found]
    if unknown:
        raise UnknownResourceError(f"the resource {unknown[0]!r} is not a registered API")
    return [found[identifier] for identifier in wanted]


def audience(identifiers: list[str]) -> Any:
    """The `aud` of an access token for `identifiers`: the platform's without any."""
    if not identifiers:
        return settings.IDP_ACCESS_TOKEN_AUDIENCE
    return identifiers[0] if len(identifiers) == 1 else list(identifiers)


def audiences_of(claims: dict[str, Any]) -> list[str]:
    aud = claims.get("aud")
    return [a for a in (aud if isinstance(aud, list) else [aud]) if isinstance(a, str)]


def api_clients(audiences: list[str]) -> set[int | None]:
    """The own clients of the registered APIs among `audiences` (None for an API without one);
    empty when none of them is a registered API."""
    if not audiences:
        return set()
    return set(ResourceServer.objects.filter(identifier__in=audiences).values_list("client_id", flat=True))


def may_introspect(
    caller_pk: int, caller_is_platform_api: bool, caller_client_id: str, claims: dict[str, Any]
) -> bool:
    """RFC 7662 §4 with audiences. A token for the platform: to the client it was issued to and
    to platform APIs (the application flag `resource_server`). A token for registered APIs: to
    the client it was issued to and to those APIs' own clients. A token for anything else was
    not issued here (forged with a stolen key, or from an API since removed): to nobody."""
    audiences = audiences_of(claims)
    own = claims.get("client_id") == caller_client_id
    if settings.IDP_ACCESS_TOKEN_AUDIENCE in audiences:
        return own or caller_is_platform_api
    registered = api_clients(audiences)
    return bool(registered) and (own or caller_pk in registered)


class RegisteredResourcesMixin:
    """DOT's RFC 8707 handling (format, narrowing, inheritance from the code or refresh token),
    with one rule more: every resource is a registered API. Run once per token request: the
    token generator needs it for `aud` before DOT's save asks again (a query for a code)."""

    def _check_and_set_request_resource(self, request: OAuthlibRequest) -> None:
        if getattr(request, "idp_resources_checked", False):
            return
        super()._check_and_set_request_resource(request)  # type: ignore[misc]
        request.idp_resources_checked = True

    def _validate_resource_uris(self, request: OAuthlibRequest, resources: list[str]) -> None:
        super()._validate_resource_uris(request, resources)  # type: ignore[misc]
        try:
            servers(resources)
        except UnknownResourceError as exc:
            raise errors.CustomOAuth2Error(
                error="invalid_target", description=str(exc), request=request
            ) from None


class _Rules(RegisteredResourcesMixin, OAuth2Validator):
    pass


_RULES = _Rules()


def token_resources(request: OAuthlibRequest) -> list[str]:
    """The APIs a user token is for (DOT's grants): the token request's `resource`, else the
    code's or the refresh token's, by the rules above (DOT stores them on the token's row)."""
    if request.grant_type not in ("authorization_code", "refresh_token"):
        return []
    _RULES._check_and_set_request_resource(request)
    return list(request.resource or [])
