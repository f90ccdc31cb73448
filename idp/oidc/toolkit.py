"""django-oauth-toolkit as the operators' admin shows it: its app's name, and its own labels in
our catalogue.

DOT marks its labels for translation but ships no Russian catalogue. Our models inherit its fields
(client ID, redirect URIs, client type, ...), so its strings are listed here for `makemessages`:
Django looks a message up in every catalogue, ours (LOCALE_PATHS) first. The app itself is named in
INSTALLED_APPS through this subclass (idp/settings.py), Django's documented way to rename an app.
"""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop
from oauth2_provider.apps import DOTConfig


class OAuthToolkitConfig(DOTConfig):
    verbose_name = _("OAuth 2.0 (django-oauth-toolkit)")


# The fields, choices and help texts of DOT's abstract models that our models (idp.oidc.models)
# inherit, and the one validation message of its Application.clean() that our admin can show.
TOOLKIT_STRINGS = (
    # Application
    gettext_noop("client ID"),
    gettext_noop("user"),
    gettext_noop("redirect URIs"),
    gettext_noop("Allowed URIs list, space separated"),
    gettext_noop("post logout redirect URIs"),
    gettext_noop("Allowed Post Logout URIs list, space separated"),
    gettext_noop("client type"),
    gettext_noop("Confidential"),
    gettext_noop("Public"),
    gettext_noop("authorization grant type"),
    gettext_noop("Authorization code"),
    gettext_noop("Device Code"),
    gettext_noop("Implicit"),
    gettext_noop("Resource owner password-based"),
    gettext_noop("Client credentials"),
    gettext_noop("OpenID connect hybrid"),
    gettext_noop("client secret"),
    gettext_noop("Client secret for authentication"),
    gettext_noop("hash client secret"),
    gettext_noop("name"),
    gettext_noop("skip authorization"),
    gettext_noop("created"),
    gettext_noop("updated"),
    gettext_noop("algorithm"),
    gettext_noop("allowed origins"),
    gettext_noop("Allowed origins list to enable CORS, space separated"),
    gettext_noop("registration source"),
    gettext_noop("How this application was registered (manual, DCR per RFC 7591, or CIMD)"),
    gettext_noop("Manual"),
    gettext_noop("Dynamic Client Registration"),
    gettext_noop("Client ID Metadata Document"),
    gettext_noop("CIMD expires at"),
    gettext_noop("When the cached Client ID Metadata Document should be re-fetched"),
    gettext_noop("redirect_uris cannot be empty with grant_type {grant_type}"),
    # Grant (authorization code)
    gettext_noop("code"),
    gettext_noop("application"),
    gettext_noop("expires"),
    gettext_noop("redirect URI"),
    gettext_noop("scope"),
    gettext_noop("code challenge"),
    gettext_noop("code challenge method"),
    gettext_noop("nonce"),
    gettext_noop("claims"),
    gettext_noop("resource"),
    # DeviceGrant (RFC 8628)
    gettext_noop("device code"),
    gettext_noop("user code"),
    gettext_noop("interval"),
    gettext_noop("status"),
    gettext_noop("last checked"),
    gettext_noop("Authorized"),
    gettext_noop("Authorization pending"),
    gettext_noop("Expired"),
    gettext_noop("Denied"),
    # Access, refresh and ID tokens
    gettext_noop("source refresh token"),
    gettext_noop("token"),
    gettext_noop("token checksum"),
    gettext_noop("ID token"),
    gettext_noop("access token"),
    gettext_noop("token family"),
    gettext_noop("revoked"),
    gettext_noop("JWT Token ID"),
)
