"""The floors of bench/compare: what the servers the project runs on do with no work at all, served
the same way on the same machine in the same run. A path cannot be faster than its floor, so a
ratio to Keycloak above the floor's own ratio is out of reach without changing the stack.

    granian --interface wsgi --workers W --blocking-threads T floor:bare         # plain WSGI
    granian --interface wsgi --workers W --blocking-threads T floor:django_app   # Django, no middleware
    python floor.py grpc --bind HOST:PORT --processes P --workers T              # bare grpcio
    python floor.py answer-hex        # that answer serialized, for the Go floor (gofloor/)

- `bare`: a WSGI callable that reads the body and answers a fixed JSON object: granian alone.
- `django_app`: Django's WSGI handler with one URL and no middleware, no apps, no database; the
  view parses the form body (as introspection must) and answers a JsonResponse: the framework's
  request/response cycle and nothing of ours.
- `grpc`: AuthService.TokenValidate answering a fixed response, P processes on one port
  (SO_REUSEPORT) with a pool of T threads each, as `manage.py grpcserver --processes P` serves it.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable
from concurrent import futures
from pathlib import Path
from typing import Any

ANSWER = b'{"active": false}'


def bare(environ: dict, start_response: Callable) -> Iterable[bytes]:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if length:
        environ["wsgi.input"].read(length)
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(ANSWER)))])
    return [ANSWER]


_django: Callable | None = None
_django_lock = threading.Lock()


def _build_django() -> Callable:
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        SECRET_KEY="floor-only-no-secret-here",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=[],
        INSTALLED_APPS=[],
        DATABASES={},
        USE_I18N=False,
    )
    import django
    from django.core.wsgi import get_wsgi_application

    django.setup()
    return get_wsgi_application()


def django_app(environ: dict, start_response: Callable) -> Iterable[bytes]:
    global _django
    if _django is None:
        with _django_lock:
            if _django is None:
                _django = _build_django()
    return _django(environ, start_response)


def _view(request: Any) -> Any:
    from django.http import JsonResponse

    request.POST.get("token")  # parse the form, as introspection must
    return JsonResponse({"active": False})


def __getattr__(name: str) -> Any:  # urlpatterns, once Django reads ROOT_URLCONF
    if name == "urlpatterns":
        from django.urls import re_path

        return [re_path(r"", _view)]
    raise AttributeError(name)


def _answer() -> Any:
    """The floors' one answer (also gofloor's, serialized by `answer-hex`)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from authproto import auth_pb2

    return auth_pb2.TokenValidateResponse(
        userId="00000000-0000-0000-0000-000000000000",
        role="CUSTOMER",
        client_id="floor",
        scope="openid",
        expires_at=4102444800,
    )


def _grpc_one(bind: str, workers: int) -> None:
    import grpc

    answer = _answer()
    from authproto import auth_pb2_grpc

    class Floor(auth_pb2_grpc.AuthServiceServicer):
        def TokenValidate(self, request: Any, context: Any) -> Any:  # noqa: N802
            return answer

    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers),
        options=[("grpc.max_receive_message_length", 64 * 1024), ("grpc.so_reuseport", 1)],
    )
    auth_pb2_grpc.add_AuthServiceServicer_to_server(Floor(), server)
    if server.add_insecure_port(bind) == 0:
        raise SystemExit(f"cannot bind {bind}")
    server.start()
    print("listening", bind, flush=True)
    server.wait_for_termination()


def main() -> None:
    parser = argparse.ArgumentParser(description="bare gRPC floor")
    parser.add_argument("mode", choices=["grpc", "grpc-one", "answer-hex"])
    parser.add_argument("--bind")
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args()
    if args.mode == "answer-hex":
        print(_answer().SerializeToString().hex())
        return
    if not args.bind:
        parser.error("--bind is required")
    if args.mode == "grpc-one":
        _grpc_one(args.bind, args.workers)
        return
    # Separate interpreters, as the project's supervisor does (gRPC's threads do not survive fork).
    one = [sys.executable, __file__, "grpc-one", "--bind", args.bind, "--workers", str(args.workers)]
    children = [subprocess.Popen(one) for _ in range(args.processes)]
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    try:
        for child in children:
            child.wait()
    finally:
        for child in children:
            child.terminate()


if __name__ == "__main__":
    main()
