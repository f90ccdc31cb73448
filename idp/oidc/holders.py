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

The embedded default (SQLite, one process) has no trigger; there the doors' own checks stand.
"""

from __future__ import annotations

import uuid

from django.db import IntegrityError, connection

# The name the trigger's refusal carries (an IntegrityError, SQLSTATE 23514 check_violation).
CONSTRAINT = "oauth_token_holder_active"
REFUSAL = "the user may no longer receive tokens"

# One expression: true, with the rows held, if the user and their organisation are active.
HOLD_SQL = "(SELECT oauth_hold_token_holder(%(holder)s))"


class InactiveHolderError(Exception):
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


def refused(exc: BaseException) -> bool:
    """Whether `exc` is this rule refusing a token (from `hold` or from the trigger)."""
    if isinstance(exc, InactiveHolderError):
        return True
    diag = getattr(exc.__cause__, "diag", None) if isinstance(exc, IntegrityError) else None
    return getattr(diag, "constraint_name", None) == CONSTRAINT
