"""CPU used per process group over a time window, from /proc (standard library only).

    cpusplit.py --server-pid PID --delay 3 --window 20 [--json FILE]
    cpusplit.py --wait-quiet 120 [--threshold 0.25]

The second form waits (at most the given seconds) until the machine has been nearly idle
(busy below --threshold cores) for 3 s: other people's processes on a shared machine skew a
benchmark. It prints what it saw and exits 0 when quiet, 1 when it gave up.

Sleeps --delay seconds, reads every process's utime+stime and /proc/stat, sleeps --window
seconds, reads again, and prints the CPU each group used in the window, in cores (1.0 = one core
busy the whole window): server (the gunicorn master and its workers), load generator (wrk, oha,
openloop.py), postgresql, redis, other; plus the machine's total busy, idle and steal.
Processes are sampled every 0.5 s, so one that starts or ends inside the window is counted too
(all but its last half second); what no sample saw is reported as unaccounted.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import defaultdict

TICK = os.sysconf("SC_CLK_TCK")


def processes() -> dict[int, tuple[str, int, int, str]]:
    """pid -> (comm, ppid, utime+stime ticks, cmdline)."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                raw = fh.read()
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmdline = fh.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        comm = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2 :].split()
        out[int(entry)] = (comm, int(fields[1]), int(fields[11]) + int(fields[12]), cmdline)
    return out


def machine() -> list[int]:
    with open("/proc/stat") as fh:
        return [int(x) for x in fh.readline().split()[1:]]


def descendants(procs: dict, root: int) -> set[int]:
    children = defaultdict(list)
    for pid, (_, ppid, _, _) in procs.items():
        children[ppid].append(pid)
    seen, stack = set(), [root]
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        stack.extend(children[pid])
    return seen


def group(pid: int, comm: str, cmdline: str, server: set[int]) -> str:
    if pid in server:
        return "server (gunicorn)"
    if comm in {"wrk", "oha"} or "openloop.py" in cmdline:
        return "load generator"
    if comm == "postgres" or cmdline.startswith("postgres"):
        return "postgresql"
    if comm.startswith("redis"):
        return "redis"
    return "other"


def wait_quiet(limit: float, threshold: float) -> int:
    deadline = time.monotonic() + limit
    cores = os.cpu_count() or 1
    while True:
        m0 = machine()
        time.sleep(3)
        d = [b - a for a, b in zip(m0, machine(), strict=False)]
        busy = (sum(d) - d[3] - d[4]) / (sum(d) or 1) * cores
        if busy < threshold:
            print(f"machine quiet: {busy:.2f} cores busy")
            return 0
        if time.monotonic() > deadline:
            print(f"machine still busy after {limit:.0f} s: {busy:.2f} cores busy by other processes")
            return 1
        time.sleep(2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--wait-quiet", type=float)
    parser.add_argument("--threshold", type=float, default=0.25)
    parser.add_argument("--server-pid", type=int)
    parser.add_argument("--delay", type=float, default=3.0)
    parser.add_argument("--window", type=float, default=20.0)
    parser.add_argument("--json")
    args = parser.parse_args()
    if args.wait_quiet is not None:
        raise SystemExit(wait_quiet(args.wait_quiet, args.threshold))
    if args.server_pid is None:
        parser.error("--server-pid is required")
    time.sleep(args.delay)
    # Sample every 0.5 s and add up each process's deltas, so that a process that ends inside
    # the window (a recycled PostgreSQL backend) loses at most its last half second.
    first = last = processes()
    m0, t0 = machine(), time.monotonic()
    seen: dict[int, tuple[str, int, str]] = {pid: (p[0], p[2], p[3]) for pid, p in first.items()}
    delta: dict[int, int] = defaultdict(int)
    server: set[int] = descendants(first, args.server_pid)
    end = t0 + args.window
    while True:
        time.sleep(max(0.0, min(0.5, end - time.monotonic())))
        now = processes()
        server |= descendants(now, args.server_pid)
        for pid, (comm, _, ticks, cmdline) in now.items():
            prev = seen.get(pid)
            if prev is not None and prev[0] == comm:
                delta[pid] += ticks - prev[1]
            elif pid not in first:
                delta[pid] += ticks  # born inside the window
            seen[pid] = (comm, ticks, cmdline)
        last = now
        if time.monotonic() >= end:
            break
    m1, t1 = machine(), time.monotonic()
    seconds = t1 - t0
    used: dict[str, float] = defaultdict(float)
    others: dict[str, float] = defaultdict(float)
    for pid, ticks in delta.items():
        if not ticks:
            continue
        comm, _, cmdline = seen[pid]
        name = group(pid, comm, cmdline, server)
        used[name] += ticks / TICK / seconds
        if name == "other":
            others[" ".join(cmdline.split()[:3])[:80] or comm] += ticks / TICK / seconds
    del last
    d = [b - a for a, b in zip(m0, m1, strict=False)]
    total = sum(d) or 1
    busy = (total - d[3] - d[4]) / total * (os.cpu_count() or 1)
    # CPU of processes that started and ended inside the window (e.g. someone's test run) is in
    # the machine's total but in no process we could read at the window's ends.
    used["unaccounted (short-lived processes)"] = max(0.0, busy - sum(used.values()))
    # user nice system idle iowait irq softirq steal ...
    cores = os.cpu_count() or 1
    result = {
        "window_s": round(seconds, 2),
        "cores_used": {k: round(v, 3) for k, v in sorted(used.items(), key=lambda kv: -kv[1])},
        "machine": {
            "busy_cores": round((total - d[3] - d[4]) / total * cores, 3),
            "idle_cores": round((d[3] + d[4]) / total * cores, 3),
            "steal_cores": round((d[7] if len(d) > 7 else 0) / total * cores, 3),
        },
        "other_top": {k: round(v, 3) for k, v in sorted(others.items(), key=lambda kv: -kv[1])[:4]},
    }
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)
    parts = ", ".join(f"{k} {v:.2f}" for k, v in result["cores_used"].items())
    mach = result["machine"]
    print(
        f"CPU over {seconds:.0f} s (cores of {cores}): {parts}; machine busy {mach['busy_cores']:.2f}, "
        f"idle {mach['idle_cores']:.2f}, steal {mach['steal_cores']:.2f}"
    )
    if (
        result["cores_used"].get("other", 0) >= 0.1
        or busy
        - sum(
            v
            for k, v in result["cores_used"].items()
            if k in ("server (gunicorn)", "postgresql", "load generator", "redis")
        )
        >= 0.2
    ):
        top = "; ".join(f"{k} {v:.2f}" for k, v in result["other_top"].items())
        print(f"  (not ours: {top})")


if __name__ == "__main__":
    main()
