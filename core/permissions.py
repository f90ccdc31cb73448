"""The platform's permission names: one registry for every check in the code and for the built-in
roles (accounts.builtin_roles). A permission is `service.resource.action`, held with a scope (the
user's own B2B organisation, or all clients; accounts.rbac). Operators add more in the admin, as data,
for the platform's other services (which ask the authorization API); these are the ones this
service's own code checks, plus the parcel service's that the built-in roles hand out."""

from __future__ import annotations

from enum import StrEnum


class Permission(StrEnum):
    USER_READ = "accounts.user.read"
    USER_CREATE = "accounts.user.create"
    USER_UPDATE = "accounts.user.update"
    USER_BLOCK = "accounts.user.block"
    ROLE_ASSIGN = "accounts.role.assign"
    ROLE_MANAGE = "accounts.role.manage"
    SESSION_END = "accounts.session.end"
    ORGANISATION_READ = "clients.client.read"
    ORGANISATION_CREATE = "clients.client.create"
    ORGANISATION_UPDATE = "clients.client.update"
    SSO_MANAGE = "clients.sso.manage"
    DOMAIN_VERIFY = "clients.domain.verify"
    AUDIT_LOG_READ = "audit.log.read"
    KEY_ROTATE = "oidc.key.rotate"
    APPLICATION_MANAGE = "oidc.application.manage"
    PARCEL_READ = "parcels.parcel.read"
    PARCEL_CREATE = "parcels.parcel.create"
    PARCEL_UPDATE = "parcels.parcel.update"
    PARCEL_DELETE = "parcels.parcel.delete"


DESCRIPTIONS: dict[Permission, str] = {
    Permission.USER_READ: "See users",
    Permission.USER_CREATE: "Create users",
    Permission.USER_UPDATE: "Change users' profiles",
    Permission.USER_BLOCK: "Block, unblock and unlock users",
    Permission.ROLE_ASSIGN: "Assign roles and grant permissions",
    Permission.ROLE_MANAGE: "Define roles and permissions",
    Permission.SESSION_END: "See and end users' sessions",
    Permission.ORGANISATION_READ: "See B2B clients",
    Permission.ORGANISATION_CREATE: "Create B2B clients",
    Permission.ORGANISATION_UPDATE: "Change B2B clients",
    Permission.SSO_MANAGE: "Configure a client's corporate SSO and its domains",
    Permission.DOMAIN_VERIFY: "Approve a client's e-mail domain without DNS proof",
    Permission.AUDIT_LOG_READ: "Read the audit log",
    Permission.KEY_ROTATE: "Rotate signing keys",
    Permission.APPLICATION_MANAGE: "Register relying parties",
    Permission.PARCEL_READ: "See parcels",
    Permission.PARCEL_CREATE: "Create parcels",
    Permission.PARCEL_UPDATE: "Change parcels",
    Permission.PARCEL_DELETE: "Delete parcels",
}
