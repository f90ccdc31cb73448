"""The corporate SSO sign-in flow with a SAML 2.0 identity provider (SAML Profiles §4.1, Web
Browser SSO): a signed AuthnRequest over HTTP-Redirect, the Response back over HTTP-POST.

pysaml2 (clients.saml) parses the Response, checks the signatures with xmlsec1 against the IdP's
metadata, decrypts, and checks the conditions; then this module checks again, in our words and
with a reason code each, what a sign-in rests on: the issuer, the audience, the recipient and
Destination, NotBefore/NotOnOrAfter (small skew), InResponseTo bound to a request this browser
sent, and the assertion ID used once. The attributes go through the OIDC upstream's claim and
role mapping (accounts.sso.provisioning), and the user is linked by (organisation, IdP entity ID,
NameID).
"""

from __future__ import annotations

import base64
import binascii
import calendar
import datetime
import logging
import secrets
import time
from typing import Any
from urllib.parse import urlsplit

from django.http import HttpRequest
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, samlp
from saml2.response import (
    IncorrectlySigned,
    StatusAuthnFailed,
    StatusError,
    StatusRequestDenied,
    UnsolicitedResponse,
    VerificationError,
)
from saml2.s_utils import UnravelError
from saml2.saml import NAMEID_FORMAT_TRANSIENT, SCM_BEARER
from saml2.sigver import SignatureError, SigverError
from saml2.time_util import str_to_time
from saml2.validate import ResponseLifetimeExceed, ToEarly
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

from accounts import assurance
from accounts.sso.flow import SignIn, pending_flows, record_failure
from accounts.sso.provisioning import profile_of, provision
from clients import saml
from clients.models import IdentityProvider
from clients.upstream import SSOError, SSOErrorCode

log = logging.getLogger(__name__)

PENDING = "idp_saml_requests"  # session key: AuthnRequest ID -> one pending sign-in
MAX_PENDING = 5  # pending sign-ins per session (tabs); the oldest goes first
MAX_RESPONSE_BYTES = 256 * 1024  # the base64 SAMLResponse as posted

# SAML Authentication Context classes (SAML AuthnContext §3.4) and the usual vendor ones, as the
# `amr` values of RFC 8176 that accounts.assurance understands.
AUTHN_CONTEXTS: dict[str, list[str]] = {
    "urn:oasis:names:tc:SAML:2.0:ac:classes:Password": ["pwd"],
    "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport": ["pwd"],
    "urn:oasis:names:tc:SAML:2.0:ac:classes:X509": ["swk"],
    "urn:oasis:names:tc:SAML:2.0:ac:classes:Smartcard": ["sc"],
    "urn:oasis:names:tc:SAML:2.0:ac:classes:SmartcardPKI": ["sc", "hwk"],
    "urn:oasis:names:tc:SAML:2.0:ac:classes:TimeSyncToken": ["otp"],
    "urn:oasis:names:tc:SAML:2.0:ac:classes:MobileTwoFactorContract": ["mfa"],
    "http://schemas.microsoft.com/claims/multipleauthn": ["mfa"],  # AD FS, Entra ID
    "https://refeds.org/profile/mfa": ["mfa"],
}


# --- off to the identity provider ----------------------------------------------------------------


def _pending(request: HttpRequest) -> dict[str, dict[str, Any]]:
    return pending_flows(request, PENDING)


def begin(request: HttpRequest, provider: IdentityProvider, *, next_url: str) -> str:
    """The IdP's single sign-on URL with our signed AuthnRequest (SAML Bindings §3.4.4.1: the
    signature over the query string); its ID waits in this browser's session for the answer."""
    try:
        with saml.client(provider) as sp:
            request_id, info = sp.prepare_for_authenticate(
                entityid=provider.issuer,
                relay_state=secrets.token_urlsafe(16),
                binding=BINDING_HTTP_REDIRECT,
                sign=True,
                sigalg=SIG_RSA_SHA256,
                digest_alg=DIGEST_SHA256,
            )
    except SSOError as exc:
        record_failure(provider, exc)
        raise
    except Exception as exc:  # pysaml2 raises plain exceptions for metadata it cannot use
        log.warning("saml request for %s failed: %s", provider.issuer, type(exc).__name__)
        error = SSOError(SSOErrorCode.BAD_RESPONSE, "no AuthnRequest could be made from the IdP metadata")
        record_failure(provider, error)
        raise error from None
    flows = _pending(request)
    for old in sorted(flows, key=lambda s: flows[s].get("at", 0))[: max(0, len(flows) - MAX_PENDING + 1)]:
        del flows[old]
    flows[request_id] = {
        "provider": str(provider.pk),
        "next": next_url,
        "at": int(time.time()),
        "used": False,
    }
    request.session[PENDING] = flows
    return dict(info["headers"])["Location"]


