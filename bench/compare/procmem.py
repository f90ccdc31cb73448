"""Memory of a process tree: RSS and PSS summed over a process and all its descendants.

    procmem.py PID [--json FILE]

RSS counts pages shared between forked workers once per process (the web server's main process and workers
share much of their memory after fork), so the sum overstates what the tree holds; PSS splits
each shared page between its sharers, so its sum is the tree's real footprint. Prints one line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# The process walk is cpusplit.py's (bench/token_validate), which run.sh uses beside this.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "token_validate"))
from cpusplit import descendants


def field_kb(path: str, name: str) -> int:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(name + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_memory(pid: int) -> dict[str, float]:
    """{"processes", "rss_mb", "pss_mb"} of `pid` and its descendants."""
    pids = descendants([pid])
    rss = sum(field_kb(f"/proc/{p}/status", "VmRSS") for p in pids)
    pss = sum(field_kb(f"/proc/{p}/smaps_rollup", "Pss") for p in pids)
    return {"processes": len(pids), "rss_mb": rss / 1024, "pss_mb": pss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("pid", type=int)
    parser.add_argument("--json")
    args = parser.parse_args()
    result = tree_memory(args.pid)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f)
    print(f"{result['processes']} processes: RSS {result['rss_mb']:.0f} MB, PSS {result['pss_mb']:.0f} MB")


if __name__ == "__main__":
    main()
