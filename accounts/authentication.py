"""Django's authentication backend: the login form's door into accounts.login, and the session's
user on every request (an inactive user is nobody)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import ValidationError
from django.http import HttpRequest

from accounts.login import password_login
from accounts.models import User


class LoginBackend(ModelBackend):
    """Django's authentication backend (admin, login form); model permissions as in Django."""

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        second_factor_follows: bool = False,
        **kwargs: Any,
    ) -> User | None:
        """`second_factor_follows`: only our login form says so (it goes on to the second factor);
        any other caller of `authenticate()` gets no user whose account needs one."""
        result = password_login(
            login=username or "",
            password=password or "",
            channel="web",
            second_factor_follows=second_factor_follows,
        )
        if request is not None:
            request.login_result = result  # the login form shows a rate-limit wait from it
        return result.user

    def get_user(self, user_id: Any) -> User | None:
        try:
            user = User.objects.select_related("organisation").get(pk=user_id)
        except (User.DoesNotExist, ValueError, ValidationError):
            return None
        return user if self.user_can_authenticate(user) else None