# --- and back --------------------------------------------------------------------------------------


def complete(
    request: HttpRequest, provider: IdentityProvider, *, saml_response: str, default_next: str
) -> SignIn:
    """Finish the sign-in from the IdP's POST to our ACS; raises SSOError (audited)."""
    subject = ""
    try:
        envelope = _envelope(provider, saml_response)
        flows = {rid: f for rid, f in _pending(request).items() if f.get("provider") == str(provider.pk)}
        response = _verified(provider, saml_response, {rid: f["next"] for rid, f in flows.items()}, envelope)
        assertion = response.assertion
        subject = _subject(response)
        expires = _check_assertion(provider, response, assertion)
        in_response_to = response.in_response_to or ""
        if not saml.consume_assertion(issuer=provider.issuer, assertion_id=assertion.id, expires_at=expires):
            raise SSOError(SSOErrorCode.REPLAYED, "this assertion was already used")
        flow = _take_flow(request, provider, in_response_to)
        claims = _claims(provider, response, subject)
        profile = profile_of(provider, claims)
        user, created = provision(provider, profile)
    except SSOError as exc:
        record_failure(provider, exc, subject=subject)
        raise
    methods = assurance.federated_methods(profile.amr, upstream_mfa_trusted=provider.trust_upstream_mfa)
    next_url = flow["next"] if flow else default_next
    return SignIn(user, created, methods, next_url)


def _envelope(provider: IdentityProvider, saml_response: str) -> samlp.Response:
    """The Response as posted, before any check: read only to say why a later check failed
    (Destination) and to refuse plain assertions when encryption is required."""
    if not saml_response or len(saml_response) > MAX_RESPONSE_BYTES:
        raise SSOError(SSOErrorCode.BAD_RESPONSE, "no SAMLResponse, or one too large")
    try:
        document = base64.b64decode(saml_response, validate=False)
        envelope = samlp.response_from_string(document)
    except (binascii.Error, ValueError, TypeError, SyntaxError):
        raise SSOError(SSOErrorCode.BAD_RESPONSE, "the SAMLResponse is not a SAML Response") from None
    except Exception:  # defusedxml refuses entities and DTDs with its own exceptions
        raise SSOError(SSOErrorCode.BAD_RESPONSE, "the SAMLResponse is not a SAML Response") from None
    if envelope is None:
        raise SSOError(SSOErrorCode.BAD_RESPONSE, "the SAMLResponse is not a SAML Response")
    # SAML Core §3.2.2: a Destination, when present, must be where it was received.
    if envelope.destination and envelope.destination != saml.acs_url(provider):
        raise SSOError(SSOErrorCode.WRONG_RECIPIENT, "the Response's Destination is not our ACS URL")
    if provider.saml_require_encryption and envelope.assertion:
        raise SSOError(SSOErrorCode.BAD_TOKEN, "the assertion is not encrypted, and encryption is required")
    return envelope


