from django.urls import path, re_path

from core.lazy_views import View, lazy_view


def _view(name: str) -> View:
    # Imported on the first SCIM request: scim2-models and pydantic stay out of web workers that
    # serve none (core.lazy_views). Every SCIM view is csrf_exempt (a bearer token, no cookie).
    return lazy_view(f"idp.scim.views.{name}", csrf_exempt=True)


# Mounted under /scim/v2/ (idp/urls.py). RFC 7644 §3.2: resource endpoints without a trailing slash.
urlpatterns = [
    path("ServiceProviderConfig", _view("ServiceProviderConfigView"), name="scim-config"),
    path("Schemas", _view("SchemasView"), name="scim-schemas"),
    path("Schemas/<str:item_id>", _view("SchemasView"), name="scim-schema"),
    path("ResourceTypes", _view("ResourceTypesView"), name="scim-resource-types"),
    path("ResourceTypes/<str:item_id>", _view("ResourceTypesView"), name="scim-resource-type"),
    path("Users", _view("UsersView"), name="scim-users"),
    path("Users/.search", _view("UsersSearchView"), name="scim-users-search"),
    path("Users/<str:user_id>", _view("UserView"), name="scim-user"),
    path("Groups", _view("GroupsView"), name="scim-groups"),
    path("Groups/.search", _view("GroupsSearchView"), name="scim-groups-search"),
    path("Groups/<str:group_id>", _view("GroupView"), name="scim-group"),
    path(".search", _view("RootSearchView"), name="scim-search"),
    re_path(r"^.*$", _view("UnknownView"), name="scim-unknown"),
]
