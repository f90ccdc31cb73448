from django.urls import path

from accounts import api

# Mounted under /api/v1/ (idp/urls.py).
urlpatterns = [
    path("me", api.MeView.as_view(), name="api-me"),
    path("users", api.UsersView.as_view(), name="api-users"),
    path("users/<uuid:user_id>", api.UserView.as_view(), name="api-user"),
    path("users/<uuid:user_id>/role", api.UserRoleView.as_view(), name="api-user-role"),
    path("users/<uuid:user_id>/block", api.UserBlockView.as_view(), name="api-user-block"),
    path("users/<uuid:user_id>/unblock", api.UserUnblockView.as_view(), name="api-user-unblock"),
    path("users/<uuid:user_id>/permissions", api.UserGrantsView.as_view(), name="api-user-permissions"),
    path(
        "users/<uuid:user_id>/permissions/<str:permission>",
        api.UserGrantView.as_view(),
        name="api-user-grant",
    ),
    path("users/<uuid:user_id>/sessions", api.UserSessionsView.as_view(), name="api-user-sessions"),
    path("clients", api.OrganisationsView.as_view(), name="api-clients"),
    path("clients/<uuid:client_id>/scim-tokens", api.ScimTokensView.as_view(), name="api-scim-tokens"),
    path(
        "clients/<uuid:client_id>/scim-tokens/<uuid:token_id>",
        api.ScimTokenView.as_view(),
        name="api-scim-token",
    ),
    path("invitations", api.InvitationsView.as_view(), name="api-invitations"),
    path("audit", api.AuditView.as_view(), name="api-audit"),
]
