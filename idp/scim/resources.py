"""The SCIM resources we serve (RFC 7643 §4), as scim2-models models trimmed to what a user here
holds, and the mapping between them and our users and roles.

The models say exactly what we keep, so that what we publish at /Schemas is true: one e-mail
address, one phone number, a given and a family name, the directory's `externalId`, `active`,
and the groups, which are the organisation's two roles (read only on the user; membership is
changed on the group). Passwords are not taken over SCIM (idp.scim.views): provisioned people
sign in through their organisation's SSO, or with a password they set themselves."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import EmailStr
from scim2_models import (
    URN,
    AnyExtension,
    ComplexAttribute,
    ExtensibleStringEnum,
    GroupMember,
    GroupMembership,
    Meta,
    Mutability,
    Required,
    Resource,
    Uniqueness,
)

from accounts.models import Role, User

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE_SCHEMA = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

# The groups are the organisation's own roles (clients.models.ORGANISATION_ROLES): what a B2B
# client administrator may hand out (accounts.policy), never more.
GROUP_ROLES = (Role.CLIENT_ADMIN, Role.CLIENT_USER)


class ScimName(ComplexAttribute):
    family_name: str | None = None
    given_name: str | None = None


class WorkType(ExtensibleStringEnum):
    """We keep one address and one number, the work ones: "work" is the canonical value we
    publish; another type sent is accepted (and the value kept as the work one)."""

    work = "work"


# No `primary`: with one value kept there is nothing to choose between; a `primary` sent (Entra
# ID and Okta send it) picks the value kept, and is then dropped like any attribute we do not keep.
class ScimEmail(ComplexAttribute):
    value: EmailStr | None = None
    type: WorkType | None = None


class ScimPhoneNumber(ComplexAttribute):
    value: str | None = None
    type: WorkType | None = None


class ScimUser(Resource[AnyExtension]):
    """RFC 7643 §4.1, the attributes we keep."""

    __schema__ = URN(USER_SCHEMA)

    user_name: Annotated[str | None, Uniqueness.server, Required.true] = None
    name: ScimName | None = None
    active: bool | None = None
    emails: list[ScimEmail] | None = None
    phone_numbers: list[ScimPhoneNumber] | None = None
    groups: Annotated[list[GroupMembership] | None, Mutability.read_only] = None


class ScimGroup(Resource[Any]):
    """RFC 7643 §4.2: one of the organisation's roles, its members the users who hold it."""

    __schema__ = URN(GROUP_SCHEMA)

    display_name: Annotated[str | None, Required.true] = None
    members: list[GroupMember] | None = None


def version_of(user: User) -> str:
    """The user's ETag (RFC 7644 §3.14): it changes whenever the row is saved."""
    stamp = f"{user.pk}:{user.updated_at.isoformat() if user.updated_at else ''}"
    return f'W/"{hashlib.sha256(stamp.encode()).hexdigest()[:20]}"'


def user_location(base_url: str, user: User) -> str:
    return f"{base_url}/Users/{user.pk}"


def group_location(base_url: str, role: str) -> str:
    return f"{base_url}/Groups/{role}"


def group_display(role: str) -> str:
    return str(role)  # the role's code: what a directory's group is named to match it


def to_scim_user(user: User, *, base_url: str) -> ScimUser:
    name = None
    if user.given_name or user.family_name:
        name = ScimName(given_name=user.given_name or None, family_name=user.family_name or None)
    return ScimUser(
        id=str(user.pk),
        external_id=user.external_id or None,
        user_name=user.username,
        name=name,
        active=user.status == User.Status.ACTIVE,
        emails=[ScimEmail(value=user.email, type="work")] if user.email else None,
        phone_numbers=[ScimPhoneNumber(value=user.phone, type="work")] if user.phone else None,
        groups=[
            GroupMembership(
                value=user.role, ref=group_location(base_url, user.role), display=group_display(user.role)
            )
        ]
        if user.role in GROUP_ROLES
        else None,
        meta=Meta(
            resource_type="User",
            created=user.created_at,
            last_modified=user.updated_at,
            location=user_location(base_url, user),
            version=version_of(user),
        ),
    )


def group_version(role: str, members: list[tuple[str, str]]) -> str:
    stamp = role + "|" + ",".join(f"{pk}" for pk, _ in members)
    return f'W/"{hashlib.sha256(stamp.encode()).hexdigest()[:20]}"'


def to_scim_group(role: str, members: list[tuple[str, str]] | None, *, base_url: str) -> ScimGroup:
    """`members`: (user id, login) of every user holding the role; None leaves them out."""
    return ScimGroup(
        id=role,
        display_name=group_display(role),
        members=[
            GroupMember(value=pk, ref=f"{base_url}/Users/{pk}", type="User", display=login)
            for pk, login in members
        ]
        if members
        else None,
        meta=Meta(
            resource_type="Group",
            location=group_location(base_url, role),
            version=group_version(role, members) if members is not None else None,
        ),
    )


@dataclass(frozen=True)
class Desired:
    """A user as a SCIM payload wants them: our field names, "" for what it leaves out."""

    username: str
    email: str
    phone: str
    given_name: str
    family_name: str
    external_id: str
    active: bool

    def profile(self) -> dict[str, str]:
        return {
            "username": self.username,
            "email": self.email,
            "phone": self.phone,
            "given_name": self.given_name,
            "family_name": self.family_name,
            "external_id": self.external_id,
        }


def _chosen(values: list[Any] | None) -> str:
    """RFC 7643 §2.4: the primary value, else a work one, else the first; we keep one."""
    if not values:
        return ""
    for value in values:
        if _primary(value) and value.value:
            return str(value.value)
    for value in values:
        if str(value.type or "") == "work" and value.value:
            return str(value.value)
    return next((str(v.value) for v in values if v.value), "")


def _primary(value: Any) -> bool:
    # `primary` is not in our model: it is read where the parser set it aside.
    unknown = getattr(value, "unknown_attributes", None) or {}
    flag = next((v for k, v in unknown.items() if str(k).lower() == "primary"), False)
    return flag is True or str(flag).lower() == "true"


def desired_from(resource: ScimUser, *, active_default: bool = True) -> Desired:
    name = resource.name or ScimName()
    # Normalised as accounts.services.create_user stores them, so that a directory sending the
    # same person again changes nothing (no update, no audit record, no confirmation mail).
    return Desired(
        username=User.normalize_username((resource.user_name or "").strip()),
        email=User.objects.normalize_email(_chosen(resource.emails).strip()),
        phone=_chosen(resource.phone_numbers).strip(),
        given_name=(name.given_name or "").strip(),
        family_name=(name.family_name or "").strip(),
        external_id=(resource.external_id or "").strip(),
        active=active_default if resource.active is None else bool(resource.active),
    )
