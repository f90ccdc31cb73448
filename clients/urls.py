from django.urls import path

from clients import sso_views

app_name = "sso"

urlpatterns = [
    path("<slug:slug>/login/", sso_views.start, name="start"),
    # The redirect URI to register at the client's identity provider (clients.sso.callback_url).
    path("<slug:slug>/callback/", sso_views.callback, name="callback"),
]
