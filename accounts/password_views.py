"""Password pages: change (signed in) and reset by e-mail. The rules live in accounts.passwords."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import logout, update_session_auth_hash
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import SetPasswordForm
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.utils.decorators import method_decorator
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters

from accounts import passwords, session_registry, sessions
from accounts.models import User


def rate_limited(request: HttpRequest, retry_after: int) -> HttpResponse:
    response = render(request, "accounts/rate_limited.html", {"seconds": retry_after}, status=429)
    response["Retry-After"] = str(retry_after)
    return response


def _add_service_errors(form: forms.Form, exc: ValidationError, new_password_field: str) -> None:
    """Put a service's errors on the form's fields (`new_password` is the form's first box)."""
    if not hasattr(exc, "error_dict"):
        form.add_error(None, exc)
        return
    for name, errors in exc.error_dict.items():
        field = new_password_field if name == "new_password" else name
        form.add_error(field if field in form.fields else None, errors)


class PasswordChangeForm(forms.Form):
    old_password = forms.CharField(
        label=_("Current password"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password", "autofocus": True}),
    )
    new_password1 = forms.CharField(
        label=_("New password"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    new_password2 = forms.CharField(
        label=_("New password again"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        first, second = data.get("new_password1"), data.get("new_password2")
        if first and second and first != second:
            self.add_error(
                "new_password2", ValidationError(_("The two new passwords differ."), code="mismatch")
            )
        return data


@sensitive_post_parameters("old_password", "new_password1", "new_password2")
@never_cache
@login_required
def password_change(request: HttpRequest) -> HttpResponse:
    form = PasswordChangeForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            passwords.change_password(
                actor=request.user,
                user=request.user,
                old_password=form.cleaned_data["old_password"],
                new_password=form.cleaned_data["new_password1"],
                keep_sid=sessions.sid(request),
            )
        except passwords.RateLimitedError as exc:
            return rate_limited(request, exc.retry_after)
        except ValidationError as exc:
            _add_service_errors(form, exc, "new_password1")
        else:
            # The session's auth hash follows the new password, or this session would end too.
            update_session_auth_hash(request, request.user)
            session_registry.rekey(request)
            return redirect("accounts:password-change-done")
    return render(request, "accounts/password_change.html", {"form": form})


@never_cache
@login_required
def password_change_done(request: HttpRequest) -> HttpResponse:
    return render(request, "accounts/password_change_done.html")


class PasswordResetRequestForm(forms.Form):
    email = forms.EmailField(
        label=_("E-mail"),
        max_length=passwords.MAX_EMAIL_LENGTH,
        widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True}),
    )


@never_cache
def password_reset(request: HttpRequest) -> HttpResponse:
    form = PasswordResetRequestForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            passwords.request_password_reset(email=form.cleaned_data["email"])
        except passwords.RateLimitedError as exc:
            return rate_limited(request, exc.retry_after)
        except ValidationError as exc:
            form.add_error("email", exc)
        else:
            # The same answer whether or not the address belongs to anyone.
            return redirect("accounts:password-reset-done")
    return render(request, "accounts/password_reset.html", {"form": form})


@never_cache
def password_reset_done(request: HttpRequest) -> HttpResponse:
    return render(request, "accounts/password_reset_done.html")


@method_decorator(sensitive_post_parameters("new_password1", "new_password2"), name="dispatch")
class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    """Django's token check and its redirect that takes the token out of the URL (so it cannot
    leak through Referer); the reset itself goes through accounts.passwords.reset_password."""

    template_name = "accounts/password_reset_confirm.html"
    form_class = SetPasswordForm
    success_url = reverse_lazy("accounts:password-reset-complete")

    def get_user(self, uidb64: str) -> User | None:
        user = super().get_user(uidb64)
        return user if user is not None and user.is_active else None

    def form_valid(self, form: SetPasswordForm) -> HttpResponse:
        try:
            passwords.reset_password(user=self.user, new_password=form.cleaned_data["new_password1"])
        except ValidationError as exc:
            _add_service_errors(form, exc, "new_password1")
            return self.form_invalid(form)
        self.request.session.pop(auth_views.INTERNAL_RESET_SESSION_TOKEN, None)
        if self.request.user.is_authenticated and self.request.user.pk == self.user.pk:
            logout(self.request)  # this browser's session of the user ended with all the others
        return HttpResponseRedirect(self.get_success_url())


@never_cache
def password_reset_complete(request: HttpRequest) -> HttpResponse:
    return render(request, "accounts/password_reset_complete.html")
