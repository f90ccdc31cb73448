"""How the REST API knows its caller: our bearer access tokens (django-oauth-toolkit), held
against the 2FA policy of the day (accounts.assurance)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.contrib.django_oauth_toolkit import DjangoOAuthToolkitScheme
from oauth2_provider.contrib.rest_framework import OAuth2Authentication
from rest_framework import exceptions
from rest_framework.request import Request

from accounts import assurance
from idp.oidc.tokens import methods_of


class InsufficientUserAuthentication(exceptions.AuthenticationFailed):
    """RFC 9470 §3: the token is valid, but what the user proved for it is not enough."""

    error_code = "insufficient_user_authentication"  # the API's `error` (idp.api.errors)
    default_detail = "this account needs a second factor: sign in again through the browser"
    default_code = error_code


class AssuredOAuth2Authentication(OAuth2Authentication):
    """A token of a person whose account needs a second factor works only if the person proved
    one when its grant began (the token's `amr`): a password-only token of someone promoted
    since, or who enrolled a factor since, is refused."""

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        found = super().authenticate(request)
        if found is None:
            return None
        user, token = found
        if user is not None and not assurance.satisfied(user, methods_of(token)):
            # Read by DOT's authenticate_header for the WWW-Authenticate challenge.
            request.oauth2_error = {
                "error": InsufficientUserAuthentication.error_code,
                "error_description": str(InsufficientUserAuthentication.default_detail),
            }
            raise InsufficientUserAuthentication()
        return found


class AssuredOAuth2Scheme(DjangoOAuthToolkitScheme):
    """The OpenAPI security scheme: DOT's, for our subclass of its authentication."""

    target_class = "idp.api.authentication.AssuredOAuth2Authentication"
