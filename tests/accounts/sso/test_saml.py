"""Corporate SSO with a SAML 2.0 identity provider, against pysaml2's own IdP side run in the test
(tests.accounts.sso.saml_idp): home-realm discovery, the signed AuthnRequest, just-in-time
provisioning and linking by (client, IdP entity ID, NameID), and every way an assertion is
refused, each with a page and an audit record."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.exceptions import ValidationError
from django.test import Client as Browser

from accounts import services as accounts
from accounts.models import Role, User
from accounts.sessions import AMR
from audit.models import AuditLog, OutboxEvent
from audit.registry import AuditAction, EventType
from clients import saml, services
from clients.models import IdentityProvider, UpstreamIdentity, UsedSAMLAssertion
from tests.accounts.sso.conftest import saml_changes, saml_post, saml_start
from tests.accounts.sso.saml_idp import SAMLIdP, encode

pytestmark = pytest.mark.django_db

NEXT = "/o/authorize/?client_id=portal&response_type=code"
SAML_NS = "urn:oasis:names:tc:SAML:2.0:metadata"


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


def _discover(browser: Browser, login: str = "anna@acme.example") -> str:
    """Identifier first on our login page: the work e-mail goes to the client's IdP."""
    response = browser.post(
        f"/accounts/login/?next={NEXT}", {"username": login, "password": "", "next": NEXT}
    )
    assert response.status_code == 302, response.content[:500]
    location = urlsplit(response["Location"])
    assert location.path == "/sso/acme/login/"
    idp_redirect = browser.get(response["Location"])
    assert idp_redirect.status_code == 302, idp_redirect.content[:500]
    return idp_redirect["Location"]


def _sign_in(browser: Browser, provider: IdentityProvider, idp: SAMLIdP, **knobs):
    return saml_post(browser, provider, idp.authenticate(_discover(browser), **knobs))


# --- our service provider -------------------------------------------------------------------------


def test_sp_metadata_is_served_at_its_entity_id_with_our_certificate(acme_saml):
    response = Browser().get("/sso/acme/saml/metadata/")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/samlmetadata+xml")
    text = response.content.decode()
    assert f'entityID="{saml.entity_id(acme_saml)}"' in text
    assert saml.entity_id(acme_saml).endswith("/sso/acme/saml/metadata/")
    assert 'AuthnRequestsSigned="true"' in text
    assert 'WantAssertionsSigned="true"' in text
    assert f'Location="{saml.acs_url(acme_saml)}"' in text
    certificate = "".join(acme_saml.saml_sp_certificate.splitlines()[1:-1])
    assert certificate in text.replace("\n", "")
    assert "PRIVATE" not in text


def test_the_sp_key_is_stored_encrypted_and_a_new_one_is_audited(acme_saml):
    assert acme_saml.saml_sp_key_encrypted
    assert "PRIVATE KEY" not in acme_saml.saml_sp_key_encrypted
    assert "-----BEGIN CERTIFICATE-----" in acme_saml.saml_sp_certificate
    created = AuditLog.objects.get(action=AuditAction.SSO_PROVIDER_CHANGED)
    assert "saml_sp_key" in created.details["fields"]
    assert created.details["protocol"] == "saml"

    before = acme_saml.saml_sp_certificate
    rotated = services.rotate_saml_sp_key(actor=None, provider=acme_saml)

    assert rotated.saml_sp_certificate != before
    entry = AuditLog.objects.filter(action=AuditAction.SSO_PROVIDER_CHANGED).latest("id")
    assert entry.details["fields"] == ["saml_sp_key"]
    assert "PRIVATE" not in str(entry.details)


def test_no_metadata_for_a_client_without_saml(acme):
    response = Browser().get("/sso/acme/saml/metadata/")
    assert response.status_code == 404
    assert b'data-reason="not_configured"' in response.content


# --- the happy paths --------------------------------------------------------------------------------


