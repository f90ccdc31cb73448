from __future__ import annotations

import pytest
from django.contrib.auth import authenticate

from accounts import services
from accounts.login import password_login
from accounts.models import User

pytestmark = pytest.mark.django_db


def find_user_by_credentials(login: str, password: str):
    """Who the one password-login path (accounts.login) signs in with these credentials."""
    return password_login(login=login, password=password, channel="test").user


def test_several_users_share_a_login_and_the_matching_password_wins(acme, globex):
    services.create_user(actor=None, username="ivan", password="acme-password-1", organisation=acme)
    globex_ivan = services.create_user(
        actor=None, username="ivan", password="globex-password-2", organisation=globex
    )

    assert find_user_by_credentials("ivan", "globex-password-2") == globex_ivan
    assert find_user_by_credentials("IVAN", "acme-password-1").organisation == acme
    assert find_user_by_credentials("ivan", "neither-password") is None


def test_login_by_email(acme):
    user = services.create_user(
        actor=None, username="ivan", password="acme-password-1", email="ivan@acme.example", organisation=acme
    )
    assert find_user_by_credentials("Ivan@Acme.example", "acme-password-1") == user


@pytest.mark.parametrize(("login", "password"), [("nobody", "whatever-pass"), ("", "x"), ("ivan", "")])
def test_unknown_login_or_empty_fields_find_nobody(acme, login, password):
    services.create_user(actor=None, username="ivan", password="acme-password-1", organisation=acme)
    assert find_user_by_credentials(login, password) is None


def test_blocked_user_cannot_authenticate(acme):
    user = services.create_user(actor=None, username="ivan", password="acme-password-1", organisation=acme)
    services.block_user(actor=None, user=user, reason="test")
    assert authenticate(username="ivan", password="acme-password-1") is None


def test_older_hash_is_upgraded_to_bcrypt_on_login(acme, settings):
    user = services.create_user(actor=None, username="ivan", password=None, organisation=acme)
    from django.contrib.auth.hashers import make_password

    User.objects.filter(pk=user.pk).update(password=make_password("old-password-9", hasher="pbkdf2_sha256"))

    assert authenticate(username="ivan", password="old-password-9") == user
    user.refresh_from_db()
    assert user.password.startswith("bcrypt_sha256$")


def test_the_session_user_and_the_login_candidates_are_read_with_their_enrolment(acme):
    # accounts.assurance asks next whether the user enrolled a factor: the read that loads them
    # answers it, and says so only for the request that made it (a fresh read, a fresh answer).
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from accounts import assurance
    from accounts.authentication import LoginBackend
    from accounts.login import candidates_for

    user = services.create_user(actor=None, username="ivan", password="acme-password-1", organisation=acme)
    assert assurance.enrolled_as_read(LoginBackend().get_user(user.pk)) is False
    assert [assurance.enrolled_as_read(u) for u in candidates_for("IVAN")] == [False]
    assert assurance.enrolled_as_read(User.objects.get(pk=user.pk)) is None  # not asked: callers query

    TOTPDevice.objects.create(user=user, name="phone", confirmed=False)  # not confirmed: not a factor
    assert assurance.enrolled_as_read(LoginBackend().get_user(user.pk)) is False
    TOTPDevice.objects.filter(user=user).update(confirmed=True)
    assert assurance.enrolled_as_read(LoginBackend().get_user(user.pk)) is True
    assert [assurance.enrolled_as_read(u) for u in candidates_for("ivan")] == [True]
    assert assurance.has_factors(user)


def test_the_session_user_and_its_enrolment_are_one_statement(acme, django_assert_num_queries):
    from accounts import assurance
    from accounts.authentication import LoginBackend

    user = services.create_user(actor=None, username="ivan", password="acme-password-1", organisation=acme)
    with django_assert_num_queries(1):
        loaded = LoginBackend().get_user(user.pk)
        assert assurance.satisfied(loaded, ["pwd"], enrolled=assurance.enrolled_as_read(loaded))
