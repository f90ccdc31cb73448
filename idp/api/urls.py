from django.urls import path

from idp.api import rest

app_name = "api"

urlpatterns = [
    path("auth/login", rest.LoginView.as_view(), name="auth-login"),
    path("auth/validate", rest.ValidateView.as_view(), name="auth-validate"),
    path("auth/logout", rest.LogoutView.as_view(), name="auth-logout"),
    path("auth/check", rest.CheckView.as_view(), name="auth-check"),
    path("authz/check", rest.AuthzCheckView.as_view(), name="authz-check"),
]
