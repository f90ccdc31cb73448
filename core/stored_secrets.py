"""Secrets kept in the database (the signing keys' private parts, corporate SSO client secrets),
encrypted at rest with the Fernet key(s) of IDP_KEY_ENCRYPTION_KEY: the first key encrypts, any
of them decrypts, so the key can be rotated without re-encrypting everything at once."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

from core.config import ConfigError


class UndecryptableError(Exception):
    """The stored secret was encrypted with a key that is no longer configured (or was altered)."""


def _fernet() -> MultiFernet:
    try:
        return MultiFernet([Fernet(key) for key in settings.IDP_KEY_ENCRYPTION_KEYS])
    except ValueError as exc:
        raise ConfigError(f"IDP_KEY_ENCRYPTION_KEY is not a valid Fernet key: {exc}") from None


def encrypt(data: bytes) -> str:
    return _fernet().encrypt(data).decode()


def decrypt(token: str) -> bytes:
    """The plain secret; raises UndecryptableError, or ConfigError for a malformed key setting."""
    try:
        return _fernet().decrypt(token.encode())
    except InvalidToken:
        raise UndecryptableError("encrypted with another IDP_KEY_ENCRYPTION_KEY") from None
