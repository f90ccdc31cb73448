from django.urls import path

from accounts.sso import views

app_name = "sso"

urlpatterns = [
    path("<slug:slug>/login/", views.start, name="start"),
    # The redirect URI to register at the client's identity provider (clients.upstream.callback_url).
    path("<slug:slug>/callback/", views.callback, name="callback"),
    # SAML 2.0: our SP metadata (its URL is our entity ID) and the assertion consumer service.
    path("<slug:slug>/saml/metadata/", views.saml_metadata, name="saml_metadata"),
    path("<slug:slug>/saml/acs/", views.saml_acs, name="saml_acs"),
]
