from django.contrib import admin
from django.urls import include, path

from accounts.views import home
from idp import health

admin.site.site_header = "Auth & User Service"
admin.site.site_title = "Auth & User Service"

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("admin/", admin.site.urls),
    path("accounts/", include("accounts.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("", home, name="home"),
]
