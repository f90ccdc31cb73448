"""Corporate SSO against a small upstream provider in a thread (tests.accounts.sso.upstream): the
sign-in, just-in-time provisioning, and every way the upstream's answer can be wrong."""

from __future__ import annotations

import base64
import json
import re
import time

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import Client as Browser
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey

from accounts import services as accounts
from accounts.models import Role, User
from accounts.sessions import AMR
from audit.models import AuditLog, OutboxEvent
from audit.registry import AuditAction, EventType
from clients import services, upstream
from clients.models import IdentityProvider, UpstreamIdentity
from tests.accounts.sso.conftest import sso_sign_in, start
from tests.accounts.sso.upstream import CLIENT_ID, CLIENT_SECRET

pytestmark = pytest.mark.django_db

NEXT = "/o/authorize/?client_id=portal&response_type=code"


def _signed_in(browser: Browser) -> bool:
    return "_auth_user_id" in browser.session


def _nothing_provisioned() -> None:
    assert not User.objects.exists()
    assert not UpstreamIdentity.objects.exists()
    assert not OutboxEvent.objects.filter(type=EventType.USER_CREATED).exists()
    assert not AuditLog.objects.filter(action=AuditAction.SSO_LOGIN_SUCCEEDED).exists()


def _failure(reason: str) -> AuditLog:
    entry = AuditLog.objects.filter(action=AuditAction.SSO_LOGIN_FAILED).latest("id")
    assert entry.details["reason"] == reason, entry.details
    return entry


# --- the happy paths -----------------------------------------------------------------------------


def test_first_sign_in_creates_the_user_in_the_client_with_the_mapped_role(acme, acme_sso, upstream):
    upstream.profile["groups"] = ["staff", "acme-admins"]
    browser = Browser()
    response = sso_sign_in(browser, acme_sso, upstream, next_url=NEXT)

    assert response.status_code == 302
    assert response["Location"] == NEXT
    user = User.objects.get()
    assert (user.username, user.email, user.organisation, user.role) == (
        "anna.k",
        "anna@acme.example",
        acme,
        Role.CLIENT_ADMIN,
    )
    assert not user.has_usable_password()  # SSO only: nothing to guess here
    link = UpstreamIdentity.objects.get()
    assert (link.organisation, link.issuer, link.subject, link.user) == (
        acme,
        upstream.issuer,
        upstream.subject,
        user,
    )
    assert browser.session["_auth_user_id"] == str(user.pk)
    assert browser.session[AMR] == ["fed", "pwd"]
    # Our side of PKCE and client authentication, as the upstream saw them.
    assert len(upstream.token_requests) == 1
    assert len(upstream.token_requests[0]["code_verifier"]) >= 43
    assert OutboxEvent.objects.filter(type=EventType.USER_CREATED, key=str(user.pk)).count() == 1
    success = AuditLog.objects.get(action=AuditAction.SSO_LOGIN_SUCCEEDED)
    assert success.details["created"] is True
    assert success.organisation_id == acme.id
    assert AuditLog.objects.filter(action=AuditAction.SSO_IDENTITY_LINKED, target_id=str(user.pk)).exists()


def test_later_sign_ins_update_mapped_attributes_and_role(acme, acme_sso, upstream):
    sso_sign_in(Browser(), acme_sso, upstream)
    user = User.objects.get()
    assert user.role == Role.CLIENT_USER  # "staff"

    upstream.profile.update(email="anna.k@acme.example", groups=["acme-admins"], phone_number="+79990001122")
    response = sso_sign_in(Browser(), acme_sso, upstream)

    assert response.status_code == 302
    user.refresh_from_db()
    assert User.objects.count() == 1
    assert (user.email, user.phone, user.role) == ("anna.k@acme.example", "+79990001122", Role.CLIENT_ADMIN)
    updated = OutboxEvent.objects.get(type=EventType.USER_UPDATED)
    assert updated.payload["changedFields"] == ["email", "phone"]
    role_changed = OutboxEvent.objects.get(type=EventType.USER_ROLE_CHANGED)
    assert role_changed.payload["previousRole"] == Role.CLIENT_USER
    assert AuditLog.objects.filter(action=AuditAction.USER_ROLE_CHANGED, target_id=str(user.pk)).exists()


def test_no_groups_claim_leaves_the_role_alone(acme, acme_sso, upstream):
    sso_sign_in(Browser(), acme_sso, upstream)
    user = User.objects.get()
    accounts.change_role(actor=None, user=user, role=Role.CLIENT_ADMIN, reason="promoted here")
    upstream.profile.pop("groups")
    sso_sign_in(Browser(), acme_sso, upstream)
    user.refresh_from_db()
    assert user.role == Role.CLIENT_ADMIN


