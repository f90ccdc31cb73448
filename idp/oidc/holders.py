"""Tokens go only to a user who may hold them, decided under the lock that ends their access.

A block, a lock-out, a deletion or an organisation's suspension takes the user's (or the
organisation's) row FOR UPDATE, changes its status and revokes what the user holds, in one
transaction. A token issued at the same moment could slip past that: its door read the user as
active a moment before, and its rows committed after the revocation had read the user's tokens
(the soak caught one: a refresh rotated while its user was blocked, and the new access token
stayed valid). So in PostgreSQL every insert of a user's access or refresh token, at any door,
runs `oauth_hold_token_holder(user)` (a trigger, migration oidc 0012): it takes the user's and
their organisation's rows FOR SHARE and refuses the row unless both are active.

Whoever locks first wins: a revocation that began first makes the issuance wait, then refuse; an
issuance that began first makes the revocation wait, then find its rows. A rotation holds the
old refresh token's row before it inserts, and a revocation takes the user before the tokens, so
a rotation holds the user first (`hold`, and the fast path's claim), in the revocation's order:
the two never deadlock.

A password change or reset leaves the user active but revokes their refresh tokens, under the
same lock: a rotation through DOT's path, which checked its refresh token before taking the
lock, checks it again once it holds the user (`hold_refresh_token`).

The embedded default (SQLite, one process) has no trigger; there the doors' own checks stand.
"""

from __future__ import annotations

import uuid

from django.db import IntegrityError, connection

from idp.oidc.models import RefreshToken

# The name the trigger's refusal carries (an IntegrityError, SQLSTATE 23514 check_violation).
CONSTRAINT = "oauth_token_holder_active"
REFUSAL = "the user may no longer receive tokens"

# One expression: true, with the rows held, if the user and their organisation are active.
HOLD_SQL = "(SELECT oauth_hold_token_holder(%(holder)s))"


class RefusedError(Exception):
    """What this request was issuing may not be issued after all: answered `invalid_grant`,
    with nothing it wrote kept (the view's transaction rolls back)."""


class InactiveHolderError(RefusedError):
    """The user was blocked, deleted or suspended while their tokens were being issued."""


def hold(user_id: uuid.UUID) -> None:
    """Hold the user's (and their organisation's) row until this transaction ends; raise
    InactiveHolderError if they may not receive tokens. Call inside the issuing transaction."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + HOLD_SQL, {"holder": user_id})
        (active,) = cursor.fetchone()
    if not active:
        raise InactiveHolderError(REFUSAL)


def hold_refresh_token(refresh_token: RefreshToken) -> None:
    """Lock the refresh token a rotation replaces, after its user (hold); raise RefusedError if
    a revocation took it since the grant checked it: a password change or a logout that
    committed meanwhile revokes it without changing the user's status."""
    if (
        not RefreshToken.objects.select_for_update()
        .filter(pk=refresh_token.pk, revoked__isnull=True)
        .exists()
    ):
        raise RefusedError("the refresh token was revoked")


def refusal(exc: BaseException) -> str | None:
    """The refusal's description if `exc` is one of these rules refusing (from here or from the
    trigger), else None."""
    if isinstance(exc, RefusedError):
        return str(exc)
    diag = getattr(exc.__cause__, "diag", None) if isinstance(exc, IntegrityError) else None
    return REFUSAL if getattr(diag, "constraint_name", None) == CONSTRAINT else None


def refused(exc: BaseException) -> bool:
    """Whether `exc` is one of these rules refusing a token."""
    return refusal(exc) is not None
