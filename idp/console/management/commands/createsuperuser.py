from __future__ import annotations

import getpass
import os
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts import services
from accounts.models import Role


class Command(BaseCommand):
    help = "Create an internal administrator (superuser) through the user service (audited)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--username", required=True)
        parser.add_argument("--email", default="")
        parser.add_argument(
            "--noinput",
            "--no-input",
            action="store_false",
            dest="interactive",
            help="take the password from DJANGO_SUPERUSER_PASSWORD instead of asking",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["interactive"]:
            password = getpass.getpass("Password: ")
            if password != getpass.getpass("Again: "):
                raise CommandError("the passwords do not match")
        else:
            password = os.environ.get("DJANGO_SUPERUSER_PASSWORD", "")
            if not password:
                raise CommandError("set DJANGO_SUPERUSER_PASSWORD with --noinput")
        try:
            with transaction.atomic():
                user = services.create_user(
                    actor=None,
                    username=options["username"],
                    password=password,
                    email=options["email"],
                    role=Role.INTERNAL_ADMIN,
                    is_staff=True,
                )
                services.update_user(actor=None, user=user, changes={"is_superuser": True})
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        self.stdout.write(f"Superuser {user.username} created.")
