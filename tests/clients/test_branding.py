"""A B2B client's name, colour and logo on its applications' sign-in pages."""

from __future__ import annotations

import io
import re
from urllib.parse import urlencode

import pytest
from django.core.exceptions import ValidationError
from PIL import Image

from audit.models import AuditLog
from audit.registry import AuditAction
from clients import branding, domains, services
from clients.models import OrganisationLogo
from tests.idp.oidc.conftest import REDIRECT_URI, make_app

pytestmark = pytest.mark.django_db


def _image(kind: str = "PNG", size: tuple[int, int] = (600, 300)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (11, 95, 255)).save(out, format=kind)
    return out.getvalue()


def test_a_logo_is_checked_and_re_encoded_as_a_small_png():
    png = branding.normalised_logo(_image("JPEG"))
    with Image.open(io.BytesIO(png)) as shown:
        assert (shown.format, shown.size) == ("PNG", (256, 128))
    for bad, code in (
        (b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>", "unreadable"),
        (b"GIF89a" + b"\x00" * 100, "unreadable"),
        (_image("PNG")[:200], "unreadable"),  # truncated
        (_image("GIF"), "format"),
        (_image("PNG", (3000, 10)), "too_wide"),
        (b"\x89PNG" + b"\x00" * (branding.MAX_UPLOAD_BYTES + 1), "too_large"),
    ):
        with pytest.raises(ValidationError) as refused:
            branding.normalised_logo(bad)
        assert refused.value.code == code


def test_the_sign_in_pages_of_a_clients_application_carry_its_brand(client, acme, admin_user):
    services.update_organisation(
        actor=None, organisation=acme, changes={"brand_name": "Acme Parcels", "brand_colour": "#0b5fff"}
    )
    branding.set_logo(actor=admin_user, organisation=acme, data=_image())
    acme.refresh_from_db()
    app, _ = make_app(name="Acme portal")
    app.organisation = acme
    app.save()
    plain, _ = make_app(name="Other portal")
    authorize = "/o/authorize/?" + urlencode(
        {"response_type": "code", "client_id": app.client_id, "redirect_uri": REDIRECT_URI, "scope": "openid"}
    )

    page = client.get("/accounts/login/", {"next": authorize}).content.decode()

    assert "Acme Parcels" in page
    assert f'src="/branding/acme/logo.png?v={acme.brand_version}"' in page
    assert f'href="/branding/acme/theme.css?v={acme.brand_version}"' in page
    other = client.get("/accounts/login/", {"next": authorize.replace(app.client_id, plain.client_id)})
    assert "Acme Parcels" not in other.content.decode()
    assert 'class="brand"' not in client.get("/accounts/login/").content.decode()

    logo = client.get(f"/branding/acme/logo.png?v={acme.brand_version}")
    assert logo["Content-Type"] == "image/png"
    assert logo["Content-Security-Policy"] == "default-src 'none'"
    assert Image.open(io.BytesIO(logo.content)).format == "PNG"
    theme = client.get("/branding/acme/theme.css").content.decode()
    assert "--brand: #0b5fff" in theme
    assert AuditLog.objects.filter(
        action=AuditAction.ORGANISATION_UPDATED, details__fields=["brand_logo"]
    ).exists()


def test_a_work_domain_in_the_login_hint_brings_its_clients_brand(client, acme):
    services.update_organisation(actor=None, organisation=acme, changes={"brand_name": "Acme Parcels"})
    domains.approve_domain(
        actor=None, domain=domains.add_domain(actor=None, organisation=acme, domain="acme.example")
    )
    page = client.get("/accounts/login/", {"login_hint": "ivan@acme.example"}).content.decode()
    assert "Acme Parcels" in page


def test_a_suspended_clients_brand_is_not_shown_and_a_bad_colour_is_refused(client, acme):
    with pytest.raises(ValidationError):
        services.update_organisation(actor=None, organisation=acme, changes={"brand_colour": "red;}body{x"})
    services.update_organisation(actor=None, organisation=acme, changes={"brand_colour": "#112233"})
    assert client.get("/branding/acme/theme.css").status_code == 200
    services.update_organisation(actor=None, organisation=acme, changes={"status": "suspended"})
    assert client.get("/branding/acme/theme.css").status_code == 404
    assert client.get("/branding/acme/logo.png").status_code == 404
    assert client.get("/branding/nobody/logo.png").status_code == 404


def test_an_operator_uploads_a_logo_on_the_clients_page_and_a_bad_one_is_refused_beside_the_field(
    admin_client, acme
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    url = f"/admin/clients/organisation/{acme.pk}/change/"
    page = admin_client.get(url).content.decode()
    hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page))
    form = {
        **hidden,
        "name": acme.name,
        "status": "active",
        "brand_name": "Acme Parcels",
        "brand_colour": "#0b5fff",
    }

    bad = admin_client.post(url, {**form, "logo": SimpleUploadedFile("x.svg", b"<svg/>", "image/svg+xml")})
    assert bad.status_code == 200
    assert "The logo is not an image that can be read." in bad.content.decode()
    acme.refresh_from_db()
    assert not OrganisationLogo.objects.filter(organisation=acme).exists()
    assert acme.brand_name == ""  # nothing of a refused form is saved

    good = admin_client.post(url, {**form, "logo": SimpleUploadedFile("logo.png", _image(), "image/png")})
    assert good.status_code == 302, good.content.decode()[:2000]
    acme.refresh_from_db()
    assert acme.brand_name == "Acme Parcels"
    assert Image.open(io.BytesIO(bytes(OrganisationLogo.objects.get(organisation=acme).png))).size == (
        256,
        128,
    )
