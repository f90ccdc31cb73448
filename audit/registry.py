"""The one list of audit actions and event types, so that no name is a scattered string literal."""

from django.db import models


class AuditAction(models.TextChoices):
    USER_CREATED = "user.created", "User created"
    USER_UPDATED = "user.updated", "User updated"
    USER_BLOCKED = "user.blocked", "User blocked"
    USER_UNBLOCKED = "user.unblocked", "User unblocked"
    USER_ROLE_CHANGED = "user.roleChanged", "User role changed"
    USER_DELETED = "user.deleted", "User deleted"
    USER_PASSWORD_CHANGED = "user.passwordChanged", "Password changed"
    USER_LOCKED = "user.locked", "Account locked after failed logins"
    USER_UNLOCKED = "user.unlocked", "Account unlocked"
    LOGIN_SUCCEEDED = "login.succeeded", "Login succeeded"
    LOGIN_FAILED = "login.failed", "Login failed"
    LOGOUT = "logout", "Logout"
    TOKEN_ISSUED = "token.issued", "Token issued"
    TOKEN_REFRESHED = "token.refreshed", "Token refreshed"
    TOKEN_REVOKED = "token.revoked", "Token revoked"
    REFRESH_TOKEN_REUSED = "token.refreshReused", "Rotated refresh token reused: family revoked"
    CODE_REPLAYED = "token.codeReplayed", "Authorization code replayed: its tokens revoked"
    CONSENT_GRANTED = "consent.granted", "Consent granted"
    CONSENT_DENIED = "consent.denied", "Consent denied"
    SIGNING_KEY_ROTATED = "key.rotated", "Signing key rotated"
    CLIENT_CREATED = "client.created", "B2B client created"
    CLIENT_UPDATED = "client.updated", "B2B client updated"


class EventType(models.TextChoices):
    """CloudEvents `type` values of the user life-cycle stream."""

    USER_CREATED = "user.created"
    USER_UPDATED = "user.updated"
    USER_BLOCKED = "user.blocked"
    USER_UNBLOCKED = "user.unblocked"
    USER_LOCKED = "user.locked"
    USER_UNLOCKED = "user.unlocked"
    USER_ROLE_CHANGED = "user.roleChanged"
    USER_DELETED = "user.deleted"
    USER_PASSWORD_CHANGED = "user.passwordChanged"
    USER_REGISTERED = "user.registered"
    USER_REGISTRATION_FAILED = "user.registrationFailed"
    AUDIT_RECORDED = "audit.recorded"
    MESSAGE_DEAD_LETTERED = "message.deadLettered"
