"""The operators' pages for B2B organisations and their corporate SSO configuration: saved through
clients.services and clients.domains (audited), scoped by accounts.rbac."""

from __future__ import annotations

from functools import partial
from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.functional import Promise
from django.utils.html import format_html
from django.utils.translation import gettext, ngettext_lazy
from django.utils.translation import gettext_lazy as _

from accounts.admin.base import ServiceModelAdmin, calling, visible_organisations
from accounts.models import Role, User
from clients import branding, domains, saml, scim_tokens, services, upstream
from clients.models import IdentityProvider, Organisation, OrganisationDomain, ScimToken, UpstreamIdentity
from core.permissions import Permission
from core.read_only_admin import ReadOnlyModelAdmin


class OrganisationAdministratorsInline(admin.TabularInline):
    """The client's administrators, read-only; roles change on the users' own pages (audited)."""

    model = User
    fk_name = "organisation"
    fields = ["username", "email", "status", "last_login"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True
    verbose_name = _("administrator")
    verbose_name_plural = _("administrators of this client")

    def get_queryset(self, request: HttpRequest) -> QuerySet[User]:
        return super().get_queryset(request).filter(role=Role.CLIENT_ADMIN)

    def has_add_permission(self, request: HttpRequest, obj: Organisation | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Organisation | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Organisation | None = None) -> bool:
        return False


class OrganisationForm(forms.ModelForm):
    logo = forms.FileField(
        label=_("logo"),
        required=False,
        help_text=_("PNG, JPEG or WebP, up to 256 KiB; shown at most 256 pixels a side."),
    )
    remove_logo = forms.BooleanField(label=_("remove the logo"), required=False)

    class Meta:
        model = Organisation
        # The admin narrows this to the fields of the page (get_fields); saved by the services.
        fields = [
            "name",
            "slug",
            "status",
            "contact_email",
            "require_mfa",
            "require_passkey",
            "brand_name",
            "brand_colour",
        ]

    def clean_logo(self) -> bytes | None:
        upload = self.cleaned_data.get("logo")
        if not upload:
            return None
        data = upload.read(branding.MAX_UPLOAD_BYTES + 1)
        branding.normalised_logo(data)  # refused here, beside the field, before anything is saved
        return data


@admin.register(Organisation)
class OrganisationAdmin(ServiceModelAdmin):
    form = OrganisationForm
    list_display = ["name", "slug", "status", "contact_email", "created_at"]
    list_filter = ["status"]
    search_fields = ["name", "slug", "contact_email", "id"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["id", "created_at", "updated_at"]
    # Created by clients.services.create_organisation and changed by update_organisation, both audited.
    inlines = [OrganisationAdministratorsInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Organisation]:
        organisations = super().get_queryset(request)
        visible = visible_organisations(request.user, Permission.ORGANISATION_READ)
        return organisations if visible is None else organisations.filter(pk__in=visible)

    def get_fields(self, request: HttpRequest, obj: Organisation | None = None) -> list[str]:
        if obj is None:
            return ["name", "slug", "contact_email"]
        return [
            "id",
            "name",
            "slug",
            "status",
            "contact_email",
            "require_mfa",
            "require_passkey",
            "brand_name",
            "brand_colour",
            "logo",
            "remove_logo",
            "users",
            "created_at",
            "updated_at",
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Organisation | None = None) -> list[str]:
        # The slug is in the SSO callback URLs registered upstream: it never changes.
        return [] if obj is None else [*self.readonly_fields, "slug", "users"]

    def get_prepopulated_fields(
        self, request: HttpRequest, obj: Organisation | None = None
    ) -> dict[str, Any]:
        return self.prepopulated_fields if obj is None else {}

    def get_inlines(self, request: HttpRequest, obj: Organisation | None) -> list[Any]:
        return [] if obj is None else self.inlines

    @admin.display(description=_("Users"))
    def users(self, obj: Organisation) -> str:
        users = reverse("admin:accounts_user_changelist")
        add = reverse("admin:accounts_user_add")
        return format_html(
            '<a href="{}?organisation__id__exact={}">{}</a> &middot; '
            '<a href="{}?organisation={}&amp;role=client_admin">{}</a>',
            users,
            obj.pk,
            gettext("All users of this client"),
            add,
            obj.pk,
            gettext("Add an administrator"),
        )

    def save_model(
        self, request: HttpRequest, obj: Organisation, form: forms.ModelForm, change: bool
    ) -> None:
        if change:
            changes = {
                name: form.cleaned_data[name] for name in form.changed_data if name in services.CLIENT_FIELDS
            }
            calling(
                partial(services.update_organisation, actor=request.user, organisation=obj, changes=changes)
            )
            logo, remove = form.cleaned_data.get("logo"), form.cleaned_data.get("remove_logo")
            if logo or remove:
                calling(partial(branding.set_logo, actor=request.user, organisation=obj, data=logo or None))
            return
        data = form.cleaned_data
        created = calling(
            partial(
                services.create_organisation,
                actor=request.user,
                name=data["name"],
                slug=data["slug"],
                contact_email=data.get("contact_email", ""),
            )
        )
        obj.pk = created.pk
        obj._state.adding = False

    def has_delete_permission(self, request: HttpRequest, obj: Organisation | None = None) -> bool:
        return False  # its users keep it (PROTECT): suspend it instead, which is audited


# --- corporate SSO: every change goes through clients.services / clients.domains (audited) ---


class IdentityProviderForm(forms.ModelForm):
    issuer = forms.CharField(
        label=_("Issuer"),
        max_length=500,
        help_text=IdentityProvider._meta.get_field("issuer").help_text,
    )
    saml_metadata_url = forms.URLField(
        label=_("SAML metadata URL"),
        max_length=500,
        required=False,
        assume_scheme="https",
        help_text=IdentityProvider._meta.get_field("saml_metadata_url").help_text,
    )
    saml_metadata_file = forms.FileField(
        label=_("Upload SAML metadata"),
        required=False,
        help_text=_("An XML file from the identity provider; it replaces the metadata text above."),
    )
    client_secret = forms.CharField(
        widget=forms.PasswordInput(render_value=False),
        required=False,
        strip=True,
        label=_("Client secret"),
        help_text=_("Write-only: never shown again. Leave empty to keep the stored secret."),
    )

    class Meta:
        model = IdentityProvider
        fields = [
            "organisation",
            "name",
            "issuer",
            "client_id",
            *sorted(services.IDENTITY_PROVIDER_FIELDS - {"name", "issuer", "client_id"}),
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        upload = data.get("saml_metadata_file")
        if upload:
            raw = upload.read(saml.MAX_METADATA_BYTES + 1)
            if len(raw) > saml.MAX_METADATA_BYTES:
                raise ValidationError({"saml_metadata_file": _("The metadata is larger than 512 KiB.")})
            try:
                data["saml_metadata_xml"] = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise ValidationError({"saml_metadata_file": _("The metadata is not UTF-8 text.")}) from None
            self.instance.saml_metadata_xml = data["saml_metadata_xml"]
        return data

    def _post_clean(self) -> None:
        super()._post_clean()
        if self.cleaned_data.get("saml_metadata_xml") is not None:
            self.instance.saml_metadata_xml = self.cleaned_data["saml_metadata_xml"]
        try:
            services.check_identity_provider(self.instance)
        except ValidationError as exc:
            self._update_errors(exc)


@admin.register(IdentityProvider)
class IdentityProviderAdmin(ServiceModelAdmin):
    form = IdentityProviderForm
    actions = ["new_saml_key"]
    list_display = [
        "organisation",
        "name",
        "protocol",
        "issuer",
        "enabled",
        "enforced",
        "trust_upstream_mfa",
        "secret_stored",
    ]
    list_filter = ["protocol", "enabled", "enforced"]
    search_fields = ["name", "issuer", "organisation__name", "organisation__slug"]
    list_select_related = ["organisation"]
    SAML_SHOWN = ["sp_entity_id", "sp_acs_url", "sp_certificate"]

    def get_fieldsets(self, request: HttpRequest, obj: IdentityProvider | None = None) -> list[Any]:
        mapping = [
            "username_claim",
            "email_claim",
            "phone_claim",
            "groups_claim",
            "role_mapping",
            "default_role",
        ]
        return [
            (None, {"fields": ["organisation", "name", "protocol", "issuer", "enabled", "enforced"]}),
            (
                _("OpenID Connect"),
                {"fields": ["client_id", "client_secret", "scopes", "redirect_uri", "secret_stored"]},
            ),
            (
                _("SAML 2.0"),
                {
                    "fields": [
                        "saml_metadata_url",
                        "saml_metadata_xml",
                        "saml_metadata_file",
                        "saml_allow_idp_initiated",
                        "saml_require_encryption",
                        *self.SAML_SHOWN,
                    ]
                },
            ),
            (_("Claim and role mapping"), {"fields": [*mapping, "trust_upstream_mfa"]}),
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: IdentityProvider | None = None) -> list[str]:
        fixed = ["redirect_uri", "secret_stored", *self.SAML_SHOWN, "created_at", "updated_at"]
        return ["organisation", *fixed] if obj is not None else fixed

    @admin.display(description=_("Redirect URI to register upstream"))
    def redirect_uri(self, obj: IdentityProvider) -> str:
        return upstream.callback_url(obj) if obj.pk else gettext("(shown once saved)")

    @admin.display(description=_("SP entity ID and metadata URL"))
    def sp_entity_id(self, obj: IdentityProvider) -> str:
        return saml.entity_id(obj) if obj.pk and obj.is_saml else "—"

    @admin.display(description=_("Assertion consumer service (ACS) URL"))
    def sp_acs_url(self, obj: IdentityProvider) -> str:
        return saml.acs_url(obj) if obj.pk and obj.is_saml else "—"

    @admin.display(description=_("SP certificate (SHA-256 fingerprint)"))
    def sp_certificate(self, obj: IdentityProvider) -> str:
        return saml.certificate_fingerprint(obj.saml_sp_certificate) if obj.saml_sp_certificate else "—"

    @admin.action(description=_("Generate a new SAML SP key (load our metadata into the IdP again)"))
    def new_saml_key(self, request: HttpRequest, queryset: QuerySet[IdentityProvider]) -> None:
        self.for_each(
            request,
            queryset.select_related("organisation"),
            lambda provider: services.rotate_saml_sp_key(actor=request.user, provider=provider),
            ngettext_lazy("%(count)d SP key generated.", "%(count)d SP keys generated.", "count"),
        )

    @admin.display(boolean=True, description=_("Secret stored"))
    def secret_stored(self, obj: IdentityProvider) -> bool:
        return obj.has_secret

    def save_model(
        self, request: HttpRequest, obj: IdentityProvider, form: forms.ModelForm, change: bool
    ) -> None:
        changed = {
            *form.changed_data,
            *(["saml_metadata_xml"] if form.cleaned_data.get("saml_metadata_file") else []),
        }
        names = (
            [n for n in changed if n in services.IDENTITY_PROVIDER_FIELDS]
            if change
            else [n for n in services.IDENTITY_PROVIDER_FIELDS if n in form.cleaned_data]
        )
        provider = calling(
            partial(
                services.configure_identity_provider,
                actor=request.user,
                organisation=obj.organisation,
                changes={name: form.cleaned_data[name] for name in names},
                client_secret=form.cleaned_data.get("client_secret") or None,
            )
        )
        obj.pk = provider.pk
        obj._state.adding = False

    def has_delete_permission(self, request: HttpRequest, obj: IdentityProvider | None = None) -> bool:
        return False  # switch it off (`enabled`) instead: that is audited


class OrganisationDomainForm(forms.ModelForm):
    class Meta:
        model = OrganisationDomain
        fields = ["organisation", "domain"]

    def clean_domain(self) -> str:
        try:
            return domains.normalize_domain(self.cleaned_data["domain"])
        except ValidationError as exc:
            raise ValidationError(exc.messages) from None  # on this field, not keyed by name


@admin.register(OrganisationDomain)
class OrganisationDomainAdmin(ServiceModelAdmin):
    form = OrganisationDomainForm
    list_display = ["domain", "organisation", "status", "verification_method", "verified_at"]
    list_filter = ["status", "verification_method"]
    search_fields = ["domain", "organisation__name", "organisation__slug"]
    list_select_related = ["organisation"]
    actions = ["approve", "check_dns", "remove"]

    def get_fields(self, request: HttpRequest, obj: OrganisationDomain | None = None) -> list[str]:
        if obj is None:
            return ["organisation", "domain"]
        return [
            "organisation",
            "domain",
            "status",
            "verification_method",
            "verified_at",
            "dns_record",
            "created_at",
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: OrganisationDomain | None = None) -> list[str]:
        return [] if obj is None else self.get_fields(request, obj)

    @admin.display(description=_("DNS record that proves the domain"))
    def dns_record(self, obj: OrganisationDomain) -> str:
        return format_html(
            "<code>{} TXT &quot;{}&quot;</code>", domains.record_name(obj), domains.record_value(obj)
        )

    def save_model(
        self, request: HttpRequest, obj: OrganisationDomain, form: forms.ModelForm, change: bool
    ) -> None:
        if change:
            return  # nothing is edited in place: add, verify or remove
        row = calling(
            partial(domains.add_domain, actor=request.user, organisation=obj.organisation, domain=obj.domain)
        )
        obj.pk = row.pk
        obj._state.adding = False

    def _each(
        self, request: HttpRequest, queryset: QuerySet[OrganisationDomain], done: Promise, call: Any
    ) -> None:
        self.for_each(request, queryset.select_related("organisation"), call, done)

    @admin.action(description=_("Approve selected domains (verified by an operator)"))
    def approve(self, request: HttpRequest, queryset: QuerySet[OrganisationDomain]) -> None:
        self._each(
            request,
            queryset,
            ngettext_lazy("%(count)d domain approved.", "%(count)d domains approved.", "count"),
            lambda d: domains.approve_domain(actor=request.user, domain=d),
        )

    @admin.action(description=_("Check the DNS TXT record of selected domains"))
    def check_dns(self, request: HttpRequest, queryset: QuerySet[OrganisationDomain]) -> None:
        self._each(
            request,
            queryset,
            ngettext_lazy("%(count)d domain verified.", "%(count)d domains verified.", "count"),
            lambda d: domains.verify_domain_by_dns(actor=request.user, domain=d),
        )

    @admin.action(description=_("Remove selected domains"))
    def remove(self, request: HttpRequest, queryset: QuerySet[OrganisationDomain]) -> None:
        self._each(
            request,
            queryset,
            ngettext_lazy("%(count)d domain removed.", "%(count)d domains removed.", "count"),
            lambda d: domains.remove_domain(actor=request.user, domain=d),
        )

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        found = super().get_actions(request)
        found.pop("delete_selected", None)  # "remove" goes through the service, audited
        return found

    def has_delete_permission(self, request: HttpRequest, obj: OrganisationDomain | None = None) -> bool:
        return False


@admin.register(UpstreamIdentity)
class UpstreamIdentityAdmin(ReadOnlyModelAdmin):
    """Read-only: links are made by sign-ins (accounts.sso) and end with their user."""

    list_display = ["user", "organisation", "issuer", "subject", "created_at", "last_login_at"]
    list_filter = ["organisation"]
    search_fields = ["subject", "issuer", "user__username", "user__email"]
    list_select_related = ["user", "organisation"]


# --- SCIM provisioning tokens: made and revoked through clients.scim_tokens (audited) ---------


class ScimTokenForm(forms.ModelForm):
    class Meta:
        model = ScimToken
        fields = ["organisation", "name"]


@admin.register(ScimToken)
class ScimTokenAdmin(ServiceModelAdmin):
    """The token is shown once, on the page that answers its creation; only its hash is kept."""

    form = ScimTokenForm
    list_display = [
        "name",
        "organisation",
        "prefix",
        "created_by",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    list_filter = ["organisation"]
    search_fields = ["name", "prefix", "organisation__name", "organisation__slug"]
    list_select_related = ["organisation", "created_by"]
    actions = ["revoke"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ScimToken]:
        tokens = super().get_queryset(request)
        visible = visible_organisations(request.user, Permission.SSO_MANAGE)
        return tokens if visible is None else tokens.filter(organisation_id__in=visible)

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        visible = visible_organisations(request.user, Permission.SSO_MANAGE)
        if db_field.name == "organisation" and visible is not None:
            field.queryset = field.queryset.filter(pk__in=visible)
        return field

    def get_fields(self, request: HttpRequest, obj: ScimToken | None = None) -> list[str]:
        if obj is None:
            return ["organisation", "name"]
        return ["organisation", "name", "prefix", "created_by", "created_at", "last_used_at", "revoked_at"]

    def get_readonly_fields(self, request: HttpRequest, obj: ScimToken | None = None) -> list[str]:
        return [] if obj is None else self.get_fields(request, obj)

    def save_model(self, request: HttpRequest, obj: ScimToken, form: forms.ModelForm, change: bool) -> None:
        if change:
            return  # nothing is edited in place: make a token, or revoke one
        row, token = calling(
            partial(
                scim_tokens.create_scim_token,
                actor=request.user,
                organisation=form.cleaned_data["organisation"],
                name=form.cleaned_data["name"],
            )
        )
        obj.pk = row.pk
        obj._state.adding = False
        request._scim_token_shown_once = token  # type: ignore[attr-defined]

    def response_add(
        self, request: HttpRequest, obj: ScimToken, post_url_continue: str | None = None
    ) -> HttpResponse:
        token = getattr(request, "_scim_token_shown_once", None)
        if token is None:
            return super().response_add(request, obj, post_url_continue)
        response = TemplateResponse(
            request,
            "admin/clients/scimtoken/created.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": gettext("SCIM token created"),
                "token_row": obj,
                "token": token,
                "base_url": request.build_absolute_uri("/scim/v2/"),
                "list_url": reverse("admin:clients_scimtoken_changelist"),
            },
        )
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description=_("Revoke selected tokens"))
    def revoke(self, request: HttpRequest, queryset: QuerySet[ScimToken]) -> None:
        self.for_each(
            request,
            queryset.select_related("organisation"),
            lambda t: scim_tokens.revoke_scim_token(actor=request.user, token=t),
            ngettext_lazy("%(count)d token revoked.", "%(count)d tokens revoked.", "count"),
        )

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        found = super().get_actions(request)
        found.pop("delete_selected", None)  # revoked, not deleted: the record of it stays
        return found

    def has_delete_permission(self, request: HttpRequest, obj: ScimToken | None = None) -> bool:
        return False
