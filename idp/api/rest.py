"""REST doors for the broker / gateway: `POST /api/v1/auth/login` and `POST /api/v1/auth/validate`."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.login import MAX_LOGIN_LENGTH, MAX_PASSWORD_LENGTH
from idp.api import auth
from idp.api.grpc_service import MAX_TOKEN_LENGTH

LOGIN_ERROR_STATUS = {
    "account_blocked": status.HTTP_403_FORBIDDEN,
    "invalid_request": status.HTTP_400_BAD_REQUEST,
    "rate_limited": status.HTTP_429_TOO_MANY_REQUESTS,
    # The password was right, but the account needs a second factor: not through this door.
    "mfa_required": status.HTTP_403_FORBIDDEN,
}
LOGIN_ERROR_DESCRIPTIONS = {
    "mfa_required": "this account needs a second factor: sign in through the browser "
    "(the authorization code flow), not with a password alone",
}


class ErrorOut(serializers.Serializer):
    error = serializers.CharField()
    error_description = serializers.CharField()


class TokensOut(serializers.Serializer):
    access_token = serializers.CharField()
    token_type = serializers.CharField()
    expires_in = serializers.IntegerField()
    refresh_token = serializers.CharField()
    scope = serializers.CharField()


class ValidatedOut(serializers.Serializer):
    active = serializers.BooleanField()
    userId = serializers.CharField()  # noqa: N815
    role = serializers.CharField(allow_null=True)
    clientId = serializers.CharField(allow_null=True)  # noqa: N815
    scope = serializers.CharField()
    exp = serializers.IntegerField()
    client_id = serializers.CharField()


class DecisionOut(serializers.Serializer):
    allowed = serializers.BooleanField()
    reason = serializers.CharField()


def _bearer_token(request: Request) -> str:
    """The token of an `Authorization: Bearer …` header, or ""."""
    return auth.bearer_token(request.headers.get("Authorization", ""))


def _error(code: str, description: str, http_status: int) -> Response:
    return Response(
        {"error": code, "error_description": description},
        status=http_status,
        headers={"Cache-Control": "no-store"},
    )


class LoginView(APIView):
    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    class LoginInput(serializers.Serializer):
        login = serializers.CharField(max_length=MAX_LOGIN_LENGTH, trim_whitespace=False)
        password = serializers.CharField(max_length=MAX_PASSWORD_LENGTH, trim_whitespace=False)

    @extend_schema(
        request=LoginInput,
        responses={200: TokensOut, 400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 429: ErrorOut},
    )
    def post(self, request: Request) -> Response:
        data = self.LoginInput(data=request.data)
        if not data.is_valid():
            return _error("invalid_request", "login and password are required", status.HTTP_400_BAD_REQUEST)
        outcome = auth.login(
            login=data.validated_data["login"], password=data.validated_data["password"], channel="rest"
        )
        if outcome.tokens is None:
            response = _error(
                outcome.error or "invalid_credentials",
                LOGIN_ERROR_DESCRIPTIONS.get(outcome.error or "", "login refused"),
                LOGIN_ERROR_STATUS.get(outcome.error or "", status.HTTP_401_UNAUTHORIZED),
            )
            if outcome.retry_after:
                response["Retry-After"] = str(outcome.retry_after)
            return response
        tokens = outcome.tokens
        return Response(
            {
                "access_token": tokens.access_token,
                "token_type": "Bearer",
                "expires_in": tokens.expires_in,
                "refresh_token": tokens.refresh_token,
                "scope": tokens.scope,
            },
            headers={"Cache-Control": "no-store"},
        )


class ValidateView(APIView):
    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    class ValidateInput(serializers.Serializer):
        token = serializers.CharField(max_length=MAX_TOKEN_LENGTH)
        # RFC 9449 §7: for a DPoP-bound token, the proof the resource server received with it
        # and that request's method and URL (without query).
        dpop_proof = serializers.CharField(max_length=MAX_TOKEN_LENGTH, required=False)
        http_method = serializers.CharField(max_length=16, required=False)
        http_url = serializers.CharField(max_length=2048, required=False)

    @extend_schema(request=ValidateInput, responses={200: ValidatedOut, 400: ErrorOut, 401: ErrorOut})
    def post(self, request: Request) -> Response:
        data = self.ValidateInput(data=request.data)
        if not data.is_valid():
            return _error("invalid_request", "token is required", status.HTTP_400_BAD_REQUEST)
        given = data.validated_data
        outcome = auth.validate(
            given["token"],
            dpop_proof=given.get("dpop_proof", ""),
            http_method=given.get("http_method", ""),
            http_url=given.get("http_url", ""),
        )
        if outcome.error == "invalid_request":
            return _error("invalid_request", outcome.message, status.HTTP_400_BAD_REQUEST)
        if outcome.claims is None:
            return _error(outcome.error or "invalid_token", outcome.message, status.HTTP_401_UNAUTHORIZED)
        claims = outcome.claims
        return Response(
            {
                "active": True,
                "userId": claims.sub,
                "role": claims.role,
                "clientId": claims.organisation_id,
                "scope": claims.scope,
                "exp": claims.exp,
                "client_id": claims.client_id,
            }
        )


class LogoutView(APIView):
    """Ends an API login: revokes the refresh token (its family's access token with it) and the
    access token presented as a Bearer header; their ids go on the blacklist."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    class LogoutInput(serializers.Serializer):
        refresh_token = serializers.CharField(max_length=MAX_TOKEN_LENGTH, required=False)

    @extend_schema(request=LogoutInput, responses={204: None, 400: ErrorOut})
    def post(self, request: Request) -> Response:
        data = self.LogoutInput(data=request.data)
        access = _bearer_token(request)
        if not data.is_valid() or not (access or data.validated_data.get("refresh_token")):
            return _error(
                "invalid_request",
                "send the access token (Bearer) and/or refresh_token",
                status.HTTP_400_BAD_REQUEST,
            )
        auth.logout(
            access_token=access, refresh_token=data.validated_data.get("refresh_token", ""), channel="rest"
        )
        # RFC 7009 §2.2 spirit: the same answer whether or not the tokens were known.
        return Response(status=status.HTTP_204_NO_CONTENT)


class CheckView(APIView):
    """For a gateway's sub-request (nginx `auth_request`, Envoy `ext_authz`): the Bearer token of
    the original request is checked offline; 200 with X-User-Id / X-User-Role / X-Client-Id, or
    401 with the reason in `WWW-Authenticate` (RFC 6750 §3)."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    @extend_schema(responses={200: None, 401: ErrorOut})
    def get(self, request: Request) -> Response:
        scheme, _, dpop_token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "dpop":
            # RFC 9449 §7: a bound token with its proof; the gateway passes the proof and says
            # which request it came with (deploy/gateway: X-Original-Method, X-Original-URL).
            proof = request.headers.get("DPoP", "")
            outcome = (
                auth.validate(
                    dpop_token.strip(),
                    dpop_proof=proof,
                    http_method=request.headers.get("X-Original-Method", ""),
                    http_url=request.headers.get("X-Original-URL", ""),
                )
                if proof
                else auth.ValidationOutcome(error="dpop_proof_required", message="DPoP proof required")
            )
        else:
            token = _bearer_token(request)
            outcome = auth.validate(token) if token else auth.ValidationOutcome(error="missing_token")
        if outcome.claims is None:
            response = _error(
                outcome.error or "invalid_token",
                outcome.message or "bearer token required",
                status.HTTP_401_UNAUTHORIZED,
            )
            challenge = "DPoP" if scheme.lower() == "dpop" else "Bearer"
            response["WWW-Authenticate"] = (
                f'{challenge} error="invalid_token", error_description="{outcome.error}"'
            )
            return response
        claims = outcome.claims
        return Response(
            status=status.HTTP_200_OK,
            headers={
                "X-User-Id": claims.sub,
                "X-User-Role": claims.role or "",
                "X-Client-Id": claims.organisation_id or "",
                "Cache-Control": "no-store",
            },
        )

    head = get


class AuthzCheckView(APIView):
    """`POST /api/v1/authz/check` {userId, permission, clientId?} -> {allowed, reason}. Who may
    ask about whom is auth.authorized_check_permission's rule (the gRPC door's too)."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    class AuthzInput(serializers.Serializer):
        userId = serializers.CharField(max_length=64)  # noqa: N815 - the JSON field name
        permission = serializers.RegexField(
            r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$", max_length=150
        )
        clientId = serializers.CharField(max_length=64, required=False, allow_null=True, allow_blank=True)  # noqa: N815

    @extend_schema(
        request=AuthzInput, responses={200: DecisionOut, 400: ErrorOut, 401: ErrorOut, 403: ErrorOut}
    )
    def post(self, request: Request) -> Response:
        # The caller first, then the body: no token, no parsing of what it sent.
        caller = auth.authenticate_caller(_bearer_token(request))
        if caller is None:
            return _unauthenticated()
        data = self.AuthzInput(data=request.data)
        data.is_valid(raise_exception=True)
        outcome = auth.authorized_check_permission(
            caller=caller,
            user_id=data.validated_data["userId"],
            permission=data.validated_data["permission"],
            organisation_id=data.validated_data.get("clientId") or None,
        )
        if outcome.decision is None:
            return _error("forbidden", outcome.message, status.HTTP_403_FORBIDDEN)
        return Response({"allowed": outcome.decision.allowed, "reason": outcome.decision.reason})


def _unauthenticated() -> Response:
    # RFC 6750 §3.1: invalid_token for a missing, expired or revoked token alike.
    response = _error("unauthorized", auth.NOT_AUTHENTICATED, status.HTTP_401_UNAUTHORIZED)
    response["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    return response