def test_a_work_email_signs_in_through_the_saml_idp_and_is_provisioned(acme, acme_saml, saml_idp):
    saml_idp.attributes["memberOf"] = ["staff", "acme-admins"]
    browser = Browser()

    response = _sign_in(browser, acme_saml, saml_idp)

    assert response.status_code == 302, response.content[:800]
    assert response["Location"] == NEXT
    request = saml_idp.requests[0]  # the IdP verified its signature (saml_idp.read_request)
    assert request.issuer.text == saml.entity_id(acme_saml)
    assert request.assertion_consumer_service_url == saml.acs_url(acme_saml)
    user = User.objects.get()
    assert (user.username, user.email, user.organisation, user.role) == (
        "anna.k",
        "anna@acme.example",
        acme,
        Role.CLIENT_ADMIN,
    )
    assert not user.has_usable_password()
    link = UpstreamIdentity.objects.get()
    assert (link.organisation, link.issuer, link.subject, link.user) == (
        acme,
        saml_idp.entity_id,
        "anna-0001",
        user,
    )
    assert browser.session["_auth_user_id"] == str(user.pk)
    assert browser.session[AMR] == ["fed", "pwd"]
    assert OutboxEvent.objects.filter(type=EventType.USER_CREATED, key=str(user.pk)).count() == 1
    success = AuditLog.objects.get(action=AuditAction.SSO_LOGIN_SUCCEEDED)
    assert success.details["created"] is True
    assert success.details["issuer"] == saml_idp.entity_id
    assert AuditLog.objects.filter(action=AuditAction.SSO_IDENTITY_LINKED, target_id=str(user.pk)).exists()
    assert saml_idp.hits == ["/metadata"]  # fetched once (the safe fetcher), then cached


def test_the_second_sign_in_relinks_the_same_user_and_updates_the_mapping(acme, acme_saml, saml_idp):
    _sign_in(Browser(), acme_saml, saml_idp)
    user = User.objects.get()
    assert user.role == Role.CLIENT_USER

    saml_idp.attributes.update(mail=["anna.k@acme.example"], memberOf=["acme-admins"])
    response = _sign_in(Browser(), acme_saml, saml_idp)

    assert response.status_code == 302
    user.refresh_from_db()
    assert User.objects.count() == 1
    assert UpstreamIdentity.objects.count() == 1
    assert (user.email, user.role) == ("anna.k@acme.example", Role.CLIENT_ADMIN)
    assert AuditLog.objects.filter(action=AuditAction.SSO_IDENTITY_LINKED).count() == 1
    assert AuditLog.objects.filter(action=AuditAction.SSO_LOGIN_SUCCEEDED).count() == 2
    assert OutboxEvent.objects.filter(type=EventType.USER_ROLE_CHANGED).count() == 1


def test_a_user_with_the_same_email_is_never_linked_by_it(acme, acme_saml, saml_idp):
    local = accounts.create_user(
        actor=None,
        username="anna-local",
        password="local-pass-42",
        email="anna@acme.example",
        organisation=acme,
    )
    _sign_in(Browser(), acme_saml, saml_idp)

    link = UpstreamIdentity.objects.get()
    assert link.user != local
    assert link.user.username == "anna.k"


def test_another_nameid_is_another_person(acme_saml, saml_idp):
    _sign_in(Browser(), acme_saml, saml_idp)
    saml_idp.subject = "boris-0002"
    saml_idp.attributes.update(uid=["boris"], mail=["boris@acme.example"])
    _sign_in(Browser(), acme_saml, saml_idp)
    assert sorted(UpstreamIdentity.objects.values_list("subject", flat=True)) == ["anna-0001", "boris-0002"]
    assert User.objects.count() == 2


def test_encrypted_assertions_are_read_and_can_be_required(acme, acme_saml, saml_idp):
    services.configure_identity_provider(
        actor=None, organisation=acme, changes={"saml_require_encryption": True}
    )
    plain = _sign_in(Browser(), acme_saml, saml_idp)
    assert plain.status_code == 400
    _failure("bad_token")
    _nothing_provisioned()

    response = _sign_in(Browser(), acme_saml, saml_idp, encrypt=True)

    assert response.status_code == 302, response.content[:800]
    assert UpstreamIdentity.objects.get().subject == "anna-0001"