def _verified(
    provider: IdentityProvider, saml_response: str, outstanding: dict[str, str], envelope: samlp.Response
) -> Any:
    """pysaml2's verdict: signatures (xmlsec1), decryption, conditions, InResponseTo. Its
    exceptions become our reason codes; their messages (which quote the message) are not kept."""
    try:
        with saml.client(provider) as sp:
            response = sp.parse_authn_request_response(
                saml_response, BINDING_HTTP_POST, outstanding=outstanding
            )
    except SSOError:
        raise
    except SignatureError as exc:
        if "missing" in str(exc).lower():
            raise SSOError(SSOErrorCode.UNSIGNED, "the assertion is not signed") from None
        raise SSOError(
            SSOErrorCode.BAD_SIGNATURE, "a signature does not verify with the IdP's certificate"
        ) from None
    except (SigverError, IncorrectlySigned):
        raise SSOError(
            SSOErrorCode.BAD_SIGNATURE, "a signature does not verify with the IdP's certificate"
        ) from None
    except ResponseLifetimeExceed:
        raise SSOError(SSOErrorCode.EXPIRED, "the assertion has expired (NotOnOrAfter)") from None
    except ToEarly:
        raise SSOError(SSOErrorCode.EXPIRED, "the assertion is not valid yet (NotBefore)") from None
    except UnsolicitedResponse:
        raise _unsolicited(provider, envelope) from None
    except (StatusRequestDenied, StatusAuthnFailed):
        raise SSOError(SSOErrorCode.DENIED, "the IdP refused or cancelled the sign-in") from None
    except StatusError:
        raise SSOError(SSOErrorCode.UPSTREAM_ERROR, "the IdP answered with an error status") from None
    except VerificationError as exc:
        if "recipient" in str(exc).lower():
            raise SSOError(
                SSOErrorCode.WRONG_RECIPIENT, "the assertion's Recipient is not our ACS URL"
            ) from None
        raise SSOError(SSOErrorCode.BAD_TOKEN, "the assertion's subject could not be confirmed") from None
    except UnravelError:
        raise SSOError(SSOErrorCode.BAD_RESPONSE, "the SAMLResponse could not be decoded") from None
    except Exception as exc:  # pysaml2 raises plain Exception for several conditions
        message = str(exc)
        if "AudienceRestrictions" in message:
            raise SSOError(SSOErrorCode.WRONG_AUDIENCE, "the assertion's audience is not us") from None
        if "don't recall" in message:  # a bearer confirmation's InResponseTo we never sent
            raise _unsolicited(provider, envelope) from None
        log.info("saml response from %s refused by pysaml2: %s", provider.issuer, type(exc).__name__)
        raise SSOError(SSOErrorCode.BAD_RESPONSE, "the Response could not be verified") from None
    if response is None or response.assertion is None:
        raise SSOError(SSOErrorCode.BAD_RESPONSE, "the Response could not be verified")
    return response


def _unsolicited(provider: IdentityProvider, envelope: samlp.Response) -> SSOError:
    if envelope.in_response_to:
        return SSOError(SSOErrorCode.UNSOLICITED, "InResponseTo names no request of this browser")
    return SSOError(SSOErrorCode.UNSOLICITED, "an IdP-initiated Response, and they are not allowed")


def _subject(response: Any) -> str:
    name_id = response.name_id
    text = (name_id.text or "").strip() if name_id is not None else ""
    if not text or len(text) > 255:
        raise SSOError(SSOErrorCode.BAD_TOKEN, "the assertion has no NameID of 1-255 characters")
    if name_id.format == NAMEID_FORMAT_TRANSIENT:
        # A transient NameID changes at every sign-in: it cannot be what a user is linked by.
        raise SSOError(
            SSOErrorCode.PROVISIONING_FAILED, "a transient NameID; the IdP must send a persistent one"
        )
    return text


def _instant(value: str | None) -> float | None:
    return calendar.timegm(str_to_time(value)) if value else None


