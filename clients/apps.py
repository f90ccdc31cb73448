from __future__ import annotations

import uuid
from collections.abc import Iterable

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


def organisation_names(ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str]:
    from clients.models import Organisation  # models load after the app registry

    return dict(Organisation.objects.filter(pk__in=set(ids)).values_list("pk", "name"))


class ClientsConfig(AppConfig):
    name = "clients"
    verbose_name = _("B2B clients")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from audit import names  # in ready(): the registry is complete only now

        names.install(organisation_names)
