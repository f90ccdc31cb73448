from django.urls import path

from accounts import mfa_views, views

app_name = "accounts"

urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("logged-out/", views.logged_out, name="logged-out"),
    path("2fa/verify/", mfa_views.verify, name="mfa-verify"),
    path("2fa/enrol/", mfa_views.enrol, name="mfa-enrol"),
    path("2fa/", mfa_views.manage, name="mfa-manage"),
]
