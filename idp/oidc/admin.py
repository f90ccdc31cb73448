"""The operators' pages for relying parties and signing keys, and read-only views of the tokens
and authorization codes DOT stores.

DOT registers its own Application admin for our swapped model; ours replaces it: it saves
through idp.oidc.services (audited), shows a new client secret once and never again, hides the
secret hash, and shows DOT's `skip_authorization` as "First party (no consent screen)": the one
flag that decides about consent (DOT's own authorization view honours it too).
"""

from __future__ import annotations

import json
from datetime import timedelta
from functools import partial
from typing import Any

import oauth2_provider.admin  # noqa: F401 - DOT registers first, so that we can replace it
from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from accounts.admin.base import ServiceModelAdmin, calling, refusal_text
from accounts.admin.users import add_user_page_section, overview_table, short_time
from accounts.models import User
from core.read_only_admin import ReadOnlyModelAdmin
from idp.oidc import keys, services
from idp.oidc.models import (
    AccessToken,
    Application,
    DeviceGrant,
    Grant,
    IDToken,
    RefreshToken,
    ResourceServer,
    SigningKey,
    TokenExchangePolicy,
)


def _connected_applications(user: User) -> tuple[str, SafeString]:
    """The user page's section of the OIDC layer: which applications hold the person's consent
    or live tokens, what each may do, since when and last used."""
    rows = (
        (c.application.name, " ".join(c.scopes), short_time(c.since), short_time(c.last_used))
        for c in services.connections(user)
    )
    return gettext("Connected applications"), overview_table(rows, gettext("No application."))


add_user_page_section(_connected_applications)


FORM_FIELDS = [
    "name",
    "client_type",
    "authorization_grant_type",
    "redirect_uris",
    "post_logout_redirect_uris",
    "allowed_origins",
    "skip_authorization",
    "resource_server",
    "algorithm",
    "organisation",
    "client_authentication",
    "jwks",
    "jwks_uri",
    "require_pushed_authorization_requests",
    "dpop_bound_access_tokens",
    "high_assurance",
    "backchannel_logout_uri",
    "backchannel_logout_session_required",
]


class ApplicationForm(forms.ModelForm):
    class Meta:
        model = Application
        fields = FORM_FIELDS
        widgets = {
            "redirect_uris": forms.Textarea(attrs={"rows": 3}),
            "post_logout_redirect_uris": forms.Textarea(attrs={"rows": 2}),
            "allowed_origins": forms.Textarea(attrs={"rows": 2}),
            "jwks": forms.Textarea(attrs={"rows": 4}),
        }
        labels = {
            "skip_authorization": _("First party (no consent screen)"),
            "resource_server": _("Resource server"),
        }
        help_texts = {
            "redirect_uris": _("Space or line separated; matched as exact strings."),
            "skip_authorization": _("An app of the platform itself: its users are not asked for consent."),
            "resource_server": _(
                "May introspect tokens issued to other clients (an API that accepts them); other "
                "clients introspect only their own tokens."
            ),
            "algorithm": _(
                "RS256 for OpenID Connect (ID tokens); none for a service using client credentials."
            ),
        }


if admin.site.is_registered(Application):
    admin.site.unregister(Application)


