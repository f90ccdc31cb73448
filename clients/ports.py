"""What the B2B organisation app needs from the floor above it, declared here and installed by accounts
at start-up (accounts.apps), so that this app never imports accounts; a system check fails while
they are missing:

- who may change an organisation's configuration: roles and permissions live in accounts;
- what suspending an organisation ends for its people: their sign-ins and tokens.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from django.contrib.auth.base_user import AbstractBaseUser
from django.core import checks

from core.ports import Port

if TYPE_CHECKING:
    from clients.models import Organisation

# The person making a change (the user model lives in accounts); None is the system itself.
Actor = AbstractBaseUser | None


class RequirePermission(Protocol):
    def __call__(
        self, actor: Actor, permission: str, *, organisation_id: uuid.UUID | None = None
    ) -> None: ...


class EndMembersAccess(Protocol):
    def __call__(self, organisation: Organisation) -> int: ...


@dataclass(frozen=True)
class Ports:
    # Raises PermissionDenied unless `actor` holds `permission` for organisation `organisation_id`.
    require_permission: RequirePermission
    # Called in the suspension's transaction: ends what the organisation's users hold (their
    # tokens); returns how many tokens went.
    end_members_access: EndMembersAccess


PORT: Port[Ports] = Port(
    "clients.ports",
    installed_by="accounts",
    missing_means="client changes could not be authorized",
    check_id="clients.E001",
)
install = PORT.install


def require_permission(actor: Actor, permission: str, *, organisation_id: uuid.UUID | None = None) -> None:
    PORT.get().require_permission(actor, permission, organisation_id=organisation_id)


def end_members_access(organisation: Organisation) -> int:
    return PORT.get().end_members_access(organisation)


@checks.register()
def check_installed(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    return PORT.check()
