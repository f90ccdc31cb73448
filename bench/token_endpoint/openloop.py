"""Open-loop (fixed-rate) HTTP load generator for the token endpoint; standard library only.

Request i is *due* at t0 + i/rate whether or not earlier requests have answered (open loop), so a
slow server cannot slow the generator down and hide its own queueing (coordinated omission).
Latency is measured from the due time (`latency`, the corrected figure) and, for comparison,
from the moment the request was actually written (`service`). The generator checks that it kept
to the schedule: `send lag` is how late request writes were against their due times.

Connections are HTTP/1.1 keep-alive from a pool; a request that finds no idle connection opens a
new one (up to --max-conns; past that it waits, and the wait counts in its latency). A response
with `Connection: close` (gunicorn's sync worker) closes its connection.

Usage: openloop.py --url http://127.0.0.1:8000/o/token/ --basic B64 --rate 250 --duration 30
Prints a summary and, with --json FILE, writes the figures as JSON. Only loopback targets.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
from collections import Counter
from urllib.parse import urlsplit

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return math.nan
    k = max(0, min(len(sorted_values) - 1, math.ceil(q / 100 * len(sorted_values)) - 1))
    return sorted_values[k]


class Pool:
    def __init__(self, host: str, port: int, max_conns: int) -> None:
        self.host, self.port, self.max_conns = host, port, max_conns
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.open = 0
        self.opened_total = 0
        self.freed = asyncio.Condition()

    async def get(self) -> tuple[tuple[asyncio.StreamReader, asyncio.StreamWriter], bool]:
        """(connection, whether it is new)."""
        async with self.freed:
            while not self.idle and self.open >= self.max_conns:
                await self.freed.wait()
            if self.idle:
                return self.idle.pop(), False
            self.open += 1
        try:
            conn = await asyncio.open_connection(self.host, self.port)
        except BaseException:
            async with self.freed:
                self.open -= 1
                self.freed.notify()
            raise
        self.opened_total += 1
        return conn, True

    async def put(self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], reusable: bool) -> None:
        if not reusable:
            conn[1].close()
        async with self.freed:
            if reusable:
                self.idle.append(conn)
            else:
                self.open -= 1
            self.freed.notify()

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()


async def exchange(
    conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], payload: bytes, timeout: float
) -> tuple[int, bool]:
    """Write the request, read the whole response: (status, connection closes after it)."""
    reader, writer = conn
    writer.write(payload)
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), timeout)
    if not status_line:
        raise ConnectionResetError("connection closed before the status line")
    status = int(status_line.split()[1])
    length = 0
    close = False
    while True:
        line = await asyncio.wait_for(reader.readline(), timeout)
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value.strip())
        elif name == "connection" and value.strip().lower() == "close":
            close = True
    if length:
        await asyncio.wait_for(reader.readexactly(length), timeout)
    return status, close


async def one_request(pool: Pool, payload: bytes, due: float, timeout: float, out: dict) -> None:
    loop = asyncio.get_running_loop()
    out["dispatch"].append(loop.time() - due)  # how late the generator itself was
    for attempt in (1, 2):
        conn = None
        reusable = False
        fresh = True
        try:
            conn, fresh = await pool.get()
            sent = loop.time()
            if attempt == 1:
                out["lag"].append(sent - due)
            status, close = await exchange(conn, payload, timeout)
            done = loop.time()
            reusable = not close
            out["status"][status] += 1
            if status == 200:
                out["latency"].append(done - due)
                out["service"].append(done - sent)
                out["last_done"] = max(out["last_done"], done)
            return
        except (ConnectionResetError, BrokenPipeError, asyncio.IncompleteReadError) as exc:
            # A kept-alive connection the server closed while idle (its keep-alive timeout):
            # try once more on a new one, as HTTP clients do; the latency still counts from `due`.
            if attempt == 1 and not fresh:
                out["retried"] += 1
                continue
            out["errors"][type(exc).__name__] += 1
            return
        except (TimeoutError, OSError, ValueError) as exc:
            out["errors"][type(exc).__name__] += 1
            return
        finally:
            if conn is not None:
                await pool.put(conn, reusable)


async def run(args: argparse.Namespace) -> dict:
    url = urlsplit(args.url)
    host, port = url.hostname or "", url.port or 80
    if host not in LOOPBACK:
        sys.exit(f"refusing non-loopback target {host!r}")
    body = args.body.encode()
    payload = (
        f"POST {url.path or '/'} HTTP/1.1\r\nHost: {url.netloc}\r\n"
        f"Authorization: Basic {args.basic}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\nUser-Agent: openloop-bench\r\n\r\n"
    ).encode() + body
    pool = Pool(host, port, args.max_conns)
    out: dict = {
        "lag": [],
        "dispatch": [],
        "latency": [],
        "service": [],
        "status": Counter(),
        "errors": Counter(),
        "retried": 0,
        "last_done": 0.0,
    }
    loop = asyncio.get_running_loop()
    total = int(args.rate * args.duration)
    interval = 1.0 / args.rate
    tasks: set[asyncio.Task] = set()
    t0 = loop.time() + 0.05
    for i in range(total):
        due = t0 + i * interval
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one_request(pool, payload, due, args.timeout, out))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    scheduled_end = t0 + total * interval
    if tasks:
        await asyncio.wait(tasks, timeout=args.timeout + 5)
    pool.close()
    ok = len(out["latency"])
    latency = sorted(out["latency"])
    service = sorted(out["service"])
    lag = sorted(out["lag"])
    dispatch = sorted(out["dispatch"])
    span = max(out["last_done"], scheduled_end) - t0
    ms = 1000.0
    return {
        "target_rate": args.rate,
        "duration_s": args.duration,
        "scheduled": total,
        "ok": ok,
        "status": {str(k): v for k, v in sorted(out["status"].items())},
        "errors": dict(out["errors"]),
        "achieved_rate": ok / span if span > 0 else 0.0,
        "connections_opened": pool.opened_total,
        "retried_on_closed_keepalive": out["retried"],
        "dispatch_lag_ms": {  # the generator's own lateness: must stay ~0 for a valid run
            "p50": percentile(dispatch, 50) * ms,
            "p99": percentile(dispatch, 99) * ms,
            "max": (dispatch[-1] if dispatch else math.nan) * ms,
        },
        "send_lag_ms": {  # due -> written: generator lateness + waiting for a free connection
            "p50": percentile(lag, 50) * ms,
            "p99": percentile(lag, 99) * ms,
            "max": (lag[-1] if lag else math.nan) * ms,
        },
        "latency_ms": {  # from the due time: corrected for coordinated omission
            q: percentile(latency, float(q[1:].replace("_", "."))) * ms
            for q in ("p50", "p90", "p99", "p99_9")
        }
        | {
            "max": (latency[-1] if latency else math.nan) * ms,
            "mean": (sum(latency) / ok * ms) if ok else math.nan,
        },
        "service_ms": {q: percentile(service, float(q[1:])) * ms for q in ("p50", "p90", "p99")},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--basic", required=True, help="base64(client_id:client_secret)")
    parser.add_argument("--body", default="grant_type=client_credentials")
    parser.add_argument("--rate", type=float, default=250.0, help="requests per second")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds")
    parser.add_argument("--max-conns", type=int, default=256)
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)
    if not args.quiet:
        lat, svc, lag = result["latency_ms"], result["service_ms"], result["send_lag_ms"]
        print(
            f"open loop: target {result['target_rate']:.0f} req/s for {result['duration_s']:.0f} s, "
            f"{result['ok']}/{result['scheduled']} OK, achieved {result['achieved_rate']:.1f} req/s, "
            f"status {result['status']} errors {result['errors']}, "
            f"{result['connections_opened']} connections opened, "
            f"{result['retried_on_closed_keepalive']} retried after a closed keep-alive"
        )
        print(
            f"  latency (from due time) p50 {lat['p50']:.2f} ms  p90 {lat['p90']:.2f} ms  "
            f"p99 {lat['p99']:.2f} ms  p99.9 {lat['p99_9']:.2f} ms  max {lat['max']:.2f} ms"
        )
        dis = result["dispatch_lag_ms"]
        rows = [
            ("service (from write)", svc, ("p50", "p90", "p99")),
            ("generator lag (due -> dispatched)", dis, ("p50", "p99", "max")),
            ("send lag (due -> written, incl. waiting for a connection)", lag, ("p50", "p99", "max")),
        ]
        for label, values, keys in rows:
            print(f"  {label}: " + "  ".join(f"{k} {values[k]:.2f} ms" for k in keys))


if __name__ == "__main__":
    main()
