from django.urls import path, re_path

from idp.scim import views

# Mounted under /scim/v2/ (idp/urls.py). RFC 7644 §3.2: resource endpoints without a trailing slash.
urlpatterns = [
    path("ServiceProviderConfig", views.ServiceProviderConfigView.as_view(), name="scim-config"),
    path("Schemas", views.SchemasView.as_view(), name="scim-schemas"),
    path("Schemas/<str:item_id>", views.SchemasView.as_view(), name="scim-schema"),
    path("ResourceTypes", views.ResourceTypesView.as_view(), name="scim-resource-types"),
    path("ResourceTypes/<str:item_id>", views.ResourceTypesView.as_view(), name="scim-resource-type"),
    path("Users", views.UsersView.as_view(), name="scim-users"),
    path("Users/.search", views.UsersSearchView.as_view(), name="scim-users-search"),
    path("Users/<str:user_id>", views.UserView.as_view(), name="scim-user"),
    path("Groups", views.GroupsView.as_view(), name="scim-groups"),
    path("Groups/.search", views.GroupsSearchView.as_view(), name="scim-groups-search"),
    path("Groups/<str:group_id>", views.GroupView.as_view(), name="scim-group"),
    path(".search", views.RootSearchView.as_view(), name="scim-search"),
    re_path(r"^.*$", views.UnknownView.as_view(), name="scim-unknown"),
]
