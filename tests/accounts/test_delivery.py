"""E-mail and SMS go out through Celery: a real worker against the real Redis broker."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest
from django_otp.plugins.otp_email.models import EmailDevice

from accounts import services as accounts
from accounts.mail import deliver_email
from accounts.models import Role
from audit.models import AuditLog
from audit.registry import AuditAction
from tests.events import celery_worker, database_env

ROOT = Path(__file__).resolve().parents[2]


def _worker_env(mail_dir: Path) -> dict[str, str]:
    return {
        **database_env(),
        "IDP_EMAIL_DELIVERY_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(mail_dir),
    }


@pytest.mark.needs("postgresql", "redis")
@pytest.mark.django_db(transaction=True)
def test_a_real_celery_worker_sends_the_emailed_code(settings, tmp_path):
    settings.EMAIL_BACKEND = "accounts.mail.CeleryEmailBackend"  # pytest-django would use locmem
    user = accounts.create_user(
        actor=None,
        username="olga",
        password="operator-pass-123",
        email="olga@idp.example",
        role=Role.OPERATOR,
        email_verified=True,  # no confirmation mail: the code is the only mail the worker sends
    )
    device = EmailDevice.objects.create(user=user, name="E-mail", confirmed=True)
    worker = subprocess.Popen(
        celery_worker("--concurrency=1", "--pool=solo", "--loglevel=WARNING"),
        cwd=ROOT,
        env=_worker_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        device.generate_challenge()  # queues the mail on commit (autocommit here: at once)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not list(tmp_path.glob("*.log")):
            assert worker.poll() is None, worker.stdout.read().decode()[-2000:]
            time.sleep(0.2)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    files = list(tmp_path.glob("*.log"))
    assert files, "the worker delivered no mail: " + worker.stdout.read().decode()[-3000:]
    text = files[0].read_text()
    assert "olga@idp.example" in text
    code = re.search(r"\b(\d{6})\b", text.split("\n\n", 1)[1]).group(1)
    assert device.verify_token(code)


@pytest.mark.django_db
def test_a_delivery_that_keeps_failing_is_audited(settings):
    settings.IDP_EMAIL_DELIVERY_BACKEND = "tests.accounts.test_delivery.BrokenBackend"
    data = {
        "subject": "s",
        "body": "b",
        "from_email": "a@b.c",
        "to": ["x@y.z"],
        "cc": [],
        "bcc": [],
        "reply_to": [],
        "headers": {},
        "alternatives": [],
    }
    with pytest.raises(ConnectionError):
        deliver_email.apply(args=[data], retries=deliver_email.max_retries, throw=True)
    entry = AuditLog.objects.get(action=AuditAction.DELIVERY_FAILED)
    assert entry.details["channel"] == "email"
    assert "SMTP down" in entry.details["error"]


class BrokenBackend:
    def __init__(self, **kwargs: object) -> None:
        pass

    def send_messages(self, messages: object) -> int:
        raise ConnectionError("SMTP down")
