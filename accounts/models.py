from __future__ import annotations

import uuid
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.core.validators import RegexValidator
from django.db import models
from django.db.models.functions import Lower
from django.utils.translation import gettext_lazy as _
from django_otp.models import CooldownMixin, Device, SideChannelDevice, ThrottlingMixin, TimestampMixin

from accounts import sms


class Role(models.TextChoices):
    """The built-in roles of the seed; the `role` claim carries one of these."""

    INTERNAL_ADMIN = "internal_admin", _("Internal administrator")
    OPERATOR = "operator", _("Operator")
    CLIENT_ADMIN = "client_admin", _("B2B client administrator")
    CLIENT_USER = "client_user", _("B2B client user")


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def create_user(self, username: str, password: str | None = None, **fields: Any) -> User:
        # Model-level helper for fixtures and Django internals; product code calls
        # accounts.services.create_user, which also audits and publishes.
        user = self.model(username=self.model.normalize_username(username), **fields)
        user.email = self.normalize_email(user.email)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, username: str, password: str | None = None, **fields: Any) -> User:
        fields.setdefault("role", Role.INTERNAL_ADMIN)
        fields.update(is_staff=True, is_superuser=True)
        return self.create_user(username, password, **fields)

    def get_by_natural_key(self, username: str) -> User:
        # Internal staff (no B2B organisation) have globally unique logins; used by createsuperuser.
        return self.get(username__iexact=username, organisation__isnull=True)


