from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext_lazy as _


class LoginForm(AuthenticationForm):
    # One message for unknown login, wrong password and blocked account: no user enumeration.
    error_messages = {
        "invalid_login": _("The login or password is incorrect."),
        "inactive": _("The login or password is incorrect."),
    }


class LoginView(auth_views.LoginView):
    template_name = "registration/login.html"
    authentication_form = LoginForm
    redirect_authenticated_user = True


class LogoutView(auth_views.LogoutView):
    template_name = "registration/logged_out.html"


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "home.html")
