from django.contrib import admin
from django.http import HttpRequest, HttpResponsePermanentRedirect
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from accounts.views import admin_login, home
from clients import branding_views
from idp import dashboard, health, metrics
from idp.oidc import connected_views, device_views
from idp.oidc import views as oidc_views

# Each app's admin.py registers its pages here, not at django.setup() (settings: SimpleAdminConfig).
admin.autodiscover()
admin.site.site_header = "Auth & User Service"
admin.site.site_title = "Auth & User Service"
# The navigation sidebar took a quarter of a 1,280 px screen and cut the lists' columns; the
# breadcrumbs and the index lead everywhere it did.
admin.site.enable_nav_sidebar = False
dashboard.install(admin.site)

# The admin pages of the B2B clients were named after the model's old name, `Client`; operators'
# bookmarks still work.
_RENAMED_ADMIN_PAGES = {"client": "organisation", "clientdomain": "organisationdomain"}


def _renamed_admin_page(request: HttpRequest, model: str, rest: str) -> HttpResponsePermanentRedirect:
    query = request.META.get("QUERY_STRING", "")
    target = f"/admin/clients/{_RENAMED_ADMIN_PAGES[model]}/{rest}"
    return HttpResponsePermanentRedirect(f"{target}?{query}" if query else target)


urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics, name="metrics"),
    path(".well-known/openid-configuration", oidc_views.DiscoveryView.as_view(), name="oidc-discovery"),
    path(".well-known/jwks.json", oidc_views.JwksView.as_view(), name="jwks"),
    path("o/", include("idp.oidc.urls")),
    path("api/v1/", include("idp.api.urls")),
    path("api/v1/", include("accounts.api_urls")),
    # SCIM 2.0 provisioning of a B2B client's users by its own directory (idp.scim).
    path("scim/v2/", include("idp.scim.urls")),
    path("api/v1/schema", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's start-up code as a script file, so the CSP needs no inline.
    path("api/v1/docs", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("admin/login/", admin_login, name="admin-login"),
    re_path(r"^admin/clients/(?P<model>client|clientdomain)/(?P<rest>.*)$", _renamed_admin_page),
    # The admin header's "Change password" is our page (accounts.passwords: checked, audited,
    # evented, other sessions ended), never Django's stock form.
    path(
        "admin/password_change/",
        RedirectView.as_view(pattern_name="accounts:password-change"),
        name="admin-password-change",
    ),
    path("admin/", admin.site.urls),
    # The account console's connected applications live with the OIDC layer that issued their access.
    path("accounts/applications/", connected_views.applications, name="oidc-applications"),
    path(
        "accounts/applications/<str:client_id>/withdraw/",
        connected_views.withdraw,
        name="oidc-application-withdraw",
    ),
    # RFC 8628 §3.2: the verification URI is typed by people, so it is short.
    path("device", device_views.enter_code, name="oidc-device"),
    path("device/confirm", device_views.confirm, name="oidc-device-confirm"),
    path("branding/<slug:slug>/logo.png", branding_views.logo, name="branding-logo"),
    path("branding/<slug:slug>/theme.css", branding_views.theme, name="branding-theme"),
    path("accounts/", include("accounts.urls")),
    path("sso/", include("accounts.sso.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("", home, name="home"),
]

# A store outage met in a middleware is a 503 as well as one met in a view (core.outages).
handler500 = "core.outages.server_error"
