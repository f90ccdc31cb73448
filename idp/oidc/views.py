"""Thin subclasses of DOT's views: they bind the browser request for the validator, enforce what
DOT leaves loose (prompt, max_age, PKCE S256, consent memory), and audit."""

from __future__ import annotations

import copy
import json
import re
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from django.conf import settings
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.urls import reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.debug import sensitive_post_parameters
from oauth2_provider import views as dot
from oauth2_provider.exceptions import FatalClientError, OAuthToolkitError
from oauth2_provider.oauth2_backends import get_oauthlib_core
from oauth2_provider.settings import oauth2_settings
from oauth2_provider.views.mixins import OAuthLibMixin
from oauthlib.common import Request as OAuthlibRequest
from oauthlib.common import add_params_to_uri
from oauthlib.oauth2.rfc6749 import errors as oauth_errors
from oauthlib.oauth2.rfc8628.endpoints import DeviceAuthorizationEndpoint

from accounts import mfa_views, sessions
from accounts import views as account_views
from audit import services as audit
from audit.registry import AuditAction
from idp.oidc import (
    client_assertion,
    client_auth,
    client_cache,
    client_credentials,
    code_grant,
    context,
    device,
    dpop,
    holders,
    introspection,
    keys,
    par,
    refresh,
    resources,
    responses,
    services,
    token_exchange,
    token_rate,
    userinfo,
)
from idp.oidc.claims import CLAIM_SCOPES
from idp.oidc.id_tokens import verify_id_token_hint
from idp.oidc.models import Application, Consent, IDToken
from idp.oidc.revocation import revoke_session_tokens
from idp.oidc.validators import application_of

MAX_AGE = re.compile(r"[0-9]+")  # OIDC Core §3.1.2.1: a number of seconds


def _json_error(error: str, description: str, status: int = 400) -> JsonResponse:
    response = JsonResponse({"error": error, "error_description": description}, status=status)
    response["Cache-Control"] = "no-store"
    return response


def _client_id_of(request: HttpRequest) -> str:
    """The client a token request claims to be (Basic auth or the body), unverified: a rate-limit key."""
    credentials = client_auth.basic_credentials(request)
    return credentials[0] if credentials else request.POST.get("client_id", "")


def _token_rate_limit(request: HttpRequest) -> HttpResponse | None:
    """Per IP and per client (idp.oidc.token_rate). RFC 6749 has no error code for this;
    `temporarily_unavailable` with 429 and Retry-After is what clients and libraries handle (and
    RFC 6585 defines 429)."""
    decision = token_rate.decision(request.META, request.META.get("REMOTE_ADDR", ""), _client_id_of(request))
    if not decision.allowed:
        response = _json_error("temporarily_unavailable", "too many token requests; retry later", 429)
        response["Retry-After"] = str(decision.retry_after)
        return response
    return None


class _ConsentScreenRequiredError(Exception):
    """DOT's GET handler tried to approve by itself where our rules show the consent screen."""


def _with_issuer(uri: str) -> str:
    """RFC 9207 §2: `iss` on every authorization response, errors included."""
    if "iss" in parse_qs(urlsplit(uri).query):
        return uri
    return add_params_to_uri(uri, [("iss", settings.IDP_ISSUER)])


# Which pushed request the consent form answers, per client, in the browser's session.
_PUSHED_SESSION_KEY = "idp_pushed_requests"
# The fields of DOT's consent form that restate the request (AllowForm), overwritten from it.
_CONSENT_FORM_PARAMETERS = (
    "redirect_uri",
    "scope",
    "nonce",
    "state",
    "response_type",
    "code_challenge",
    "code_challenge_method",
    "claims",
)


class _InvalidRequestUriError(oauth_errors.FatalClientError):
    error = "invalid_request_uri"  # RFC 9126 §7.3


def _answers_the_client(response: HttpResponse, request: HttpRequest) -> bool:
    """Whether `response` sends the browser back to the client (a code or an error)."""
    if response.status_code not in (301, 302, 303):
        return False
    redirect_uri = (request.GET if request.method == "GET" else request.POST).get("redirect_uri") or ""
    return bool(redirect_uri) and response.get("Location", "").startswith(redirect_uri)


