from __future__ import annotations

import getpass
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from accounts import passwords
from accounts.models import User


class Command(BaseCommand):
    help = "Set a user's password; every session and token of the user ends (audited)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("username", help="the login")
        parser.add_argument("--client", help="the B2B client's slug (logins are unique per organisation)")

    def handle(self, *args: Any, **options: Any) -> None:
        users = User.objects.filter(username__iexact=options["username"])
        users = users.filter(organisation__slug=options["client"]) if options["client"] else users
        found = list(users.select_related("organisation")[:10])
        if not found:
            raise CommandError("no such user")
        if len(found) > 1:
            slugs = ", ".join(
                sorted(user.organisation.slug if user.organisation else "(internal)" for user in found)
            )
            raise CommandError(f"several users have this login; choose one with --client ({slugs})")
        user = found[0]
        for _attempt in range(3):
            first = getpass.getpass(f"New password for {user}: ")
            if first != getpass.getpass("Again: "):
                self.stderr.write("The passwords do not match.")
                continue
            try:
                passwords.set_password_from_console(user=user, new_password=first)
            except ValidationError as exc:
                self.stderr.write(" ".join(exc.messages))
                continue
            self.stdout.write(f"Password changed for {user}; their sessions and tokens have ended.")
            return
        raise CommandError("password not changed")
