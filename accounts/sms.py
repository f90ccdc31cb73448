"""Sending SMS: a pluggable gateway (`IDP_SMS_BACKEND`), always through a Celery task with retries.

- `accounts.sms.ConsoleGateway` (default): logs the message; development and tests read it there.
- `accounts.sms.HTTPGateway`: POSTs JSON `{"to", "text", "sender"}` to `IDP_SMS_HTTP_URL` with a
  bearer `IDP_SMS_HTTP_TOKEN`, the shape most SMS APIs accept (adapt the payload in a subclass),
  through core.outbound's fetch policy: https, no redirects, public addresses plus the networks
  listed in `IDP_SMS_HTTP_ALLOWED_NETWORKS` (a gateway on the operator's private network).
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from celery import shared_task
from django.conf import settings
from django.utils.module_loading import import_string

from accounts.mail import report_delivery_failure
from core import outbound

log = logging.getLogger(__name__)
MAX_RETRIES = 5
# A gateway answers with a short status; anything longer or slower is not a gateway we want.
HTTP_LIMITS = outbound.Limits(max_bytes=64 * 1024, connect_seconds=5, read_seconds=10, total_seconds=15)
sent: list[tuple[str, str]] = []  # what the console gateway sent, newest last (tests read it)


class Gateway(Protocol):
    def send(self, to: str, text: str) -> None: ...


class ConsoleGateway:
    def send(self, to: str, text: str) -> None:
        sent.append((to, text))
        del sent[:-100]
        log.info("SMS to %s: %s", to, text)


class HTTPGateway:
    def send(self, to: str, text: str) -> None:
        """POST the message; raises outbound.FetchError (its message quotes nothing the gateway sent)."""
        outbound.fetch(
            "POST",
            settings.IDP_SMS_HTTP_URL,
            allowed_networks=settings.IDP_SMS_HTTP_ALLOWED_NETWORKS,
            limits=HTTP_LIMITS,
            json={"to": to, "text": text, "sender": settings.IDP_SMS_SENDER},
            headers={"Authorization": f"Bearer {settings.IDP_SMS_HTTP_TOKEN}"},
        )


def gateway() -> Gateway:
    return import_string(settings.IDP_SMS_BACKEND)()


def send_sms(to: str, text: str) -> None:
    """Queue an SMS after the current transaction commits."""
    from django.db import transaction

    transaction.on_commit(lambda: deliver_sms.delay(to, text))


@shared_task(bind=True, name="accounts.deliver_sms", max_retries=MAX_RETRIES, acks_late=True)
def deliver_sms(self: Any, to: str, text: str) -> None:
    try:
        gateway().send(to, text)
    except Exception as exc:  # gateway errors vary by provider; every one is retried alike
        if self.request.retries >= MAX_RETRIES:
            report_delivery_failure("sms", recipients=[to], error=exc)
            raise
        raise self.retry(exc=exc, countdown=2**self.request.retries * 5) from exc
