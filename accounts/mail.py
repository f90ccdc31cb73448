"""E-mail goes out through Celery: the request that triggers a mail (an OTP code, a reset link)
never waits on SMTP, and a failed send is retried with back-off, then logged and audited.

`EMAIL_BACKEND` is this backend; `IDP_EMAIL_DELIVERY_BACKEND` is the one that really sends
(SMTP in production, the console in development).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from celery import shared_task
from django.conf import settings
from django.core.mail import EmailMessage, EmailMultiAlternatives, get_connection
from django.core.mail.backends.base import BaseEmailBackend

from audit import services as audit
from audit.registry import AuditAction

log = logging.getLogger(__name__)
MAX_RETRIES = 5


def _serialise(message: EmailMessage) -> dict[str, Any]:
    return {
        "subject": message.subject,
        "body": message.body,
        "from_email": message.from_email,
        "to": list(message.to),
        "cc": list(message.cc),
        "bcc": list(message.bcc),
        "reply_to": list(message.reply_to),
        "headers": dict(message.extra_headers),
        "alternatives": [list(alt) for alt in getattr(message, "alternatives", [])],
    }


class CeleryEmailBackend(BaseEmailBackend):
    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        for message in email_messages:
            # Queued after the transaction commits: no mail about a change that was rolled back.
            data = _serialise(message)
            from django.db import transaction

            transaction.on_commit(lambda data=data: deliver_email.delay(data))
        return len(email_messages)


@shared_task(bind=True, name="accounts.deliver_email", max_retries=MAX_RETRIES, acks_late=True)
def deliver_email(self: Any, data: dict[str, Any]) -> int:
    alternatives = [tuple(alt) for alt in data.pop("alternatives", [])]
    message = EmailMultiAlternatives(
        **data, alternatives=alternatives, connection=get_connection(settings.IDP_EMAIL_DELIVERY_BACKEND)
    )
    try:
        return message.send()
    except Exception as exc:  # SMTP and network errors are many types; all are retried the same way
        if self.request.retries >= MAX_RETRIES:
            report_delivery_failure("email", recipients=data["to"], error=exc)
            raise
        raise self.retry(exc=exc, countdown=2**self.request.retries * 5) from exc


def report_delivery_failure(channel: str, *, recipients: list[str], error: Exception) -> None:
    """The last retry failed: say so where operators look (log and audit log), never silently."""

    log.error(
        "%s delivery failed for good", channel, extra={"recipients": len(recipients), "error": str(error)}
    )
    audit.record(
        AuditAction.DELIVERY_FAILED,
        actor=None,
        details={"channel": channel, "recipients": len(recipients), "error": str(error)[:300]},
    )
