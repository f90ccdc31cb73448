"""Open-loop (fixed-rate) refresh grants along chains of single-use refresh tokens.

    chainloop.py --url http://127.0.0.1:P/o/token/ --auth "Basic B64" --chains IN --chains-out OUT \
        --rate 150 --duration 15 [--json FILE]

oha cannot feed one answer's refresh token into a later request, and both servers rotate refresh
tokens (each is single use), so this driver does what oha -q RATE --latency-correction does, with
chains: request i is due at t0 + i/RATE whether or not earlier ones have answered (no
coordinated omission), takes the newest token of an idle chain, and the answer's new refresh
token goes back on that chain. Latency counts from the due time (including any wait for a free
chain or connection: with more chains than requests in flight there is none). Chains whose
request failed are dropped; the rest are written to --chains-out for the next run.
HTTP/1.1 keep-alive connections from a pool (a `Connection: close` answer closes its own).
Standard library only; loopback targets only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import re
from collections import Counter, deque
from urllib.parse import urlsplit

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
REFRESH = re.compile(rb'"refresh_token"\s*:\s*"([^"]+)"')


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    return values[max(0, min(len(values) - 1, math.ceil(q / 100 * len(values)) - 1))]


async def read_response(reader: asyncio.StreamReader, timeout: float) -> tuple[int, bool, bytes]:
    status_line = await asyncio.wait_for(reader.readline(), timeout)
    if not status_line:
        raise ConnectionResetError("closed before the status line")
    status = int(status_line.split()[1])
    length, chunked, close = 0, False, False
    while True:
        line = await asyncio.wait_for(reader.readline(), timeout)
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "transfer-encoding" and "chunked" in value:
            chunked = True
        elif name == "connection" and value == "close":
            close = True
    if chunked:
        body = b""
        while True:
            size = int((await asyncio.wait_for(reader.readline(), timeout)).split(b";")[0], 16)
            chunk = await asyncio.wait_for(reader.readexactly(size + 2), timeout)
            if size == 0:
                break
            body += chunk[:-2]
    else:
        body = await asyncio.wait_for(reader.readexactly(length), timeout) if length else b""
    return status, close, body


async def run(args: argparse.Namespace) -> dict:
    url = urlsplit(args.url)
    host, port = url.hostname or "", url.port or 80
    if host not in LOOPBACK:
        raise SystemExit(f"refusing non-loopback target {host!r}")
    with open(args.chains) as fh:
        chains: deque[str] = deque(line.strip() for line in fh if line.strip())
    started_with = len(chains)
    chain_free = asyncio.Condition()
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    stats: dict = {"latency": [], "status": Counter(), "errors": Counter(), "opened": 0, "retried": 0}
    loop = asyncio.get_running_loop()

    def payload(token: str) -> bytes:
        body = f"grant_type=refresh_token&refresh_token={token}".encode()
        return (
            f"POST {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\nAuthorization: {args.auth}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\nUser-Agent: chainloop-bench\r\n\r\n"
        ).encode() + body

    async def one(due: float) -> None:
        async with chain_free:
            while not chains:
                await chain_free.wait()
            token = chains.popleft()
        for attempt in (1, 2):
            fresh = not idle
            if fresh:
                conn = await asyncio.open_connection(host, port)
                stats["opened"] += 1
            else:
                conn = idle.pop()
            reader, writer = conn
            try:
                writer.write(payload(token))
                await writer.drain()
                status, close, body = await read_response(reader, args.timeout)
            except (ConnectionResetError, BrokenPipeError, asyncio.IncompleteReadError) as exc:
                writer.close()
                if attempt == 1 and not fresh:  # a kept-alive connection closed while idle
                    stats["retried"] += 1
                    continue
                stats["errors"][type(exc).__name__] += 1
                return
            except (TimeoutError, OSError, ValueError) as exc:
                writer.close()
                stats["errors"][type(exc).__name__] += 1
                return
            done = loop.time()
            if close:
                writer.close()
            else:
                idle.append(conn)
            stats["status"][status] += 1
            match = REFRESH.search(body) if status == 200 else None
            if match:
                stats["latency"].append(done - due)
                async with chain_free:
                    chains.append(match.group(1).decode())
                    chain_free.notify()
            return

    total = int(args.rate * args.duration)
    tasks: set[asyncio.Task] = set()
    t0 = loop.time() + 0.05
    for i in range(total):
        due = t0 + i / args.rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(tasks, timeout=args.timeout + 5)
    elapsed = loop.time() - t0
    for _, writer in idle:
        writer.close()
    with open(args.chains_out, "w") as fh:
        fh.write("".join(t + "\n" for t in chains))
    lat = sorted(stats["latency"])
    ms = 1000.0
    return {
        "target_rate": args.rate,
        "duration_s": args.duration,
        "scheduled": total,
        "ok": len(lat),
        "rps": len(lat) / max(elapsed, args.duration),
        "status": {str(k): v for k, v in sorted(stats["status"].items())},
        "errors": dict(stats["errors"]),
        "chains": [started_with, len(chains)],
        "connections_opened": stats["opened"],
        "p50_ms": percentile(lat, 50) * ms,
        "p90_ms": percentile(lat, 90) * ms,
        "p99_ms": percentile(lat, 99) * ms,
        "max_ms": (lat[-1] if lat else math.nan) * ms,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--auth", required=True, help='the Authorization header, e.g. "Basic B64"')
    parser.add_argument("--chains", required=True, help="file: the newest refresh token of each chain")
    parser.add_argument("--chains-out", required=True)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--json")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)
    print(
        f"refresh open loop {args.rate:g}/s for {args.duration:g}s: {result['ok']}/{result['scheduled']} ok, "
        f"{result['rps']:.1f}/s, status {result['status']} errors {result['errors']}, chains "
        f"{result['chains'][0]} -> {result['chains'][1]}; p50 {result['p50_ms']:.2f} ms "
        f"p99 {result['p99_ms']:.2f} ms max {result['max_ms']:.2f} ms"
    )


if __name__ == "__main__":
    main()
