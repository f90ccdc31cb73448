"""The payloads of user life-cycle events (see audit.registry.EventType)."""

from __future__ import annotations

from typing import Any

from accounts.models import User


def user_payload(user: User) -> dict[str, Any]:
    return {
        "userId": str(user.id),
        "username": user.username,
        "email": user.email or None,
        "emailVerified": user.email_verified,
        "role": user.role,
        "clientId": str(user.organisation_id) if user.organisation_id else None,
        "status": user.status,
    }
