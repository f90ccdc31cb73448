from django.urls import path

from idp.oidc import views

app_name = "oidc"

# Only what we serve on purpose: no self-service client registration, no implicit flow. The device
# grant's page for people is `/device` (idp.urls): short, to be typed (RFC 8628 §3.2).
urlpatterns = [
    path("authorize/", views.AuthorizationView.as_view(), name="authorize"),
    path("token/", views.TokenView.as_view(), name="token"),
    path("par/", views.PushedAuthorizationRequestView.as_view(), name="par"),
    path("device_authorization/", views.DeviceAuthorizationView.as_view(), name="device-authorization"),
    path("revoke/", views.RevokeTokenView.as_view(), name="revoke-token"),
    path("introspect/", views.IntrospectTokenView.as_view(), name="introspect"),
    path("userinfo/", views.UserInfoView.as_view(), name="user-info"),
    path("logout/", views.LogoutView.as_view(), name="rp-initiated-logout"),
    path("jwks/", views.JwksView.as_view(), name="jwks-info"),
]
