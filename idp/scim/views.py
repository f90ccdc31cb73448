"""The SCIM 2.0 endpoints (RFC 7644 §3): Users, Groups and the discovery documents.

Each request: rate limit, the organisation's SCIM token (idp.scim.auth), then the resource. Reads
see only the token's organisation (another organisation's user is 404, as is an unknown id);
changes go through accounts.services as the organisation's directory (the system, bounded as
idp.scim.auth says), inside one transaction, with the token named in every audit record (`via`).
Errors are SCIM Error messages (RFC 7644 §3.12)."""

from __future__ import annotations

import dataclasses
import json
import uuid
from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt
from pydantic import ValidationError
from scim2_models import (
    Context,
    Error,
    InvalidSyntaxException,
    InvalidValueException,
    ListResponse,
    MutabilityException,
    NotImplementedException,
    PatchOp,
    PreconditionFailedException,
    ResourceType,
    Schema,
    SCIMException,
    ScimPolicy,
    SearchRequest,
    UniquenessException,
)

from accounts import services
from accounts.models import Role, User
from core import context, ratelimit
from core.bounded_json import JSONBodyError, load_json_body
from idp.scim import discovery, filters
from idp.scim.auth import Caller, authenticate
from idp.scim.resources import (
    GROUP_ROLES,
    Desired,
    ScimGroup,
    ScimUser,
    desired_from,
    to_scim_group,
    to_scim_user,
    user_location,
    version_of,
)

CONTENT_TYPE = "application/scim+json"
ACCEPTED_TYPES = frozenset({CONTENT_TYPE, "application/json"})
MAX_BODY_BYTES = 1024 * 1024  # a group's member list can be long
MAX_BODY_DEPTH = 16
DEFAULT_COUNT = 100
REASON = "SCIM provisioning"
# The organisation's directory acts as the system does for SSO provisioning (idp.scim.auth): the
# bounds are this module's queries (one organisation) and resources (its two roles, no admin
# access, no password).
DIRECTORY = None
# What Entra ID and Okta send beside the RFC: attributes we do not keep (the enterprise extension,
# displayName...) are dropped, a `remove` may name its values in `value`, and a `replace` of
# emails[type eq "work"].value on a user without one adds it.
POLICY = ScimPolicy(
    unknown=ScimPolicy.Unknown.ignore,
    remove_value_as_filter=ScimPolicy.RemoveValue.apply,
    unmatched_path_filter=ScimPolicy.UnmatchedPathFilter.create,
)


def scim_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> HttpResponse:
    response = HttpResponse(json.dumps(payload), status=status, content_type=CONTENT_TYPE)
    response["Cache-Control"] = "no-store"
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def error_response(status: int, detail: str, scim_type: str | None = None) -> HttpResponse:
    return _error(Error(status=status, scim_type=scim_type, detail=detail))


def _error(error: Error) -> HttpResponse:
    return scim_response(
        error.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE), status=int(error.status or 400)
    )


def _validation_error(exc: DjangoValidationError) -> HttpResponse:
    codes: set[str] = set()
    if hasattr(exc, "error_dict"):
        for errors in exc.error_dict.values():
            codes.update(str(e.code) for e in errors)
    else:
        codes.update(str(e.code) for e in exc.error_list)
    if codes & {"login_taken", "unique"}:
        return error_response(409, "; ".join(exc.messages), "uniqueness")
    return error_response(400, "; ".join(exc.messages), "invalidValue")


def _tags(header: str) -> set[str]:
    return {tag.strip() for tag in header.split(",") if tag.strip()}


def _limited(limit_name: str, subject: str) -> HttpResponse | None:
    decision = ratelimit.hit(ratelimit.configured(limit_name), subject)
    if decision.allowed:
        return None
    response = error_response(429, "too many requests: try again later")
    response["Retry-After"] = str(max(1, decision.retry_after))
    return response


def _refuse_password(data: dict[str, Any]) -> None:
    """Passwords are not taken over SCIM (the published schema has none): refused, not dropped,
    so that a directory set to sync passwords learns it at once."""
    keys = {str(key) for key in data}
    operations = data.get("Operations") or data.get("operations") or []
    for operation in operations if isinstance(operations, list) else []:
        if isinstance(operation, dict):
            keys.add(str(operation.get("path", "")))
            value = operation.get("value")
            if isinstance(value, dict):
                keys.update(str(key) for key in value)
    # "password", or qualified by its schema ("urn:…:User:password").
    if any(key.lower().rsplit(":", 1)[-1] == "password" for key in keys):
        raise MutabilityException(detail="passwords are not set over SCIM: people sign in through SSO")


