"""Demo data for the embedded default: an admin, a B2B organisation with its admin, an OAuth app."""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts import services as accounts
from accounts.models import Role, User
from clients import services as clients
from clients.models import Organisation
from idp.oidc.models import Application

DEMO_REDIRECT_URI = "http://127.0.0.1:8080/callback"


class Command(BaseCommand):
    help = "Create (or refresh) demo users, a demo B2B organisation and a demo OAuth application."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--password", help="demo password (default: a new random one)")
        parser.add_argument("--force", action="store_true", help="run even with DEBUG=0")

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG and not options["force"]:
            raise CommandError("demo data is for development only (DEBUG=0 here; --force to insist)")
        password = options["password"] or secrets.token_urlsafe(12)

        admin = self._user(
            "admin",
            password,
            role=Role.INTERNAL_ADMIN,
            organisation=None,
            email="admin@example.com",
            is_staff=True,
            is_superuser=True,
        )
        organisation = Organisation.objects.filter(slug="acme").first() or clients.create_organisation(
            actor=None, name="Acme Logistics", slug="acme", contact_email="it@acme.example"
        )
        self._user(
            "acme-admin",
            password,
            role=Role.CLIENT_ADMIN,
            organisation=organisation,
            email="admin@acme.example",
        )
        self._user(
            "acme-user", password, role=Role.CLIENT_USER, organisation=organisation, email="user@acme.example"
        )

        secret = secrets.token_urlsafe(32)
        app = Application.objects.filter(name="Demo relying party").first() or Application(
            name="Demo relying party", user=admin
        )
        app.client_type = Application.CLIENT_CONFIDENTIAL
        app.authorization_grant_type = Application.GRANT_AUTHORIZATION_CODE
        app.redirect_uris = DEMO_REDIRECT_URI
        app.post_logout_redirect_uris = "http://127.0.0.1:8080/"
        app.algorithm = Application.RS256_ALGORITHM
        app.skip_authorization = True  # first party: no consent screen
        app.client_secret = secret  # hashed on save; shown once below
        app.save()

        self.stdout.write(self.style.SUCCESS("Demo data ready:"))
        self.stdout.write(f"  admin (internal admin):    admin / {password}")
        self.stdout.write(f"  acme-admin (client admin): acme-admin / {password}")
        self.stdout.write(f"  acme-user (client user):   acme-user / {password}")
        self.stdout.write("  (admin is an internal administrator: after the password it asks for a second")
        self.stdout.write('   factor: "Send a code", and the e-mailed code is printed in this terminal)')
        self.stdout.write(f"  OAuth app: client_id={app.client_id} client_secret={secret}")
        self.stdout.write(f"             redirect_uri={DEMO_REDIRECT_URI}")

    def _user(
        self,
        username: str,
        password: str,
        *,
        role: str,
        organisation: Organisation | None,
        email: str,
        is_staff: bool = False,
        is_superuser: bool = False,
    ) -> User:
        user = User.objects.filter(username=username, organisation=organisation).first()
        if user is None:
            user = accounts.create_user(
                actor=None,
                username=username,
                password=None,
                email=email,
                role=role,
                organisation=organisation,
                is_staff=is_staff,
                email_verified=True,  # demo addresses: password reset works out of the box
            )
        if is_superuser and not user.is_superuser:
            user.is_superuser = True
            user.save(update_fields=["is_superuser"])
        # The demo password is new on every run (printed above); set directly, not validated.
        user.set_password(password)
        user.save(update_fields=["password"])
        return user
