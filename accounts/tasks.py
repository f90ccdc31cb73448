"""Celery finds tasks in each app's `tasks` module; the delivery tasks live beside their senders."""

from accounts.mail import deliver_email
from accounts.sms import deliver_sms

__all__ = ["deliver_email", "deliver_sms"]