@method_decorator(csrf_exempt, name="dispatch")
class ScimView(View):
    caller: Caller
    base_url: str

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        limited = _limited("scim-ip", request.META.get("REMOTE_ADDR") or "")
        if limited is not None:
            return limited
        caller = authenticate(request)
        if caller is None:
            response = error_response(401, "a valid SCIM token is required")
            response["WWW-Authenticate"] = 'Bearer realm="scim"'
            return response
        limited = _limited("scim-token", str(caller.token.pk))
        if limited is not None:
            return limited
        self.caller = caller
        self.base_url = request.build_absolute_uri("/scim/v2")
        bound = dataclasses.replace(context.current(), via=caller.via, via_label=caller.via_label)
        with context.bind(bound), POLICY:
            try:
                return super().dispatch(request, *args, **kwargs)
            except Http404:
                return error_response(404, "no such resource")
            except SCIMException as exc:
                return _error(exc.to_error())
            except ValidationError as exc:
                return _error(Error.from_validation_errors(exc)[0])
            except DjangoValidationError as exc:
                return _validation_error(exc)
            except PermissionDenied as exc:
                return error_response(403, str(exc) or "not allowed")
            except JSONBodyError as exc:
                return error_response(400, str(exc), "invalidSyntax")

    def http_method_not_allowed(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = error_response(405, f"{request.method} is not supported here")
        response["Allow"] = ", ".join(m.upper() for m in self._allowed_methods())
        return response

    def body(self, request: HttpRequest) -> dict[str, Any]:
        if request.content_type not in ACCEPTED_TYPES:
            given = request.content_type or "none"
            raise InvalidSyntaxException(detail=f"the body must be {CONTENT_TYPE}, not {given}")
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > MAX_BODY_BYTES:
            raise InvalidSyntaxException(detail=f"the body is larger than {MAX_BODY_BYTES} bytes")
        data = load_json_body(request.body, max_bytes=MAX_BODY_BYTES, max_depth=MAX_BODY_DEPTH)
        if not isinstance(data, dict):
            raise InvalidSyntaxException(detail="the body must be a JSON object")
        _refuse_password(data)
        return data

    # --- users of the caller's organisation -----------------------------------------------

    def users(self) -> Any:
        return User.objects.select_related("organisation").filter(organisation=self.caller.organisation)

    def user(self, user_id: str) -> User:
        try:
            pk = uuid.UUID(user_id)
        except ValueError:
            raise Http404 from None
        found = self.users().filter(pk=pk).first()
        if found is None:
            raise Http404
        return found

    def login_taken(self, username: str, *, other_than: User | None = None) -> bool:
        taken = self.users().filter(username__iexact=User.normalize_username(username))
        if other_than is not None:
            taken = taken.exclude(pk=other_than.pk)
        return taken.exists()

    def user_response(self, user: User, status: int = 200, parameters: Any = None) -> HttpResponse:
        resource = to_scim_user(user, base_url=self.base_url)
        ctx = Context.RESOURCE_CREATION_RESPONSE if status == 201 else Context.RESOURCE_QUERY_RESPONSE
        headers = {"ETag": version_of(user)}
        if status == 201:
            headers["Location"] = user_location(self.base_url, user)
        return scim_response(
            resource.model_dump(scim_ctx=ctx, response_parameters=parameters), status=status, headers=headers
        )

    def apply(self, user: User, desired: Desired) -> User:
        """Bring `user` to `desired` through the services, in the caller's transaction."""
        if not desired.username:
            raise InvalidValueException(detail="userName is required")
        if desired.username != user.username and self.login_taken(desired.username, other_than=user):
            raise UniquenessException(detail="this userName is taken")
        actor = DIRECTORY
        changes = {name: value for name, value in desired.profile().items() if getattr(user, name) != value}
        if changes:
            user = services.update_user(actor=actor, user=user, changes=changes)
        if desired.active and user.status != User.Status.ACTIVE:
            user = services.unblock_user(actor=actor, user=user, reason=REASON)
        elif not desired.active and user.status == User.Status.ACTIVE:
            # Blocked: sign-ins refused, tokens revoked and blacklisted, relying parties logged
            # out over the back channel (accounts.token_revocation).
            user = services.block_user(actor=actor, user=user, reason=REASON)
        return user


def _precondition(request: HttpRequest, version: str) -> None:
    """RFC 7644 §3.14, RFC 7232 §3.1: a change names the version it was made against."""
    wanted = request.headers.get("If-Match")
    if wanted is None:
        return
    tags = _tags(wanted)
    if "*" not in tags and version not in tags and version.removeprefix("W/") not in tags:
        raise PreconditionFailedException(detail="the resource changed since that version")


def _not_modified(request: HttpRequest, version: str) -> bool:
    tags = _tags(request.headers.get("If-None-Match", ""))
    return "*" in tags or version in tags


def _search_params(request: HttpRequest) -> dict[str, str]:
    return {key: request.GET[key] for key in request.GET}


def _page(search: SearchRequest[Any]) -> tuple[int, int]:
    start = search.start_index_0 or 0
    count = DEFAULT_COUNT if search.count is None else min(search.count, discovery.MAX_RESULTS)
    return start, count


class UsersView(ScimView):
    def get(self, request: HttpRequest) -> HttpResponse:
        search = SearchRequest[ScimUser].model_validate(
            _search_params(request), scim_ctx=Context.SEARCH_REQUEST
        )
        return self.search(search)

    def search(self, search: SearchRequest[ScimUser]) -> HttpResponse:
        users = self.users()
        if search.filter:
            users = users.filter(filters.to_q(filters.parse(str(search.filter))))
        users = users.order_by("created_at", "id")
        start, count = _page(search)
        total = users.count()
        page = list(users[start : start + count]) if count else []
        listing = ListResponse[ScimUser](
            total_results=total,
            start_index=start + 1,
            items_per_page=len(page),
            resources=[to_scim_user(user, base_url=self.base_url) for user in page],
        )
        return scim_response(listing.model_dump(scim_ctx=Context.SEARCH_RESPONSE, response_parameters=search))

    def post(self, request: HttpRequest) -> HttpResponse:
        resource = ScimUser.model_validate(self.body(request), scim_ctx=Context.RESOURCE_CREATION_REQUEST)
        desired = desired_from(resource)
        if self.login_taken(desired.username):
            raise UniquenessException(detail="this userName is taken")
        with transaction.atomic():
            user = services.create_user(
                actor=DIRECTORY,
                username=desired.username,
                password=None,  # SSO or a password the person sets: never one sent over SCIM
                email=desired.email,
                phone=desired.phone,
                given_name=desired.given_name,
                family_name=desired.family_name,
                external_id=desired.external_id,
                role=Role.CLIENT_USER,
                organisation=self.caller.organisation,
                status=User.Status.ACTIVE if desired.active else User.Status.BLOCKED,
            )
        return self.user_response(user, status=201)


class UsersSearchView(UsersView):
    """RFC 7644 §3.4.3: the same query, sent as a POST body."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> HttpResponse:
        search = SearchRequest[ScimUser].model_validate(self.body(request), scim_ctx=Context.SEARCH_REQUEST)
        return self.search(search)


class UserView(ScimView):
    def get(self, request: HttpRequest, user_id: str) -> HttpResponse:
        user = self.user(user_id)
        if _not_modified(request, version_of(user)):
            return HttpResponse(status=304, headers={"ETag": version_of(user)})
        parameters = SearchRequest[ScimUser].model_validate(
            _search_params(request), scim_ctx=Context.SEARCH_REQUEST
        )
        return self.user_response(user, parameters=parameters)

    def put(self, request: HttpRequest, user_id: str) -> HttpResponse:
        user = self.user(user_id)
        resource = ScimUser.model_validate(self.body(request), scim_ctx=Context.RESOURCE_REPLACEMENT_REQUEST)
        with transaction.atomic():
            user = self.locked(user_id)
            _precondition(request, version_of(user))
            user = self.apply(user, desired_from(resource, active_default=user.status == User.Status.ACTIVE))
        return self.user_response(user)

    def patch(self, request: HttpRequest, user_id: str) -> HttpResponse:
        self.user(user_id)
        patch = PatchOp[ScimUser].model_validate(self.body(request), scim_ctx=Context.RESOURCE_PATCH_REQUEST)
        with transaction.atomic():
            user = self.locked(user_id)
            _precondition(request, version_of(user))
            resource = to_scim_user(user, base_url=self.base_url)
            patch.patch(resource)
            if resource.active is None:
                # A person here is active or not; an unassigned `active` would be a guess.
                raise MutabilityException(detail="active cannot be removed: set it to true or false")
            user = self.apply(user, desired_from(resource, active_default=user.status == User.Status.ACTIVE))
        return self.user_response(user)

    def delete(self, request: HttpRequest, user_id: str) -> HttpResponse:
        with transaction.atomic():
            user = self.locked(user_id)
            _precondition(request, version_of(user))
            services.delete_user(actor=DIRECTORY, user=user, reason=REASON)
        return HttpResponse(status=204)

    def locked(self, user_id: str) -> User:
        """The user, row-locked for the change: two directories' writes cannot interleave."""
        user = self.user(user_id)
        return self.users().select_for_update(of=("self",)).get(pk=user.pk)


# --- groups: the organisation's roles ------------------------------------------------------


class GroupsBase(ScimView):
    def members(self, role: str) -> list[tuple[str, str]]:
        rows = self.users().filter(role=role).order_by("username", "id").values_list("pk", "username")
        return [(str(pk), username) for pk, username in rows]

    def role(self, group_id: str) -> str:
        if group_id not in GROUP_ROLES:
            raise Http404
        return group_id

    def group_response(self, role: str, parameters: Any = None) -> HttpResponse:
        group = to_scim_group(role, self.members(role), base_url=self.base_url)
        return scim_response(
            group.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE, response_parameters=parameters),
            headers={"ETag": str(group.meta.version) if group.meta else ""},
        )

    def set_members(self, role: str, wanted: set[str]) -> None:
        """Give `role` to the users in `wanted` and take it from the others who hold it; taking
        the administrator role leaves the user a user, and nobody is left without a role."""
        current = {pk for pk, _ in self.members(role)}
        added, removed = wanted - current, current - wanted
        ids = []
        for value in added | removed:
            try:
                ids.append(uuid.UUID(value))
            except ValueError:
                raise InvalidValueException(detail=f"no such user: {value}") from None
        found = {str(user.pk): user for user in self.users().filter(pk__in=ids)}
        missing = sorted(added - found.keys())
        if missing:
            raise InvalidValueException(detail=f"no such user: {missing[0]}")
        actor = DIRECTORY
        for pk in sorted(added):
            services.change_role(actor=actor, user=found[pk], role=role, reason=REASON)
        if role == Role.CLIENT_ADMIN:
            for pk in sorted(removed):
                services.change_role(actor=actor, user=found[pk], role=Role.CLIENT_USER, reason=REASON)


