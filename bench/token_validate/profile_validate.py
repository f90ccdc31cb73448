"""In-process profile of one TokenValidate call on the servicer path (no network, one thread).

    profile_validate.py --tokens DIR [--calls 20000] [--top 18]

Run with the benchmark's environment (the throw-away database and the real Redis). The call is
made the way the gRPC server makes it once its C core has a request: request bytes ->
request_deserializer -> DjangoInterceptor's wrapper -> AuthService.TokenValidate ->
response_serializer, inside a new contextvars.Context as grpc/_server.py does for every RPC. Prints
  1. the cost of the whole path and of its parts (best of 3 timed loops, µs per call):
     cached = 1,000 tokens round-robin (LRU hits), uncached = the distinct set cycled (misses);
  2. cProfile of the cached and of the uncached path, top functions by own time.
What it does not see: gRPC's C core, its Python server loop and the thread hand-off, which
py-spy on the live server shows (run.sh PROFILE=1).
"""

from __future__ import annotations

import argparse
import contextvars
import cProfile
import io
import json
import os
import pstats
import sys
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "idp.settings")

import django

django.setup()

import grpc  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15  # noqa: E402
from cryptography.hazmat.primitives.hashes import SHA256  # noqa: E402
from django.db import close_old_connections  # noqa: E402

from authproto import auth_pb2  # noqa: E402
from core import context  # noqa: E402
from idp.api import auth  # noqa: E402
from idp.api.grpc_service import AuthService, DjangoInterceptor  # noqa: E402
from idp.oidc import blacklist, keys, tokens  # noqa: E402


class Ctx:
    """The two ServicerContext methods the path uses."""

    def peer(self) -> str:
        return "ipv4:127.0.0.1:40000"

    def abort(self, code, details):  # pragma: no cover - valid tokens only
        raise RuntimeError(details)


def wrapped_handler():
    servicer = AuthService()
    inner = grpc.unary_unary_rpc_method_handler(
        servicer.TokenValidate,
        request_deserializer=auth_pb2.TokenValidateRequest.FromString,
        response_serializer=auth_pb2.TokenValidateResponse.SerializeToString,
    )
    details = SimpleNamespace(
        method="/AuthService/TokenValidate", invocation_metadata=(("user-agent", "bench"),)
    )
    return DjangoInterceptor().intercept_service(lambda d: inner, details)


