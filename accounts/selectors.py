"""What an actor may see: tenant isolation for reads (services guard the writes)."""

from __future__ import annotations

from django.db.models import QuerySet

from accounts import rbac
from accounts.models import User
from clients.models import Organisation
from core.permissions import Permission


def visible_users(actor: User) -> QuerySet[User]:
    """All users for `accounts.user.read` held for all clients; the actor's own client's users for
    the own-client scope; nobody else. Others are invisible, so lookups answer 404, not 403."""
    scope = rbac.effective_permissions(actor).get(Permission.USER_READ)
    users = User.objects.select_related("organisation").order_by("username", "id")
    if scope == rbac.ALL:
        return users
    if scope == rbac.OWN and actor.organisation_id is not None:
        return users.filter(organisation_id=actor.organisation_id)
    return users.none()


def visible_organisations(actor: User) -> QuerySet[Organisation]:
    scope = rbac.effective_permissions(actor).get(Permission.ORGANISATION_READ)
    if scope == rbac.ALL:
        return Organisation.objects.order_by("name")
    if scope == rbac.OWN and actor.organisation_id is not None:
        return Organisation.objects.filter(pk=actor.organisation_id)
    return Organisation.objects.none()