class GroupsView(GroupsBase):
    def get(self, request: HttpRequest) -> HttpResponse:
        search = SearchRequest[ScimGroup].model_validate(
            _search_params(request), scim_ctx=Context.SEARCH_REQUEST
        )
        return self.search(search)

    def search(self, search: SearchRequest[ScimGroup]) -> HttpResponse:
        # Entra ID looks groups up by name with excludedAttributes=members: a large
        # organisation's member lists are then not read at all.
        excluded = {str(path).lower() for path in search.excluded_attributes or []}
        wanted = "members" not in excluded or "members" in str(search.filter or "").lower()
        groups = [
            to_scim_group(role, self.members(role) if wanted else None, base_url=self.base_url)
            for role in GROUP_ROLES
        ]
        if search.filter:
            groups = [group for group in groups if search.filter.match(group)]
        start, count = _page(search)
        page = groups[start : start + count] if count else []
        listing = ListResponse[ScimGroup](
            total_results=len(groups), start_index=start + 1, items_per_page=len(page), resources=page
        )
        return scim_response(listing.model_dump(scim_ctx=Context.SEARCH_RESPONSE, response_parameters=search))

    def post(self, request: HttpRequest) -> HttpResponse:
        raise NotImplementedException(
            detail="the groups are the B2B client's roles (client_admin, client_user): they cannot be created"
        )


