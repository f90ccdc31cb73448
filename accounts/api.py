"""REST API for people and B2B organisation administrators (DRF, `/api/v1/`), authenticated by our own
bearer tokens. Each endpoint parses, calls one service, and shapes the answer; tenant isolation
comes from accounts.selectors (another client's users are 404, never 403)."""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import grants, rbac, selectors, services, session_registry
from accounts.invitations import invite_user
from accounts.models import AccessPermission, Role, Scope, User
from audit.models import AuditLog
from clients import scim_tokens
from clients.models import Organisation, ScimToken
from clients.services import create_organisation
from core import ratelimit
from core.permissions import Permission


class Pagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


class UserOut(serializers.ModelSerializer):
    clientId = serializers.UUIDField(source="organisation_id", read_only=True, allow_null=True)  # noqa: N815
    createdAt = serializers.DateTimeField(source="created_at", read_only=True)  # noqa: N815

    class Meta:
        model = User
        fields = ["id", "username", "email", "phone", "role", "status", "clientId", "createdAt"]


def _user(request: Request, user_id: Any) -> User:
    return get_object_or_404(selectors.visible_users(request.user), pk=user_id)


class MeView(APIView):
    class MeUpdate(serializers.Serializer):
        email = serializers.EmailField(required=False, allow_blank=True)
        phone = serializers.RegexField(r"^\+?[0-9 ()-]{5,32}$", required=False, allow_blank=True)

    @extend_schema(responses=UserOut)
    def get(self, request: Request) -> Response:
        data = UserOut(request.user).data
        data["permissions"] = rbac.effective_permissions(request.user)
        return Response(data)

    @extend_schema(request=MeUpdate, responses=UserOut)
    def patch(self, request: Request) -> Response:
        body = self.MeUpdate(data=request.data)
        body.is_valid(raise_exception=True)
        # Users change their own contact details (accounts.authority lets anyone edit their own).
        user = services.update_user(actor=request.user, user=request.user, changes=dict(body.validated_data))
        return Response(UserOut(user).data)


