"""CPU used per process group over a window, in cores (1.0 = one core busy), from /proc.

    cpusplit.py --delay 3 --window 14 --group server=PID[,PID...] --group generator=PID \
                --group redis=PID [--split server] [--json FILE]

Each group counts the given processes and all their descendants (the set is re-read at both
ends of the window), including the ones that exit during the window (see used()). `other` is
whatever else ran on the machine (other users' tests, Kafka, PostgreSQL, the kernel), from
/proc/stat. `--split NAME` also gives that group's share per child of its root (the worker
processes of a server): processes that each hold an interpreter lock show there when one of
them is at its core's limit while the others idle. Prints one line.
"""

from __future__ import annotations

import argparse
import json
import os
import time

HZ = os.sysconf("SC_CLK_TCK")


def children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            tree.setdefault(ppid, []).append(int(name))
    return tree


def descendants(roots: list[int]) -> set[int]:
    tree, seen, todo = children(), set(), list(roots)
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.add(pid)
            todo.extend(tree.get(pid, []))
    return seen


def ticks(pids: set[int]) -> dict[int, tuple[int, int, int]]:
    """pid -> (own utime + stime, cutime + cstime of its reaped children, ppid)."""
    out = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            out[pid] = (int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14]), int(fields[1]))
        except (OSError, IndexError, ValueError):
            pass
    return out


def used(start: dict[int, tuple[int, int, int]], end: dict[int, tuple[int, int, int]]) -> int:
    """Ticks a group used between two readings, counting the processes that exited meanwhile.

    A process that exits is gone from /proc (a PostgreSQL backend whose connection was recycled,
    a worker that was replaced), but its whole CPU time lands in its parent's cutime/cstime once
    the parent reaps it. So: the own time of the processes alive at the end, plus what their
    reaped children added meanwhile, minus what the exited ones had already used at the start
    (counted only when their parent is still there to have reaped them into the group's total).
    """
    total = 0
    for pid, (own, children, _) in end.items():
        own0, children0, _ = start.get(pid, (0, 0, 0))
        total += (own - own0) + (children - children0)
    for pid, (own0, _, ppid) in start.items():
        if pid not in end and ppid in end:
            total -= own0
    return total


def machine() -> tuple[int, int]:
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]
    return sum(values[:8]) - idle, sum(values[:8])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--delay", type=float, default=3)
    parser.add_argument("--window", type=float, default=10)
    parser.add_argument("--group", action="append", default=[], help="name=pid[,pid]")
    parser.add_argument("--split", action="append", default=[], help="a group to give per child of its root")
    parser.add_argument("--json")
    args = parser.parse_args()
    groups = {}
    for spec in args.group:
        name, _, pids = spec.partition("=")
        groups[name] = [int(p) for p in pids.split(",") if p.strip()]
    time.sleep(args.delay)
    # Each child of a split group's root (and its descendants) as a group of its own.
    tree = children()
    parts = {
        name: sorted(child for root in groups[name] for child in tree.get(root, []))
        for name in args.split
        if name in groups
    }
    for name, kids in parts.items():
        groups.update({f"{name}/{kid}": [kid] for kid in kids})
    sets = {name: descendants(roots) for name, roots in groups.items()}
    start = {name: ticks(s) for name, s in sets.items()}
    busy0, _ = machine()
    t0 = time.monotonic()
    time.sleep(args.window)
    elapsed = time.monotonic() - t0
    busy1, _ = machine()
    result = {}
    for name, roots in groups.items():
        end = ticks(descendants(roots) | sets[name])
        result[name] = used(start[name], end) / HZ / elapsed
    split = {name: [result.pop(f"{name}/{kid}") for kid in kids] for name, kids in parts.items()}
    result["machine"] = (busy1 - busy0) / HZ / elapsed
    result["other"] = max(0.0, result["machine"] - sum(v for k, v in result.items() if k != "machine"))
    result["window_s"] = elapsed
    if split:
        result["split"] = split

    def shown(name: str, value: float) -> str:
        each = split.get(name)
        return f"{name} {value:.2f}" + (f" ({' + '.join(f'{v:.2f}' for v in each)})" if each else "")

    line = (
        f"CPU (cores, of {os.cpu_count()}): "
        + ", ".join(shown(k, v) for k, v in result.items() if k not in ("window_s", "split"))
        + f" (over {elapsed:.0f}s)"
    )
    print(line)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f)


if __name__ == "__main__":
    main()