def test_claims_missing_from_the_id_token_come_from_userinfo(acme, acme_sso, upstream):
    upstream.claims_override = {"email": None, "groups": None}  # only userinfo has them
    response = sso_sign_in(Browser(), acme_sso, upstream)
    assert response.status_code == 302
    assert User.objects.get().email == "anna@acme.example"
    assert "/userinfo" in upstream.hits


def test_an_existing_user_with_the_verified_email_is_linked_not_duplicated(acme, acme_sso, upstream):
    existing = accounts.create_user(
        actor=None,
        username="anna",
        password="local-password-42",
        email="anna@acme.example",
        organisation=acme,
    )
    response = sso_sign_in(Browser(), acme_sso, upstream)
    assert response.status_code == 302
    assert User.objects.count() == 1
    assert UpstreamIdentity.objects.get().user == existing
    assert AuditLog.objects.get(action=AuditAction.SSO_IDENTITY_LINKED).details["how"] == "email"


def test_an_unverified_upstream_email_never_links_an_existing_account(acme, acme_sso, upstream):
    existing = accounts.create_user(
        actor=None,
        username="anna",
        password="local-password-42",
        email="anna@acme.example",
        organisation=acme,
    )
    upstream.profile["email_verified"] = False
    sso_sign_in(Browser(), acme_sso, upstream)
    assert UpstreamIdentity.objects.get().user != existing


def test_the_upstream_key_rotation_is_followed(acme, acme_sso, upstream):
    sso_sign_in(Browser(), acme_sso, upstream)  # the JWKS is cached now
    upstream.key = RSAKey.generate_key(2048, parameters={"kid": "k2", "use": "sig", "alg": "RS256"})
    upstream.header_override = {"kid": "k2"}
    response = sso_sign_in(Browser(), acme_sso, upstream)
    assert response.status_code == 302
    assert upstream.hits.count("/jwks") == 2


def test_our_second_factor_follows_unless_the_client_trusts_upstream_mfa(acme, acme_sso, upstream):
    acme.require_mfa = True
    acme.save()
    browser = Browser()
    response = sso_sign_in(browser, acme_sso, upstream, next_url=NEXT)
    assert response["Location"] == "/accounts/2fa/verify/"
    assert not _signed_in(browser)  # pending until the second factor

    services.configure_identity_provider(actor=None, organisation=acme, changes={"trust_upstream_mfa": True})
    acme_sso.refresh_from_db()
    upstream.profile["amr"] = ["pwd", "mfa"]
    browser = Browser()
    response = sso_sign_in(browser, acme_sso, upstream, next_url=NEXT)
    assert response["Location"] == NEXT
    assert browser.session[AMR] == ["fed", "pwd", "mfa"]


def test_a_password_only_upstream_sign_in_is_not_trusted_as_mfa(acme, acme_sso, upstream):
    acme.require_mfa = True
    acme.save()
    services.configure_identity_provider(actor=None, organisation=acme, changes={"trust_upstream_mfa": True})
    acme_sso.refresh_from_db()
    response = sso_sign_in(Browser(), acme_sso, upstream)  # amr: ["pwd"]
    assert response["Location"] == "/accounts/2fa/verify/"


def test_the_second_factor_after_sso_keeps_fed_in_amr(acme, acme_sso, upstream, mailoutbox, celery_eager):
    acme.require_mfa = True
    acme.save()
    browser = Browser()
    sso_sign_in(browser, acme_sso, upstream, next_url=NEXT)
    browser.post("/accounts/2fa/verify/", {"action": "send"})
    code = re.search(r"\b(\d{6})\b", mailoutbox[-1].body).group(1)
    response = browser.post("/accounts/2fa/verify/", {"token": code})
    assert response["Location"] == NEXT
    assert browser.session[AMR] == ["fed", "pwd", "otp", "mfa"]


# --- a blocked user stays blocked ------------------------------------------------------------------


def test_a_blocked_user_stays_blocked_whatever_upstream_says(acme, acme_sso, upstream):
    sso_sign_in(Browser(), acme_sso, upstream)
    user = User.objects.get()
    accounts.block_user(actor=None, user=user, reason="left the company")
    upstream.profile.update(email="new@acme.example", groups=["acme-admins"])

    browser = Browser()
    response = sso_sign_in(browser, acme_sso, upstream)

    assert response.status_code == 403
    assert b"This account is blocked" in response.content
    user.refresh_from_db()
    assert (user.status, user.email, user.role) == (
        User.Status.BLOCKED,
        "anna@acme.example",
        Role.CLIENT_USER,
    )
    assert not _signed_in(browser)
    assert not OutboxEvent.objects.filter(
        type__in=[EventType.USER_UPDATED, EventType.USER_ROLE_CHANGED]
    ).exists()
    assert _failure("account_blocked").target_id == str(user.pk)


