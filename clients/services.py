from __future__ import annotations

from django.db import transaction

from accounts.models import User
from accounts.policy import require
from audit import services as audit
from audit.registry import AuditAction
from clients.models import Client


@transaction.atomic
def create_client(*, actor: User | None, name: str, slug: str, contact_email: str = "") -> Client:
    """Register a B2B client organisation (operators and internal admins only)."""
    require(actor, "clients.client.create")
    client = Client(name=name.strip(), slug=slug, contact_email=contact_email)
    client.full_clean()
    client.save()
    audit.record(
        AuditAction.CLIENT_CREATED,
        actor=actor,
        target=client,
        client_id=client.id,
        details={"name": client.name, "slug": client.slug},
    )
    return client