class GroupsSearchView(GroupsView):
    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> HttpResponse:
        search = SearchRequest[ScimGroup].model_validate(self.body(request), scim_ctx=Context.SEARCH_REQUEST)
        return self.search(search)


class GroupView(GroupsBase):
    def get(self, request: HttpRequest, group_id: str) -> HttpResponse:
        role = self.role(group_id)
        group = to_scim_group(role, self.members(role), base_url=self.base_url)
        version = str(group.meta.version) if group.meta else ""
        if _not_modified(request, version):
            return HttpResponse(status=304, headers={"ETag": version})
        parameters = SearchRequest[ScimGroup].model_validate(
            _search_params(request), scim_ctx=Context.SEARCH_REQUEST
        )
        return self.group_response(role, parameters)

    def put(self, request: HttpRequest, group_id: str) -> HttpResponse:
        role = self.role(group_id)
        resource = ScimGroup.model_validate(self.body(request), scim_ctx=Context.RESOURCE_REPLACEMENT_REQUEST)
        return self.change(request, role, resource)

    def patch(self, request: HttpRequest, group_id: str) -> HttpResponse:
        role = self.role(group_id)
        patch = PatchOp[ScimGroup].model_validate(self.body(request), scim_ctx=Context.RESOURCE_PATCH_REQUEST)
        resource = to_scim_group(role, self.members(role), base_url=self.base_url)
        patch.patch(resource)
        return self.change(request, role, resource)

    def change(self, request: HttpRequest, role: str, resource: ScimGroup) -> HttpResponse:
        if resource.display_name not in (None, role):
            raise MutabilityException(detail="a group's displayName is its role: it cannot change")
        with transaction.atomic():
            # One membership change at a time per organisation: the version is checked and the
            # members changed against the same list.
            list(self.users().filter(role__in=GROUP_ROLES).select_for_update(of=("self",)).values_list("pk"))
            current = to_scim_group(role, self.members(role), base_url=self.base_url)
            _precondition(request, str(current.meta.version) if current.meta else "")
            self.set_members(role, {str(m.value) for m in resource.members or [] if m.value})
        return self.group_response(role)

    def delete(self, request: HttpRequest, group_id: str) -> HttpResponse:
        self.role(group_id)
        raise NotImplementedException(detail="the groups are the B2B client's roles: they cannot be deleted")