# --- what upstream can get wrong -------------------------------------------------------------------


def _flip_signature(token: str) -> str:
    head, payload, signature = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw[0] ^= 0xFF
    return f"{head}.{payload}.{base64.urlsafe_b64encode(bytes(raw)).rstrip(b'=').decode()}"


def _swap_payload(token: str) -> str:
    head, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "somebody-else"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{head}.{forged}.{signature}"


def _alg_none(token: str) -> str:
    _, payload, _ = token.split(".")
    head = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    return f"{head}.{payload}."


def _hs256_with_the_client_secret(token: str) -> str:
    _, payload, _ = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    key = OctKey.import_key(CLIENT_SECRET.encode())
    return jwt.encode({"alg": "HS256", "kid": "k1"}, claims, key, algorithms=["HS256"])


TAMPERED = {
    "signature flipped": {"tamper": _flip_signature},
    "payload swapped": {"tamper": _swap_payload},
    "alg none": {"tamper": _alg_none},
    "HS256 with the client secret": {"tamper": _hs256_with_the_client_secret},
    "signed by another key": {"key": True},
    "wrong nonce": {"claims": {"nonce": "not-the-one-we-sent"}},
    "wrong iss": {"claims": {"iss": "https://evil.example"}},
    "wrong aud": {"claims": {"aud": "another-client"}},
    "several audiences, azp not us": {"claims": {"aud": [CLIENT_ID, "other"], "azp": "other"}},
    "expired": {"claims": {"exp": int(time.time()) - 3600, "iat": int(time.time()) - 4000}},
    "no nonce": {"claims": {"nonce": None}},
    "no sub": {"claims": {"sub": None}},
}


@pytest.mark.parametrize("case", TAMPERED.values(), ids=TAMPERED.keys())
def test_an_id_token_that_does_not_verify_signs_nobody_in(acme, acme_sso, upstream, case):
    upstream.tamper = case.get("tamper")
    upstream.claims_override = case.get("claims", {})
    if case.get("key"):
        upstream.signing_key = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    browser = Browser()
    response = sso_sign_in(browser, acme_sso, upstream)

    assert response.status_code == 400
    assert b"could not verify" in response.content
    assert b'data-reason="bad_token"' in response.content
    assert not _signed_in(browser)
    _nothing_provisioned()
    _failure("bad_token")


def test_an_unknown_or_replayed_state_is_refused(acme, acme_sso, upstream):
    browser = Browser()
    params = upstream.authorize(start(browser, acme_sso))
    forged = browser.get("/sso/acme/callback/", {**params, "state": "forged"})
    assert forged.status_code == 400
    assert b'data-reason="invalid_state"' in forged.content
    # The forged state spent nothing of the real one; the real one works, once.
    assert browser.get("/sso/acme/callback/", params).status_code == 302
    browser.logout()
    replayed = browser.get("/sso/acme/callback/", params)
    assert replayed.status_code == 400
    assert b'data-reason="invalid_state"' in replayed.content
    assert User.objects.count() == 1
    _failure("invalid_state")


def test_a_state_from_another_browser_is_refused(acme, acme_sso, upstream):
    params = upstream.authorize(start(Browser(), acme_sso))
    victim = Browser()
    response = victim.get("/sso/acme/callback/", params)  # login CSRF: the state is not in this session
    assert response.status_code == 400
    assert not _signed_in(victim)
    _nothing_provisioned()


def test_the_upstream_refusing_is_shown_and_audited(acme, acme_sso, upstream):
    browser = Browser()
    params = upstream.authorize(start(browser, acme_sso))
    response = browser.get(
        "/sso/acme/callback/",
        {"error": "access_denied", "error_description": "user said no", "state": params["state"]},
    )
    assert response.status_code == 403
    assert b"cancelled or refused" in response.content
    # The registered code is named; the provider's free text is not copied (RFC 6749 §4.1.2.1).
    assert _failure("denied").details["detail"] == "the authorization response is an error: access_denied"
    _nothing_provisioned()


def test_an_authorization_response_from_another_issuer_is_refused(acme, acme_sso, upstream):
    browser = Browser()
    params = upstream.authorize(start(browser, acme_sso))
    response = browser.get("/sso/acme/callback/", {**params, "iss": "https://mix-up.example"})
    assert response.status_code == 502
    assert not upstream.token_requests  # refused before the code went anywhere (RFC 9207)
    _failure("bad_response")


def test_the_token_endpoint_refusing_the_code(acme, acme_sso, upstream):
    upstream.token_error = "invalid_grant"
    response = sso_sign_in(Browser(), acme_sso, upstream)
    assert response.status_code == 502
    assert b"reported an error" in response.content
    assert "invalid_grant" in _failure("upstream_error").details["detail"]
    _nothing_provisioned()


