"""A fast keyed hash for client secrets.

Client secrets are long random strings, not passwords a person chose, so a slow hash adds no
safety, only cost: PBKDF2 or bcrypt on every client_credentials request caps the token endpoint at
a few requests a second. HMAC-SHA256 keyed with a key derived from SECRET_KEY (with its
fallbacks, so rotation does not break stored secrets) keeps a stolen table useless on its own.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from django.conf import settings
from django.contrib.auth.hashers import BasePasswordHasher
from django.utils.crypto import constant_time_compare


def _keys() -> list[bytes]:
    secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return [hashlib.sha256(b"idp.client-secret:" + s.encode()).digest() for s in secrets]


class ClientSecretHasher(BasePasswordHasher):
    algorithm = "hmac_sha256"

    def _digest(self, key: bytes, password: str, salt: str) -> str:
        return hmac.new(key, f"{salt}${password}".encode(), hashlib.sha256).hexdigest()

    def encode(self, password: str, salt: str) -> str:
        self._check_encode_args(password, salt)
        return f"{self.algorithm}${salt}${self._digest(_keys()[0], password, salt)}"

    def decode(self, encoded: str) -> dict[str, Any]:
        algorithm, salt, digest = encoded.split("$", 2)
        assert algorithm == self.algorithm
        return {"algorithm": algorithm, "hash": digest, "salt": salt}

    def verify(self, password: str, encoded: str) -> bool:
        decoded = self.decode(encoded)
        return any(
            constant_time_compare(self._digest(key, password, decoded["salt"]), decoded["hash"])
            for key in _keys()
        )

    def safe_summary(self, encoded: str) -> dict[str, Any]:
        decoded = self.decode(encoded)
        return {"algorithm": decoded["algorithm"], "salt": decoded["salt"][:4] + "…", "hash": "…"}

    def harden_runtime(self, password: str, encoded: str) -> None:
        pass