def test_idp_initiated_sign_in_works_once_switched_on(acme, acme_saml, saml_idp):
    services.configure_identity_provider(
        actor=None, organisation=acme, changes={"saml_allow_idp_initiated": True}
    )
    browser = Browser()
    document = saml_idp.response(in_response_to=None, destination=saml.acs_url(acme_saml))

    response = saml_post(browser, acme_saml, {"SAMLResponse": encode(document), "RelayState": "/accounts/"})

    assert response.status_code == 302, response.content[:800]
    assert response["Location"] == "/accounts/"
    assert _signed_in(browser)


def test_idp_initiated_relay_state_never_leaves_the_site(acme, acme_saml, saml_idp):
    services.configure_identity_provider(
        actor=None, organisation=acme, changes={"saml_allow_idp_initiated": True}
    )
    document = saml_idp.response(in_response_to=None, destination=saml.acs_url(acme_saml))
    response = saml_post(
        Browser(), acme_saml, {"SAMLResponse": encode(document), "RelayState": "https://evil.example/"}
    )
    assert response.status_code == 302
    assert response["Location"] == "/"


def test_a_post_without_our_cookie_is_posted_again_same_site(acme_saml, saml_idp):
    # The IdP's cross-site POST arrives without our SameSite=Lax session cookie: our page posts it again.
    browser = Browser()
    location = saml_start(browser, acme_saml)
    fields = saml_idp.authenticate(location)
    browser.cookies.clear()

    page = browser.post("/sso/acme/saml/acs/", fields)

    assert page.status_code == 200
    assert b'id="saml-post"' in page.content
    assert b'name="bounced"' in page.content
    assert b"autopost.js" in page.content
    assert not AuditLog.objects.filter(action=AuditAction.SSO_LOGIN_FAILED).exists()


# --- refused: each with a page and an audit record, nothing provisioned -------------------------------


def _refused(response, reason: str, status: int = 400) -> AuditLog:
    assert response.status_code == status, response.content[:800]
    assert f'data-reason="{reason}"'.encode() in response.content
    assert b'id="sso-error"' in response.content
    entry = _failure(reason)
    assert entry.details["channel"] == "sso"
    return entry


def test_an_unsigned_assertion_is_refused(acme_saml, saml_idp):
    browser = Browser()
    response = _sign_in(browser, acme_saml, saml_idp, sign_assertion=False)
    _refused(response, "unsigned")
    assert b"not signed" in response.content
    assert not _signed_in(browser)
    _nothing_provisioned()


def test_a_signed_response_around_an_unsigned_assertion_is_refused(acme_saml, saml_idp):
    _refused(_sign_in(Browser(), acme_saml, saml_idp, sign_assertion=False, sign_response=True), "unsigned")
    _nothing_provisioned()


def test_an_assertion_altered_after_signing_is_refused(acme_saml, saml_idp):
    def become_the_boss(document: str) -> str:
        assert "anna-0001" in document
        return document.replace("anna-0001", "boss-0001")

    response = _sign_in(Browser(), acme_saml, saml_idp, tamper=become_the_boss)
    _refused(response, "bad_signature")
    assert b"may have been altered" in response.content
    _nothing_provisioned()


def test_an_attribute_altered_after_signing_is_refused(acme_saml, saml_idp):
    response = _sign_in(
        Browser(), acme_saml, saml_idp, tamper=lambda document: document.replace(">staff<", ">acme-admins<")
    )
    _refused(response, "bad_signature")
    _nothing_provisioned()


def test_a_replayed_assertion_is_refused(acme_saml, saml_idp):
    browser = Browser()
    fields = saml_idp.authenticate(_discover(browser))
    assert saml_post(browser, acme_saml, fields).status_code == 302
    assert UsedSAMLAssertion.objects.count() == 1

    again = saml_post(browser, acme_saml, fields)

    _refused(again, "replayed")
    assert b"already used" in again.content
    assert AuditLog.objects.filter(action=AuditAction.SSO_LOGIN_SUCCEEDED).count() == 1


