"""Requests with NUL characters in the URL or query string are refused with 400.

PostgreSQL text cannot hold NUL (0x00), so such a value reaching a query is a database error,
i.e. a 500, wherever a query parameter is used as a filter. Refusing it once, here, covers every
view (the REST API, the admin's search, the OIDC endpoints). Bodies are checked where they are
parsed (DRF's CharField and Django's form fields refuse NUL already).
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse


class RejectNulBytesMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if "\x00" in request.path or any(
            "\x00" in value for values in request.GET.lists() for value in values[1]
        ):
            return JsonResponse(
                {"error": "invalid_request", "error_description": "NUL characters are not allowed"},
                status=400,
            )
        return self.get_response(request)
