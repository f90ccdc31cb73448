"""Passkeys (accounts.passkeys) through the pages a browser uses, with a software authenticator
making real signatures: registration, password-free sign-in, the second factor after a password,
the policy that asks for a passkey, and every refusal (each audited, none signing anyone in)."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import SESSION_KEY
from django.test import Client
from django_otp.plugins.otp_email.models import EmailDevice

from accounts import assurance, passkeys, relying_party
from accounts import services as accounts
from accounts.models import Passkey, Role
from audit.models import AuditLog, OutboxEvent
from audit.registry import AuditAction
from tests.accounts.authenticator import SoftAuthenticator

pytestmark = pytest.mark.django_db
PASSWORD = "passkey-user-password-1"


@pytest.fixture(autouse=True)
def _relying_party(settings):
    settings.IDP_ISSUER = "http://localhost"
    settings.IDP_WEBAUTHN_RP_ID = ""
    settings.IDP_WEBAUTHN_ORIGINS = []


@pytest.fixture
def ivan(acme):
    return accounts.create_user(
        actor=None, username="ivan", password=PASSWORD, email="ivan@acme.example", organisation=acme
    )


@pytest.fixture
def operator_user(db):
    return accounts.create_user(
        actor=None,
        username="oksana",
        password=PASSWORD,
        email="oksana@idp.example",
        role=Role.OPERATOR,
        is_staff=True,
    )


def _options(client: Client, purpose: str) -> dict:
    response = client.post("/accounts/passkey/options/", {"purpose": purpose})
    assert response.status_code == 200, response.content
    return response.json()


def _register(client: Client, authenticator: SoftAuthenticator, name: str = "laptop") -> Passkey:
    options = _options(client, "register")
    response = client.post(
        "/accounts/2fa/passkey/", {"credential": authenticator.register(options), "name": name}
    )
    assert response.status_code == 302, response.content
    return Passkey.objects.get(credential_id=passkeys.bytes_to_base64url(authenticator.credential_id))


def _signed_in(client: Client, user) -> Client:
    client.post("/accounts/login/", {"username": user.username, "password": PASSWORD})
    assert client.session.get(SESSION_KEY) == str(user.pk)
    return client


def _staff_session(user) -> Client:
    """A signed-in session of someone whom policy asks for 2FA, as after a code (amr says so)."""
    client = Client()
    client.force_login(user)
    session = client.session
    session["idp_amr"] = ["pwd", "otp", "mfa"]
    session.save()
    return client


def _passkey_login(client: Client, authenticator: SoftAuthenticator, **knobs):
    options = _options(client, "login")
    return client.post(
        "/accounts/passkey/login/",
        {"credential": authenticator.sign(options, **knobs), "next": "/accounts/2fa/"},
    )


def _registered(ivan, **kwargs) -> tuple[SoftAuthenticator, Passkey]:
    authenticator = SoftAuthenticator(**kwargs)
    client = _signed_in(Client(), ivan)
    return authenticator, _register(client, authenticator)


# --- registration ------------------------------------------------------------------------------


def test_a_signed_in_person_registers_several_passkeys_and_sees_them_listed(client, ivan):
    _signed_in(client, ivan)
    first = _register(client, SoftAuthenticator(), "work laptop")
    second = _register(client, SoftAuthenticator(synced=True), "phone")

    assert (first.name, first.backup_eligible, first.user_id) == ("work laptop", False, ivan.pk)
    assert (second.name, second.backup_eligible) == ("phone", True)
    page = client.get("/accounts/2fa/").content.decode()
    assert "work laptop" in page
    assert "phone" in page
    assert AuditLog.objects.filter(action=AuditAction.PASSKEY_REGISTERED, target_id=str(ivan.pk)).count() == 2
    # Each on the audit stream too, through the outbox, in the change's transaction.
    streamed = OutboxEvent.objects.filter(payload__action=AuditAction.PASSKEY_REGISTERED, key=str(ivan.pk))
    assert streamed.count() == 2
    options = _options(client, "register")  # the keys it has are excluded from a new registration
    assert len(options["excludeCredentials"]) == 2
    assert options["authenticatorSelection"]["residentKey"] == "required"
    assert options["rp"]["id"] == "localhost"


def test_registration_from_another_origin_is_refused(client, ivan):
    _signed_in(client, ivan)
    authenticator = SoftAuthenticator()
    options = _options(client, "register")
    response = client.post(
        "/accounts/2fa/passkey/",
        {"credential": authenticator.register(options, origin="https://evil.example"), "name": "x"},
    )
    assert response.status_code == 400
    assert not Passkey.objects.exists()
    refused = AuditLog.objects.get(action=AuditAction.PASSKEY_REGISTRATION_REFUSED)
    assert refused.details["reason"] == "invalid_attestation"


def test_a_registration_challenge_is_used_once(client, ivan):
    _signed_in(client, ivan)
    authenticator = SoftAuthenticator()
    answer = authenticator.register(_options(client, "register"))
    assert client.post("/accounts/2fa/passkey/", {"credential": answer}).status_code == 302
    Passkey.objects.all().delete()
    assert client.post("/accounts/2fa/passkey/", {"credential": answer}).status_code == 400
    assert not Passkey.objects.exists()


def test_nobody_signed_in_gets_no_registration_options(client, ivan):
    assert client.post("/accounts/passkey/options/", {"purpose": "register"}).status_code == 403
    assert client.post("/accounts/passkey/options/", {"purpose": "nonsense"}).status_code == 400
    assert client.get("/accounts/passkey/options/").status_code == 405


def test_garbage_answers_are_refused_cleanly(client, ivan):
    _signed_in(client, ivan)
    for garbage in ["", "{", "[]", json.dumps({"id": "x"}), "x" * 100_000]:
        _options(client, "register")
        assert client.post("/accounts/2fa/passkey/", {"credential": garbage}).status_code == 400
    client.logout()
    for garbage in ["", "{", json.dumps({"id": "AAAA", "rawId": "AAAA", "response": {}})]:
        _options(client, "login")
        assert client.post("/accounts/passkey/login/", {"credential": garbage}).status_code == 400
    assert SESSION_KEY not in client.session


# --- password-free sign-in ---------------------------------------------------------------------


def test_password_free_sign_in_with_user_verification(client, ivan):
    authenticator, passkey = _registered(ivan)
    response = _passkey_login(client, authenticator)

    assert response.status_code == 302
    assert response.headers["Location"] == "/accounts/2fa/"
    assert client.session[SESSION_KEY] == str(ivan.pk)
    assert client.session["idp_amr"] == ["hwk", "user", "mfa"]
    passkey.refresh_from_db()
    assert passkey.sign_count == 1
    assert passkey.last_used_at is not None
    succeeded = AuditLog.objects.get(action=AuditAction.LOGIN_SUCCEEDED, details__passkey=passkey.pk)
    assert succeeded.details["methods"] == ["hwk", "user", "mfa"]


def test_a_synced_passkey_says_swk(client, ivan):
    authenticator, _passkey = _registered(ivan, synced=True)
    assert _passkey_login(client, authenticator).status_code == 302
    assert client.session["idp_amr"] == ["swk", "user", "mfa"]


def test_password_free_sign_in_needs_user_verification(client, ivan):
    authenticator, _passkey = _registered(ivan)
    authenticator.user_verifying = False
    assert _passkey_login(client, authenticator).status_code == 400
    assert SESSION_KEY not in client.session
    failed = AuditLog.objects.filter(action=AuditAction.LOGIN_FAILED).first()
    assert failed.details == {"channel": "web", "method": "passkey", "reason": "invalid_assertion"}


def test_an_assertion_for_another_origin_or_rp_is_refused(client, ivan):
    authenticator, _passkey = _registered(ivan)
    assert _passkey_login(client, authenticator, origin="https://evil.example").status_code == 400
    assert _passkey_login(client, authenticator, rp_id="evil.example").status_code == 400
    assert SESSION_KEY not in client.session


def test_a_replayed_assertion_is_refused(client, ivan):
    authenticator, _passkey = _registered(ivan)
    options = _options(client, "login")
    answer = authenticator.sign(options)
    assert client.post("/accounts/passkey/login/", {"credential": answer}).status_code == 302
    client.logout()
    # The same answer again, with and without a fresh challenge in the session: refused.
    assert client.post("/accounts/passkey/login/", {"credential": answer}).status_code == 400
    _options(client, "login")
    assert client.post("/accounts/passkey/login/", {"credential": answer}).status_code == 400
    assert SESSION_KEY not in client.session


def test_a_challenge_spent_by_a_parallel_request_is_refused(ivan, rf):
    authenticator, _passkey = _registered(ivan)
    first = Client()
    options = _options(first, "login")
    # A second request holding the same session (the first has not yet saved its removal of the
    # challenge): the shared cache remembers it as spent.
    twin = Client()
    twin.cookies = first.cookies
    answer = authenticator.sign(options)
    assert first.post("/accounts/passkey/login/", {"credential": answer}).status_code == 302
    second_answer = authenticator.sign(options)
    session = first.session
    session[passkeys.SESSION_KEY] = {"login": {"challenge": options["challenge"], "at": 2**31, "user": ""}}
    session.save()
    assert twin.post("/accounts/passkey/login/", {"credential": second_answer}).status_code == 400


def test_an_expired_challenge_is_refused(client, ivan, settings):
    authenticator, _passkey = _registered(ivan)
    options = _options(client, "login")
    session = client.session
    session[passkeys.SESSION_KEY]["login"]["at"] -= settings.IDP_PASSKEY_CHALLENGE_SECONDS + 1
    session.save()
    answer = authenticator.sign(options)
    assert client.post("/accounts/passkey/login/", {"credential": answer}).status_code == 400


def test_an_unknown_credential_is_refused_like_any_other_failure(client, ivan):
    _registered(ivan)
    stranger = SoftAuthenticator()
    stranger.user_handle = ivan.pk.bytes  # even naming a real account's handle
    known_bad = _passkey_login(client, stranger)
    assert known_bad.status_code == 400
    text = known_bad.content.decode()
    assert "That passkey could not sign you in." in text
    assert "ivan" not in text
    failed = AuditLog.objects.filter(action=AuditAction.LOGIN_FAILED).first()
    assert failed.details["reason"] == "unknown_credential"
    assert failed.target_id == ""


def test_a_user_handle_of_someone_else_is_refused(client, ivan, globex):
    authenticator, _passkey = _registered(ivan)
    other = accounts.create_user(actor=None, username="eve", password=PASSWORD, organisation=globex)
    assert _passkey_login(client, authenticator, user_handle=other.pk.bytes).status_code == 400
    assert SESSION_KEY not in client.session


def test_a_counter_that_goes_back_is_refused_and_audited_as_a_clone(client, ivan):
    authenticator, passkey = _registered(ivan)
    assert _passkey_login(client, authenticator, counter=5).status_code == 302
    client.logout()
    assert _passkey_login(client, authenticator, counter=5).status_code == 400  # not greater
    assert _passkey_login(client, authenticator, counter=3).status_code == 400  # went back
    assert SESSION_KEY not in client.session
    clones = AuditLog.objects.filter(action=AuditAction.PASSKEY_CLONE_DETECTED, target_id=str(ivan.pk))
    assert [(c.details["counter"], c.details["known"]) for c in clones.order_by("id")] == [(5, 5), (3, 5)]
    passkey.refresh_from_db()
    assert passkey.sign_count == 5
    assert _passkey_login(client, authenticator, counter=6).status_code == 302  # the real one goes on


def test_a_zero_counter_authenticator_is_no_clone(client, ivan):
    # Synced passkeys often always say 0: WebAuthn §6.1.1 only compares when either is non-zero.
    authenticator, _passkey = _registered(ivan)
    assert _passkey_login(client, authenticator, counter=0).status_code == 302
    client.logout()
    assert _passkey_login(client, authenticator, counter=0).status_code == 302


def test_a_removed_passkey_signs_nobody_in(client, ivan):
    owner = _signed_in(Client(), ivan)
    authenticator = SoftAuthenticator()
    passkey = _register(owner, authenticator)
    owner.post("/accounts/2fa/", {"action": "remove", "device": passkey.persistent_id})
    assert not Passkey.objects.filter(pk=passkey.pk).exists()
    assert AuditLog.objects.filter(action=AuditAction.PASSKEY_REMOVED, target_id=str(ivan.pk)).exists()
    assert _passkey_login(client, authenticator).status_code == 400
    assert SESSION_KEY not in client.session


def test_a_blocked_account_cannot_sign_in_with_its_passkey(client, ivan):
    authenticator, _passkey = _registered(ivan)
    accounts.block_user(actor=None, user=ivan, reason="test")
    assert _passkey_login(client, authenticator).status_code == 400
    assert (
        AuditLog.objects.filter(action=AuditAction.LOGIN_FAILED).first().details["reason"]
        == "account_blocked"
    )


def test_passkey_sign_in_is_rate_limited_per_address(client, ivan, settings):
    settings.IDP_RATE_LIMITS = {
        **settings.IDP_RATE_LIMITS,
        "login-ip": (2, 60),
    }  # the password sign-in that registered the key, then one
    authenticator, _passkey = _registered(ivan)
    assert _passkey_login(client, authenticator).status_code == 302
    client.logout()
    refused = _passkey_login(client, authenticator)
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) >= 1


def test_the_login_page_offers_passkeys_in_autofill(client):
    page = client.get("/accounts/login/").content.decode()
    assert 'autocomplete="username webauthn"' in page
    assert 'data-passkey="login"' in page
    assert "idp/passkeys.js" in page


# --- second factor and policy ------------------------------------------------------------------


def test_passkey_as_the_second_factor_after_a_password(client, operator_user):
    authenticator = SoftAuthenticator(user_verifying=False)  # a security key without a PIN
    _register(_staff_session(operator_user), authenticator)

    response = client.post("/accounts/login/", {"username": "oksana", "password": PASSWORD})
    assert response.headers["Location"] == "/accounts/2fa/verify/"
    page = client.get("/accounts/2fa/verify/").content.decode()
    assert 'data-passkey="second-factor"' in page
    options = _options(client, "second-factor")
    assert len(options["allowCredentials"]) == 1
    device = Passkey.objects.get(user=operator_user)
    response = client.post(
        "/accounts/2fa/verify/",
        {"device": device.persistent_id, "action": "verify", "credential": authenticator.sign(options)},
    )
    assert response.status_code == 302
    assert client.session["idp_amr"] == ["pwd", "hwk", "user", "mfa"]


def test_a_failed_second_factor_passkey_counts_against_the_account(client, operator_user, settings):
    settings.IDP_RATE_LIMITS = {**settings.IDP_RATE_LIMITS, "otp-verify": (2, 300)}
    authenticator = SoftAuthenticator()
    _register(_staff_session(operator_user), authenticator)
    client.post("/accounts/login/", {"username": "oksana", "password": PASSWORD})
    device = Passkey.objects.get(user=operator_user)
    for _ in range(2):
        options = _options(client, "second-factor")
        answer = authenticator.sign(options, origin="https://evil.example")
        response = client.post(
            "/accounts/2fa/verify/",
            {"device": device.persistent_id, "action": "verify", "credential": answer},
        )
        assert response.status_code == 200
    options = _options(client, "second-factor")
    response = client.post(
        "/accounts/2fa/verify/",
        {"device": device.persistent_id, "action": "verify", "credential": authenticator.sign(options)},
    )
    assert response.status_code == 429  # the right answer, but the account's limit is spent
    assert SESSION_KEY not in client.session
    failures = AuditLog.objects.filter(action=AuditAction.MFA_FAILED, target_id=str(operator_user.pk))
    assert [f.details["reason"] for f in failures.order_by("id")] == [
        "invalid_assertion",
        "invalid_assertion",
        "rate_limited",
    ]


def test_someone_elses_passkey_is_no_second_factor(client, operator_user, ivan):
    authenticator, _passkey = _registered(ivan)
    _register(_staff_session(operator_user), SoftAuthenticator())
    client.post("/accounts/login/", {"username": "oksana", "password": PASSWORD})
    options = _options(client, "second-factor")
    device = Passkey.objects.get(user=operator_user)
    response = client.post(
        "/accounts/2fa/verify/",
        {"device": device.persistent_id, "action": "verify", "credential": authenticator.sign(options)},
    )
    assert response.status_code == 200
    assert SESSION_KEY not in client.session
    assert (
        AuditLog.objects.filter(action=AuditAction.MFA_FAILED).first().details["reason"]
        == "unknown_credential"
    )


def test_operators_must_use_a_passkey_when_policy_says_so(client, operator_user, settings, mailoutbox):
    settings.IDP_PASSKEY_REQUIRED_ROLES = [Role.OPERATOR]
    assert not assurance.satisfied(operator_user, ["pwd", "otp", "mfa"])
    assert assurance.satisfied(operator_user, ["pwd", "hwk", "user", "mfa"])
    assert assurance.satisfied(operator_user, ["hwk", "user", "mfa"])

    # No factor yet: an e-mailed code proves the address, then a passkey is registered, then used.
    response = client.post("/accounts/login/", {"username": "oksana", "password": PASSWORD})
    assert response.headers["Location"] == "/accounts/2fa/verify/"
    client.post("/accounts/2fa/verify/", {"action": "send"})
    code = next(word for word in mailoutbox[-1].body.split() if word.isdigit() and len(word) == 6)
    response = client.post("/accounts/2fa/verify/", {"token": code})
    assert response.headers["Location"] == "/accounts/2fa/passkey/"
    assert SESSION_KEY not in client.session  # not signed in without the passkey
    authenticator = SoftAuthenticator()
    options = _options(client, "register")
    response = client.post("/accounts/2fa/passkey/", {"credential": authenticator.register(options)})
    assert response.headers["Location"].startswith("/accounts/2fa/verify/?device=")
    assert SESSION_KEY not in client.session
    options = _options(client, "second-factor")
    device = Passkey.objects.get(user=operator_user)
    response = client.post(
        "/accounts/2fa/verify/",
        {"device": device.persistent_id, "action": "verify", "credential": authenticator.sign(options)},
    )
    assert response.status_code == 302
    assert client.session["idp_amr"] == ["pwd", "otp", "mfa", "hwk", "user"]

    # Next time the e-mailed code is not enough, even when asked for by its id.
    client = Client()
    client.post("/accounts/login/", {"username": "oksana", "password": PASSWORD})
    email = EmailDevice.objects.get(user=operator_user)
    response = client.post("/accounts/2fa/verify/", {"device": email.persistent_id, "token": "123456"})
    assert SESSION_KEY not in client.session
    assert b'data-passkey="second-factor"' in response.content


def test_a_client_can_require_passkeys_and_rest_login_then_refuses_passwords(client, ivan, acme):
    from accounts.login import LoginError, password_login

    assert password_login(login="ivan", password=PASSWORD, channel="rest").ok
    acme.require_passkey = True
    acme.save()
    ivan.refresh_from_db()
    assert assurance.passkey_required(ivan)
    assert assurance.policy_requires_second_factor(ivan)
    assert password_login(login="ivan", password=PASSWORD, channel="rest").error == LoginError.MFA_REQUIRED


def test_a_signed_in_session_without_a_passkey_steps_up_when_policy_begins(client, operator_user, settings):
    owner = _staff_session(operator_user)
    assert owner.get("/accounts/2fa/").status_code == 200
    settings.IDP_PASSKEY_REQUIRED_ROLES = [Role.OPERATOR]
    response = owner.get("/accounts/2fa/")
    assert response.status_code == 302
    assert SESSION_KEY not in owner.session


# --- the person's list, and the operator's removal --------------------------------------------


def test_rename_a_passkey(client, ivan):
    _signed_in(client, ivan)
    passkey = _register(client, SoftAuthenticator(), "old")
    client.post("/accounts/2fa/", {"action": "rename", "passkey": passkey.pk, "name": "  yubikey   5  "})
    passkey.refresh_from_db()
    assert passkey.name == "yubikey 5"
    renamed = AuditLog.objects.get(action=AuditAction.PASSKEY_RENAMED)
    assert renamed.details == {"passkey": passkey.pk, "before": "old", "after": "yubikey 5"}
    assert (
        client.post("/accounts/2fa/", {"action": "rename", "passkey": passkey.pk, "name": " "}).status_code
        == 200
    )


def test_one_cannot_rename_or_remove_someone_elses_passkey(client, ivan, globex):
    _authenticator, passkey = _registered(ivan)
    eve = accounts.create_user(actor=None, username="eve", password=PASSWORD, organisation=globex)
    _signed_in(client, eve)
    client.post("/accounts/2fa/", {"action": "rename", "passkey": passkey.pk, "name": "mine"})
    client.post("/accounts/2fa/", {"action": "remove", "device": passkey.persistent_id})
    passkey.refresh_from_db()
    assert passkey.name == "laptop"


def test_an_operator_removes_a_users_passkey_and_it_is_audited(ivan, operator_user):
    _authenticator, passkey = _registered(ivan)
    passkeys.remove_passkey(actor=operator_user, user=ivan, passkey=passkey)
    removed = AuditLog.objects.get(action=AuditAction.PASSKEY_REMOVED)
    assert removed.actor_id == str(operator_user.pk)
    assert removed.target_id == str(ivan.pk)
    assert not Passkey.objects.exists()


def test_a_client_user_cannot_remove_an_operators_passkey(ivan, operator_user):
    from django.core.exceptions import PermissionDenied

    _register(_staff_session(operator_user), SoftAuthenticator())
    passkey = Passkey.objects.get(user=operator_user)
    with pytest.raises(PermissionDenied):
        passkeys.remove_passkey(actor=ivan, user=operator_user, passkey=passkey)
    assert Passkey.objects.filter(pk=passkey.pk).exists()


def test_the_admin_lists_and_removes_passkeys_through_the_service(ivan, admin_user):
    _authenticator, passkey = _registered(ivan)
    admin = _staff_session(admin_user)
    listing = admin.get("/admin/accounts/passkey/")
    assert listing.status_code == 200
    assert "laptop" in listing.content.decode()
    assert passkey.credential_id not in listing.content.decode()  # never the credential ID
    assert admin.get(f"/admin/accounts/passkey/{passkey.pk}/change/").status_code == 200
    response = admin.post(
        "/admin/accounts/passkey/",
        {"action": "remove_passkeys", "_selected_action": [passkey.pk], "index": 0},
    )
    assert response.status_code == 302
    assert not Passkey.objects.exists()
    removed = AuditLog.objects.get(action=AuditAction.PASSKEY_REMOVED)
    assert removed.actor_id == str(admin_user.pk)


def test_passkeys_come_first_and_a_code_stays_possible_when_policy_allows(client, operator_user):
    from django_otp.oath import totp
    from django_otp.plugins.otp_totp.models import TOTPDevice

    owner = _staff_session(operator_user)
    _register(owner, SoftAuthenticator(), "one")
    _register(owner, SoftAuthenticator(), "two")
    app = TOTPDevice.objects.create(user=operator_user, name="phone", confirmed=True)
    client.post("/accounts/login/", {"username": "oksana", "password": PASSWORD})
    page = client.get("/accounts/2fa/verify/").content.decode()
    assert 'data-passkey="second-factor"' in page
    assert page.count("?device=") == 1  # one link: the authenticator app (both passkeys are offered)
    response = client.post(
        "/accounts/2fa/verify/", {"device": app.persistent_id, "token": f"{totp(app.bin_key):06d}"}
    )
    assert response.status_code == 302
    assert client.session["idp_amr"] == ["pwd", "otp", "mfa"]


def test_an_origin_off_the_relying_party_id_fails_the_system_check(settings):
    assert relying_party.check_relying_party() == []
    settings.IDP_WEBAUTHN_RP_ID = "idp.example.com"
    settings.IDP_WEBAUTHN_ORIGINS = ["https://login.idp.example.com", "https://evil.example"]
    assert [error.id for error in relying_party.check_relying_party()] == ["accounts.E020"]
    assert relying_party.origins() == ["https://login.idp.example.com", "https://evil.example"]


def test_a_client_that_enforces_its_corporate_sso_gets_no_password_free_passkey_sign_in(client, ivan, acme):
    from clients import domains
    from clients import services as clients

    authenticator, _passkey = _registered(ivan)
    clients.configure_identity_provider(
        actor=None,
        organisation=acme,
        changes={"name": "Acme", "issuer": "https://login.acme.example", "client_id": "ours"},
    )
    domains.approve_domain(
        actor=None, domain=domains.add_domain(actor=None, organisation=acme, domain="acme.example")
    )
    clients.configure_identity_provider(actor=None, organisation=acme, changes={"enforced": True})
    # A leaver disabled at the company's provider must not come in with a key kept here.
    assert _passkey_login(client, authenticator).status_code == 400
    assert SESSION_KEY not in client.session
    assert (
        AuditLog.objects.filter(action=AuditAction.LOGIN_FAILED).first().details["reason"] == "sso_required"
    )


def test_the_account_console_shows_passkey_events(client, ivan):
    _signed_in(client, ivan)
    _register(client, SoftAuthenticator(), "work laptop")
    assert "Passkey registered" in client.get("/accounts/activity/").content.decode()


def test_sign_in_options_are_rate_limited_per_address(client, settings):
    settings.IDP_RATE_LIMITS = {**settings.IDP_RATE_LIMITS, "passkey-options-ip": (2, 60)}
    assert client.post("/accounts/passkey/options/", {"purpose": "login"}).status_code == 200
    assert client.post("/accounts/passkey/options/", {"purpose": "login"}).status_code == 200
    refused = client.post("/accounts/passkey/options/", {"purpose": "login"})
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) >= 1


def test_doors_without_a_sign_in_in_progress_stay_shut(client, ivan):
    assert client.post("/accounts/passkey/options/", {"purpose": "second-factor"}).status_code == 403
    assert client.get("/accounts/2fa/passkey/").headers["Location"] == "/accounts/login/"
    assert client.post("/accounts/2fa/passkey/", {"credential": "{}"}).status_code == 302
    # A pending sign-in that needs no passkey registers none (it proves its factor first).
    _registered(ivan)
    client.post("/accounts/login/", {"username": "ivan", "password": PASSWORD})
    assert client.post("/accounts/passkey/options/", {"purpose": "register"}).status_code == 403
    assert client.get("/accounts/2fa/passkey/").headers["Location"] == "/accounts/2fa/verify/"
    assert Passkey.objects.count() == 1