def test_a_replayed_assertion_from_another_browser_is_refused(acme_saml, saml_idp):
    fields = saml_idp.authenticate(_discover(Browser()))
    assert saml_post(Browser(), acme_saml, fields).status_code == 400  # not this browser's request
    _failure("unsolicited")
    _nothing_provisioned()


def test_an_expired_assertion_is_refused(acme_saml, saml_idp):
    response = _sign_in(Browser(), acme_saml, saml_idp, age_seconds=3600)
    _refused(response, "expired")
    _nothing_provisioned()


def test_an_assertion_not_valid_yet_is_refused(acme_saml, saml_idp):
    # The IdP's clock an hour ahead: NotBefore is in our future.
    response = _sign_in(Browser(), acme_saml, saml_idp, age_seconds=-3600)
    entry = _refused(response, "expired")
    assert "NotBefore" in entry.details["detail"]
    _nothing_provisioned()


def test_an_assertion_signed_by_another_key_is_refused(acme_saml, saml_idp):
    # An impostor names the client's IdP as its issuer and signs with a key of its own.
    browser = Browser()
    location = _discover(browser)
    with SAMLIdP(entity_id=saml_idp.entity_id) as impostor:
        impostor.trust(saml_idp.sp_metadata)
        message = saml_idp.read_request(location)
        document = impostor.response(in_response_to=message.id, destination=saml.acs_url(acme_saml))
    _refused(saml_post(browser, acme_saml, {"SAMLResponse": encode(document)}), "bad_signature")
    _nothing_provisioned()


def test_a_little_clock_skew_is_tolerated(acme_saml, saml_idp):
    # Made 5 min + 30 s ago: NotOnOrAfter passed 30 s ago, inside the 60 s skew.
    response = _sign_in(Browser(), acme_saml, saml_idp, age_seconds=330)
    assert response.status_code == 302, response.content[:800]


def test_an_assertion_for_another_audience_is_refused(acme_saml, saml_idp):
    response = _sign_in(Browser(), acme_saml, saml_idp, audience="https://other-sp.example/metadata")
    _refused(response, "wrong_audience")
    assert b"another service" in response.content
    _nothing_provisioned()


def test_a_response_for_another_recipient_is_refused(acme_saml, saml_idp):
    browser = Browser()
    message = saml_idp.read_request(_discover(browser))
    document = saml_idp.response(in_response_to=message.id, destination="https://other-sp.example/acs")
    _refused(saml_post(browser, acme_saml, {"SAMLResponse": encode(document)}), "wrong_recipient")
    _nothing_provisioned()


def test_an_unsolicited_response_is_refused_while_idp_initiated_is_off(acme_saml, saml_idp):
    assert not acme_saml.saml_allow_idp_initiated  # the default
    document = saml_idp.response(in_response_to=None, destination=saml.acs_url(acme_saml))
    response = saml_post(Browser(), acme_saml, {"SAMLResponse": encode(document)})
    entry = _refused(response, "unsolicited")
    assert "IdP-initiated" in entry.details["detail"]
    _nothing_provisioned()


def test_an_answer_to_a_request_we_never_sent_is_refused(acme_saml, saml_idp):
    browser = Browser()
    _discover(browser)
    document = saml_idp.response(in_response_to="id-not-ours", destination=saml.acs_url(acme_saml))
    _refused(saml_post(browser, acme_saml, {"SAMLResponse": encode(document)}), "unsolicited")
    _nothing_provisioned()


def test_a_transient_nameid_is_refused(acme_saml, saml_idp):
    transient = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"
    response = _sign_in(Browser(), acme_saml, saml_idp, name_id_format=transient)
    _refused(response, "provisioning_failed", status=409)
    _nothing_provisioned()