@admin.register(Application)
class ApplicationAdmin(ServiceModelAdmin):
    form = ApplicationForm
    list_display = [
        "name",
        "client_id",
        "client_type",
        "authorization_grant_type",
        "first_party",
        "resource_server",
        "algorithm",
        "created",
    ]
    list_filter = ["client_type", "authorization_grant_type", "skip_authorization", "resource_server"]
    search_fields = ["name", "client_id"]
    radio_fields = {
        "client_type": admin.HORIZONTAL,
        "authorization_grant_type": admin.VERTICAL,
        "client_authentication": admin.VERTICAL,
    }
    actions = ["new_secret"]

    @admin.display(boolean=True, description=_("first party"), ordering="skip_authorization")
    def first_party(self, obj: Application) -> bool:
        return obj.skip_authorization

    def get_fields(self, request: HttpRequest, obj: Application | None = None) -> list[str]:
        # No client id on the add page: it is generated when the application is saved.
        if obj is None:
            return FORM_FIELDS
        return ["client_id", *FORM_FIELDS, "registration_source", "created", "updated"]

    def get_readonly_fields(self, request: HttpRequest, obj: Application | None = None) -> list[str]:
        return [] if obj is None else ["client_id", "registration_source", "created", "updated"]

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        return {
            "client_type": Application.CLIENT_CONFIDENTIAL,
            "authorization_grant_type": Application.GRANT_AUTHORIZATION_CODE,
            "algorithm": Application.RS256_ALGORITHM,
            **super().get_changeform_initial_data(request),
        }

    def formfield_for_choice_field(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        supported = {
            "authorization_grant_type": Application.SUPPORTED_GRANTS,
            "algorithm": Application.SUPPORTED_ALGORITHMS,
        }.get(db_field.name)
        if supported is not None:
            kwargs["choices"] = [(value, label) for value, label in db_field.choices if value in supported]
        return super().formfield_for_choice_field(db_field, request, **kwargs)

    def save_model(self, request: HttpRequest, obj: Application, form: forms.ModelForm, change: bool) -> None:
        if change:
            changes = {name: form.cleaned_data[name] for name in form.changed_data if name in FORM_FIELDS}
            calling(
                partial(services.update_application, actor=request.user, application=obj, changes=changes)
            )
            return
        values = {name: form.cleaned_data[name] for name in FORM_FIELDS if name in form.cleaned_data}
        app, secret = calling(partial(services.register_application, actor=request.user, values=values))
        obj.pk, obj.client_id = app.pk, app.client_id
        obj._state.adding = False
        if (
            app.client_authentication == Application.AUTH_SECRET
        ):  # a private_key_jwt client has no use for one
            obj._new_secret = secret  # only in memory, for the page that shows it once

    def response_add(
        self, request: HttpRequest, obj: Application, post_url_continue: str | None = None
    ) -> HttpResponse:
        secret = getattr(obj, "_new_secret", None)
        if secret is None:
            return super().response_add(request, obj, post_url_continue)
        return self._secrets_page(request, [(obj, secret)])

    def _secrets_page(self, request: HttpRequest, secrets: list[tuple[Application, str]]) -> HttpResponse:
        # A page of its own, not a message: messages travel in a cookie or the session, and a
        # secret must not be stored anywhere but, hashed, in the application's row.
        context = {
            **self.admin_site.each_context(request),
            "title": _("Client secret"),
            "opts": self.opts,
            "secrets": secrets,
        }
        return TemplateResponse(request, "admin/oidc/application/secret.html", context)

    @admin.action(
        description=_("Issue a new client secret for selected applications"), permissions=["change"]
    )
    def new_secret(self, request: HttpRequest, queryset: QuerySet[Application]) -> HttpResponse | None:
        issued = []
        for app in queryset:
            try:
                issued.append((app, services.new_client_secret(actor=request.user, application=app)))
            except (PermissionDenied, ValidationError) as exc:
                self.message_user(request, f"{app}: {refusal_text(exc)}", messages.ERROR)
        return self._secrets_page(request, issued) if issued else None

    def has_delete_permission(self, request: HttpRequest, obj: Application | None = None) -> bool:
        # Deleting would drop its tokens' rows without blacklisting them: issue a new secret and
        # remove its redirect URIs instead (both audited).
        return False


@admin.register(ResourceServer)
class ResourceServerAdmin(ServiceModelAdmin):
    """APIs that clients name with `resource` (RFC 8707): each gets tokens of its own audience."""

    list_display = ["name", "identifier", "scopes", "client"]
    search_fields = ["name", "identifier"]
    fields = ["name", "identifier", "scopes", "client"]
    autocomplete_fields = ["client"]

    def save_model(
        self, request: HttpRequest, obj: ResourceServer, form: forms.ModelForm, change: bool
    ) -> None:
        fields = list(form.changed_data) if change else list(services.RESOURCE_SERVER_FIELDS)
        calling(
            partial(
                services.save_resource_server,
                actor=request.user,
                server=obj,
                fields=fields,
                created=not change,
            )
        )

    def has_delete_permission(self, request: HttpRequest, obj: ResourceServer | None = None) -> bool:
        # Tokens already issued for it still name it; an API that goes away is renamed or kept.
        return False


@admin.register(TokenExchangePolicy)
class TokenExchangePolicyAdmin(ServiceModelAdmin):
    """Which service may exchange a user's token for which downstream API (RFC 8693)."""

    list_display = ["application", "resource_server", "scopes", "created"]
    fields = ["application", "resource_server", "scopes"]
    autocomplete_fields = ["application"]

    def save_model(
        self, request: HttpRequest, obj: TokenExchangePolicy, form: forms.ModelForm, change: bool
    ) -> None:
        calling(partial(services.save_exchange_rule, actor=request.user, rule=obj, created=not change))

    def delete_model(self, request: HttpRequest, obj: TokenExchangePolicy) -> None:
        calling(partial(services.delete_exchange_rule, actor=request.user, rule=obj))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[TokenExchangePolicy]) -> None:
        for rule in queryset:
            self.delete_model(request, rule)


