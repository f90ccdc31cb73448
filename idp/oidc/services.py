"""Audited operations on the OIDC machinery: signing keys and relying parties (token changes go
through DOT + the validator)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from oauth2_provider.generators import generate_client_secret

from accounts import authority
from accounts.models import User
from accounts.rbac import require
from audit import services as audit
from audit.registry import AuditAction
from core.permissions import Permission
from idp.oidc import keys, revocation
from idp.oidc.models import (
    AccessToken,
    Application,
    Consent,
    RefreshToken,
    ResourceServer,
    SigningKey,
    TokenExchangePolicy,
)


@transaction.atomic
def rotate_keys(*, actor: User | None, force: bool = False) -> SigningKey:
    """Rotate the keys of every algorithm in use; returns the RS256 key that signs now."""
    require(actor, Permission.KEY_ROTATE)
    return _rotate_each(actor, lambda algorithm: keys.rotate(force=force, algorithm=algorithm), force)


@transaction.atomic
def rotate_keys_if_due() -> SigningKey:
    return _rotate_each(None, keys.rotate_if_due, False)


def _rotate_each(actor: User | None, rotate: Callable[[str], SigningKey], forced: bool) -> SigningKey:
    signing: dict[str, SigningKey] = {}
    for algorithm in keys.algorithms_in_use():
        before = keys.ensure_keys(algorithm)
        signing[algorithm] = active = rotate(algorithm)
        if active.pk != before.pk:
            audit.record(
                AuditAction.SIGNING_KEY_ROTATED,
                actor=actor,
                target=active,
                details={
                    "previousKid": before.kid,
                    "kid": active.kid,
                    "forced": forced,
                    "algorithm": algorithm,
                },
            )
    return signing[keys.RS256]


# --- Relying parties (the admin's Applications) ------------------------------------------------

APPLICATION_FIELDS = frozenset(
    {
        "name",
        "client_type",
        "authorization_grant_type",
        "redirect_uris",
        "post_logout_redirect_uris",
        "allowed_origins",
        "skip_authorization",  # "first party": no consent screen
        "resource_server",  # may introspect other clients' tokens
        "algorithm",
        "organisation",  # whose branding its sign-in pages show
        "client_authentication",  # its secret, or private_key_jwt with the keys below
        "jwks",
        "jwks_uri",
        "require_pushed_authorization_requests",  # RFC 9126: PAR only
        "dpop_bound_access_tokens",  # RFC 9449: no bearer tokens for it
        "high_assurance",  # the FAPI 2.0 profile's rules at once
        "backchannel_logout_uri",  # where its logout tokens go (idp.oidc.backchannel)
        "backchannel_logout_session_required",
    }
)
_URI_LISTS = ("redirect_uris", "post_logout_redirect_uris", "allowed_origins")


def _normalised(values: dict[str, Any]) -> dict[str, Any]:
    unknown = set(values) - APPLICATION_FIELDS
    if unknown:
        raise ValidationError(f"these fields cannot be set here: {', '.join(sorted(unknown))}")
    # URI lists are compared as exact strings (RFC 9700 §2.1): one space between, nothing around.
    normalised = {k: " ".join(v.split()) if k in _URI_LISTS else v for k, v in values.items()}
    if isinstance(normalised.get("backchannel_logout_uri"), str):
        normalised["backchannel_logout_uri"] = normalised["backchannel_logout_uri"].strip()
    return normalised


def _audit_details(app: Application, fields: list[str], *, created: bool) -> dict[str, Any]:
    # Everything but the secret: a redirect URI slipped in is exactly what an auditor looks for.
    details: dict[str, Any] = {"created": created, "clientId": app.client_id, "fields": fields}
    plain = APPLICATION_FIELDS - {"organisation"}
    details.update({name: getattr(app, name) for name in fields if name in plain})
    if "organisation" in fields:  # a client, by id
        details["organisation"] = str(app.organisation_id) if app.organisation_id else None
    return details


def _publish_keys_for(app: Application) -> None:
    # Its algorithm's keys exist (and are in the JWKS) before the first token it is issued.
    if app.algorithm in keys.ALGORITHMS:
        keys.ensure_keys(app.algorithm)


@transaction.atomic
def register_application(*, actor: User | None, values: dict[str, Any]) -> tuple[Application, str]:
    """Register a relying party; returns it and its client secret, which is stored only hashed
    (shown once to whoever registered it, never again)."""
    require(actor, Permission.APPLICATION_MANAGE)
    secret = generate_client_secret()
    app = Application(**_normalised(values), client_secret=secret, hash_client_secret=True)
    app.full_clean()
    app.save()
    _publish_keys_for(app)
    audit.record(
        AuditAction.OIDC_APPLICATION_CHANGED,
        actor=actor,
        target=app,
        details=_audit_details(app, sorted(values), created=True),
    )
    return app, secret


@transaction.atomic
def update_application(
    *, actor: User | None, application: Application, changes: dict[str, Any]
) -> Application:
    require(actor, Permission.APPLICATION_MANAGE)
    changes = _normalised(changes)
    locked = Application.objects.select_for_update().get(pk=application.pk)
    changed = sorted(name for name, value in changes.items() if getattr(locked, name) != value)
    if not changed:
        return locked
    for name in changed:
        setattr(locked, name, changes[name])
    locked.full_clean()
    locked.save(update_fields=[*changed, "updated"])
    _publish_keys_for(locked)
    audit.record(
        AuditAction.OIDC_APPLICATION_CHANGED,
        actor=actor,
        target=locked,
        details=_audit_details(locked, changed, created=False),
    )
    return locked


RESOURCE_SERVER_FIELDS = ("name", "identifier", "scopes", "client")


@transaction.atomic
def save_resource_server(
    *, actor: User | None, server: ResourceServer, fields: list[str], created: bool
) -> ResourceServer:
    """Register or change an API (RFC 8707 resource server): validated, saved and audited."""
    require(actor, Permission.APPLICATION_MANAGE)
    server.scopes = " ".join(server.scopes.split())
    server.full_clean()
    server.save()
    details: dict[str, Any] = {"created": created, "identifier": server.identifier, "fields": sorted(fields)}
    details.update({name: getattr(server, name) for name in ("name", "scopes") if name in fields})
    if "client" in fields:
        details["client"] = server.client.client_id if server.client_id else None
    audit.record(AuditAction.OIDC_RESOURCE_SERVER_CHANGED, actor=actor, target=server, details=details)
    return server


@transaction.atomic
def save_exchange_rule(
    *, actor: User | None, rule: TokenExchangePolicy, created: bool
) -> TokenExchangePolicy:
    """Let a client exchange user tokens for an API (RFC 8693), or change what it may carry."""
    require(actor, Permission.APPLICATION_MANAGE)
    rule.scopes = " ".join(rule.scopes.split())
    rule.full_clean()
    rule.save()
    audit.record(
        AuditAction.OIDC_EXCHANGE_RULE_CHANGED,
        actor=actor,
        target=rule.application,
        details=_rule_details(rule, created),
    )
    return rule


@transaction.atomic
def delete_exchange_rule(*, actor: User | None, rule: TokenExchangePolicy) -> None:
    require(actor, Permission.APPLICATION_MANAGE)
    details = {**_rule_details(rule, False), "removed": True}
    rule.delete()
    audit.record(
        AuditAction.OIDC_EXCHANGE_RULE_CHANGED, actor=actor, target=rule.application, details=details
    )


def _rule_details(rule: TokenExchangePolicy, created: bool) -> dict[str, Any]:
    return {
        "created": created,
        "clientId": rule.application.client_id,
        "resource": rule.resource_server.identifier,
        "scopes": rule.scopes,
    }


@transaction.atomic
def new_client_secret(*, actor: User | None, application: Application) -> str:
    """Replace a relying party's secret (a leaked one stops working at once); returns the new one."""
    require(actor, Permission.APPLICATION_MANAGE)
    locked = Application.objects.select_for_update().get(pk=application.pk)
    secret = generate_client_secret()
    locked.client_secret = secret  # hashed on save (ClientSecretField)
    locked.hash_client_secret = True
    locked.save(update_fields=["client_secret", "hash_client_secret", "updated"])
    audit.record(
        AuditAction.OIDC_APPLICATION_CHANGED,
        actor=actor,
        target=locked,
        details={"created": False, "clientId": locked.client_id, "fields": ["client_secret"]},
    )
    return secret


