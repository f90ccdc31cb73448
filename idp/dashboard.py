"""The admin's front page: the figures an operator checks first (sign-ins today, locked accounts,
the outbox, dead letters, signing keys due). Read-only queries, computed when the page opens;
shown only to staff who may read the audit log (the sign-in figures come from it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import LoginFailures
from audit.models import AuditLog, DeadLetter
from audit.outbox.lag import outbox_lag
from audit.registry import AuditAction
from idp.oidc.models import SigningKey


@dataclass(frozen=True)
class Figure:
    label: Any
    value: str
    warn: bool = False
    link: str = ""


def figures(now: Any = None) -> list[Figure]:
    now = now or timezone.now()
    midnight = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    today = AuditLog.objects.filter(occurred_at__gte=midnight)
    signed_in = today.filter(action=AuditAction.LOGIN_SUCCEEDED).count()
    failed = today.filter(action=AuditAction.LOGIN_FAILED).count()
    locked = LoginFailures.objects.filter(Q(permanent=True) | Q(locked_until__gt=now)).count()
    lag = outbox_lag()
    dead = DeadLetter.objects.count()
    due = now - timedelta(days=settings.IDP_KEY_ROTATION_DAYS)
    keys_due = SigningKey.objects.filter(status=SigningKey.Status.ACTIVE, activated_at__lte=due).count()
    oldest = int((now - lag.oldest_created_at).total_seconds()) if lag.oldest_created_at else 0
    return [
        Figure(
            _("sign-ins today"),
            f"{signed_in}",
            link=f"audit/auditlog/?action__exact={AuditAction.LOGIN_SUCCEEDED}",
        ),
        Figure(
            _("failed sign-ins today"),
            f"{failed}",
            failed > signed_in and failed > 10,
            link=f"audit/auditlog/?action__exact={AuditAction.LOGIN_FAILED}",
        ),
        Figure(_("accounts locked now"), f"{locked}", locked > 0, link="accounts/user/?locked=yes"),
        Figure(_("events not yet on Kafka"), f"{lag.unsent}", oldest > 300, link="audit/outboxevent/"),
        Figure(_("oldest unsent event, seconds"), f"{oldest}", oldest > 300, link="audit/outboxevent/"),
        Figure(_("dead letters"), f"{dead}", dead > 0, link="audit/deadletter/"),
        Figure(_("signing keys due for rotation"), f"{keys_due}", keys_due > 0, link="oidc/signingkey/"),
    ]


def install(site: admin.AdminSite) -> None:
    """The site's index shows the figures above its sections (admin/index.html)."""
    index = site.index

    def index_with_figures(request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        shown = request.user.has_perm("audit.view_auditlog")
        return index(request, {**(extra_context or {}), "figures": figures() if shown else []})

    site.index = index_with_figures  # type: ignore[method-assign]
