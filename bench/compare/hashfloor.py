"""What the password hash allows: password checks per second on this machine's cores.

    hashfloor.py --username bench-user-0 --password PW [--seconds 5] [--procs N]

Reads the user's stored hash (Django's first PASSWORD_HASHERS entry, bcrypt here) and runs
`check_password` against it in --procs processes (default: every core) for --seconds. Every
login of the code flow does exactly one such check, so this is the ceiling of code flows per
second on this machine: the flow can at best approach it. Two figures: the checks per second
measured, and the cap from the CPU time of one check (cores / CPU seconds per check), which
holds even when something else took part of the machine meanwhile.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "idp.settings")

import django

django.setup()

from django.contrib.auth.hashers import check_password, identify_hasher  # noqa: E402

from accounts.models import User  # noqa: E402


def spin(args: tuple[str, str, float]) -> tuple[int, float]:
    password, encoded, seconds = args
    n, t0 = 0, time.monotonic()
    while time.monotonic() - t0 < seconds:
        if not check_password(password, encoded):
            raise SystemExit("the password does not match")
        n += 1
    return n, time.process_time()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--username", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--procs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json")
    args = parser.parse_args()
    encoded = User.objects.get(username=args.username).password
    hasher = identify_hasher(encoded)
    cost = hasher.safe_summary(encoded).get("work factor", "")
    t0 = time.monotonic()
    with mp.get_context("fork").Pool(args.procs) as pool:
        results = pool.map(spin, [(args.password, encoded, args.seconds)] * args.procs)
    elapsed = time.monotonic() - t0
    checks = sum(n for n, _ in results)
    cpu = sum(c for _, c in results)
    out = {
        "hasher": hasher.algorithm,
        "work_factor": cost,
        "procs": args.procs,
        "checks": checks,
        "per_second": checks / args.seconds,
        "cpu_ms_per_check": cpu / checks * 1000 if checks else None,
        "cap_per_second": (os.cpu_count() or 1) * checks / cpu if cpu else None,
        "elapsed_s": elapsed,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(out))
    print(
        f"password hash floor: {hasher.algorithm} (work factor {cost}), {args.procs} processes x "
        f"{args.seconds:g}s: {out['per_second']:.1f} checks/s, "
        f"{out['cpu_ms_per_check']:.0f} ms CPU per check "
        f"(cap on {os.cpu_count()} cores: {out['cap_per_second']:.1f}/s)"
    )


if __name__ == "__main__":
    main()