class _SignInHere(account_views.LoginView):
    """The login page as the authorization endpoint shows it: at the authorization request's own
    address, so its form posts back there (AuthorizationView._sign_in), and every other way on
    from it (a second factor, a passkey, the company's sign-in) leads back to that address."""

    def get_redirect_url(self) -> str:
        return self.request.get_full_path()


def _as_get(request: HttpRequest) -> HttpRequest:
    """The GET of `request`'s own address without its form's fields: the authorization request a
    sign-in posted to this endpoint was for, as the browser would fetch it next."""
    follow = copy.copy(request)
    follow.method = "GET"
    follow.META = {k: v for k, v in request.META.items() if k not in ("CONTENT_TYPE", "CONTENT_LENGTH")}
    follow.META["REQUEST_METHOD"] = "GET"
    follow.POST = QueryDict()
    return follow


class AuthorizationView(dot.AuthorizationView):
    template_name = "oidc/authorize.html"

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if "approval_prompt" in request.GET:
            # DOT's non-standard `approval_prompt=auto` approves whenever a live token exists, even
            # under prompt=consent or after the user withdrew consent: Consent.covers is the only
            # rule, so the request never gets to choose (REQUEST_APPROVAL_PROMPT is "force").
            request.GET = request.GET.copy()
            del request.GET["approval_prompt"]
        refused = self._pushed_request(request)
        if refused is not None:
            return refused
        with context.bind(request):
            response = self._dispatch(request, *args, **kwargs)
        pushed = getattr(request, "idp_pushed_request", None)
        if pushed is not None and _answers_the_client(response, request):
            par.use_up(pushed)
        return response

    def _dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method == "POST" and "username" in request.POST:  # never in the consent form
            return self._sign_in(request)
        if request.method in ("GET", "HEAD") and not request.user.is_authenticated:
            # Check the client and redirect URI before the login form is shown, so it never
            # fronts a request that could not succeed.
            self.oauth2_data = {}
            try:
                self.validate_authorization_request(request)
            except OAuthToolkitError as error:
                return self.error_response(error, application=None)
        return super().dispatch(request, *args, **kwargs)

    def _sign_in(self, request: HttpRequest) -> HttpResponse:
        """The login form this endpoint shows (handle_no_permission) posts back here. When the
        sign-in is done (no second factor asked), the authorization request it was for is answered
        in the same response, as Keycloak does, instead of sending the browser back for it: one
        request fewer. That answer passes what the GET would: the 2FA policy (`step_up`), then
        this view's whole dispatch; the request's address passed the middleware with this POST."""
        signed_in_before = request.user.is_authenticated
        response = _SignInHere.as_view()(request)
        done = (
            request.user.is_authenticated
            and response.status_code == 302
            and response.get("Location") == request.get_full_path()
        )
        if not done:
            return response  # the form again, a second factor, the company's sign-in, a refusal
        follow = _as_get(request)
        asked = mfa_views.step_up(follow)
        if asked is not None:
            return asked
        # prompt=login and max_age asked for a sign-in; this request just made one.
        follow.idp_signed_in_here = not signed_in_before
        self.request = follow
        answer = self.dispatch(follow)
        # The cookies the sign-in set (the CSRF token it rotated: its view's csrf_protect put it on
        # its own response and marked it done) go out with the answer.
        for name, morsel in response.cookies.items():
            if name not in answer.cookies:
                answer.cookies[name] = morsel
        return answer

    def _pushed_request(self, request: HttpRequest) -> HttpResponse | None:
        """RFC 9126: a `request_uri` stands for the request the client pushed, and the consent
        form's answer is read against that request, not against what the browser sent back. A
        client registered to push its requests is refused a request it did not push."""
        pushed = None
        client_id = request.GET.get("client_id", "")
        try:
            if request.method == "GET" and "request_uri" in request.GET:
                pushed, parameters = par.open_request(request.GET["request_uri"], client_id)
                # oauthlib reads the query string, Django's views read GET: both get the request.
                request.idp_original_query = request.GET
                request.idp_original_query_string = request.META.get("QUERY_STRING", "")
                request.GET = QueryDict(mutable=True)
                request.GET.update(parameters)
                request.META["QUERY_STRING"] = request.GET.urlencode()
                request.session.setdefault(_PUSHED_SESSION_KEY, {})[client_id] = pushed
                request.session.modified = True
            elif request.method == "POST":
                client_id = request.POST.get("client_id", "")
                kept = request.session.get(_PUSHED_SESSION_KEY, {}).get(client_id)
                if kept is not None:
                    pushed, parameters = par.reopen(kept, client_id)
                    request.POST = request.POST.copy()
                    for name in _CONSENT_FORM_PARAMETERS:
                        request.POST[name] = parameters.get(name, "")
        except par.RequestUriError as exc:
            error = FatalClientError(error=_InvalidRequestUriError(description=str(exc)))
            return self.error_response(error, application=None)
        if pushed is not None:
            request.idp_pushed_request = pushed
            return None
        client = client_cache.clients.get(client_id) if client_id else None  # cached per process
        if client is not None and client.require_par:
            description = "this client must push its authorization requests first (RFC 9126)"
            error = FatalClientError(error=oauth_errors.InvalidRequestFatalError(description=description))
            return self.error_response(error, application=None)
        return None

    def validate_authorization_request(self, request: HttpRequest) -> tuple[list[str], dict[str, Any]]:
        if not request.GET.get("redirect_uri"):
            # OIDC Core §3.1.2.1: redirect_uri is REQUIRED. oauthlib would fall back to the client's
            # registered URI, but an error cannot be sent to a URI the request never named: an
            # error page (FatalClientError), never a redirect.
            raise FatalClientError(
                error=oauth_errors.MissingRedirectURIError(
                    description="redirect_uri is required (OpenID Connect Core 1.0 §3.1.2.1)"
                )
            )
        scopes, credentials = super().validate_authorization_request(request)
        # From here on the redirect URI is checked against the client: errors go back to it.
        # oauthlib reads a missing method as `plain`; RFC 9700 §2.1.1: S256 only.
        if credentials.get("code_challenge") and credentials.get("code_challenge_method") != "S256":
            raise self._redirected_error("code_challenge_method must be S256", credentials)
        # RFC 8707: each `resource` a registered API; on the grant as a list, every one of them
        # (oauthlib hands over the last as a string, which the grant's field refuses).
        named = request.GET.getlist("resource")
        try:
            resources.servers(named)
        except resources.UnknownResourceError as exc:
            error = oauth_errors.CustomOAuth2Error(
                error="invalid_target", description=str(exc), state=credentials.get("state")
            )
            raise OAuthToolkitError(error=error, redirect_uri=credentials["redirect_uri"]) from None
        credentials.pop("resource", None)
        if named:
            credentials["resource"] = named
        max_age = request.GET.get("max_age")
        if max_age is not None and not MAX_AGE.fullmatch(max_age):
            raise self._redirected_error(
                "max_age must be a non-negative integer (OpenID Connect Core 1.0 §3.1.2.1)", credentials
            )
        return scopes, credentials

    @staticmethod
    def _redirected_error(description: str, credentials: dict[str, Any]) -> OAuthToolkitError:
        """An `invalid_request` for the (already validated) redirect URI (RFC 6749 §4.1.2.1)."""
        error = oauth_errors.InvalidRequestError(description=description, state=credentials.get("state"))
        return OAuthToolkitError(error=error, redirect_uri=credentials["redirect_uri"])

    def error_response(self, error: OAuthToolkitError, application: Any, **kwargs: Any) -> HttpResponse:
        response = super().error_response(error, application, **kwargs)
        if response.has_header("Location"):
            response["Location"] = _with_issuer(response["Location"])
        return response

    def handle_no_permission(self) -> HttpResponse:
        # OIDC Core §3.1.2.6: prompt=none without a session answers login_required (with `iss`).
        if "none" in self.request.GET.get("prompt", "").split():
            return self._silent_error(self.request, "login_required")
        if hasattr(self.request, "idp_original_query_string"):  # back by request_uri, not contents
            self.request.META["QUERY_STRING"] = self.request.idp_original_query_string
        if self.request.method in ("GET", "HEAD"):
            # The login page right here (the request was validated first, in _dispatch): its form
            # posts back to this address, which answers at once after the sign-in (_sign_in).
            return _SignInHere.as_view()(self.request)
        return super().handle_no_permission()

    def _needs_fresh_login(self, request: HttpRequest) -> bool:
        """`max_age` (OIDC Core §3.1.2.1): the last authentication must be recent enough."""
        raw = request.GET.get("max_age")
        if raw is None or not request.user.is_authenticated or not MAX_AGE.fullmatch(raw):
            return False  # a malformed max_age is refused by validate_authorization_request
        max_age = int(raw)
        authenticated = sessions.auth_time(request)
        return authenticated is None or (timezone.now() - authenticated).total_seconds() > max_age

    def _login_redirect(self, request: HttpRequest) -> HttpResponse:
        # Back to the request as it came: a pushed one by its request_uri, not its contents.
        params = getattr(request, "idp_original_query", request.GET).copy()
        params.pop("prompt", None)
        next_url = f"{request.path}?{params.urlencode()}"
        login_url = f"{reverse('accounts:login')}?{urlencode({'prompt': 'login'})}"
        return redirect_to_login(next_url, login_url)

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        prompt = set(request.GET.get("prompt", "").split())
        fresh = getattr(request, "idp_signed_in_here", False)
        if (
            request.user.is_authenticated
            and not fresh
            and ("login" in prompt or self._needs_fresh_login(request))
        ):
            if "none" in prompt:
                return self._silent_error(request, "login_required")
            # Validate first, so a bad client or redirect URI is never sent through the login page.
            try:
                self.validate_authorization_request(request)
            except OAuthToolkitError as error:
                return self.error_response(error, application=None)
            return self._login_redirect(request)
        try:
            scopes, credentials = self.validate_authorization_request(request)
        except OAuthToolkitError as error:
            return self.error_response(error, application=None)
        application = application_of(request, credentials["client_id"])
        if "consent" not in prompt and Consent.covers(
            user=request.user, application=application, scopes=scopes
        ):
            try:
                uri, _headers, _body, _status = self.create_authorization_response(
                    request=request, scopes=" ".join(scopes), credentials=credentials, allow=True
                )
            except OAuthToolkitError as error:
                return self.error_response(error, application)
            return self.redirect(uri, application)
        # The consent screen (prompt=consent, or nothing approved yet). DOT's GET handler renders
        # it, but first approves by itself for a skip_authorization app: our rule above decided,
        # so such an approval is stopped before it issues a code and the screen is shown.
        self._consent_screen_required = True
        try:
            return super().get(request, *args, **kwargs)
        except _ConsentScreenRequiredError:
            return self.render_to_response(self.get_context_data(**self.oauth2_data))

    def create_authorization_response(
        self, request: HttpRequest, scopes: str, credentials: dict[str, Any], allow: bool
    ) -> tuple[str, dict[str, str], str, int]:
        if allow and getattr(self, "_consent_screen_required", False):
            raise _ConsentScreenRequiredError
        return super().create_authorization_response(request, scopes, credentials, allow)

    def _silent_error(self, request: HttpRequest, error: str) -> HttpResponse:
        try:
            _scopes, credentials = self.validate_authorization_request(request)
        except OAuthToolkitError as exc:
            return self.error_response(exc, application=None)
        uri = credentials["redirect_uri"]
        params = {"error": error}
        if credentials.get("state"):
            params["state"] = credentials["state"]
        params["iss"] = settings.IDP_ISSUER
        application = application_of(request, credentials["client_id"])
        return self.redirect(f"{uri}{'&' if '?' in uri else '?'}{urlencode(params)}", application)

    def form_valid(self, form: Any) -> HttpResponse:
        response = super().form_valid(form)
        application = application_of(self.request, form.cleaned_data.get("client_id") or "")
        if application is None:
            return response
        allowed = bool(form.cleaned_data.get("allow"))
        # A code was issued: the approval stands (a refused or failed request remembers nothing).
        issued = allowed and response.status_code in (301, 302) and "code=" in response.get("Location", "")
        services.record_consent(
            user=self.request.user,
            application=application,
            scope=form.cleaned_data.get("scope", ""),
            allowed=allowed,
            remember=issued,
        )
        return response