@transaction.atomic
def record_consent(
    *, user: User, application: Application, scope: str, allowed: bool, remember: bool
) -> None:
    """The user's answer on the consent screen, audited; an approval that issued a code is
    remembered for this scope set (idp.oidc.models.Consent.covers), so the screen is not shown
    again for it."""
    if allowed and remember:
        Consent.objects.update_or_create(
            user=user, application=application, defaults={"scope": scope, "granted_at": timezone.now()}
        )
    audit.record(
        AuditAction.CONSENT_GRANTED if allowed else AuditAction.CONSENT_DENIED,
        actor=user,
        target=application,
        organisation_id=user.organisation_id,
        details={"scope": scope},
    )


@dataclass(frozen=True)
class Connection:
    """An application that holds the user's standing consent or live tokens of theirs."""

    application: Application
    scopes: list[str]  # what it was allowed: the consent's scopes, else its live tokens'
    since: datetime | None  # when the consent was given (None: a first-party app, never asked)
    last_used: datetime | None  # when it last got a token
    consented: bool


def connections(user: User) -> list[Connection]:
    """The user's connected applications, most recently used first (the account console)."""
    consents = {c.application_id: c for c in Consent.objects.filter(user=user)}
    live = AccessToken.objects.filter(user=user, expires__gt=timezone.now(), application__isnull=False)
    last: dict[int, Any] = {}
    token_scopes: dict[int, set[str]] = {}
    for app_id, scope, created in live.values_list("application", "scope", "created"):  # one read
        token_scopes.setdefault(app_id, set()).update(scope.split())
        last[app_id] = max(filter(None, (last.get(app_id), created)))
    refresh = RefreshToken.objects.filter(user=user, revoked__isnull=True, application__isnull=False)
    for app_id, created in (
        refresh.values("application").annotate(last=Max("created")).values_list("application", "last")
    ):
        last[app_id] = max(filter(None, (last.get(app_id), created)))
    found = []
    for app in Application.objects.filter(pk__in=set(consents) | set(last)).order_by("name"):
        consent = consents.get(app.pk)
        scopes = consent.scope.split() if consent else sorted(token_scopes.get(app.pk, ()))
        found.append(
            Connection(
                application=app,
                scopes=scopes,
                since=consent.granted_at if consent else None,
                last_used=last.get(app.pk),
                consented=consent is not None,
            )
        )
    return sorted(found, key=lambda c: c.last_used or c.since or timezone.now(), reverse=True)


@transaction.atomic
def withdraw_consent(*, actor: User | None, user: User, application: Application) -> int:
    """The user takes back what `application` was allowed: the standing consent goes (the next
    authorization asks again) and every token it holds for the user is revoked at once, on every
    process (the blacklist). Returns how many access tokens went."""
    authority.require(actor, authority.END_SESSIONS, user)
    withdrawn = Consent.objects.filter(user=user, application=application).delete()[0]
    revoked = revocation.revoke_application_tokens(user, application)
    audit.record(
        AuditAction.CONSENT_WITHDRAWN,
        actor=actor,
        target=application,
        organisation_id=user.organisation_id,
        details={
            "clientId": application.client_id,
            "user": str(user.pk),
            "consent": bool(withdrawn),
            "tokens": revoked,
        },
    )
    return revoked
