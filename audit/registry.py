"""The one list of audit actions and event types, so that no name is a scattered string literal."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class AuditAction(models.TextChoices):
    USER_CREATED = "user.created", _("User created")
    USER_UPDATED = "user.updated", _("User updated")
    USER_BLOCKED = "user.blocked", _("User blocked")
    USER_UNBLOCKED = "user.unblocked", _("User unblocked")
    USER_ROLE_CHANGED = "user.roleChanged", _("User role changed")
    USER_DELETED = "user.deleted", _("User deleted")
    USER_PASSWORD_CHANGED = "user.passwordChanged", _("Password changed")
    USER_LOCKED = "user.locked", _("Account locked after failed logins")
    USER_UNLOCKED = "user.unlocked", _("Account unlocked")
    USER_INVITED = "user.invited", _("User invited")
    USER_INVITATION_ACCEPTED = "user.invitationAccepted", _("Invitation accepted")
    USER_EMAIL_VERIFIED = "user.emailVerified", _("E-mail address verified")
    LOGIN_SUCCEEDED = "login.succeeded", _("Login succeeded")
    LOGIN_FAILED = "login.failed", _("Login failed")
    LOGOUT = "logout", _("Logout")
    BACKCHANNEL_LOGOUT_SENT = "logout.backchannelSent", _("Logout token delivered to an application")
    BACKCHANNEL_LOGOUT_FAILED = (
        "logout.backchannelFailed",
        _("Logout token could not be delivered to an application"),
    )
    PASSWORD_RESET_REQUESTED = "user.passwordResetRequested", _("Password reset requested")
    SESSION_ENDED = "session.ended", _("Browser session ended")
    SESSIONS_ENDED = "session.allEnded", _("All browser sessions of a user ended")
    TOKEN_ISSUED = "token.issued", _("Token issued")
    TOKEN_REFRESHED = "token.refreshed", _("Token refreshed")
    TOKEN_EXCHANGED = "token.exchanged", _("Token exchanged for a downstream API (delegation)")
    TOKEN_REVOKED = "token.revoked", _("Token revoked")
    TOKEN_REFUSED = "token.refused", _("Token refused: the grant no longer meets the 2FA policy")
    REFRESH_TOKEN_REUSED = "token.refreshReused", _("Rotated refresh token reused: family revoked")
    CODE_REPLAYED = "token.codeReplayed", _("Authorization code replayed: its tokens revoked")
    CONSENT_GRANTED = "consent.granted", _("Consent granted")
    CONSENT_DENIED = "consent.denied", _("Consent denied")
    CONSENT_WITHDRAWN = "consent.withdrawn", _("Consent withdrawn: the application's tokens revoked")
    DEVICE_AUTHORIZATION_REQUESTED = "device.requested", _("Device authorization requested")
    DEVICE_AUTHORIZATION_APPROVED = "device.approved", _("Device authorization approved")
    DEVICE_AUTHORIZATION_DENIED = "device.denied", _("Device authorization denied")
    DEVICE_AUTHORIZATION_EXPIRED = "device.expired", _("Device authorization expired unused")
    SIGNING_KEY_ROTATED = "key.rotated", _("Signing key rotated")
    MFA_VERIFIED = "mfa.verified", _("Second factor passed")
    MFA_FAILED = "mfa.failed", _("Second factor failed")
    MFA_DEVICE_ADDED = "mfa.deviceAdded", _("Second-factor device added")
    MFA_DEVICE_REMOVED = "mfa.deviceRemoved", _("Second-factor device removed")
    PASSKEY_REGISTERED = "passkey.registered", _("Passkey registered")
    PASSKEY_RENAMED = "passkey.renamed", _("Passkey renamed")
    PASSKEY_REMOVED = "passkey.removed", _("Passkey removed")
    PASSKEY_REGISTRATION_REFUSED = "passkey.registrationRefused", _("Passkey registration refused")
    PASSKEY_CLONE_DETECTED = (
        "passkey.cloneDetected",
        _("Passkey refused: its signature counter went back (a cloned authenticator?)"),
    )
    DELIVERY_FAILED = "delivery.failed", _("E-mail or SMS could not be delivered")
    ORGANISATION_CREATED = "client.created", _("B2B client created")
    ORGANISATION_UPDATED = "client.updated", _("B2B client updated")
    SSO_PROVIDER_CHANGED = "sso.providerChanged", _("Corporate SSO provider configured")
    SSO_DOMAIN_ADDED = "sso.domainAdded", _("Client e-mail domain added")
    SSO_DOMAIN_VERIFIED = "sso.domainVerified", _("Client e-mail domain verified")
    SSO_DOMAIN_REMOVED = "sso.domainRemoved", _("Client e-mail domain removed")
    SSO_IDENTITY_LINKED = "sso.identityLinked", _("Upstream identity linked to a user")
    SSO_LOGIN_SUCCEEDED = "sso.loginSucceeded", _("Corporate SSO login succeeded")
    SSO_LOGIN_FAILED = "sso.loginFailed", _("Corporate SSO login failed")
    SCIM_TOKEN_CREATED = "scim.tokenCreated", _("SCIM provisioning token created")
    SCIM_TOKEN_REVOKED = "scim.tokenRevoked", _("SCIM provisioning token revoked")
    ROLE_CREATED = "role.created", _("Role created")
    ROLE_CHANGED = "role.changed", _("Role or its permissions changed")
    ROLE_DELETED = "role.deleted", _("Role deleted")
    PERMISSION_CREATED = "permission.created", _("Permission created")
    PERMISSION_CHANGED = "permission.changed", _("Permission description changed")
    PERMISSION_DELETED = "permission.deleted", _("Permission deleted")
    OIDC_APPLICATION_CHANGED = "oidc.application.changed", _("OAuth application registered or changed")
    OIDC_EXCHANGE_RULE_CHANGED = (
        "oidc.exchangeRule.changed",
        _("Token exchange rule added, changed or removed"),
    )
    OIDC_RESOURCE_SERVER_CHANGED = (
        "oidc.resourceServer.changed",
        _("API (resource server) registered or changed"),
    )
    AUDIT_EXPORTED = "audit.exported", _("Audit log exported")
    ACCESS_DENIED = "access.denied", _("An action on an account was refused (permission or rank)")
    SESSION_STEP_UP = "session.stepUpRequired", _("Session below the 2FA policy: second factor asked again")


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
    AUDIT_SEALED = "audit.sealed"
    MESSAGE_DEAD_LETTERED = "message.deadLettered"