@method_decorator(csrf_exempt, name="dispatch")
class TokenView(dot.TokenView):
    @method_decorator(
        sensitive_post_parameters(
            "password", "client_secret", "code", "code_verifier", "refresh_token", "device_code"
        )
    )
    def authorization_flow_token_response(
        self, request: HttpRequest, *args: Any, **kwargs: Any
    ) -> HttpResponse:
        # DOT's version re-reads the token it just saved only to send `app_authorized`, which
        # nothing here listens to: one query less per token (the audit record covers issuance).
        _url, headers, body, status = self.create_token_response(request)
        response = HttpResponse(content=body, status=status)
        for name, value in headers.items():
            response[name] = value
        return response

    @method_decorator(never_cache)
    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        limited = _token_rate_limit(request)
        if limited is not None:
            return limited
        try:  # RFC 9449: a proof binds whatever this request issues (idp.oidc.dpop)
            proof = dpop.token_request_proof(request)
        except dpop.ProofError as exc:
            return dpop.error_response(exc)
        try:
            response = self._grant_response(request, *args, **kwargs)
        except (holders.RefusedError, IntegrityError) as exc:
            refusal = holders.refusal(exc)
            if refusal is None:
                raise
            # Blocked, deleted or revoked while this request ran: nothing it wrote stays.
            response = _json_error("invalid_grant", refusal)
        if proof is not None and settings.IDP_DPOP_REQUIRE_NONCE:
            response["DPoP-Nonce"] = dpop.nonce()  # §8.2: the next request's, ahead of time
        return response

    def _grant_response(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        grant_type = request.POST.get("grant_type")
        if grant_type == client_credentials.GRANT_TYPE:
            return client_credentials.token_response(request)
        if grant_type == token_exchange.GRANT_TYPE:
            return token_exchange.token_response(request)
        if grant_type == refresh.GRANT_TYPE:
            fast = refresh.token_response(request)
            if fast is not None:
                return fast
        if grant_type == device.GRANT_TYPE:
            # Not DOT's device branch: it reads `device_code` unchecked (a 500 without one), looks
            # it up for any client and knows no slow_down. Through oauthlib like every grant: the
            # client authenticates and must be allowed the grant, then Validator.validate_device_code
            # (idp.oidc.device.poll); one transaction holds the grant's row lock until the tokens.
            with context.bind(request), transaction.atomic():
                return self.authorization_flow_token_response(request)
        verifier = request.POST.get("code_verifier")
        if verifier is not None and not code_grant.CODE_VERIFIER.match(verifier):
            return _json_error(
                "invalid_request", "code_verifier must be 43-128 characters of [A-Za-z0-9-._~]"
            )
        if grant_type == code_grant.GRANT_TYPE:
            fast = code_grant.token_response(request)
            if fast is not None:
                return fast
        # One transaction: the code's row lock serialises parallel exchanges of one code.
        with context.bind(request), transaction.atomic():
            return super().post(request, *args, **kwargs)


@method_decorator(csrf_exempt, name="dispatch")
class PushedAuthorizationRequestView(View):
    """RFC 9126 §2: the client's authorization request, pushed over the back channel and checked
    by the same rules as at the authorization endpoint; answered with the `request_uri` the
    browser then carries instead of the parameters."""

    @method_decorator(never_cache)
    def post(self, request: HttpRequest) -> HttpResponse:
        limited = _token_rate_limit(request)
        if limited is not None:
            return limited
        form = request.POST
        if any(len(form.getlist(name)) > 1 for name in form):
            return _json_error("invalid_request", "a parameter is repeated")
        if "request_uri" in form or "request" in form:
            return _json_error("invalid_request", "request_uri and request cannot be pushed (RFC 9126 §2.1)")
        client = self._client(request)
        if client is None:
            response = _json_error("invalid_client", "client authentication failed", status=401)
            response["WWW-Authenticate"] = 'Basic realm="par"'
            return response
        parameters = {**par.pushed_parameters(form), "client_id": client.client_id}
        probe = HttpRequest()
        probe.method, probe.META = "GET", {**request.META, "QUERY_STRING": urlencode(parameters)}
        probe.path = probe.path_info = reverse("oidc:authorize")
        probe.GET = QueryDict(mutable=True)
        probe.GET.update(parameters)
        try:
            with context.bind(probe):
                AuthorizationView().validate_authorization_request(probe)
        except OAuthToolkitError as exc:
            error = exc.oauthlib_error
            return _json_error(error.error, error.description or error.error)
        request_uri, expires_in = par.push(Application.objects.get(pk=client.pk), parameters)
        response = JsonResponse({"request_uri": request_uri, "expires_in": expires_in}, status=201)
        response["Cache-Control"] = "no-store"
        return response

    @staticmethod
    def _client(request: HttpRequest) -> Any:
        """The client, authenticated as it is registered (§2: as at the token endpoint); a public
        client names itself."""
        if (
            "HTTP_AUTHORIZATION" in request.META
            or "client_secret" in request.POST
            or client_assertion.present(request.POST)
        ):
            return client_auth.authenticate(request)
        client = client_cache.clients.get(request.POST.get("client_id", ""))
        return client if client is not None and client.client_type == Application.CLIENT_PUBLIC else None

    def get(self, request: HttpRequest) -> HttpResponse:
        return _json_error("invalid_request", "use POST", status=405)


@method_decorator(csrf_exempt, name="dispatch")
class DeviceAuthorizationView(View):
    """RFC 8628 §3.1-3.2: a device asks for codes. oauthlib checks the request (form-encoded, one
    `client_id`, the client's authentication when it is confidential, the scopes); the client must
    be registered for the device grant; idp.oidc.device makes and records the codes."""

    @method_decorator(never_cache)
    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        limited = _token_rate_limit(request)
        if limited is not None:
            return limited
        uri, http_method, body, headers = get_oauthlib_core()._extract_params(request)
        oauthlib_request = OAuthlibRequest(uri, http_method, body, headers)
        basic = client_auth.basic_credentials(request)
        if basic and not oauthlib_request.client_id:
            # RFC 8628 §3.1: `client_id` is required of a client that does not authenticate;
            # oauthlib asks it of every client, also of one that says who it is in HTTP Basic.
            oauthlib_request.client_id = basic[0]
        endpoint = DeviceAuthorizationEndpoint(
            oauth2_settings.OAUTH2_VALIDATOR_CLASS(), verification_uri=device.verification_uri()
        )
        try:
            with context.bind(request):
                endpoint.validate_device_authorization_request(oauthlib_request)
                application = oauthlib_request.client
                if not application.allows_grant_type(device.GRANT_TYPE):
                    raise oauth_errors.UnauthorizedClientError(
                        description="this client is not registered for the device authorization grant"
                    )
        except oauth_errors.OAuth2Error as error:
            return responses.no_store_json(error.json, error.status_code, error.headers)
        started = device.start(application=application, scopes=oauthlib_request.scopes)
        return responses.no_store_json(json.dumps(started.response()))

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return _json_error("invalid_request", "use POST", status=405)


@method_decorator(csrf_exempt, name="dispatch")
class RevokeTokenView(dot.RevokeTokenView):
    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        with context.bind(request), transaction.atomic():
            return super().post(request, *args, **kwargs)


@method_decorator(csrf_exempt, name="dispatch")
class IntrospectTokenView(OAuthLibMixin, View):
    """RFC 7662, for confidential clients: access tokens (verified offline + blacklist) and
    refresh tokens, with `sub`; anything else is `{"active": false}`."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if (
            "HTTP_AUTHORIZATION" not in request.META
            and "client_secret" not in request.POST
            and not client_assertion.present(request.POST)
        ):
            response = _json_error("invalid_client", "client authentication is required", status=401)
            response["WWW-Authenticate"] = 'Basic realm="introspection"'
            return response
        fast = introspection.fast_response(request)
        if fast is not None:
            return fast
        core = get_oauthlib_core()
        uri, http_method, body, headers = core._extract_params(request)
        with context.bind(request):
            headers_out, body_out, status = core.server.create_introspect_response(
                uri, http_method, body, headers
            )
        response = HttpResponse(body_out, status=status, content_type="application/json")
        for name, value in headers_out.items():
            response[name] = value
        return response

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        # Tokens in URLs end up in logs (RFC 7662 §2.1 lets us refuse GET).
        return _json_error("invalid_request", "use POST", status=405)


class UserInfoView(dot.UserInfoView):
    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        # RFC 9700 §4.3: tokens in URLs leak into logs and Referer headers; header only.
        if "access_token" in request.GET:
            return _json_error("invalid_request", "send the access token in the Authorization header")
        if request.method in ("GET", "POST"):
            fast = userinfo.fast_response(request)
            if fast is not None:
                return fast
        return super().dispatch(request, *args, **kwargs)


class JwksView(View):
    def get(self, request: HttpRequest) -> JsonResponse:
        response = JsonResponse(keys.jwks())
        max_age = settings.OAUTH2_PROVIDER["OIDC_JWKS_MAX_AGE_SECONDS"]
        response["Cache-Control"] = f"public, max-age={max_age}"
        response["Access-Control-Allow-Origin"] = "*"
        return response


# How confidential clients authenticate (idp.oidc.client_auth); public clients send `none`.
CLIENT_AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt")


class DiscoveryView(View):
    """OpenID Provider Metadata: everything listed here works (each is tested)."""

    def get(self, request: HttpRequest) -> JsonResponse:
        issuer = settings.IDP_ISSUER

        def url(name: str) -> str:
            return issuer + reverse(name)

        data = {
            "issuer": issuer,
            "authorization_endpoint": url("oidc:authorize"),
            "token_endpoint": url("oidc:token"),
            "userinfo_endpoint": url("oidc:user-info"),
            "jwks_uri": url("oidc:jwks-info"),
            "end_session_endpoint": url("oidc:rp-initiated-logout"),
            "revocation_endpoint": url("oidc:revoke-token"),
            "pushed_authorization_request_endpoint": url("oidc:par"),
            "require_pushed_authorization_requests": False,  # per client (RFC 9126 §6)
            "introspection_endpoint": url("oidc:introspect"),
            "scopes_supported": list(settings.OAUTH2_PROVIDER["SCOPES"]),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "device_authorization_endpoint": url("oidc:device-authorization"),
            "grant_types_supported": [
                "authorization_code",
                "refresh_token",
                "client_credentials",
                Application.GRANT_DEVICE_CODE,
                token_exchange.GRANT_TYPE,
            ],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
            "token_endpoint_auth_methods_supported": [*CLIENT_AUTH_METHODS, "none"],
            "token_endpoint_auth_signing_alg_values_supported": list(client_assertion.SIGNING_ALGORITHMS),
            "revocation_endpoint_auth_methods_supported": [*CLIENT_AUTH_METHODS, "none"],
            "revocation_endpoint_auth_signing_alg_values_supported": list(
                client_assertion.SIGNING_ALGORITHMS
            ),
            "introspection_endpoint_auth_methods_supported": list(CLIENT_AUTH_METHODS),
            "introspection_endpoint_auth_signing_alg_values_supported": list(
                client_assertion.SIGNING_ALGORITHMS
            ),
            "code_challenge_methods_supported": ["S256"],
            # RFC 9449 §5.1: proofs at the token endpoint bind tokens; userinfo and the validators
            # want the key's proof with a bound token.
            "dpop_signing_alg_values_supported": list(dpop.SIGNING_ALGORITHMS),
            "claims_supported": sorted(
                {"sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "amr", "sid", *CLAIM_SCOPES}
            ),
            "prompt_values_supported": ["none", "login", "consent"],
            "claims_parameter_supported": False,
            "request_parameter_supported": False,
            "request_uri_parameter_supported": False,
            "authorization_response_iss_parameter_supported": True,
            # OIDC Back-Channel Logout 1.0 §2.1: logout tokens, with `sid` (idp.oidc.backchannel).
            "backchannel_logout_supported": True,
            "backchannel_logout_session_supported": True,
            "ui_locales_supported": [code for code, _ in settings.LANGUAGES],
        }
        response = JsonResponse(data)
        response["Access-Control-Allow-Origin"] = "*"
        response["Cache-Control"] = "public, max-age=300"
        return response


class LogoutView(dot.RPInitiatedLogoutView):
    """RP-initiated logout: ends the browser's own session and revokes (and blacklists) the tokens
    issued in it. Nothing else: an ID token is no secret (it sits in RP logs and browser
    history), so `id_token_hint` names who the RP expects, never what to revoke."""

    template_name = "oidc/logout_confirm.html"

    def validate_logout_request_user(
        self, id_token_hint: str | None, client_id: str | None
    ) -> IDToken | None:
        from oauth2_provider.exceptions import ClientIdMissmatch, InvalidIDTokenError

        if not id_token_hint:
            return None
        # Any published key, not only the active one: a hint signed before a rotation still works.
        claims = verify_id_token_hint(id_token_hint)
        token = (
            IDToken.objects.select_related("application", "user").filter(jti=claims.get("jti")).first()
            if claims
            else None
        )
        if token is None:
            raise InvalidIDTokenError()
        if client_id and token.application.client_id != client_id:
            raise ClientIdMissmatch()
        return token

    def do_logout(
        self,
        application: Application | None = None,
        post_logout_redirect_uri: str | None = None,
        state: str | None = None,
        token_user: Any = None,
    ) -> HttpResponse:
        request = self.request
        if not request.user.is_authenticated:
            # OIDC RP-Initiated Logout §2-3: no session here, so nothing to end; the browser is
            # told it is signed out. The hint's session is not this browser's to end: an RP
            # revokes its own tokens at the revocation endpoint (RFC 7009), with its credentials.
            return self._redirect_after_logout(application, post_logout_redirect_uri, state)
        # Only the browser's own session: DOT has asked for confirmation when the hint names
        # someone else (or no one), and the hint's user or `sid` never widens what is revoked.
        user, sid = request.user, sessions.sid(request)
        with transaction.atomic():
            revoked = revoke_session_tokens(sid)
            audit.record(
                AuditAction.LOGOUT,
                actor=user,
                target=user,
                organisation_id=user.organisation_id,
                details={
                    "sid": sid,
                    "revokedAccessTokens": revoked,
                    "clientId": application.client_id if application else None,
                },
            )
        logout(request)
        return self._redirect_after_logout(application, post_logout_redirect_uri, state)

    def _redirect_after_logout(
        self, application: Application | None, uri: str | None, state: str | None
    ) -> HttpResponse:
        from oauth2_provider.http import OAuth2ResponseRedirect
        from oauthlib.common import add_params_to_uri

        if uri and application is not None:
            target = add_params_to_uri(uri, [("state", state)]) if state else uri
            return OAuth2ResponseRedirect(target, application.get_allowed_schemes())
        return OAuth2ResponseRedirect(request_root(self.request), ["http", "https"])


def request_root(request: HttpRequest) -> str:
    return request.build_absolute_uri(reverse("accounts:logged-out"))
