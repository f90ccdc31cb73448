"""Memory of a process tree: RSS and PSS summed over a process and all its descendants.

    procmem.py PID [--json FILE]

RSS counts pages shared between forked workers once per process (the web server's main process and workers
share much of their memory after fork), so the sum overstates what the tree holds; PSS splits
each shared page between its sharers, so its sum is the tree's real footprint. Prints one line.
"""

from __future__ import annotations

import argparse
import json
import os


def descendants(root: int) -> list[int]:
    tree: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            tree.setdefault(ppid, []).append(int(name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(tree.get(pid, []))
    return out


def field_kb(path: str, name: str) -> int:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(name + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("pid", type=int)
    parser.add_argument("--json")
    args = parser.parse_args()
    pids = descendants(args.pid)
    rss = sum(field_kb(f"/proc/{p}/status", "VmRSS") for p in pids)
    pss = sum(field_kb(f"/proc/{p}/smaps_rollup", "Pss") for p in pids)
    result = {"processes": len(pids), "rss_mb": rss / 1024, "pss_mb": pss / 1024}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f)
    print(f"{len(pids)} processes: RSS {rss / 1024:.0f} MB, PSS {pss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