def test_an_unreachable_provider_is_a_page_not_a_500(acme, acme_sso, upstream, free_port):
    services.configure_identity_provider(
        actor=None, organisation=acme, changes={"issuer": f"http://127.0.0.1:{free_port}"}
    )
    response = Browser().get("/sso/acme/login/")
    assert response.status_code == 502
    assert b"cannot be reached" in response.content
    _failure("unreachable")


def test_the_provider_going_away_before_the_token_exchange(acme, acme_sso, upstream):
    browser = Browser()
    params = upstream.authorize(start(browser, acme_sso))
    upstream.server.shutdown()
    upstream.server.server_close()
    response = browser.get("/sso/acme/callback/", params)
    assert response.status_code == 502
    _failure("unreachable")
    _nothing_provisioned()


def test_discovery_naming_another_issuer_is_refused(acme, acme_sso, upstream):
    upstream.issuer = "https://somebody-else.example"
    response = Browser().get("/sso/acme/login/")
    assert response.status_code == 502
    _failure("bad_response")


def test_a_missing_username_claim_creates_nobody(acme, acme_sso, upstream):
    upstream.claims_override = {"preferred_username": None}
    upstream.profile.pop("preferred_username")
    response = sso_sign_in(Browser(), acme_sso, upstream)
    assert response.status_code == 409
    _failure("provisioning_failed")
    _nothing_provisioned()


def test_a_login_taken_by_an_unlinked_user_creates_nothing(acme, acme_sso, upstream):
    accounts.create_user(actor=None, username="anna.k", password="local-password-42", organisation=acme)
    response = sso_sign_in(Browser(), acme_sso, upstream)
    assert response.status_code == 409
    assert "taken" in _failure("provisioning_failed").details["detail"]
    assert User.objects.count() == 1
    assert not UpstreamIdentity.objects.exists()


def test_a_disabled_or_unknown_provider_is_not_found(acme, acme_sso):
    services.configure_identity_provider(actor=None, organisation=acme, changes={"enabled": False})
    assert Browser().get("/sso/acme/login/").status_code == 404
    assert Browser().get("/sso/nobody/callback/", {"state": "x", "code": "y"}).status_code == 404


# --- configuration ---------------------------------------------------------------------------------


def test_the_client_secret_is_stored_encrypted_and_never_audited(acme, acme_sso):
    assert CLIENT_SECRET not in acme_sso.client_secret_encrypted
    assert upstream.decrypt_secret(acme_sso) == CLIENT_SECRET
    for entry in AuditLog.objects.filter(action=AuditAction.SSO_PROVIDER_CHANGED):
        assert CLIENT_SECRET not in json.dumps(entry.details)
        assert "client_secret" in entry.details["fields"]
    services.configure_identity_provider(actor=None, organisation=acme, changes={"name": "Acme SSO"})
    acme_sso.refresh_from_db()
    assert upstream.decrypt_secret(acme_sso) == CLIENT_SECRET  # kept when not given


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"issuer": "http://idp.acme.example"}, "issuer"),  # plain http off loopback
        ({"issuer": "https://idp.acme.example/?tenant=1"}, "issuer"),
        ({"scopes": "email profile"}, "scopes"),
        ({"role_mapping": {"admins": "internal_admin"}}, "role_mapping"),
        ({"role_mapping": ["admins"]}, "role_mapping"),
    ],
)
def test_bad_provider_settings_are_refused_and_nothing_changes(acme, acme_sso, changes, field):
    before = AuditLog.objects.count()
    with pytest.raises(ValidationError) as caught:
        services.configure_identity_provider(actor=None, organisation=acme, changes=changes)
    assert field in caught.value.message_dict
    assert AuditLog.objects.count() == before
    acme_sso.refresh_from_db()
    assert acme_sso.scopes == "openid email profile"


def test_a_client_admin_configures_only_their_own_client(acme, globex, acme_sso):
    admin = accounts.create_user(
        actor=None, username="boss", password="boss-password-42", role=Role.CLIENT_ADMIN, organisation=acme
    )
    services.configure_identity_provider(actor=admin, organisation=acme, changes={"name": "Ours"})
    with pytest.raises(PermissionDenied):
        services.configure_identity_provider(
            actor=admin,
            organisation=globex,
            changes={"issuer": "https://idp.globex.example", "client_id": "x"},
        )
    assert not IdentityProvider.objects.filter(organisation=globex).exists()


def test_the_error_page_speaks_russian(db):
    response = Browser().get("/sso/nobody/login/", HTTP_ACCEPT_LANGUAGE="ru")
    assert response.status_code == 404
    page = response.content.decode()
    assert "Для этой организации корпоративный вход не настроен." in page
    assert "Вернуться ко входу" in page
