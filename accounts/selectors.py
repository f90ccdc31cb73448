"""What an actor may see: tenant isolation for reads (services guard the writes)."""

from __future__ import annotations

from django.db.models import QuerySet

from accounts import rbac
from accounts.models import User
from clients.models import Client
from core.permissions import Permission


def visible_users(actor: User) -> QuerySet[User]:
    """All users for `accounts.user.read` held for all clients; the actor's own client's users for
    the own-client scope; nobody else. Others are invisible, so lookups answer 404, not 403."""
    scope = rbac.effective_permissions(actor).get(Permission.USER_READ)
    users = User.objects.select_related("client").order_by("username", "id")
    if scope == rbac.ALL:
        return users
    if scope == rbac.OWN and actor.client_id is not None:
        return users.filter(client_id=actor.client_id)
    return users.none()


def visible_clients(actor: User) -> QuerySet[Client]:
    scope = rbac.effective_permissions(actor).get(Permission.CLIENT_READ)
    if scope == rbac.ALL:
        return Client.objects.order_by("name")
    if scope == rbac.OWN and actor.client_id is not None:
        return Client.objects.filter(pk=actor.client_id)
    return Client.objects.none()