class User(AbstractBaseUser, PermissionsMixin):
    """A person who signs in: internal staff (no organisation) or a user of one B2B organisation."""

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        BLOCKED = "blocked", _("Blocked")
        PENDING = "pending", _("Pending")

    id = models.UUIDField(_("ID"), primary_key=True, default=uuid.uuid4, editable=False)
    username = models.CharField(_("login"), max_length=150)
    email = models.EmailField(_("e-mail"), blank=True, db_index=True)
    email_verified = models.BooleanField(
        _("e-mail confirmed"), default=False, help_text=_("The user proved they receive mail there.")
    )
    phone = models.CharField(_("phone"), max_length=32, blank=True)
    given_name = models.CharField(_("given name"), max_length=150, blank=True)
    family_name = models.CharField(_("family name"), max_length=150, blank=True)
    # The id the organisation's own directory gives this person (SCIM `externalId`, idp.scim).
    external_id = models.CharField(_("external ID"), max_length=255, blank=True)
    role = models.CharField(_("role"), max_length=32, choices=Role.choices, default=Role.CLIENT_USER)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.ACTIVE)
    organisation = models.ForeignKey(
        "clients.Organisation",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="users",
        db_column="client_id",  # the B2B client; the column keeps its contract name
        verbose_name=_("B2B client"),
    )
    is_staff = models.BooleanField(
        _("admin access"), default=False, help_text=_("May sign in to the operators' admin.")
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    objects = UserManager()

    USERNAME_FIELD = "username"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = ["email"]

    class Meta:
        db_table = "users"
        ordering = ["username"]
        verbose_name = _("user")
        verbose_name_plural = _("users")
        constraints = [
            # Seed 004: one login may repeat across B2B clients, but never inside one, and
            # never between two internal staff. Case-insensitive, so "Ann" cannot shadow "ann".
            models.UniqueConstraint(Lower("username"), "organisation", name="users_login_unique_per_client"),
            models.UniqueConstraint(
                Lower("username"),
                condition=models.Q(organisation__isnull=True),
                name="users_login_unique_internal",
            ),
        ]
        indexes = [models.Index(Lower("username"), name="users_login_lower_idx")]

    def __str__(self) -> str:
        return self.username if self.organisation_id is None else f"{self.username} ({self.organisation_id})"

    @property
    def is_active(self) -> bool:  # Django's auth machinery reads this
        # A suspended B2B organisation suspends its users: no sign-in, refresh, session or grant.
        return self.status == self.Status.ACTIVE and (
            self.organisation_id is None or self.organisation.is_active
        )


class LoginFailures(models.Model):
    """Consecutive failed logins of one user and the lock they led to (Keycloak-style)."""

    user = models.OneToOneField(
        User,
        primary_key=True,
        on_delete=models.CASCADE,
        related_name="login_failures",
        verbose_name=_("user"),
    )
    failed_count = models.PositiveIntegerField(
        _("failed logins"), default=0, help_text=_("Failures since the last success or lock")
    )
    lock_count = models.PositiveIntegerField(
        _("locks"), default=0, help_text=_("Locks since the last successful login")
    )
    locked_until = models.DateTimeField(_("locked until"), null=True, blank=True)
    permanent = models.BooleanField(
        _("locked for good"), default=False, help_text=_("Locked until an operator unlocks")
    )
    last_failure_at = models.DateTimeField(_("last failure"), null=True, blank=True)

    class Meta:
        db_table = "login_failures"
        verbose_name = _("login failures")
        verbose_name_plural = _("login failures")

    def __str__(self) -> str:
        return f"{self.user_id}: {self.failed_count} failures"

    def is_locked(self, now: Any = None) -> bool:
        from django.utils import timezone

        now = now or timezone.now()
        return self.permanent or (self.locked_until is not None and self.locked_until > now)


class SMSDevice(TimestampMixin, CooldownMixin, ThrottlingMixin, SideChannelDevice):
    """A one-time code sent by SMS (django-otp has e-mail and TOTP devices, not this one)."""

    number = models.CharField(_("phone number"), max_length=32, help_text=_("E.164, e.g. +79990001122"))

    class Meta(SideChannelDevice.Meta):
        db_table = "otp_sms_devices"
        verbose_name = _("SMS device")
        verbose_name_plural = _("SMS devices")

    def generate_challenge(self, extra_context: dict[str, Any] | None = None) -> str:
        from django.conf import settings
        from django.utils.translation import gettext

        allowed, _ = self.generate_is_allowed()
        if not allowed:
            return gettext("A code was sent a moment ago; wait before asking for another.")
        self.cooldown_set(commit=False)
        self.generate_token(valid_secs=settings.IDP_OTP_CODE_VALIDITY, commit=True)
        minutes = max(1, settings.IDP_OTP_CODE_VALIDITY // 60)
        text = gettext("Your sign-in code: %(code)s. It works for %(minutes)s min. Do not tell it to anyone.")
        sms.send_sms(self.number, text % {"code": self.token, "minutes": minutes})
        return gettext("sent by SMS")

    def verify_token(self, token: str) -> bool:
        allowed, _ = self.verify_is_allowed()
        if not allowed:
            return False
        verified = super().verify_token(token)
        if verified:
            self.throttle_reset(commit=False)
            self.set_last_used_timestamp(commit=False)
            self.save()
        else:
            self.throttle_increment()
        return verified

    def get_cooldown_duration(self) -> int:
        return 30

    def get_throttle_factor(self) -> int:
        return 1


class Passkey(TimestampMixin, Device):
    """A WebAuthn credential (a passkey or a security key) registered by its user (accounts.passkeys).

    A django-otp device, so that it counts among the user's second factors (accounts.assurance) and
    is listed, reset and removed with them; it never accepts a typed code (`verify_token` is False)."""

    credential_id = models.CharField(
        _("credential ID"),
        max_length=1400,
        unique=True,
        help_text=_("base64url, as the authenticator made it"),
    )
    public_key = models.BinaryField(_("public key (COSE)"))
    sign_count = models.PositiveBigIntegerField(
        _("signature counter"), default=0, help_text=_("The highest counter seen: a lower one means a clone")
    )
    aaguid = models.CharField(_("authenticator model (AAGUID)"), max_length=36, blank=True)
    transports = models.JSONField(_("transports"), default=list, blank=True)
    backup_eligible = models.BooleanField(
        _("synced passkey"),
        default=False,
        help_text=_("The key may be copied to the user's other devices (not bound to one authenticator)."),
    )
    backed_up = models.BooleanField(_("backed up"), default=False)

    audit_type = "accounts.passkey"

    class Meta(Device.Meta):
        db_table = "passkeys"
        verbose_name = _("passkey")
        verbose_name_plural = _("passkeys")

    def verify_token(self, token: str) -> bool:
        return False  # a passkey answers a WebAuthn challenge (accounts.passkeys), never a code


class UserSession(models.Model):
    """One signed-in browser session, so that its user (or an operator) can list and end it.

    Django's session table cannot be searched by user; this row links a session key to its user
    and to the OIDC `sid` its tokens carry (accounts.session_registry writes and deletes it).
    """

    id = models.UUIDField(_("ID"), primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        User, on_delete=models.CASCADE, related_name="browser_sessions", verbose_name=_("user")
    )
    session_key = models.CharField(_("session key"), max_length=40, unique=True)
    sid = models.CharField(
        _("session ID (sid)"), max_length=64, db_index=True, help_text=_("The OIDC `sid` of its tokens")
    )
    created_at = models.DateTimeField(_("signed in"), help_text=_("When the user signed in"))
    last_seen_at = models.DateTimeField(_("last active"), help_text=_("Last request, to within a minute"))
    ip = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    user_agent = models.CharField(_("browser (user agent)"), max_length=512, blank=True)

    class Meta:
        db_table = "user_sessions"
        ordering = ["-last_seen_at"]
        verbose_name = _("browser session")
        verbose_name_plural = _("browser sessions")
        indexes = [models.Index(fields=["user", "-last_seen_at"], name="user_sessions_user_seen_idx")]

    def __str__(self) -> str:
        return f"{self.user_id} since {self.created_at:%Y-%m-%d %H:%M}"


# --- Roles and permissions as data (accounts.rbac computes and caches what a user may do) -----

PERMISSION_NAME = r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$"


class Scope(models.TextChoices):
    OWN_ORGANISATION = "own", _("Own B2B client only")
    ALL_ORGANISATIONS = "all", _("All clients")


class AccessPermission(models.Model):
    """A permission named `service.resource.action`, e.g. `parcels.parcel.read`."""

    name = models.CharField(
        _("name"),
        max_length=150,
        unique=True,
        validators=[RegexValidator(PERMISSION_NAME, _("use service.resource.action, lower case"))],
    )
    description = models.CharField(_("description"), max_length=255, blank=True)

    class Meta:
        db_table = "permissions"
        ordering = ["name"]
        verbose_name = _("permission")
        verbose_name_plural = _("permissions")

    def __str__(self) -> str:
        return self.name


class AccessRole(models.Model):
    """A named set of permissions, each with a scope. The built-in ones are the seed's roles."""

    code = models.SlugField(_("code"), max_length=64, unique=True)
    name = models.CharField(_("name"), max_length=150)
    description = models.CharField(_("description"), max_length=255, blank=True)
    builtin = models.BooleanField(_("built-in"), default=False, editable=False)
    permissions = models.ManyToManyField(
        AccessPermission, through="RoleGrant", related_name="roles", verbose_name=_("permissions")
    )

    class Meta:
        db_table = "roles"
        ordering = ["code"]
        verbose_name = _("role")
        verbose_name_plural = _("roles")

    def __str__(self) -> str:
        return self.name  # also the audit records' label: never translated

    @property
    def label(self) -> str:
        """The name people read: a built-in role's in their language, a custom one's as given."""
        if self.builtin and self.code in Role.values:
            return str(Role(self.code).label)
        return self.name


class RoleGrant(models.Model):
    role = models.ForeignKey(
        AccessRole, on_delete=models.CASCADE, related_name="grants", verbose_name=_("role")
    )
    permission = models.ForeignKey(
        AccessPermission, on_delete=models.CASCADE, related_name="role_grants", verbose_name=_("permission")
    )
    scope = models.CharField(
        _("applies to"), max_length=8, choices=Scope.choices, default=Scope.OWN_ORGANISATION
    )

    class Meta:
        db_table = "role_permissions"
        verbose_name = _("permission of a role")
        verbose_name_plural = _("permissions of roles")
        constraints = [models.UniqueConstraint(fields=["role", "permission"], name="one_grant_per_role")]

    def __str__(self) -> str:
        return f"{self.role.code}: {self.permission.name} ({self.scope})"


class UserRole(models.Model):
    """An extra role held beside the user's primary `role`."""

    user = models.ForeignKey(
        User, on_delete=models.CASCADE, related_name="extra_roles", verbose_name=_("user")
    )
    role = models.ForeignKey(
        AccessRole, on_delete=models.CASCADE, related_name="holders", verbose_name=_("role")
    )
    assigned_at = models.DateTimeField(_("assigned"), auto_now_add=True)

    class Meta:
        db_table = "user_roles"
        verbose_name = _("extra role")
        verbose_name_plural = _("extra roles")
        constraints = [models.UniqueConstraint(fields=["user", "role"], name="one_assignment_per_role")]

    def __str__(self) -> str:
        return f"{self.user_id}: {self.role.code}"


class UserGrant(models.Model):
    """A permission granted to one user directly."""

    user = models.ForeignKey(
        User, on_delete=models.CASCADE, related_name="direct_grants", verbose_name=_("user")
    )
    permission = models.ForeignKey(
        AccessPermission, on_delete=models.CASCADE, related_name="user_grants", verbose_name=_("permission")
    )
    scope = models.CharField(
        _("applies to"), max_length=8, choices=Scope.choices, default=Scope.OWN_ORGANISATION
    )
    granted_at = models.DateTimeField(_("granted"), auto_now_add=True)

    class Meta:
        db_table = "user_permissions_granted"
        verbose_name = _("direct permission")
        verbose_name_plural = _("direct permissions")
        constraints = [models.UniqueConstraint(fields=["user", "permission"], name="one_grant_per_user")]

    def __str__(self) -> str:
        return f"{self.user_id}: {self.permission.name} ({self.scope})"
