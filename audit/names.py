"""The port through which the audit log's pages name the B2B clients its records carry by id.

The records keep a client's id (the audit log sits below `clients` and never imports it);
`clients` installs the lookup when the app registry is ready (clients.apps), and a system check
fails while none is installed.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from typing import Any

from django.core import checks

from core.ports import Port

OrganisationNames = Callable[[Iterable[uuid.UUID]], dict[uuid.UUID, str]]

PORT: Port[OrganisationNames] = Port(
    "audit.names",
    installed_by="clients",
    missing_means="the audit log would show B2B clients by id only",
    check_id="audit.E001",
)
install = PORT.install


def organisation_names(ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str]:
    """The names of the clients with these ids (an id with no client left is not in the answer)."""
    return PORT.get()(ids)


@checks.register()
def check_installed(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    return PORT.check()
