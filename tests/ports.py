"""Free TCP ports for servers a test starts itself (nginx, granian, runserver, gRPC processes).

Such a server binds after the test has chosen its port, so the port must stay free in between.
A port taken with bind(("127.0.0.1", 0)) and released comes from the kernel's ephemeral range,
where any outgoing connection (of this process, of another xdist worker) may take it first. So,
like scripts/services, ports are picked below that range, and each xdist worker picks in a block
of its own: two workers never choose the same port. scripts/services picks in 20000 and up, for
the stores (and the private brokers some tests start), so this takes 10000-19999.
"""

from __future__ import annotations

import os
import random
import re
import socket

FIRST, LAST = 10_000, 19_999
BLOCK = 1_000  # ports per worker: ten workers fit


def _block() -> range:
    match = re.fullmatch(r"gw(\d+)", os.environ.get("PYTEST_XDIST_WORKER", ""))
    n = int(match.group(1)) if match else 0
    start = FIRST + (n * BLOCK) % (LAST + 1 - FIRST)
    return range(start, start + BLOCK)


def free_ports(count: int) -> list[int]:
    """`count` different ports of this worker's block with nothing bound to them right now."""
    candidates = list(_block())
    random.shuffle(candidates)  # runs of other checkouts on the machine pick elsewhere in the block
    chosen: list[int] = []
    for port in candidates:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        chosen.append(port)
        if len(chosen) == count:
            return chosen
    raise RuntimeError(f"no {count} free ports in {_block()}")


def free_port() -> int:
    return free_ports(1)[0]
