"""A management command that runs as a long-lived process of the stack (gRPC server, Kafka
consumer, outbox relay loop)."""

from __future__ import annotations

from django.core.management.base import BaseCommand


class ProcessCommand(BaseCommand):
    # No system checks at start: the URL checks import the URLconf, every view and the web-only
    # libraries (about 60 MB kept for the process's life). They run at `manage.py migrate`,
    # before any process of the stack starts, and in CI.
    requires_system_checks: list[str] = []
