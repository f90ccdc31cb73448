from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from idp.oidc import services


class Command(BaseCommand):
    help = (
        "Rotate the token signing key: the published `next` key starts signing, the old one stays "
        "published until its tokens expire. Without --force, a `next` key younger than the JWKS "
        "cache lifetime is not promoted yet (verifiers may not have fetched it)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--force", action="store_true", help="promote now (a compromised key)")
        parser.add_argument("--if-due", action="store_true", help="only when the active key is old enough")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["if_due"]:
            active = services.rotate_keys_if_due()
        else:
            active = services.rotate_keys(actor=None, force=options["force"])
        self.stdout.write(f"active signing key: {active.kid}")
        for key in services.keys.published_keys():
            self.stdout.write(f"  published: {key.kid} ({key.status})")