def _check_assertion(provider: IdentityProvider, response: Any, assertion: Any) -> datetime.datetime:
    """Our own checks on the verified assertion (SAML Profiles §4.1.4.2-3); returns its expiry."""
    now = time.time()
    issuers = {response.issuer(), assertion.issuer.text if assertion.issuer is not None else None}
    if issuers != {provider.issuer}:
        raise SSOError(SSOErrorCode.BAD_TOKEN, "the Response or assertion names another issuer")
    conditions = assertion.conditions
    audiences = [
        audience.text
        for restriction in (conditions.audience_restriction if conditions is not None else [])
        for audience in restriction.audience
    ]
    if saml.entity_id(provider) not in audiences:  # §4.1.4.2: an AudienceRestriction naming us
        raise SSOError(SSOErrorCode.WRONG_AUDIENCE, "the assertion's audience is not us")
    bearer = [
        confirmation.subject_confirmation_data
        for confirmation in assertion.subject.subject_confirmation
        if confirmation.method == SCM_BEARER and confirmation.subject_confirmation_data is not None
    ]
    if not bearer:
        raise SSOError(SSOErrorCode.BAD_TOKEN, "the assertion has no bearer subject confirmation")
    ends: list[float] = []
    for data in bearer:
        if data.recipient != saml.acs_url(provider):
            raise SSOError(SSOErrorCode.WRONG_RECIPIENT, "the assertion's Recipient is not our ACS URL")
        if response.in_response_to and data.in_response_to != response.in_response_to:
            raise SSOError(SSOErrorCode.UNSOLICITED, "the confirmation answers another request")
        end = _instant(data.not_on_or_after)
        if end is None:  # §4.1.4.2: a bearer confirmation must say until when
            raise SSOError(SSOErrorCode.BAD_TOKEN, "the subject confirmation has no NotOnOrAfter")
        ends.append(end)
    if conditions is not None and conditions.not_on_or_after:
        ends.append(_instant(conditions.not_on_or_after) or 0)
    if conditions is not None and conditions.not_before:
        start = _instant(conditions.not_before) or 0
        if now + saml.SKEW_SECONDS < start:
            raise SSOError(SSOErrorCode.EXPIRED, "the assertion is not valid yet (NotBefore)")
    expires = min(ends)
    if now - saml.SKEW_SECONDS >= expires:
        raise SSOError(SSOErrorCode.EXPIRED, "the assertion has expired (NotOnOrAfter)")
    if not response.in_response_to and not provider.saml_allow_idp_initiated:
        raise SSOError(SSOErrorCode.UNSOLICITED, "an IdP-initiated Response, and they are not allowed")
    return datetime.datetime.fromtimestamp(expires, tz=datetime.UTC)


def _take_flow(request: HttpRequest, provider: IdentityProvider, request_id: str) -> dict[str, Any] | None:
    """The pending sign-in this Response answers, marked used: a request is answered once. None
    for an IdP-initiated sign-in (allowed by then)."""
    if not request_id:
        return None
    flows = _pending(request)
    flow = flows.get(request_id)
    if flow is None or flow.get("provider") != str(provider.pk) or flow.get("used"):
        raise SSOError(SSOErrorCode.INVALID_STATE, "this request was already answered, or has expired")
    flow["used"] = True  # kept until it expires: a second answer to it is refused, by name
    request.session[PENDING] = flows
    return flow


def _claims(provider: IdentityProvider, response: Any, subject: str) -> dict[str, Any]:
    """The assertion as claims for the OIDC upstream's mapping: attributes by Name and by
    FriendlyName (one value: a string; several: a list), `sub` the NameID, `iss` the IdP."""
    claims: dict[str, Any] = {}
    for statement in response.assertion.attribute_statement:
        for attribute in statement.attribute:
            values = [
                v.text.strip()
                for v in attribute.attribute_value
                if isinstance(v.text, str) and v.text.strip()
            ]
            if not values:
                continue
            value: Any = values[0] if len(values) == 1 else values
            for name in (attribute.name, attribute.friendly_name):
                if name and name not in claims:
                    claims[name] = value
    for name, values in (response.ava or {}).items():  # pysaml2's friendly names (uid, mail...)
        if name not in claims and isinstance(values, list) and values:
            claims[name] = values[0] if len(values) == 1 else values
    amr = [method for context in _authn_contexts(response) for method in AUTHN_CONTEXTS.get(context, [])]
    claims.pop("iss", None)
    claims.pop("email_verified", None)  # nothing here says the IdP verified an address: never linked by it
    return {**claims, "sub": subject, "iss": provider.issuer, "amr": list(dict.fromkeys(amr))}


def _authn_contexts(response: Any) -> list[str]:
    found = []
    for statement in response.assertion.authn_statement:
        reference = statement.authn_context.authn_context_class_ref if statement.authn_context else None
        if reference is not None and reference.text:
            found.append(reference.text.strip())
    return found


def safe_relay_target(relay_state: str) -> str:
    """An IdP-initiated sign-in's RelayState as a local path, or empty: never a redirect away."""
    parts = urlsplit(relay_state or "")
    if (
        relay_state.startswith("/")
        and not relay_state.startswith("//")
        and not parts.netloc
        and not parts.scheme
    ):
        return relay_state[:2000]
    return ""
