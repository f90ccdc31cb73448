"""A B2B client's SAML 2.0 identity provider, as configured here: our service provider (SP) side
for that client (entity ID, assertion consumer service URL, signing and decryption key, metadata),
the identity provider's metadata (uploaded, or fetched through core.outbound and cached), and the
pysaml2 client built from both. The sign-in flow that uses them is accounts.sso.saml.

pysaml2 signs and verifies with Debian's `xmlsec1` binary, which reads keys from files: the
client's SP key is decrypted into a private temporary directory for the one call that needs it
and removed right after. Failures raise clients.upstream.SSOError, with details in our words.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from clients.models import IdentityProvider, UsedSAMLAssertion
from clients.upstream import FETCH_LIMITS, SSOError, SSOErrorCode, fetch_failed
from core import outbound, stored_secrets
from core.config import ConfigError

# pysaml2 is imported where it is used: clients.services and the admin import this module in
# every process, and only SAML sign-ins and their configuration need the library (15 MB after
# django.setup; processes that load the URLconf still load it through accounts.sso.saml).
if TYPE_CHECKING:
    from saml2.client import Saml2Client
    from saml2.config import SPConfig

METADATA_SECONDS = 3600
MAX_METADATA_BYTES = 512 * 1024
SKEW_SECONDS = 60  # clock difference allowed between the identity provider and us
SP_KEY_BITS = 3072
SP_CERT_DAYS = 3650  # a self-signed certificate only carries the key: IdPs pin it, not its chain


# --- our service provider for this client -------------------------------------------------------


def entity_id(provider: IdentityProvider) -> str:
    """Our SP entity ID for this client: the URL of its metadata, stable (built on the slug)."""
    return f"{settings.IDP_ISSUER}{reverse('sso:saml_metadata', args=[provider.organisation.slug])}"


def acs_url(provider: IdentityProvider) -> str:
    """Where the identity provider posts its Response (SAML Bindings §3.5, HTTP-POST)."""
    return f"{settings.IDP_ISSUER}{reverse('sso:saml_acs', args=[provider.organisation.slug])}"


def generate_sp_key(*, common_name: str) -> tuple[str, str]:
    """A new SP key pair: (the private key encrypted at rest, the self-signed certificate's PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=SP_KEY_BITS)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=SP_CERT_DAYS))
        .sign(key, hashes.SHA256())
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return stored_secrets.encrypt(pem), certificate.public_bytes(serialization.Encoding.PEM).decode()


def _sp_key(provider: IdentityProvider) -> bytes:
    if not provider.saml_sp_key_encrypted or not provider.saml_sp_certificate:
        raise SSOError(SSOErrorCode.NOT_CONFIGURED, "no SP key: configure the provider again")
    try:
        return stored_secrets.decrypt(provider.saml_sp_key_encrypted)
    except (stored_secrets.UndecryptableError, ConfigError):
        raise SSOError(
            SSOErrorCode.NOT_CONFIGURED,
            "the SP key cannot be decrypted: IDP_KEY_ENCRYPTION_KEY does not match; generate a new one",
        ) from None


def xmlsec_binary() -> str:
    found = shutil.which(settings.IDP_SAML_XMLSEC1)
    if not found:
        raise SSOError(SSOErrorCode.NOT_CONFIGURED, "the xmlsec1 program is not installed on this server")
    return found


def _config(provider: IdentityProvider, folder: str, idp_metadata: str | None) -> SPConfig:
    """pysaml2's SP configuration; without `idp_metadata`, only enough for our own metadata (the
    private key stays encrypted)."""
    from saml2 import BINDING_HTTP_POST
    from saml2.config import SPConfig

    if not provider.saml_sp_certificate:
        raise SSOError(SSOErrorCode.NOT_CONFIGURED, "no SP key: configure the provider again")
    key_file, cert_file = os.path.join(folder, "sp.key"), os.path.join(folder, "sp.crt")
    if idp_metadata:
        descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as out:
            out.write(_sp_key(provider))
    with open(cert_file, "w") as out:
        out.write(provider.saml_sp_certificate)
    config = SPConfig()
    config.load(
        {
            "entityid": entity_id(provider),
            "xmlsec_binary": xmlsec_binary(),
            # Without the key (our metadata only), the key file is named but never read.
            **({"key_file": key_file} if idp_metadata else {}),
            "cert_file": cert_file,
            "encryption_keypairs": [{"key_file": key_file, "cert_file": cert_file}],
            "accepted_time_diff": SKEW_SECONDS,
            "allow_unknown_attributes": True,
            "service": {
                "sp": {
                    "name": provider.organisation.name,
                    "endpoints": {"assertion_consumer_service": [(acs_url(provider), BINDING_HTTP_POST)]},
                    "authn_requests_signed": True,
                    "want_assertions_signed": True,  # the assertion itself, not just the envelope
                    "want_response_signed": False,
                    "allow_unsolicited": provider.saml_allow_idp_initiated,
                    "only_use_keys_in_metadata": True,
                }
            },
            **({"metadata": {"inline": [idp_metadata]}} if idp_metadata else {}),
        }
    )
    return config


@contextlib.contextmanager
def client(provider: IdentityProvider) -> Iterator[Saml2Client]:
    """pysaml2's SP for this client, with the identity provider's metadata; the decrypted key
    exists on disk (mode 0600, a 0700 folder) only inside the `with`."""
    from saml2.client import Saml2Client

    document = idp_metadata(provider)
    with tempfile.TemporaryDirectory(prefix="idp-saml-") as folder:
        try:
            yield Saml2Client(config=_config(provider, folder, document))
        finally:
            with contextlib.suppress(OSError):
                os.remove(os.path.join(folder, "sp.key"))


def certificate_fingerprint(pem: str) -> str:
    """What an IdP's admin compares with the certificate they loaded: SHA-256, colon-separated."""
    try:
        digest = x509.load_pem_x509_certificate(pem.encode()).fingerprint(hashes.SHA256())
    except ValueError:
        return "?"
    return ":".join(f"{byte:02X}" for byte in digest)


def sp_metadata(provider: IdentityProvider) -> str:
    """Our SP metadata for this client (SAML Metadata §2.4.4): entity ID, ACS, our certificate for
    signing and encryption; AuthnRequestsSigned and WantAssertionsSigned are true."""
    from saml2.metadata import create_metadata_string

    with tempfile.TemporaryDirectory(prefix="idp-saml-") as folder:
        document = create_metadata_string(None, config=_config(provider, folder, None), sign=False)
    return document.decode() if isinstance(document, bytes) else document


# --- the identity provider's metadata -----------------------------------------------------------


@dataclass(frozen=True)
class IdPSummary:
    sso_url: str
    signing_certificates: int


def check_idp_metadata(document: str, *, entity: str) -> IdPSummary:
    """The identity provider's metadata, judged: it must describe `entity` as an IdP with a
    signing certificate and an HTTP-Redirect single sign-on service. Raises ValidationError."""
    from saml2 import BINDING_HTTP_REDIRECT
    from saml2.attribute_converter import ac_factory
    from saml2.mdstore import MetadataStore

    if len(document.encode()) > MAX_METADATA_BYTES:
        raise ValidationError("the metadata is larger than 512 KiB")
    store = MetadataStore(ac_factory(), None)
    try:
        store.load("inline", document)
    except Exception:  # pysaml2 raises what its XML parser and schema classes raise
        raise ValidationError("the metadata is not SAML 2.0 metadata XML") from None
    if entity not in set(store.keys()):
        raise ValidationError("the metadata does not describe this entity ID")
    try:
        services = store.single_sign_on_service(entity, BINDING_HTTP_REDIRECT)
        certificates = store.certs(entity, "idpsso", use="signing")
    except Exception:
        raise ValidationError(
            "the metadata has no identity provider (IDPSSODescriptor) for this entity ID"
        ) from None
    if not services:
        raise ValidationError("the metadata has no HTTP-Redirect SingleSignOnService")
    if not certificates:
        raise ValidationError("the metadata has no signing certificate")
    location = services[0].get("location", "")
    try:
        outbound.check_url(location, resolve_host=False)  # https (browsers go there, we do not)
    except outbound.FetchError as exc:
        raise ValidationError(f"the SingleSignOnService location: {exc.message}") from None
    return IdPSummary(sso_url=location, signing_certificates=len(certificates))


def _cache_key(url: str) -> str:
    return f"sso:saml-metadata:{hashlib.sha256(url.encode()).hexdigest()}"


def idp_metadata(provider: IdentityProvider) -> str:
    """The IdP metadata: fetched from its URL (cached for an hour) or the uploaded document."""
    if not provider.saml_metadata_url:
        if not provider.saml_metadata_xml:
            raise SSOError(SSOErrorCode.NOT_CONFIGURED, "no identity provider metadata")
        return provider.saml_metadata_xml
    key = _cache_key(provider.saml_metadata_url)
    document = cache.get(key)
    if isinstance(document, str):
        return document
    try:
        response = outbound.fetch(
            "GET",
            provider.saml_metadata_url,
            limits=FETCH_LIMITS,
            headers={"Accept": "application/samlmetadata+xml, application/xml"},
        )
    except outbound.FetchError as exc:
        raise fetch_failed("SAML metadata", exc) from None
    if response.status_code != 200:
        raise SSOError(SSOErrorCode.BAD_RESPONSE, f"SAML metadata answered HTTP {response.status_code}")
    try:
        document = response.content.decode("utf-8")
    except UnicodeDecodeError:
        raise SSOError(SSOErrorCode.BAD_RESPONSE, "SAML metadata is not UTF-8") from None
    try:
        check_idp_metadata(document, entity=provider.issuer)
    except ValidationError as exc:
        raise SSOError(SSOErrorCode.BAD_RESPONSE, f"SAML metadata: {exc.messages[0]}") from None
    cache.set(key, document, METADATA_SECONDS)
    return document


def forget_cached(provider: IdentityProvider) -> None:
    """After a configuration change: fetch the metadata afresh."""
    if provider.saml_metadata_url:
        cache.delete(_cache_key(provider.saml_metadata_url))


# --- replay ------------------------------------------------------------------------------------


def consume_assertion(*, issuer: str, assertion_id: str, expires_at: datetime.datetime) -> bool:
    """Mark an assertion used; False when it already was (a replay). Kept until it expires."""
    now = timezone.now()
    UsedSAMLAssertion.objects.filter(expires_at__lt=now).delete()  # indexed; a handful of rows at most
    try:
        with transaction.atomic():
            UsedSAMLAssertion.objects.create(
                issuer=issuer,
                assertion_id=assertion_id,
                expires_at=max(expires_at, now) + datetime.timedelta(seconds=SKEW_SECONDS),
            )
    except IntegrityError:
        return False
    return True
