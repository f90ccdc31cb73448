"""A B2B client's logo and colour, served from our own origin for its sign-in pages
(clients.branding). Public: they are shown before anyone signs in."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_GET

from clients.models import Organisation, OrganisationLogo

# The URLs carry the branding's version (?v=), so a change is seen at once; an hour otherwise.
CACHE = "public, max-age=3600"


def _branded(slug: str) -> Organisation:
    organisation = get_object_or_404(Organisation, slug=slug)
    if not organisation.is_active:
        raise Http404("no such client")
    return organisation


@require_GET
def logo(request: HttpRequest, slug: str) -> HttpResponse:
    png = OrganisationLogo.objects.filter(organisation=_branded(slug)).values_list("png", flat=True).first()
    if png is None:
        raise Http404("no logo")
    response = HttpResponse(bytes(png), content_type="image/png")
    response["Cache-Control"] = CACHE
    response["Content-Security-Policy"] = "default-src 'none'"  # an image, never a document
    return response


@require_GET
def theme(request: HttpRequest, slug: str) -> HttpResponse:
    organisation = _branded(slug)
    colour = organisation.brand_colour  # validated as #RRGGBB (Organisation.brand_colour)
    if not colour:
        raise Http404("no colour")
    css = (
        f":root {{ --brand: {colour}; }}\n"
        "button:not(.secondary):not(.link) { background: var(--brand); }\n"
        "a { color: var(--brand); }\n"
    )
    response = HttpResponse(css, content_type="text/css; charset=utf-8")
    response["Cache-Control"] = CACHE
    return response