@pytest.mark.parametrize(
    "posted",
    [
        {},
        {"SAMLResponse": "%%% not base64 %%%"},
        {"SAMLResponse": encode("<not-saml/>")},
        {"SAMLResponse": encode('<!DOCTYPE x [<!ENTITY e "boom">]><x>&e;</x>')},
        {"SAMLResponse": "A" * (300 * 1024)},
    ],
    ids=["nothing", "not-base64", "not-a-response", "entities", "too-large"],
)
def test_garbage_is_a_page_not_a_500(acme_saml, saml_idp, posted):
    browser = Browser()
    _discover(browser)
    _refused(saml_post(browser, acme_saml, posted), "bad_response", status=502)
    _nothing_provisioned()


def test_a_blocked_user_stays_out(acme_saml, saml_idp):
    _sign_in(Browser(), acme_saml, saml_idp)
    user = User.objects.get()
    accounts.block_user(actor=None, user=user, reason="left the company")
    browser = Browser()
    _refused(_sign_in(browser, acme_saml, saml_idp), "account_blocked", status=403)
    assert not _signed_in(browser)


def test_the_refusal_pages_are_in_russian_too(acme_saml, saml_idp):
    browser = Browser(headers={"Accept-Language": "ru"})
    response = _sign_in(browser, acme_saml, saml_idp, sign_assertion=False)
    assert response.status_code == 400
    assert "подпис".encode() in response.content


# --- configuration ----------------------------------------------------------------------------------


def test_uploaded_metadata_works_without_a_url(acme, saml_idp):
    provider = services.configure_identity_provider(
        actor=None,
        organisation=acme,
        changes=saml_changes(saml_idp, saml_metadata_url="", saml_metadata_xml=saml_idp.metadata),
    )
    saml_idp.trust(Browser().get("/sso/acme/saml/metadata/").content.decode())
    browser = Browser()
    response = saml_post(browser, provider, saml_idp.authenticate(saml_start(browser, provider)))
    assert response.status_code == 302, response.content[:800]
    assert saml_idp.hits == []  # nothing fetched


def test_metadata_of_another_entity_is_refused_at_configuration(acme, saml_idp):
    with pytest.raises(ValidationError) as refused:
        services.configure_identity_provider(
            actor=None,
            organisation=acme,
            changes=saml_changes(
                saml_idp,
                issuer="https://someone-else.example/idp",
                saml_metadata_url="",
                saml_metadata_xml=saml_idp.metadata,
            ),
        )
    assert "saml_metadata_xml" in refused.value.message_dict
    assert not IdentityProvider.objects.exists()
    assert not AuditLog.objects.filter(action=AuditAction.SSO_PROVIDER_CHANGED).exists()


@pytest.mark.parametrize("xml", ["", "<not-metadata/>", "not xml at all"])
def test_no_usable_metadata_is_refused_at_configuration(acme, saml_idp, xml):
    with pytest.raises(ValidationError):
        services.configure_identity_provider(
            actor=None,
            organisation=acme,
            changes=saml_changes(saml_idp, saml_metadata_url="", saml_metadata_xml=xml),
        )
    assert not IdentityProvider.objects.exists()


def test_a_metadata_url_must_be_fetchable_under_our_policy(acme, saml_idp, settings):
    settings.IDP_OUTBOUND_ALLOW_LOOPBACK = False
    with pytest.raises(ValidationError) as refused:
        services.configure_identity_provider(actor=None, organisation=acme, changes=saml_changes(saml_idp))
    assert "saml_metadata_url" in refused.value.message_dict


def test_the_metadata_url_start_shows_a_page_when_the_idp_is_down(acme_saml, saml_idp):
    saml.forget_cached(acme_saml)
    saml_idp.server.shutdown()
    saml_idp.server.server_close()
    response = Browser().get("/sso/acme/login/", {"next": "/"})
    assert response.status_code == 502
    assert b'id="sso-error"' in response.content
    _failure("unreachable")


def test_the_query_string_of_the_authn_request_is_signed_with_sha256(acme_saml):
    query = parse_qs(urlsplit(saml_start(Browser(), acme_saml)).query)
    assert query["SigAlg"] == ["http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"]
    assert query["Signature"][0]