def best_us(fn, n: int, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for i in range(n):
            fn(i)
        best = min(best, time.perf_counter() - t0)
    return best / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", required=True, type=Path)
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--top", type=int, default=18)
    args = parser.parse_args()
    pool = [m["token"] for m in json.loads((args.tokens / "pool.json").read_text())]
    distinct = [m["token"] for m in json.loads((args.tokens / "distinct.json").read_text())]
    n = args.calls
    handler = wrapped_handler()
    ctx = Ctx()
    pool_bytes = [auth_pb2.TokenValidateRequest(token=t).SerializeToString() for t in pool]
    distinct_bytes = [auth_pb2.TokenValidateRequest(token=t).SerializeToString() for t in distinct]

    def full(blobs, fresh_context=True):
        def body(i):
            req = handler.request_deserializer(blobs[i % len(blobs)])
            resp = handler.unary_unary(req, ctx)
            assert resp.userId, resp.error
            return handler.response_serializer(resp)

        if not fresh_context:
            return body
        # grpc/_server.py runs every RPC in a new, empty contextvars.Context (_RPCState.context),
        # so whatever asgiref.local.Local keeps per context (Django's `caches`) is built anew per call.
        return lambda i: contextvars.Context().run(body, i)

    for t in pool:  # warm: keys cached, LRU holds the pool, Redis connection open
        auth.validate(t)
    claims0 = tokens.verify_access_token(pool[0])
    kid = tokens.unverified_header(pool[0])["kid"]
    pub = keys.verification_key(kid).public_key
    parts = pool[0].split(".")
    sig, signed = tokens._b64decode(parts[2]), f"{parts[0]}.{parts[1]}".encode()
    sample = auth_pb2.TokenValidateResponse(
        userId=claims0.sub, role="client_user", client_id="", scope="openid profile", expires_at=claims0.exp
    )

    rows: list[tuple[str, float]] = []
    rows.append(("full path, cached (1,000 tokens round-robin)", best_us(full(pool_bytes), n)))
    rows.append(
        ("  same, one persistent context (no per-call cache client)", best_us(full(pool_bytes, False), n))
    )
    miss_n = min(n, len(distinct))
    uncached_call = full(distinct_bytes)

    def uncached(i):
        if i == 0:  # every timed loop starts from an empty LRU, so all of its calls miss
            tokens._verified_access_claims.cache_clear()
        return uncached_call(i)

    rows.append(("full path, uncached (distinct set, LRU misses)", best_us(uncached, miss_n)))
    info = tokens._verified_access_claims.cache_info()
    for t in pool:
        auth.validate(t)
    rows.append(
        (
            "  verify_access_token(check_revocation=False), cached",
            best_us(lambda i: tokens.verify_access_token(pool[i % 1000], check_revocation=False), n),
        )
    )
    rows.append(
        (
            "  blacklist.is_revoked, fresh context (as in the server)",
            best_us(lambda i: contextvars.Context().run(blacklist.is_revoked, claims0.jti), n),
        )
    )
    rows.append(
        (
            "  blacklist.is_revoked, persistent context (Redis MGET only)",
            best_us(lambda i: blacklist.is_revoked(claims0.jti), n),
        )
    )
    rows.append(
        (
            "  django_redis get_redis_connection in a fresh context",
            best_us(lambda i: contextvars.Context().run(blacklist._redis), n),
        )
    )
    rows.append(
        (
            "  RSA-2048 PKCS1v15 verify (cryptography)",
            best_us(lambda i: pub.verify(sig, signed, PKCS1v15(), SHA256()), n // 4),
        )
    )
    rows.append(
        (
            "  interceptor extras: 2x close_old_connections",
            best_us(lambda i: (close_old_connections(), close_old_connections()), n),
        )
    )

    def ctx_bits(i):
        bound = context.RequestContext(request_id=uuid.uuid4().hex, ip="127.0.0.1", user_agent="bench")
        with context.bind(bound):
            pass

    rows.append(("  interceptor extras: uuid4 + RequestContext + bind", best_us(ctx_bits, n)))
    rows.append(
        (
            "  protobuf: parse request + build & serialize response",
            best_us(
                lambda i: (
                    auth_pb2.TokenValidateRequest.FromString(pool_bytes[i % 1000]),
                    auth_pb2.TokenValidateResponse(
                        userId=claims0.sub,
                        role="client_user",
                        client_id="",
                        scope="openid profile",
                        expires_at=claims0.exp,
                    ).SerializeToString(),
                ),
                n,
            ),
        )
    )
    del sample

    print(f"== per-call cost, µs (best of 3 loops of {n}; single thread, no gRPC transport)")
    for name, us in rows:
        print(f"  {name:58s} {us:8.1f}")
    print(f"  uncached run LRU: hits={info.hits} misses={info.misses} (maxsize {info.maxsize})")

    for label, blobs, count in (("cached", pool_bytes, n), ("uncached", distinct_bytes, miss_n)):
        if label == "uncached":
            tokens._verified_access_claims.cache_clear()
        call = full(blobs)
        prof = cProfile.Profile()
        prof.enable()
        for i in range(count):
            call(i)
        prof.disable()
        out = io.StringIO()
        stats = pstats.Stats(prof, stream=out)
        stats.sort_stats("tottime").print_stats(args.top)
        text = out.getvalue()
        body = text[text.find("ncalls") :]
        print(
            f"\n== cProfile, {label}: {count} calls, top {args.top} by own time"
            " (profiler overhead inflates small functions)"
        )
        print(body.rstrip())


if __name__ == "__main__":
    main()
