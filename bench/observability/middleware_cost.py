"""What the request-metrics middleware (core.http_metrics) costs per request, in one process: a
trivial view called N times bare and through the middleware, on a resolved route as the token
endpoint is. Prints microseconds per request; run it once as it is and once with
PROMETHEUS_MULTIPROC_DIR set (multiprocess mode writes each count to an mmap file).

    middleware_cost.py [--n 10000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "idp.settings")

import django
from django.http import HttpResponse
from django.test import RequestFactory
from django.urls import resolve

from core import metrics
from core.http_metrics import RequestMetricsMiddleware


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    django.setup()  # the URL resolver imports the views, and they the models

    request = RequestFactory().post("/o/token/")
    match = resolve("/o/token/")
    answer = HttpResponse(b"{}", content_type="application/json")

    def view(request):
        request.resolver_match = match  # what Django's URL resolution leaves on the request
        return answer

    wrapped = RequestMetricsMiddleware(view)
    mode = f"multiprocess ({metrics.MULTIPROCESS_DIR})" if metrics.MULTIPROCESS_DIR else "in-process"
    print(f"{options.n} calls x {options.rounds} rounds, {mode} registry")
    for name, handler in (("bare view", view), ("with the middleware", wrapped)):
        best = min(_time(handler, request, options.n) for _ in range(options.rounds))
        print(f"  {name:22s} {best * 1e6 / options.n:6.2f} µs per request (best round)")


def _time(handler, request, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        handler(request)
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