class UsersView(APIView):
    class UserCreate(serializers.Serializer):
        username = serializers.CharField(max_length=150)
        password = serializers.CharField(max_length=4096, required=False, allow_null=True, write_only=True)
        email = serializers.EmailField(required=False, allow_blank=True, default="")
        phone = serializers.CharField(max_length=32, required=False, allow_blank=True, default="")
        role = serializers.ChoiceField(choices=Role.choices, default=Role.CLIENT_USER)
        clientId = serializers.UUIDField(required=False, allow_null=True)  # noqa: N815

    @extend_schema(
        parameters=[
            OpenApiParameter("client", str),
            OpenApiParameter("role", str),
            OpenApiParameter("status", str),
            OpenApiParameter("search", str),
        ],
        responses=UserOut(many=True),
    )
    def get(self, request: Request) -> Response:
        users = selectors.visible_users(request.user)
        for field in ("role", "status"):
            if request.query_params.get(field):
                users = users.filter(**{field: request.query_params[field]})
        if request.query_params.get("client"):
            users = users.filter(organisation_id=_uuid_or_404(request.query_params["client"]))
        if request.query_params.get("search"):
            term = request.query_params["search"][:100]
            users = users.filter(username__icontains=term) | users.filter(email__icontains=term)
        page = Pagination()
        return page.get_paginated_response(
            UserOut(page.paginate_queryset(users, request, self), many=True).data
        )

    @extend_schema(request=UserCreate, responses={201: UserOut})
    def post(self, request: Request) -> Response:
        body = self.UserCreate(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        organisation = None
        if data.get("clientId"):
            organisation = get_object_or_404(
                selectors.visible_organisations(request.user), pk=data["clientId"]
            )
        user = services.create_user(
            actor=request.user,
            username=data["username"],
            password=data.get("password"),
            email=data["email"],
            phone=data["phone"],
            role=data["role"],
            organisation=organisation,
        )
        return Response(UserOut(user).data, status=status.HTTP_201_CREATED)


class UserView(APIView):
    class UserUpdate(serializers.Serializer):
        username = serializers.CharField(max_length=150, required=False)
        email = serializers.EmailField(required=False, allow_blank=True)
        phone = serializers.CharField(max_length=32, required=False, allow_blank=True)

    @extend_schema(responses=UserOut)
    def get(self, request: Request, user_id: str) -> Response:
        return Response(UserOut(_user(request, user_id)).data)

    @extend_schema(request=UserUpdate, responses=UserOut)
    def patch(self, request: Request, user_id: str) -> Response:
        user = _user(request, user_id)
        body = self.UserUpdate(data=request.data)
        body.is_valid(raise_exception=True)
        return Response(
            UserOut(
                services.update_user(actor=request.user, user=user, changes=dict(body.validated_data))
            ).data
        )


class Reason(serializers.Serializer):
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class UserRoleView(APIView):
    class RoleChange(Reason):
        role = serializers.ChoiceField(choices=Role.choices)

    @extend_schema(request=RoleChange, responses=UserOut)
    def post(self, request: Request, user_id: str) -> Response:
        user = _user(request, user_id)
        body = self.RoleChange(data=request.data)
        body.is_valid(raise_exception=True)
        user = services.change_role(
            actor=request.user,
            user=user,
            role=body.validated_data["role"],
            reason=body.validated_data["reason"],
        )
        return Response(UserOut(user).data)


class UserBlockView(APIView):
    blocking = True

    @extend_schema(request=Reason, responses=UserOut)
    def post(self, request: Request, user_id: str) -> Response:
        user = _user(request, user_id)
        body = Reason(data=request.data)
        body.is_valid(raise_exception=True)
        act = services.block_user if self.blocking else services.unblock_user
        return Response(
            UserOut(act(actor=request.user, user=user, reason=body.validated_data["reason"])).data
        )


class UserUnblockView(UserBlockView):
    blocking = False


class PermissionsOut(serializers.Serializer):
    """`{permission name: scope}`"""

    permissions = serializers.DictField(child=serializers.ChoiceField(choices=Scope.choices))


class UserGrantsView(APIView):
    class GrantInput(serializers.Serializer):
        permission = serializers.CharField(max_length=150)
        scope = serializers.ChoiceField(choices=Scope.choices, default=Scope.OWN_ORGANISATION)

    @extend_schema(responses=PermissionsOut)
    def get(self, request: Request, user_id: str) -> Response:
        return Response({"permissions": rbac.effective_permissions(_user(request, user_id))})

    @extend_schema(request=GrantInput, responses={201: PermissionsOut})
    def post(self, request: Request, user_id: str) -> Response:
        user = _user(request, user_id)
        body = self.GrantInput(data=request.data)
        body.is_valid(raise_exception=True)
        permission = get_object_or_404(AccessPermission, name=body.validated_data["permission"])
        grants.grant_permission(
            actor=request.user, user=user, permission=permission, scope=body.validated_data["scope"]
        )
        return Response({"permissions": rbac.effective_permissions(user)}, status=status.HTTP_201_CREATED)


class UserGrantView(APIView):
    @extend_schema(responses={204: None})
    def delete(self, request: Request, user_id: str, permission: str) -> Response:
        user = _user(request, user_id)
        if not grants.revoke_permission(
            actor=request.user, user=user, permission=get_object_or_404(AccessPermission, name=permission)
        ):
            return Response(
                {"error": "not_found", "error_description": "no such direct grant"},
                status=status.HTTP_404_NOT_FOUND,
            )
        return Response(status=status.HTTP_204_NO_CONTENT)


class SessionOut(serializers.Serializer):
    id = serializers.UUIDField()
    createdAt = serializers.DateTimeField(source="created_at")  # noqa: N815
    lastSeenAt = serializers.DateTimeField(source="last_seen_at")  # noqa: N815
    ip = serializers.IPAddressField(allow_null=True)
    userAgent = serializers.CharField(source="user_agent")  # noqa: N815


class UserSessionsView(APIView):
    @extend_schema(responses=SessionOut(many=True))
    def get(self, request: Request, user_id: str) -> Response:
        sessions = session_registry.sessions_of(actor=request.user, user=_user(request, user_id))
        return Response(SessionOut(sessions, many=True).data)

    @extend_schema(
        request=None,
        responses={200: inline_serializer("SessionsEnded", {"ended": serializers.IntegerField()})},
    )
    def delete(self, request: Request, user_id: str) -> Response:
        user = _user(request, user_id)
        ended = session_registry.end_all_sessions(actor=request.user, user=user)
        return Response({"ended": ended})


class OrganisationOut(serializers.ModelSerializer):
    createdAt = serializers.DateTimeField(source="created_at", read_only=True)  # noqa: N815

    class Meta:
        model = Organisation
        fields = [
            "id",
            "name",
            "slug",
            "status",
            "contact_email",
            "require_mfa",
            "require_passkey",
            "createdAt",
        ]


class OrganisationsView(APIView):
    class OrganisationCreate(serializers.Serializer):
        name = serializers.CharField(max_length=200)
        slug = serializers.SlugField(max_length=64)
        contact_email = serializers.EmailField(required=False, allow_blank=True, default="")

    @extend_schema(responses=OrganisationOut(many=True))
    def get(self, request: Request) -> Response:
        page = Pagination()
        organisations = selectors.visible_organisations(request.user)
        return page.get_paginated_response(
            OrganisationOut(page.paginate_queryset(organisations, request, self), many=True).data
        )

    @extend_schema(request=OrganisationCreate, responses={201: OrganisationOut})
    def post(self, request: Request) -> Response:

        body = self.OrganisationCreate(data=request.data)
        body.is_valid(raise_exception=True)
        organisation = create_organisation(actor=request.user, **body.validated_data)
        return Response(OrganisationOut(organisation).data, status=status.HTTP_201_CREATED)


class ScimTokenOut(serializers.ModelSerializer):
    clientId = serializers.UUIDField(source="organisation_id", read_only=True)  # noqa: N815
    createdBy = serializers.UUIDField(source="created_by_id", read_only=True, allow_null=True)  # noqa: N815
    createdAt = serializers.DateTimeField(source="created_at", read_only=True)  # noqa: N815
    lastUsedAt = serializers.DateTimeField(source="last_used_at", read_only=True)  # noqa: N815
    revokedAt = serializers.DateTimeField(source="revoked_at", read_only=True)  # noqa: N815

    class Meta:
        model = ScimToken
        fields = ["id", "name", "prefix", "clientId", "createdBy", "createdAt", "lastUsedAt", "revokedAt"]


class ScimTokenCreated(ScimTokenOut):
    token = serializers.CharField(read_only=True, help_text="The bearer token: shown this once, never again.")

    class Meta(ScimTokenOut.Meta):
        fields = [*ScimTokenOut.Meta.fields, "token"]


def _scim_organisation(request: Request, client_id: Any) -> Organisation:
    """A client the caller sees and whose SSO (and so SCIM) they manage; others are 404 or 403."""
    organisation = get_object_or_404(selectors.visible_organisations(request.user), pk=client_id)
    rbac.require(request.user, Permission.SSO_MANAGE, organisation_id=organisation.id)
    return organisation


class ScimTokensView(APIView):
    """The SCIM provisioning tokens of a B2B client (idp.scim): list, and make one."""

    class ScimTokenCreate(serializers.Serializer):
        name = serializers.CharField(max_length=100)

    @extend_schema(responses=ScimTokenOut(many=True))
    def get(self, request: Request, client_id: str) -> Response:
        organisation = _scim_organisation(request, client_id)
        page = Pagination()
        tokens = organisation.scim_tokens.order_by("-created_at", "id")
        return page.get_paginated_response(
            ScimTokenOut(page.paginate_queryset(tokens, request, self), many=True).data
        )

    @extend_schema(request=ScimTokenCreate, responses={201: ScimTokenCreated})
    def post(self, request: Request, client_id: str) -> Response:
        organisation = _scim_organisation(request, client_id)
        body = self.ScimTokenCreate(data=request.data)
        body.is_valid(raise_exception=True)
        row, token = scim_tokens.create_scim_token(
            actor=request.user, organisation=organisation, name=body.validated_data["name"]
        )
        data = ScimTokenOut(row).data
        data["token"] = token
        return Response(data, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"})


class ScimTokenView(APIView):
    @extend_schema(request=None, responses={204: None})
    def delete(self, request: Request, client_id: str, token_id: str) -> Response:
        organisation = _scim_organisation(request, client_id)
        token = get_object_or_404(ScimToken.objects.filter(organisation=organisation), pk=token_id)
        scim_tokens.revoke_scim_token(actor=request.user, token=token)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _uuid_or_404(value: str) -> str:
    import uuid

    from django.http import Http404

    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise Http404 from None


class AuditOut(serializers.Serializer):
    id = serializers.IntegerField()
    occurredAt = serializers.DateTimeField(source="occurred_at")  # noqa: N815
    action = serializers.CharField()
    actorId = serializers.CharField(source="actor_id")  # noqa: N815
    actorLabel = serializers.CharField(source="actor_label")  # noqa: N815
    targetType = serializers.CharField(source="target_type")  # noqa: N815
    targetId = serializers.CharField(source="target_id")  # noqa: N815
    clientId = serializers.UUIDField(source="organisation_id", allow_null=True)  # noqa: N815
    ip = serializers.IPAddressField(allow_null=True)
    requestId = serializers.CharField(source="request_id")  # noqa: N815
    details = serializers.JSONField()


class AuditView(APIView):
    """Audit search: operators see every record, a client's auditors their client's."""

    @extend_schema(
        parameters=[
            OpenApiParameter("action", str),
            OpenApiParameter("actor", str),
            OpenApiParameter("target", str),
            OpenApiParameter("client", str),
            OpenApiParameter("since", str),
            OpenApiParameter("until", str),
        ],
        responses=AuditOut(many=True),
    )
    def get(self, request: Request) -> Response:
        from django.utils.dateparse import parse_datetime

        scope = rbac.effective_permissions(request.user).get(Permission.AUDIT_LOG_READ)
        if scope is None:
            raise PermissionDenied("not allowed: audit.log.read")
        records = AuditLog.objects.all()
        if scope != rbac.ALL:
            records = (
                records.filter(organisation_id=request.user.organisation_id)
                if request.user.organisation_id
                else records.none()
            )
        params = request.query_params
        for param, field in (("action", "action"), ("actor", "actor_id"), ("target", "target_id")):
            if params.get(param):
                records = records.filter(**{field: params[param][:64]})
        if params.get("client"):
            records = records.filter(organisation_id=_uuid_or_404(params["client"]))
        for param, lookup in (("since", "occurred_at__gte"), ("until", "occurred_at__lt")):
            if params.get(param):
                moment = parse_datetime(params[param])
                if moment is None:
                    raise serializers.ValidationError({param: "an ISO 8601 date-time"})
                records = records.filter(**{lookup: moment})
        page = Pagination()
        return page.get_paginated_response(
            AuditOut(page.paginate_queryset(records, request, self), many=True).data
        )


class InvitationsView(APIView):
    """Invite someone: a pending user and an e-mail with a single-use link to choose a password."""

    class InvitationInput(serializers.Serializer):
        email = serializers.EmailField()
        role = serializers.ChoiceField(choices=Role.choices, default=Role.CLIENT_USER)
        clientId = serializers.UUIDField(required=False, allow_null=True)  # noqa: N815
        username = serializers.CharField(max_length=150, required=False, allow_blank=True, default="")

    @extend_schema(request=InvitationInput, responses={201: UserOut})
    def post(self, request: Request) -> Response:
        from rest_framework.exceptions import Throttled

        decision = ratelimit.hit(
            ratelimit.configured("registration-ip"), request.META.get("REMOTE_ADDR") or "-"
        )
        if not decision.allowed:
            raise Throttled(wait=decision.retry_after)
        body = self.InvitationInput(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        organisation = None
        if data.get("clientId"):
            organisation = get_object_or_404(
                selectors.visible_organisations(request.user), pk=data["clientId"]
            )
        user = invite_user(
            actor=request.user,
            email=data["email"],
            role=data["role"],
            organisation=organisation,
            username=data["username"],
        )
        return Response(UserOut(user).data, status=status.HTTP_201_CREATED)
