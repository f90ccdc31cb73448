"""Summarise py-spy raw stacks (`py-spy record --gil -f raw`) of a gRPC server process.

    pyspy_summary.py pyspy-grpc.txt

With --gil, a sample is taken only from the thread that holds the GIL, so the shares are shares
of the one core a Python process can use. Each sample goes to the first bucket (in the order
below) that a frame of its stack matches.
"""

from __future__ import annotations

import re
import sys
from collections import Counter

BUCKETS = [
    ("gc", "garbage collector (gc_collect_main; seen with --native only)", ("gc_collect_main",)),
    (
        "redis-client",
        "Redis client built anew per call (blacklist._redis -> get_redis_connection)",
        ("get_redis_connection (django_redis",),
    ),
    ("redis-mget", "Redis MGET round trip in redis-py (blacklist.is_revoked)", ("BasicKeyCommands.mget",)),
    ("blacklist", "rest of blacklist.is_revoked", ("is_revoked (idp/oidc/blacklist.py",)),
    (
        "rsa",
        "signature check on an LRU miss (_verified_access_claims)",
        ("_verified_access_claims (idp/oidc/tokens.py",),
    ),
    (
        "verify",
        "rest of verify_access_token (LRU hit, claim checks)",
        ("verify_access_token (idp/oidc/tokens.py",),
    ),
    (
        "servicer",
        "AuthService.TokenValidate and auth.validate (response protobuf)",
        ("AuthService.TokenValidate (idp/api/grpc_service.py",),
    ),
    (
        "interceptor",
        "DjangoInterceptor (close_old_connections x2, uuid4, audit context)",
        ("DjangoInterceptor.intercept_service",),
    ),
    (
        "grpc-pool",
        "gRPC Python server, pool thread (_unary_response_in_pool minus the handler: "
        "deserialize, send response/status, condition hand-off)",
        ("_worker (concurrent/futures/thread.py",),
    ),
    (
        "grpc-serve",
        "gRPC Python server, polling thread (_serve: completion queue, call set-up, dispatch)",
        ("_serve (grpc/_server.py",),
    ),
]


def main() -> None:
    counts: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    total = 0
    with open(sys.argv[1]) as f:
        lines = f.readlines()
    for line in lines:
        stack, _, n = line.rstrip("\n").rpartition(" ")
        if not stack:
            continue
        n_i = int(n)
        total += n_i
        for key, _label, needles in BUCKETS:
            if any(needle in stack for needle in needles):
                counts[key] += n_i
                break
        else:
            counts["other"] += n_i
        leaf[re.sub(r":\d+\)$", ")", stack.split(";")[-1])] += n_i
    if not total:
        sys.exit("no samples")
    print(f"py-spy: {total} samples with the GIL held; share of the process's one core:")
    for key, label, _ in [*BUCKETS, ("other", "other (threading, imports, ...)", ())]:
        if counts[key]:
            print(f"  {counts[key] / total * 100:5.1f}%  {label}")
    print("  top leaf frames:")
    for frame, n_i in leaf.most_common(10):
        print(f"  {n_i / total * 100:5.1f}%  {frame}")


if __name__ == "__main__":
    main()
