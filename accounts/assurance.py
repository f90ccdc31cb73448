"""Authentication assurance: what a person has proven, and what the policy asks of them.

Every door that creates a session or issues a token asks here, with the methods (RFC 8176 `amr`
values) the person has proven at that door:
- the web login and corporate SSO (a second factor follows when this says so),
- REST and gRPC login (no second factor possible there: `mfa_required`),
- the browser session on every request (accounts.mfa_views.StepUpMiddleware: a session that no
  longer meets the policy, e.g. after a promotion, asks for the second factor again), which
  covers the authorization endpoint, the admin and the account pages,
- the refresh grant and the REST API (the methods recorded with the token),
- enrolment and removal of factors (only a session that proved the existing factors).

The policy: a second factor is required for the roles in IDP_MFA_REQUIRED_ROLES (internal
administrators and operators by default), superusers, the users of B2B organisations that require it,
and anyone who has enrolled a factor. It is proven when `amr` holds "mfa", which only our own
second-factor step adds (or a corporate SSO sign-in whose organisation trusts its provider's MFA).

A passkey is required (a phishing-resistant factor, not only any second one) for the roles in
IDP_PASSKEY_REQUIRED_ROLES and the users of B2B organisations that set `require_passkey`. It is
proven when `amr` holds "mfa" and "hwk" or "swk", which our passkey step adds (accounts.passkeys), or
a corporate SSO sign-in whose organisation trusts its provider's MFA and whose provider said so.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import connection, models
from django.db.models.expressions import RawSQL
from django_otp.plugins.otp_email.models import EmailDevice
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import Passkey, SMSDevice, User

SECOND_FACTOR = "mfa"  # RFC 8176: more than one factor was used
FEDERATED = "fed"  # RFC 8176: signed in at a federated (corporate) identity provider
# RFC 8176 methods that mean an upstream provider did more than a password.
UPSTREAM_SECOND_FACTORS = frozenset({"mfa", "otp", "hwk", "sc", "sms", "swk"})
PASSKEY_METHODS = frozenset({"hwk", "swk"})  # RFC 8176: proof of possession of a key
FACTOR_MODELS = (Passkey, TOTPDevice, SMSDevice, EmailDevice, StaticDevice)  # most convenient first


class SecondFactorRequired(PermissionDenied):
    """What was proven does not allow changing the account's factors."""


def policy_requires_second_factor(user: User) -> bool:
    """The role, the superuser flag or the B2B organisation asks for 2FA (whether or not enrolled)."""
    if user.is_superuser or user.role in settings.IDP_MFA_REQUIRED_ROLES or passkey_required(user):
        return True
    return bool(user.organisation_id and user.organisation.require_mfa)


def passkey_required(user: User) -> bool:
    """The role or the B2B organisation asks that the second factor be a passkey."""
    if user.role in settings.IDP_PASSKEY_REQUIRED_ROLES:
        return True
    return bool(user.organisation_id and user.organisation.require_passkey)


def has_factors(user: User) -> bool:
    """The user has a confirmed second factor (one query). Asked on every refresh grant and
    signed-in request: the statement is built once, not compiled by the ORM each time."""
    with connection.cursor() as cursor:
        user_id = User._meta.pk.get_db_prep_value(user.pk, connection)  # a UUID is text on SQLite
        cursor.execute(_has_factors_sql(), [user_id] * len(FACTOR_MODELS))
        return bool(cursor.fetchone()[0])


@cache
def _has_factors_sql() -> str:
    return "SELECT " + has_factors_sql("%s")


def has_factors_sql(user_id: str) -> str:
    """has_factors as an SQL expression, for the user whose id is `user_id` (a column of the
    caller's query, or a parameter's placeholder, which is then given once per factor model)."""
    quote = connection.ops.quote_name
    tables = []
    for model in FACTOR_MODELS:  # identifiers from the models, quoted; the user id is the caller's
        table, user, confirmed = (
            quote(model._meta.db_table),
            quote(model._meta.get_field("user").column),
            quote(model._meta.get_field("confirmed").column),
        )
        tables.append(f"SELECT 1 FROM {table} WHERE {user} = {user_id} AND {confirmed}")  # noqa: S608
    return f"EXISTS ({' UNION ALL '.join(tables)})"


# The column a read of users (or of rows that point to one) adds for has_factors: the session's
# user (accounts.authentication), a login's candidates (accounts.login), a refresh token's user.
ENROLLED = "idp_enrolled"


def enrolled_column(model: type[models.Model], field: str | None = None) -> RawSQL:
    """has_factors as a column of a read of `model`, for the user its foreign key `field` points
    to, or for the row itself when `model` is User (annotate the read with it as ENROLLED)."""
    quote = connection.ops.quote_name
    column = model._meta.pk.column if field is None else model._meta.get_field(field).column
    return RawSQL(has_factors_sql(f"{quote(model._meta.db_table)}.{quote(column)}"), ())  # noqa: S611 - quoted names, no values


def enrolled_as_read(user: User) -> bool | None:
    """has_factors as the read that loaded `user` found it (ENROLLED), or None if that read did
    not ask. Only for the request that loaded the user: a factor enrolled later is not in it."""
    value = getattr(user, ENROLLED, None)  # the user may be behind a lazy proxy (request.user)
    return None if value is None else bool(value)


def second_factor_required(user: User, *, enrolled: bool | None = None) -> bool:
    if policy_requires_second_factor(user):
        return True
    return has_factors(user) if enrolled is None else enrolled


def second_factor_proven(methods: Iterable[str]) -> bool:
    return SECOND_FACTOR in methods


def passkey_proven(methods: Iterable[str]) -> bool:
    methods = set(methods)
    return SECOND_FACTOR in methods and bool(PASSKEY_METHODS & methods)


def satisfied(user: User, methods: Iterable[str], *, enrolled: bool | None = None) -> bool:
    """Do `methods` meet the policy for `user` as it stands now? `enrolled`: has_factors(user),
    when the caller read it with the user's row."""
    methods = list(methods)
    if passkey_required(user):
        return passkey_proven(methods)
    return second_factor_proven(methods) or not second_factor_required(user, enrolled=enrolled)


def may_change_factors(user: User, methods: Iterable[str]) -> bool:
    """Adding or removing a factor needs a session that proved the existing ones; the first
    factor may be enrolled after the password alone (that is what policy asks of a new account)."""
    return second_factor_proven(methods) or not has_factors(user)


def require_for_factor_change(user: User, methods: Iterable[str]) -> None:
    if not may_change_factors(user, methods):
        raise SecondFactorRequired("prove your existing second factor before changing your factors")


def federated_methods(upstream_amr: Iterable[str], *, upstream_mfa_trusted: bool) -> list[str]:
    """Our `amr` after a corporate SSO sign-in. The upstream's second-factor claims count (and
    make "mfa") only when its organisation trusts them; otherwise they are not repeated as ours."""
    upstream = [method for method in upstream_amr if method != SECOND_FACTOR]
    did_more = bool(UPSTREAM_SECOND_FACTORS & set(upstream_amr))
    if upstream_mfa_trusted and did_more:
        return list(dict.fromkeys([FEDERATED, *upstream, SECOND_FACTOR]))
    return list(dict.fromkeys([FEDERATED, *(m for m in upstream if m not in UPSTREAM_SECOND_FACTORS)]))
