"""Pages of corporate SSO: off to the client's identity provider, and back (accounts.sso)."""

from __future__ import annotations

from types import ModuleType
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth import login as auth_login
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from accounts import mfa_views, sessions
from accounts.sso import flow
from clients import saml
from clients.models import IdentityProvider
from clients.upstream import SSOError, SSOErrorCode
from core.outbound import AddressKind, FetchError, Reason

# What the person is told, and the status of the page, for each way a sign-in can fail.
MESSAGES: dict[SSOErrorCode, tuple[str, int]] = {
    SSOErrorCode.NOT_CONFIGURED: (_("Company sign-in is not set up for this organisation."), 404),
    SSOErrorCode.INVALID_STATE: (
        _("This sign-in has expired or was already used. Please start again."),
        400,
    ),
    SSOErrorCode.DENIED: (_("Your company's sign-in was cancelled or refused."), 403),
    SSOErrorCode.UPSTREAM_ERROR: (_("Your company's identity provider reported an error."), 502),
    SSOErrorCode.UNREACHABLE: (
        _("Your company's identity provider cannot be reached right now. Please try again later."),
        502,
    ),
    SSOErrorCode.FETCH_REFUSED: (
        _("We did not use your company's identity provider: its configuration is not allowed."),
        502,
    ),
    SSOErrorCode.BAD_RESPONSE: (_("Your company's identity provider gave an answer we cannot use."), 502),
    SSOErrorCode.BAD_TOKEN: (
        _("Your company's identity provider sent a sign-in we could not verify."),
        400,
    ),
    SSOErrorCode.ACCOUNT_BLOCKED: (_("This account is blocked. Contact your administrator."), 403),
    SSOErrorCode.PROVISIONING_FAILED: (
        _("Your account could not be set up here. Contact your administrator."),
        409,
    ),
    # SAML 2.0 (accounts.sso.saml)
    SSOErrorCode.UNSIGNED: (
        _(
            "Your company's identity provider sent a sign-in that is not signed, and we accept only "
            "signed ones."
        ),
        400,
    ),
    SSOErrorCode.BAD_SIGNATURE: (
        _(
            "Your company's identity provider sent a sign-in whose signature does not verify. It may "
            "have been altered."
        ),
        400,
    ),
    SSOErrorCode.EXPIRED: (
        _(
            "This sign-in from your company's identity provider has expired or is not valid yet. "
            "Please start again."
        ),
        400,
    ),
    SSOErrorCode.REPLAYED: (
        _("This sign-in was already used, and each can be used only once. Please start again."),
        400,
    ),
    SSOErrorCode.WRONG_AUDIENCE: (
        _(
            "Your company's identity provider sent a sign-in meant for another service. Contact your "
            "administrator."
        ),
        400,
    ),
    SSOErrorCode.WRONG_RECIPIENT: (
        _("Your company's identity provider sent a sign-in to another address. Contact your administrator."),
        400,
    ),
    SSOErrorCode.UNSOLICITED: (
        _("This sign-in was not started here. Please start again from this site's sign-in page."),
        400,
    ),
}


# Why a fetch from the provider was refused or failed, in words for the person (and their
# administrator, who fixes the configuration); never anything the provider sent.
FETCH_MESSAGES: dict[Reason, str] = {
    Reason.INVALID_URL: _("The identity provider's address is not a usable URL."),
    Reason.INSECURE_SCHEME: _("The identity provider's address must use https."),
    Reason.FORBIDDEN_ADDRESS: _("The identity provider's address is not allowed (%(kind)s)."),
    Reason.REDIRECT: _("The identity provider answered with a redirect, and redirects are never followed."),
    Reason.TOO_LARGE: _("The identity provider's answer was too large."),
    Reason.TIMEOUT: _("The identity provider did not answer in time."),
    Reason.UNREACHABLE: _("No connection could be made to the identity provider."),
    Reason.TLS: _("The identity provider's TLS certificate could not be verified."),
    Reason.BAD_STATUS: _("The identity provider answered with an error status."),
    Reason.BAD_RESPONSE: _("The identity provider's answer was not valid HTTP."),
}
ADDRESS_KINDS: dict[AddressKind, str] = {
    AddressKind.LOOPBACK: _("loopback"),
    AddressKind.PRIVATE: _("private network"),
    AddressKind.LINK_LOCAL: _("link-local, where cloud metadata services answer"),
    AddressKind.SHARED: _("shared address space"),
    AddressKind.MULTICAST: _("multicast"),
    AddressKind.UNSPECIFIED: _("unspecified address"),
    AddressKind.RESERVED: _("reserved, not globally routable"),
}


def _fetch_message(fetch: FetchError | None) -> str:
    if fetch is None:
        return ""
    message = FETCH_MESSAGES[fetch.reason]
    if fetch.reason is Reason.FORBIDDEN_ADDRESS:
        kind = ADDRESS_KINDS[fetch.address_kind] if fetch.address_kind else _("not the address checked")
        return message % {"kind": kind}
    return str(message)


def start_url(provider: IdentityProvider, *, next_url: str, login_hint: str = "") -> str:
    """Where the login page sends a person whose e-mail domain signs in with `provider`."""
    query = {"next": next_url} | ({"login_hint": login_hint} if login_hint else {})
    return f"{reverse('sso:start', args=[provider.organisation.slug])}?{urlencode(query)}"


