"""Checking a login and password (seed 004): every user with that login is tried in turn."""

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


def find_user_by_credentials(login: str, password: str) -> User | None:
    """The user whose login (or e-mail) and password match, or None.

    Unknown logins cost one hash check, like a wrong password, so timing does not reveal
    whether a login exists. The status is not checked here: callers decide what a blocked
    user with the right password is told.
    """
    login = (login or "").strip()
    if not login or not password:
        check_password(password or "", _dummy_hash())
        return None
    candidates = list(
        User.objects.filter(Q(username__iexact=login) | Q(email__iexact=login))
        .select_related("client")
        .order_by("created_at")[:MAX_CANDIDATES]
    )
    checked = 0
    for user in candidates:
        if not user.has_usable_password():
            continue
        checked += 1
        if user.check_password(password):  # also upgrades an older hash format
            return user
    if not checked:
        check_password(password, _dummy_hash())
    return None


class LoginBackend(ModelBackend):
    """Django's authentication backend (admin, login form); model permissions as in Django."""

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> User | None:
        from accounts.login import password_login

        return password_login(login=username or "", password=password or "", channel="web").user

    def get_user(self, user_id: Any) -> User | None:
        try:
            user = User.objects.select_related("client").get(pk=user_id)
        except (User.DoesNotExist, ValueError, ValidationError):
            return None
        return user if self.user_can_authenticate(user) else None
