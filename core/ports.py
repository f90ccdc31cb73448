"""A port: how a lower floor causes something a floor above it owns, without importing it.

The lower app declares the port (what it needs, as a small protocol); the app above installs the
implementation when the app registry is ready (its AppConfig.ready); until then using it raises,
and a system check (registered by the declaring app) fails loudly. docs/architecture.md lists the
ports.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from django.core import checks

T = TypeVar("T")


class Port(Generic[T]):
    def __init__(self, name: str, *, installed_by: str, missing_means: str, check_id: str) -> None:
        self.name = name
        self.installed_by = installed_by
        self.missing_means = missing_means
        self.check_id = check_id
        self._implementation: T | None = None

    def install(self, implementation: T) -> None:
        self._implementation = implementation

    def get(self) -> T:
        if self._implementation is None:
            raise RuntimeError(f"{self.name} is not installed ({self.installed_by} must be an installed app)")
        return self._implementation

    def check(self) -> list[checks.CheckMessage]:
        if self._implementation is not None:
            return []
        return [
            checks.Error(
                f"{self.name} is not installed: {self.missing_means}",
                hint=f"Install {self.installed_by} (its AppConfig.ready installs it).",
                id=self.check_id,
            )
        ]
