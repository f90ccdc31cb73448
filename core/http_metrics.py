"""Counting HTTP requests per route and status, and timing them: the first middleware of both
stacks (browser and machine paths, idp/machine.py), so the figures cover every middleware.

It runs on every token request: no store is touched, and each (method, route, status) keeps its
counter and histogram child in a dict, so a request costs two clock reads, a dict lookup and two
increments.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from prometheus_client import Counter, Histogram

from core.metrics import DURATION_BUCKETS

# A route, never a path: `/admin/accounts/user/7/change/` counts as its pattern, so the series
# stay as many as the URL patterns. A request that matched none (404, or answered by a
# middleware before the URL was resolved: a bad host, NUL bytes, the HTTPS redirect) is this.
UNMATCHED = "unmatched"
# Methods a client may invent are counted as one.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_OTHER_METHOD = "other"

REQUESTS = Counter(
    "idp_http_requests",
    "HTTP requests answered, by method, matched URL route and status code",
    ["method", "route", "status"],
)
DURATION = Histogram(
    "idp_http_request_duration_seconds",
    "Time from the first middleware receiving the request to it returning the response",
    ["method", "route", "status"],
    buckets=DURATION_BUCKETS,
)

_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}


def route_of(request: HttpRequest) -> str:
    match = getattr(request, "resolver_match", None)
    return UNMATCHED if match is None else "/" + match.route


def observe(method: str, route: str, status: int, seconds: float) -> None:
    key = (method, route, status)
    children = _children.get(key)
    if children is None:
        label = str(status)
        children = _children.setdefault(
            key, (REQUESTS.labels(method, route, label), DURATION.labels(method, route, label))
        )
    children[0].inc()
    children[1].observe(seconds)


class RequestMetricsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        method = request.method if request.method in _METHODS else _OTHER_METHOD
        observe(method, route_of(request), response.status_code, time.perf_counter() - started)
        return response
