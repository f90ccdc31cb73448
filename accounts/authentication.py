"""Finding the users behind a login (seed 004: several users may share one) and Django's backend."""

from __future__ import annotations

from functools import cache
from typing import Any

from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.hashers import check_password, make_password
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.http import HttpRequest

from accounts.models import User

# More candidates than this for one login is not a real situation; it bounds the hashing work.
MAX_CANDIDATES = 16


@cache
def _dummy_hash() -> str:
    return make_password("not the password of anybody")


def burn_a_hash(password: str) -> None:
    """Spend one password check on nobody, so an unknown login costs what a wrong password does."""
    check_password(password, _dummy_hash())


def candidates_for(login: str) -> list[User]:
    """Every user whose login or e-mail is `login` (case-insensitive), oldest first."""
    return list(
        User.objects.filter(Q(username__iexact=login) | Q(email__iexact=login))
        .select_related("client", "login_failures")
        .order_by("created_at")[:MAX_CANDIDATES]
    )


def find_user_by_credentials(login: str, password: str) -> User | None:
    """The first user sharing `login` whose password matches, or None; status and locks are the
    caller's business (accounts.login.password_login)."""
    login = (login or "").strip()
    if not login or not password:
        burn_a_hash(password or "")
        return None
    usable = [user for user in candidates_for(login) if user.has_usable_password()]
    for user in usable:
        if user.check_password(password):  # also upgrades an older hash format
            return user
    if not usable:
        burn_a_hash(password)
    return None


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
        from accounts.login import password_login

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
            user = User.objects.select_related("client").get(pk=user_id)
        except (User.DoesNotExist, ValueError, ValidationError):
            return None
        return user if self.user_can_authenticate(user) else None
