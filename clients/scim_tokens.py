"""The bearer tokens of SCIM provisioning (idp.scim): made, shown once, kept as a SHA-256, revoked.

A token is 256 random bits, so a plain SHA-256 of it is enough to keep (no slow hash: nothing
to guess), and the lookup by that hash is the comparison; the hashes are still compared in
constant time once found. Making and revoking one is audited (and so on the audit stream).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from audit import services as audit
from audit.registry import AuditAction
from clients import ports
from clients.models import Organisation, ScimToken
from clients.ports import Actor
from core.permissions import Permission

PREFIX = "scim_"
PREFIX_SHOWN = 12  # characters kept to tell tokens apart: "scim_" and 7 random ones
LAST_USED_EVERY = timedelta(minutes=1)  # last-used is written at most this often per token
MAX_TOKEN_LENGTH = 256


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@transaction.atomic
def create_scim_token(*, actor: Actor, organisation: Organisation, name: str) -> tuple[ScimToken, str]:
    """Make a token for `organisation`'s directory; returns the row and the token, which is
    never shown again. Whoever manages the organisation's SSO may make one: the token provisions
    the organisation's people as its SSO provider already may (idp.scim.auth)."""
    ports.require_permission(actor, Permission.SSO_MANAGE, organisation_id=organisation.id)
    if not organisation.is_active:
        raise ValidationError(_("the B2B client is suspended"), code="client_suspended")
    token = PREFIX + secrets.token_urlsafe(32)
    row = ScimToken(
        organisation=organisation,
        name=name.strip(),
        prefix=token[:PREFIX_SHOWN],
        token_hash=hash_token(token),
        created_by=actor,
    )
    row.full_clean()
    row.save(force_insert=True)
    audit.record(
        AuditAction.SCIM_TOKEN_CREATED,
        actor=actor,
        target=row,
        organisation_id=organisation.id,
        details={"name": row.name, "prefix": row.prefix},
    )
    return row, token


@transaction.atomic
def revoke_scim_token(*, actor: Actor, token: ScimToken) -> ScimToken:
    """Revoke a token at once; revoking it again changes nothing and records nothing."""
    ports.require_permission(actor, Permission.SSO_MANAGE, organisation_id=token.organisation_id)
    locked = ScimToken.objects.select_for_update().get(pk=token.pk)
    if locked.is_revoked:
        return locked
    locked.revoked_at = timezone.now()
    locked.save(update_fields=["revoked_at"])
    audit.record(
        AuditAction.SCIM_TOKEN_REVOKED,
        actor=actor,
        target=locked,
        organisation_id=locked.organisation_id,
        details={"name": locked.name, "prefix": locked.prefix},
    )
    token.revoked_at = locked.revoked_at
    return locked


def find_scim_token(presented: str) -> ScimToken | None:
    """The live token `presented` is, with its organisation and maker; None for anything else."""
    if not presented.startswith(PREFIX) or len(presented) > MAX_TOKEN_LENGTH:
        return None
    digest = hash_token(presented)
    row = (
        ScimToken.objects.select_related("organisation", "created_by", "created_by__organisation")
        .filter(token_hash=digest, revoked_at__isnull=True)
        .first()
    )
    if row is None or not hmac.compare_digest(row.token_hash, digest):
        return None
    if not row.organisation.is_active:
        return None
    now = timezone.now()
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_EVERY:
        # Not audited: a use is not a change. One UPDATE a minute at most, whoever wins the race.
        ScimToken.objects.filter(pk=row.pk).update(last_used_at=now)
        row.last_used_at = now
    return row
