from __future__ import annotations

from typing import Any

from django.contrib.auth import authenticate
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext_lazy as _

from accounts import mfa_views
from accounts.login import LoginError
from accounts.sso import views as sso_views
from clients import domains


class LoginForm(AuthenticationForm):
    # One message for unknown login, wrong password and blocked account: no user enumeration.
    error_messages = {
        "invalid_login": _("The login or password is incorrect."),
        "inactive": _("The login or password is incorrect."),
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["username"].error_messages["required"] = _("Enter your login or e-mail address.")
        self.fields["password"].error_messages["required"] = _("Enter your password.")

    def clean(self) -> dict[str, Any]:
        try:
            return self._authenticate()
        except ValidationError:
            result = getattr(self.request, "login_result", None)
            if result is not None and result.error == LoginError.RATE_LIMITED:
                raise ValidationError(
                    _("Too many sign-in attempts. Try again in %(seconds)s seconds."),
                    code="rate_limited",
                    params={"seconds": result.retry_after},
                ) from None
            if result is not None and result.sso_required:
                raise ValidationError(
                    _(
                        "Your organisation signs in with its company account: enter your work "
                        "e-mail address and leave the password empty."
                    ),
                    code="sso_required",
                ) from None
            raise

    def _authenticate(self) -> dict[str, Any]:
        # AuthenticationForm.clean, telling the backend that this door asks for the second
        # factor next (accounts.views.LoginView.form_valid).
        username, password = self.cleaned_data.get("username"), self.cleaned_data.get("password")
        if username is not None and password:
            self.user_cache = authenticate(
                self.request, username=username, password=password, second_factor_follows=True
            )
            if self.user_cache is None:
                raise self.get_invalid_login_error()
            self.confirm_login_allowed(self.user_cache)
        return self.cleaned_data


class LoginView(auth_views.LoginView):
    template_name = "registration/login.html"
    authentication_form = LoginForm

    @property
    def redirect_authenticated_user(self) -> bool:  # type: ignore[override]
        # prompt=login / max_age: an authorization request asked for a fresh authentication.
        return self.request.GET.get("prompt") != "login"

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        # Identifier first (home-realm discovery): a work e-mail of a client with corporate SSO goes
        # to the client's identity provider before any password is looked at (clients.domains).
        login = request.POST.get("username", "").strip()
        password = request.POST.get("password", "")
        provider = domains.provider_for_login(login)
        if provider is not None and (provider.enforced or not password):
            return redirect(sso_views.start_url(provider, next_url=self.get_redirect_url(), login_hint=login))
        if login and not password:
            # No company sign-in for this address: the password step follows.
            form = self.get_form_class()(request, initial={"username": login})
            return self.render_to_response(self.get_context_data(form=form, identified=True))
        return super().post(request, *args, **kwargs)

    def form_valid(self, form: LoginForm) -> HttpResponse:
        # The password was right; accounts.assurance decides whether that is enough. If not, the
        # session is not logged in until the second factor is.
        second_step = mfa_views.sign_in(self.request, form.get_user(), self.get_redirect_url(), ["pwd"])
        return second_step or super().form_valid(form)

    def form_invalid(self, form: LoginForm) -> HttpResponse:
        response = super().form_invalid(form)
        rate_limited = form.non_field_errors().as_data()
        if rate_limited and rate_limited[0].code == "rate_limited":
            response.status_code = 429
            response["Retry-After"] = str(self.request.login_result.retry_after)
        return response

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["company_sign_in"] = domains.company_sign_in_offered()
        return context

    def get_initial(self) -> dict[str, str]:
        initial = super().get_initial()
        next_url = self.get_redirect_url() or ""
        hint = self.request.GET.get("login_hint") or _login_hint_of(next_url)
        if hint:
            initial["username"] = hint[:150]
        return initial


class LogoutView(auth_views.LogoutView):
    template_name = "registration/logged_out.html"


def _login_hint_of(next_url: str) -> str:
    """OIDC `login_hint` of the authorization request the user came from, to prefill the form."""
    from urllib.parse import parse_qs, urlsplit

    return (parse_qs(urlsplit(next_url).query).get("login_hint") or [""])[0]


def logged_out(request: HttpRequest) -> HttpResponse:
    return render(request, "registration/logged_out.html")


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "home.html")


def admin_login(request: HttpRequest) -> HttpResponse:
    """The admin signs in through our login page, so its second factor and lockout apply too."""
    from django.shortcuts import redirect
    from django.urls import reverse
    from django.utils.http import urlencode

    return redirect(f"{reverse('accounts:login')}?{urlencode({'next': request.GET.get('next', '/admin/')})}")