class RootSearchView(ScimView):
    """RFC 7644 §3.4.3: a search across every resource type; not offered (501 is its answer)."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> HttpResponse:
        raise NotImplementedException(detail="search /Users or /Groups: not several types at once")


class UnknownView(ScimView):
    """Any other path under /scim/v2/: a SCIM 404, after the token like every answer."""

    def dispatch_unknown(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        raise Http404

    get = post = put = patch = delete = dispatch_unknown


# --- discovery (RFC 7644 §4) ------------------------------------------------------------------


class ServiceProviderConfigView(ScimView):
    def get(self, request: HttpRequest) -> HttpResponse:
        config = discovery.service_provider_config(self.base_url)
        return scim_response(config.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE))


class ListedView(ScimView):
    """/Schemas and /ResourceTypes: a list, and each item by its id."""

    model: Any

    def items(self) -> list[Any]:
        raise NotImplementedError

    def get(self, request: HttpRequest, item_id: str | None = None) -> HttpResponse:
        items = self.items()
        if item_id is not None:
            item = discovery.by_id(items, item_id)
            if item is None:
                raise Http404
            return scim_response(item.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE))
        if request.GET.get("filter"):
            raise NotImplementedException(detail="filters are not supported here (RFC 7644 §4)")
        listing = ListResponse[self.model](  # type: ignore[name-defined]
            total_results=len(items), start_index=1, items_per_page=len(items), resources=items
        )
        return scim_response(listing.model_dump(scim_ctx=Context.SEARCH_RESPONSE))


class SchemasView(ListedView):
    model = Schema

    def items(self) -> list[Any]:
        return discovery.schemas(self.base_url)


class ResourceTypesView(ListedView):
    model = ResourceType

    def items(self) -> list[Any]:
        return discovery.resource_types(self.base_url)
