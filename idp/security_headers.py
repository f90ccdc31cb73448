"""Headers every HTML page gets: a Content Security Policy and `Cache-Control: no-store`.

The pages are sign-in, second factor, consent, password and session pages, and the admin: none
should be kept by a browser's or a proxy's cache, nor framed, nor run a script we did not serve.
(HSTS, nosniff, Referrer-Policy and the frame-denying X-Frame-Options come from Django's
SecurityMiddleware and XFrameOptionsMiddleware.)
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.cache import patch_cache_control

# No 'unsafe-inline': styles come from static/idp/base.css, and no page has inline script.
# No form-action either: the login and consent forms end in redirects to relying parties'
# registered redirect URIs, which Chrome checks against form-action and would block.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "img-src 'self' data:",
        "style-src 'self'",
        "script-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
)


def _is_html(response: HttpResponse) -> bool:
    return response.get("Content-Type", "").split(";", 1)[0].strip().lower() == "text/html"


class SecurityHeadersMiddleware:
    """Goes right after SecurityMiddleware, so that it sees every response of the views below."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not _is_html(response):
            return response
        # Django's own debug error pages (DEBUG=1 only) are styled inline; let them render.
        if not (settings.DEBUG and response.status_code >= 400):
            response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        patch_cache_control(response, no_store=True)
        return response
