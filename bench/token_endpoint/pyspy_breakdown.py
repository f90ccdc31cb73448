"""Sort py-spy's collapsed stacks (`py-spy record --idle -f raw`) of the gunicorn workers into the
phases of a token request, and split each phase into time waiting on PostgreSQL (psycopg) and
the rest (Python and C work: CPU, or waiting for a core).

    pyspy_breakdown.py pyspy.raw [--requests N] [--rate 200]

Each sample is one worker thread at one instant; a phase's share is its samples over all the
samples of workers that were serving a request (samples of a worker idle in its accept/select
loop are counted apart). With --requests (requests served while sampling) and --rate (py-spy's
samples/s), it also gives worker milliseconds per request.
"""

from __future__ import annotations

import argparse
from collections import Counter

# (phase, frame marker): the innermost marker on a stack names its phase, so order does not
# matter for nesting, but a phase must be inside the request (below the WSGI handler).
MARKERS = [
    ("client authentication", "authenticate_client", "oauth2_provider/oauth2_validators.py"),
    ("JWT signing (generate_access_token)", "generate_access_token", "idp/oidc/tokens.py"),
    ("audit record + outbox (audit.services.record)", "record", "audit/services.py"),
    (
        "AccessToken insert + jti update (save_bearer_token)",
        "save_bearer_token",
        "oauth2_provider/oauth2_validators.py",
    ),
    ("COMMIT", "commit", "django/db/backends/base/base.py"),
    ("DOT / oauthlib request handling (rest of TokenView.post)", "post", "idp/oidc/views.py"),
    ("Django (middleware, request parsing, response)", "__call__", "django/core/handlers/wsgi.py"),
]
GUNICORN_HANDLE = [("handle", "gunicorn/workers/sync.py"), ("handle", "gunicorn/workers/gthread.py")]


def is_frame(frame: str, func: str, path: str) -> bool:
    """py-spy frames read `Class.func (path/file.py:123)` or `func (path/file.py:123)`."""
    name, _, where = frame.partition(" (")
    return where.startswith(path + ":") and name.rsplit(".", 1)[-1] == func


KINDS = (
    "PostgreSQL round trip (psycopg)",
    "Django ORM (building/compiling queries, model instances)",
    "RSA signature",
    "Redis",
    "Python",
)


def classify(frames: list[str]) -> tuple[str, str]:
    in_request = any(is_frame(f, func, path) for f in frames for func, path in GUNICORN_HANDLE)
    if not in_request:
        return "idle (worker waiting for a connection / gunicorn housekeeping)", ""
    phase = "gunicorn (HTTP parsing, writing the response, access log)"
    depth = -1
    for name, func, path in MARKERS:
        for i, frame in enumerate(frames):
            if i > depth and is_frame(frame, func, path):
                phase, depth = name, i
    leaf = frames[-1] if frames else ""
    below = frames[depth + 1 :] if depth >= 0 else frames
    if any("psycopg/" in f for f in below):
        kind = "PostgreSQL round trip (psycopg)"
    elif any("django/db/" in f for f in below):
        kind = "Django ORM (building/compiling queries, model instances)"
    elif is_frame(leaf, "sign", "joserfc/_rfc7518/jws_algs.py") or "cryptography/" in leaf:
        kind = "RSA signature"
    elif "redis/" in leaf or any("redis/" in f for f in below):
        kind = "Redis"
    else:
        kind = "Python"
    return phase, kind


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("raw")
    parser.add_argument("--requests", type=float)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--top", type=int, default=12, help="show the N functions with most own samples")
    args = parser.parse_args()
    phases: Counter[str] = Counter()
    kinds: Counter[tuple[str, str]] = Counter()
    overall: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    with open(args.raw) as fh:
        for line in fh:
            line = line.rstrip("\n")
            if not line:
                continue
            stack, _, count = line.rpartition(" ")
            frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
            n = int(count)
            phase, kind = classify(frames)
            phases[phase] += n
            if kind:
                kinds[(phase, kind)] += n
                overall[kind] += n
                leaves[frames[-1].rsplit(":", 1)[0] + ")"] += n
    idle_key = next((k for k in phases if k.startswith("idle")), None)
    busy = sum(v for k, v in phases.items() if k != idle_key)
    total = sum(phases.values())
    if not busy:
        print("no samples inside a request")
        return
    per_req = (lambda n: n / args.rate / args.requests * 1000) if args.requests else None
    print(f"py-spy: {total} samples, {busy} inside a request ({busy / total:.0%} of worker time busy)")
    head = f"  {'phase':<58} {'share':>6}" + (f" {'ms/req':>7}" if per_req else "") + "   of which"
    print(head)
    for phase, n in phases.most_common():
        if phase == idle_key:
            continue
        split = ", ".join(f"{kind} {kinds[(phase, kind)] / n:.0%}" for kind in KINDS if kinds[(phase, kind)])
        ms = f" {per_req(n):7.2f}" if per_req else ""
        print(f"  {phase:<58} {n / busy:6.1%}{ms}   {split}")
    if per_req:
        print(f"  {'total (worker wall time per request)':<58} {1:6.0%} {per_req(busy):7.2f}")
    print("  across phases: " + ", ".join(f"{k} {v / busy:.1%}" for k, v in overall.most_common()))
    if args.top:
        print(f"  top {args.top} functions by own samples (inside a request):")
        for frame, n in leaves.most_common(args.top):
            print(f"    {n / busy:6.1%}  {frame}")


if __name__ == "__main__":
    main()