def _safe_next(request: HttpRequest, url: str | None) -> str:
    if url and url_has_allowed_host_and_scheme(
        url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return url
    return reverse("home")


def _provider(slug: str, protocol: str | None = None) -> IdentityProvider | None:
    providers = IdentityProvider.objects.select_related("organisation").filter(
        organisation__slug=slug, enabled=True
    )
    return (providers.filter(protocol=protocol) if protocol else providers).first()


def _failed(request: HttpRequest, error: SSOError, next_url: str = "") -> HttpResponse:
    message, status = MESSAGES[error.code]
    retry = reverse("accounts:login") + (f"?{urlencode({'next': next_url})}" if next_url else "")
    return render(
        request,
        "sso/error.html",
        {
            "message": message,
            "reason": error.code,
            "fetch_reason": error.fetch.reason if error.fetch else "",
            "fetch_message": _fetch_message(error.fetch),
            "retry_url": retry,
        },
        status=status,
    )


def _saml_flow() -> ModuleType:
    """accounts.sso.saml, imported by the first SAML sign-in: pysaml2 (about 50 MB) stays out of
    the processes and web workers that never see one."""
    from accounts.sso import saml as saml_sign_in  # lazy: pysaml2 is only for SAML sign-ins

    return saml_sign_in


@never_cache
@require_GET
def start(request: HttpRequest, slug: str) -> HttpResponse:
    next_url = _safe_next(request, request.GET.get("next"))
    provider = _provider(slug)
    if provider is None:
        return _failed(request, SSOError(SSOErrorCode.NOT_CONFIGURED), next_url)
    try:
        if provider.is_saml:
            saml_flow = _saml_flow()
            url = saml_flow.begin(request, provider, next_url=next_url)
        else:
            login_hint = request.GET.get("login_hint", "")
            url = flow.begin(request, provider, next_url=next_url, login_hint=login_hint)
    except SSOError as exc:
        return _failed(request, exc, next_url)
    return HttpResponseRedirect(url)


@never_cache
@require_GET
def callback(request: HttpRequest, slug: str) -> HttpResponse:
    provider = _provider(slug, IdentityProvider.Protocol.OIDC)
    if provider is None:
        return _failed(request, SSOError(SSOErrorCode.NOT_CONFIGURED))
    try:
        signed_in = flow.complete(request, provider, request.GET)
    except SSOError as exc:
        return _failed(request, exc)
    return _signed_in(request, signed_in)


@never_cache
@require_GET
def saml_metadata(request: HttpRequest, slug: str) -> HttpResponse:
    """Our SP metadata for this client, for its IT admin to load into their IdP (also while the
    provider is still switched off, so that both sides can be set up first)."""
    provider = (
        IdentityProvider.objects.select_related("organisation")
        .filter(organisation__slug=slug, protocol=IdentityProvider.Protocol.SAML)
        .first()
    )
    if provider is None:
        return _failed(request, SSOError(SSOErrorCode.NOT_CONFIGURED))
    try:
        document = saml.sp_metadata(provider)
    except SSOError as exc:
        return _failed(request, exc)
    response = HttpResponse(document, content_type="application/samlmetadata+xml; charset=utf-8")
    response["Content-Disposition"] = f'inline; filename="{slug}-sp-metadata.xml"'
    return response


# SAML Bindings §3.5: the IdP's page posts the Response to us from its own site. The session
# cookie is SameSite=Lax, so that cross-site POST arrives without it; the first answer is a page of
# ours that posts the same fields again, now same-site, with the cookie (static/idp/autopost.js).
BOUNCED = "bounced"


@csrf_exempt  # a cross-site POST by design; what protects it is the signature and InResponseTo
@never_cache
@require_POST
def saml_acs(request: HttpRequest, slug: str) -> HttpResponse:
    saml_response = request.POST.get("SAMLResponse", "")
    relay_state = request.POST.get("RelayState", "")
    if settings.SESSION_COOKIE_NAME not in request.COOKIES and BOUNCED not in request.POST:
        return render(
            request,
            "sso/saml_post.html",
            {"action": request.path, "saml_response": saml_response, "relay_state": relay_state},
        )
    provider = _provider(slug, IdentityProvider.Protocol.SAML)
    if provider is None:
        return _failed(request, SSOError(SSOErrorCode.NOT_CONFIGURED))
    saml_flow = _saml_flow()
    default_next = _safe_next(request, saml_flow.safe_relay_target(relay_state))
    try:
        signed_in = saml_flow.complete(
            request, provider, saml_response=saml_response, default_next=default_next
        )
    except SSOError as exc:
        return _failed(request, exc)
    return _signed_in(request, signed_in)


def _signed_in(request: HttpRequest, signed_in: flow.SignIn) -> HttpResponse:
    # accounts.assurance: unless the upstream's MFA is trusted and was done, our second factor
    # comes first (not logged in yet; the session's `amr` keeps "fed").
    second_step = mfa_views.sign_in(request, signed_in.user, signed_in.next_url, signed_in.methods)
    if second_step is not None:
        return second_step
    auth_login(request, signed_in.user, backend="accounts.authentication.LoginBackend")
    sessions.set_methods(request, signed_in.methods)
    return HttpResponseRedirect(signed_in.next_url)
