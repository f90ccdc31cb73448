"""What the service says about itself (RFC 7644 §4): /ServiceProviderConfig, /Schemas,
/ResourceTypes, built from the models in idp.scim.resources so that they cannot drift."""

from __future__ import annotations

from typing import Any

from scim2_models import (
    AuthenticationScheme,
    Bulk,
    ChangePassword,
    ETag,
    Filter,
    Meta,
    Pagination,
    Patch,
    ResourceType,
    Schema,
    ServiceProviderConfig,
    Sort,
)

from idp.scim.resources import ScimGroup, ScimUser

MAX_RESULTS = 200
DOCUMENTATION = "https://datatracker.ietf.org/doc/html/rfc7644"


def service_provider_config(base_url: str) -> ServiceProviderConfig:
    return ServiceProviderConfig(
        documentation_uri=DOCUMENTATION,
        patch=Patch(supported=True),
        bulk=Bulk(supported=False, max_operations=0, max_payload_size=0),
        filter=Filter(supported=True, max_results=MAX_RESULTS),
        change_password=ChangePassword(supported=False),
        sort=Sort(supported=False),
        etag=ETag(supported=True),
        pagination=Pagination(cursor=False, index=True, default_page_size=100, max_page_size=MAX_RESULTS),
        authentication_schemes=[
            AuthenticationScheme(
                type="oauthbearertoken",
                name="SCIM token",
                description="A bearer token made for the B2B client in the admin or the REST API.",
                primary=True,
            )
        ],
        meta=Meta(resource_type="ServiceProviderConfig", location=f"{base_url}/ServiceProviderConfig"),
    )


def schemas(base_url: str) -> list[Schema]:
    found = []
    for model, name, description in (
        (ScimUser, "User", "User Account"),
        (ScimGroup, "Group", "Group: one of the B2B client's roles"),
    ):
        schema = model.to_schema()
        schema.name = name
        schema.description = description
        schema.meta = Meta(resource_type="Schema", location=f"{base_url}/Schemas/{schema.id}")
        found.append(schema)
    return found


def resource_types(base_url: str) -> list[ResourceType]:
    found = []
    for model, description in (
        (ScimUser, "User Account"),
        (ScimGroup, "Group: one of the B2B client's roles"),
    ):
        resource_type = ResourceType.from_resource(model)
        resource_type.description = description
        resource_type.schema_extensions = None
        resource_type.meta = Meta(
            resource_type="ResourceType", location=f"{base_url}/ResourceTypes/{resource_type.id}"
        )
        found.append(resource_type)
    return found


def by_id(items: list[Any], item_id: str) -> Any | None:
    return next((item for item in items if str(item.id) == item_id), None)
