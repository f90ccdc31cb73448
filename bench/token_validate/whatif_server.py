"""What-if gRPC server for the "Where to gain" estimates: the project's AuthService with one or more
of the candidate changes applied at run time (monkeypatches in this process only; the
application code is not changed).

    whatif_server.py --bind 127.0.0.1:PORT [--threads 8] [--redis-once] [--lean-interceptor]
                     [--local-revocation] [--gc-freeze] [--aio]

  --redis-once        blacklist._redis returns one client per process. Today every call builds a
                      new Django cache object, django-redis client and redis.Redis (its 160-entry
                      response-callback dict): grpc/_server.py runs each RPC in a new, empty
                      contextvars.Context, and Django's `caches` live in an asgiref Local, which
                      is per context. (The TCP connection pool is shared either way.)
  --lean-interceptor  TokenValidate bypasses DjangoInterceptor (it never touches the database, so
                      close_old_connections x2, the uuid4 request id and the audit context are
                      not needed on that method); Login keeps it.
  --local-revocation  is_revoked answers from process memory instead of a Redis MGET per call: the
                      upper bound of keeping the (small) revocation set in each process, fed by
                      Redis pub/sub or keyspace notifications (a design change; here simply
                      "not revoked", so an upper bound).
  --gc-freeze         gc.freeze() after start-up and gc.set_threshold(100_000, 50, 50): fewer,
                      cheaper collections of the young generation.
  --aio               grpc.aio server (one event loop, no thread hand-off per call); the handler
                      calls the same AuthService.TokenValidate inline (the Redis MGET blocks the
                      loop for its ~40 µs round trip).

Like `manage.py grpcserver`, it sets grpc.so_reuseport, so several processes can share the port.
Stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import signal
import sys
import threading
from concurrent import futures
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "idp.settings")

import django

django.setup()

import grpc  # noqa: E402

from authproto import auth_pb2_grpc  # noqa: E402
from idp.api.grpc_service import AuthService, DjangoInterceptor  # noqa: E402
from idp.oidc import blacklist, keys  # noqa: E402

OPTIONS = [("grpc.max_receive_message_length", 64 * 1024), ("grpc.so_reuseport", 1)]


class LeanInterceptor(DjangoInterceptor):
    def intercept_service(self, continuation, handler_call_details):
        if handler_call_details.method == "/AuthService/TokenValidate":
            return continuation(handler_call_details)
        return super().intercept_service(continuation, handler_call_details)


def apply_patches(args: argparse.Namespace) -> None:
    if args.redis_once:
        client = blacklist._redis()
        blacklist._redis = lambda: client
    if args.local_revocation:
        revoked: set[str] = set()
        blacklist.is_revoked = lambda jti: jti in revoked
    keys.verification_key("")  # load the public keys once, as the first call would
    blacklist.is_revoked("warm-up")  # (re)loads the Redis marker if Redis was emptied
    if args.aio:
        # A flushed Redis makes is_revoked rebuild from the database, which Django refuses
        # inside an event loop; the bench's Redis is not flushed during a run.
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"


def serve_sync(args: argparse.Namespace) -> None:
    interceptor = LeanInterceptor() if args.lean_interceptor else DjangoInterceptor()
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=args.threads), interceptors=[interceptor], options=OPTIONS
    )
    auth_pb2_grpc.add_AuthServiceServicer_to_server(AuthService(), server)
    if server.add_insecure_port(args.bind) == 0:
        sys.exit(f"cannot bind {args.bind}")
    server.start()
    if args.gc_freeze:
        gc.freeze()
        gc.set_threshold(100_000, 50, 50)
    print(f"what-if gRPC (sync, {args.threads} threads) listening on {args.bind}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.stop(2).wait()


class AioAuthService(auth_pb2_grpc.AuthServiceServicer):
    def __init__(self) -> None:
        self._sync = AuthService()

    async def TokenValidate(self, request, context):  # noqa: N802
        return self._sync.TokenValidate(request, context)


async def serve_aio(args: argparse.Namespace) -> None:
    server = grpc.aio.server(options=OPTIONS)
    auth_pb2_grpc.add_AuthServiceServicer_to_server(AioAuthService(), server)
    if server.add_insecure_port(args.bind) == 0:
        sys.exit(f"cannot bind {args.bind}")
    await server.start()
    if args.gc_freeze:
        gc.freeze()
        gc.set_threshold(100_000, 50, 50)
    print(f"what-if gRPC (asyncio) listening on {args.bind}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bind", required=True)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--redis-once", action="store_true")
    parser.add_argument("--lean-interceptor", action="store_true")
    parser.add_argument("--local-revocation", action="store_true")
    parser.add_argument("--gc-freeze", action="store_true")
    parser.add_argument("--aio", action="store_true")
    args = parser.parse_args()
    apply_patches(args)
    if args.aio:
        asyncio.run(serve_aio(args))
    else:
        serve_sync(args)


if __name__ == "__main__":
    main()
