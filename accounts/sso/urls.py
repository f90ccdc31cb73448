from django.urls import path

from accounts.sso import views

app_name = "sso"

urlpatterns = [
    path("<slug:slug>/login/", views.start, name="start"),
    # The redirect URI to register at the client's identity provider (clients.upstream.callback_url).
    path("<slug:slug>/callback/", views.callback, name="callback"),
]
