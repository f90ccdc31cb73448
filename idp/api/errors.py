"""One error body for the whole REST API: `{"error": code, "error_description": text}` (the OAuth
shape, so clients parse a token-endpoint error and an API error alike), plus `fields` for
validation errors."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

CODES: dict[type[exceptions.APIException], str] = {
    exceptions.ParseError: "invalid_request",
    exceptions.ValidationError: "invalid_request",
    exceptions.UnsupportedMediaType: "invalid_request",
    exceptions.NotAuthenticated: "unauthorized",
    exceptions.AuthenticationFailed: "unauthorized",
    exceptions.PermissionDenied: "forbidden",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.Throttled: "rate_limited",
}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    elif isinstance(exc, DjangoValidationError):
        # Services raise Django's ValidationError; to the API it is a 400 like any other.
        exc = exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
        )
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # not an API exception: Django's 500 handling (and its logging) applies
    # An exception may name its own code (e.g. RFC 9470's insufficient_user_authentication).
    code = getattr(exc, "error_code", "") or next(
        (name for cls, name in CODES.items() if isinstance(exc, cls)), "error"
    )
    body: dict[str, Any] = {"error": code}
    if isinstance(exc, exceptions.ValidationError):
        body["error_description"] = "the request has invalid fields"
        body["fields"] = response.data
    else:
        detail = response.data.get("detail", "") if isinstance(response.data, dict) else response.data
        body["error_description"] = str(detail)
    response.data = body
    return response
