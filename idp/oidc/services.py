"""Audited operations on the OIDC machinery (keys); token changes go through DOT + the validator."""

from __future__ import annotations

from django.db import transaction

from accounts.models import User
from accounts.policy import require
from audit import services as audit
from audit.registry import AuditAction
from idp.oidc import keys
from idp.oidc.models import SigningKey


@transaction.atomic
def rotate_keys(*, actor: User | None, force: bool = False) -> SigningKey:
    require(actor, "oidc.key.rotate")
    before = keys.ensure_keys()
    active = keys.rotate(force=force)
    if active.pk != before.pk:
        audit.record(
            AuditAction.SIGNING_KEY_ROTATED,
            actor=actor,
            target=active,
            details={"previousKid": before.kid, "kid": active.kid, "forced": force},
        )
    return active


@transaction.atomic
def rotate_keys_if_due() -> SigningKey:
    before = keys.ensure_keys()
    active = keys.rotate_if_due()
    if active.pk != before.pk:
        audit.record(
            AuditAction.SIGNING_KEY_ROTATED,
            actor=None,
            target=active,
            details={"previousKid": before.kid, "kid": active.kid, "forced": False},
        )
    return active
