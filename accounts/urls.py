from django.urls import path

from accounts import (
    activity_views,
    invitation_views,
    mfa_views,
    password_views,
    profile_views,
    session_views,
    views,
)
from core.lazy_views import lazy_view

app_name = "accounts"

urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("logged-out/", views.logged_out, name="logged-out"),
    path("invitation/<str:token>/", invitation_views.accept, name="invitation"),
    path("verify-email/<str:token>/", invitation_views.verify_email, name="verify-email"),
    path("2fa/verify/", mfa_views.verify, name="mfa-verify"),
    path("2fa/cancel/", mfa_views.cancel, name="mfa-cancel"),
    path("2fa/enrol/", mfa_views.enrol, name="mfa-enrol"),
    path("2fa/", mfa_views.manage, name="mfa-manage"),
    # Passkeys (accounts.passkeys): a ceremony's options, password-free sign-in, registration.
    # Imported on first use: py_webauthn stays out of workers that serve no passkey ceremony.
    path("passkey/options/", lazy_view("accounts.passkey_views.options"), name="passkey-options"),
    path("passkey/login/", lazy_view("accounts.passkey_views.login"), name="passkey-login"),
    path("2fa/passkey/", lazy_view("accounts.passkey_views.enrol"), name="passkey-enrol"),
    # Account security: passwords and sessions (accounts.passwords, accounts.session_registry).
    path("password/change/", password_views.password_change, name="password-change"),
    path("password/change/done/", password_views.password_change_done, name="password-change-done"),
    path("password/reset/", password_views.password_reset, name="password-reset"),
    path("password/reset/done/", password_views.password_reset_done, name="password-reset-done"),
    path(
        "password/reset/<uidb64>/<token>/",
        password_views.PasswordResetConfirmView.as_view(),
        name="password-reset-confirm",
    ),
    path("password/reset/complete/", password_views.password_reset_complete, name="password-reset-complete"),
    path("profile/", profile_views.profile_page, name="profile"),
    path("activity/", activity_views.activity, name="activity"),
    path("sessions/", session_views.session_list, name="sessions"),
    path("sessions/<uuid:session_id>/end/", session_views.session_end, name="session-end"),
    path("sessions/end-others/", session_views.session_end_others, name="sessions-end-others"),
]
