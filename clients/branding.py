"""A B2B client's look on the pages its people see when they sign in: a name, a colour and a
logo, shown for that client's applications (the sign-in, second-factor and consent pages).

An uploaded logo is opened with Pillow, checked (PNG, JPEG or WebP; at most 256 KiB and 2,048 px
a side) and re-encoded as a PNG of at most 256 px a side: what is served is an image we wrote,
never the bytes someone sent (no polyglot, no metadata, no SVG script). It is served from our own
origin, so the pages' Content-Security-Policy stays as it is; the colour comes in a stylesheet
of ours, since the policy allows no inline style."""

from __future__ import annotations

import io
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from audit import services as audit
from audit.registry import AuditAction
from clients import ports
from clients.models import Organisation, OrganisationLogo
from clients.ports import Actor
from core.permissions import Permission

MAX_UPLOAD_BYTES = 256 * 1024
MAX_UPLOAD_SIDE = 2048
SHOWN_SIDE = 256
ACCEPTED_FORMATS = frozenset({"PNG", "JPEG", "WEBP"})


def normalised_logo(data: bytes) -> bytes:
    """The uploaded image as the PNG we serve, or ValidationError saying what is wrong with it."""
    # Pillow only when a logo is uploaded: every process loads the admin (and this) at start, and
    # Pillow would cost each of them 28 ms and 4.5 MB for nothing.
    from PIL import Image, UnidentifiedImageError

    if len(data) > MAX_UPLOAD_BYTES:
        raise ValidationError(_("The logo is larger than 256 KiB."), code="too_large")
    try:
        with Image.open(io.BytesIO(data)) as probe:
            kind, (width, height) = probe.format, probe.size
            probe.verify()  # a truncated or corrupt file fails here
        if kind not in ACCEPTED_FORMATS:
            raise ValidationError(_("The logo must be a PNG, JPEG or WebP image."), code="format")
        if width > MAX_UPLOAD_SIDE or height > MAX_UPLOAD_SIDE:
            raise ValidationError(_("The logo is larger than 2,048 pixels a side."), code="too_wide")
        with Image.open(io.BytesIO(data)) as image:  # verify() leaves the image unusable: again
            image.thumbnail((SHOWN_SIDE, SHOWN_SIDE))
            out = io.BytesIO()
            image.convert("RGBA").save(out, format="PNG", optimize=True)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise ValidationError(_("The logo is not an image that can be read."), code="unreadable") from None
    return out.getvalue()


@transaction.atomic
def set_logo(*, actor: Actor, organisation: Organisation, data: bytes | None) -> Organisation:
    """Replace (or with None remove) the client's logo; audited like its other changes."""
    ports.require_permission(actor, Permission.ORGANISATION_UPDATE, organisation_id=organisation.id)
    locked = Organisation.objects.select_for_update().get(pk=organisation.pk)
    if data is None:
        OrganisationLogo.objects.filter(organisation=locked).delete()
    else:
        OrganisationLogo.objects.update_or_create(
            organisation=locked, defaults={"png": normalised_logo(data)}
        )
    locked.brand_version += 1
    locked.save(update_fields=["brand_version", "updated_at"])
    audit.record(
        AuditAction.ORGANISATION_UPDATED,
        actor=actor,
        target=locked,
        organisation_id=locked.id,
        details={"fields": ["brand_logo"], "removed": data is None},
    )
    return locked


@dataclass(frozen=True)
class Brand:
    name: str
    logo_url: str
    css_url: str


def brand_of(organisation: Organisation | None) -> Brand | None:
    """What the pages show for `organisation`; None when it has no branding (or is suspended)."""
    if organisation is None or not organisation.is_active:
        return None
    has_logo = OrganisationLogo.objects.filter(pk=organisation.pk).exists()
    if not (organisation.brand_name or organisation.brand_colour or has_logo):
        return None
    version = f"?v={organisation.brand_version}"
    slug = organisation.slug
    return Brand(
        name=organisation.brand_name,
        logo_url=reverse("branding-logo", args=[slug]) + version if has_logo else "",
        css_url=reverse("branding-theme", args=[slug]) + version if organisation.brand_colour else "",
    )
