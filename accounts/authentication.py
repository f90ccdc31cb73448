"""Django's authentication backend: the login form's door into accounts.login, and the session's
user on every request (an inactive user is nobody)."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib.auth.backends import ModelBackend
from django.http import HttpRequest

from accounts import assurance
from accounts.login import password_login
from accounts.models import User
from core.prepared import PreparedQuery

# The session's user, on every signed-in browser request, with whether they enrolled a second
# factor (accounts.mfa_views.StepUpMiddleware asks next): one read, compiled once (core.prepared).
_SESSION_USER: PreparedQuery[User] = PreparedQuery(
    lambda pk: (
        User.objects.select_related("organisation")
        .annotate(**{assurance.ENROLLED: assurance.enrolled_column(User)})
        .filter(pk=pk)[:1]
    ),
    uuid.uuid4(),
)


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
            pk = user_id if isinstance(user_id, uuid.UUID) else uuid.UUID(str(user_id))
        except ValueError:  # not a user's id (the ORM's ValidationError)
            return None
        user = _SESSION_USER.first(pk)
        return user if user is not None and self.user_can_authenticate(user) else None