@admin.register(SigningKey)
class SigningKeyAdmin(ReadOnlyModelAdmin):
    """Read-only: keys are made and retired by idp.oidc.keys; the private part is never shown."""

    # Fits 1,280 px in Russian too: when it was retired is on its page.
    list_display = [
        "kid",
        "status",
        "algorithm",
        "created_at",
        "activated_at",
        "published_until",
        "published",
    ]
    list_filter = ["status"]
    search_fields = ["kid"]
    fields = [
        "kid",
        "status",
        "algorithm",
        "public_key",
        "created_at",
        "activated_at",
        "retired_at",
        "published_until",
    ]
    readonly_fields = fields

    @admin.display(boolean=True, description=_("in the JWKS"))
    def published(self, obj: SigningKey) -> bool:
        return obj.status != SigningKey.Status.RETIRED or bool(
            obj.published_until and obj.published_until > timezone.now()
        )

    @admin.display(description=_("public key (JWK)"))
    def public_key(self, obj: SigningKey) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.public_jwk, indent=2))

    def _may_rotate(self, request: HttpRequest) -> bool:
        # The Django permission shows the button; the service checks oidc.key.rotate again.
        return request.user.has_perm("oidc.change_signingkey")

    def get_urls(self) -> list[Any]:
        rotate = path("rotate/", self.admin_site.admin_view(self.rotate_view), name="oidc_signingkey_rotate")
        return [rotate, *super().get_urls()]

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra_context = {**(extra_context or {}), "may_rotate": self._may_rotate(request)}
        return super().changelist_view(request, extra_context=extra_context)

    def rotate_view(self, request: HttpRequest) -> HttpResponse:
        if not self._may_rotate(request):
            raise PermissionDenied
        here = reverse("admin:oidc_signingkey_rotate")
        if request.method == "POST":
            force = request.POST.get("mode") == "force"
            if force and request.POST.get("confirm") != "yes":
                self.message_user(
                    request, gettext("Tick the box to confirm a forced rotation."), messages.ERROR
                )
                return HttpResponseRedirect(here)
            return self._rotate(request, force=force)
        active = keys.ensure_keys()
        successor = SigningKey.objects.filter(status=SigningKey.Status.NEXT).first()
        lead = _jwks_lead()
        context = {
            **self.admin_site.each_context(request),
            "title": _("Rotate signing keys"),
            "opts": self.opts,
            "active": active,
            "successor": successor,
            "lead_minutes": int(lead.total_seconds() // 60),
            "ready_at": successor.created_at + lead if successor else None,
            "ready": bool(successor and successor.created_at + lead <= timezone.now()),
        }
        return TemplateResponse(request, "admin/oidc/signingkey/rotate.html", context)

    def _rotate(self, request: HttpRequest, *, force: bool) -> HttpResponse:
        before = keys.ensure_keys()
        try:
            active = services.rotate_keys(actor=request.user, force=force)
        except (PermissionDenied, ValidationError) as exc:
            self.message_user(request, refusal_text(exc), messages.ERROR)
            return HttpResponseRedirect(reverse("admin:oidc_signingkey_rotate"))
        if active.pk != before.pk:
            done = (
                gettext(
                    "Rotated (forced): key %(new)s signs now; %(old)s stays published until the tokens "
                    "it signed have expired."
                )
                if force
                else gettext(
                    "Rotated: key %(new)s signs now; %(old)s stays published until the tokens it signed "
                    "have expired."
                )
            )
            self.message_user(request, done % {"new": active.kid, "old": before.kid}, messages.SUCCESS)
        else:
            self.message_user(
                request,
                gettext(
                    "Not rotated: the next key has been published for less than the JWKS cache lifetime "
                    "(%(minutes)d min), so verifiers may not know it yet. Try again later, or force the "
                    "rotation if the signing key is compromised."
                )
                % {"minutes": int(_jwks_lead().total_seconds() // 60)},
                messages.WARNING,
            )
        return HttpResponseRedirect(reverse("admin:oidc_signingkey_changelist"))


def _jwks_lead() -> timedelta:
    """How long a `next` key is published before a normal rotation promotes it (idp.oidc.keys)."""
    return timedelta(seconds=settings.OAUTH2_PROVIDER["OIDC_JWKS_MAX_AGE_SECONDS"])


# --- Tokens and codes: read-only (DOT's own pages add, edit and delete them by hand) -------------

# An edited scope or expiry would be a token nobody issued; a deleted row would leave its JWT
# valid (no blacklist entry). Tokens are revoked by the revocation endpoint, logout, blocking a
# user or ending a session (idp.oidc.revocation, audited). Hashes and codes are never shown.
for _model in (AccessToken, RefreshToken, IDToken, Grant):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)


class TokenAdmin(ReadOnlyModelAdmin):
    list_select_related = ["user", "application"]
    search_fields = ["user__username", "user__email", "application__name", "application__client_id"]
    list_filter = ["application"]


@admin.register(AccessToken)
class AccessTokenAdmin(TokenAdmin):
    list_display = ["jti", "user", "application", "scope", "expires", "created"]
    search_fields = [*TokenAdmin.search_fields, "jti", "sid"]
    fields = ["jti", "user", "application", "scope", "amr", "sid", "expires", "created"]


@admin.register(RefreshToken)
class RefreshTokenAdmin(TokenAdmin):
    list_display = ["pk", "user", "application", "token_family", "created", "revoked"]
    search_fields = [*TokenAdmin.search_fields, "token_family"]
    fields = ["user", "application", "token_family", "created", "revoked"]


@admin.register(IDToken)
class IDTokenAdmin(TokenAdmin):
    list_display = ["jti", "user", "application", "scope", "expires", "created"]
    search_fields = [*TokenAdmin.search_fields, "jti"]
    fields = ["jti", "user", "application", "scope", "expires", "created"]


@admin.register(Grant)
class GrantAdmin(TokenAdmin):
    """Authorization codes, kept after use; the code and its PKCE challenge are never shown."""

    list_display = ["pk", "user", "application", "scope", "created", "expires", "used_at"]
    fields = [
        "user",
        "application",
        "redirect_uri",
        "scope",
        "amr",
        "auth_time",
        "created",
        "expires",
        "used_at",
    ]


@admin.register(DeviceGrant)
class DeviceGrantAdmin(ReadOnlyModelAdmin):
    """Device authorizations (RFC 8628), kept a day after they end; the device code (a hash) and
    the user code (what a person types while it waits) are never shown."""

    list_display = ["pk", "client_id", "user", "status", "scope", "expires", "used_at"]
    list_filter = ["status"]
    list_select_related = ["user"]
    search_fields = ["client_id", "user__username", "user__email"]
    fields = ["client_id", "user", "status", "scope", "interval", "amr", "auth_time", "expires", "used_at"]
