"""Print the benchmark's summary table from the result files run.sh leaves in OUT.

    summarize.py OUT

Per run: ok calls/s (successful answers over the run's wall time), p50/p90/p99 (ms), errors,
the CPU split (cores: server / load generator / redis / anything else on the machine) and the
server's CPU time per successful call (µs): unlike calls/s, that figure does not depend on
what else the machine was running, so it also gives the capacity of 2 dedicated cores
("2-core cap" = 2 s of CPU per second / (server + generator + redis) µs per call).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

RUNS = [
    ("grpc-max-cached", "gRPC TokenValidate, max (closed loop), 1,000 tokens round-robin"),
    ("grpc-max-uncached", "gRPC TokenValidate, max (closed loop), distinct tokens (LRU misses)"),
    ("grpc-rate-cached", "gRPC TokenValidate, fixed rate (open loop), 1,000 tokens"),
    ("grpc-rate-uncached", "gRPC TokenValidate, fixed rate (open loop), distinct tokens"),
    ("rest-max-cached", "REST POST /api/v1/auth/validate, max (closed loop), 1,000 tokens"),
    ("rest-max-uncached", "REST POST /api/v1/auth/validate, max (closed loop), distinct tokens"),
    ("rest-rate-cached", "REST POST /api/v1/auth/validate, fixed rate (open loop), 1,000 tokens"),
    ("rest-rate-sustain", "REST POST /api/v1/auth/validate, fixed rate (open loop), 1,000 tokens"),
]


def ghz(path: Path) -> dict:
    d = json.loads(path.read_text())
    pct = {p["percentage"]: p["latency"] / 1e6 for p in d.get("latencyDistribution") or []}
    codes = d.get("statusCodeDistribution") or {}
    ok = codes.get("OK", 0)
    errors = {k: v for k, v in codes.items() if k != "OK"}
    return {
        "rps": ok / (d["total"] / 1e9),
        "p50": pct.get(50),
        "p90": pct.get(90),
        "p99": pct.get(99),
        "n": ok,
        "errors": errors,
    }


def wrk(path: Path) -> dict:
    line = next(x for x in path.read_text().splitlines() if x.startswith("JSON "))
    d = json.loads(line[5:])
    bad = {k: d[k] for k in ("connect_err", "read_err", "write_err", "timeout_err", "non2xx") if d[k]}
    ok = d["requests"] - d["non2xx"]
    return {
        "rps": ok / (d["duration_us"] / 1e6),
        "p50": d["p50_us"] / 1e3,
        "p90": d["p90_us"] / 1e3,
        "p99": d["p99_us"] / 1e3,
        "n": ok,
        "errors": bad,
    }


def oha(path: Path) -> dict:
    d = json.loads(path.read_text())
    pct = d["latencyPercentiles"]
    codes = d.get("statusCodeDistribution") or {}
    ok = codes.get("200", 0)
    errors = {k: v for k, v in codes.items() if k != "200"} | (d.get("errorDistribution") or {})
    return {
        "rps": ok / d["summary"]["total"],
        "p50": pct["p50"] * 1e3,
        "p90": pct["p90"] * 1e3,
        "p99": pct["p99"] * 1e3,
        "n": ok,
        "errors": errors,
    }


PARSERS = ((ghz, ".ghz.json"), (wrk, ".wrk.txt"), (oha, ".oha.json"))


def whatif_runs(out: Path, prefix: str) -> list[tuple[str, str]]:
    runs = []
    for f in sorted(out.glob(f"{prefix}*.ghz.json")):
        key = f.name[: -len(".ghz.json")]
        rate = key.split("-rate")[1] if "-rate" in key else ""
        runs.append(
            (
                key,
                f"{key[len(prefix) :].split('-rate')[0]}: "
                + (f"fixed {rate}/s (open loop)" if rate else "max (closed loop)"),
            )
        )
    return sorted(runs, key=lambda r: ("-rate" in r[0], r[0]))


def main() -> None:
    out = Path(sys.argv[1])
    global RUNS
    if len(sys.argv) > 3 and sys.argv[2] == "--prefix":
        RUNS = whatif_runs(out, sys.argv[3])
    print(
        f"{'run':72s} {'ok/s':>7s} {'p50 ms':>7s} {'p90 ms':>7s} {'p99 ms':>7s}  "
        f"{'CPU cores: srv/gen/redis/other':31s} {'srv µs/call':>11s} {'2-core cap':>10s}"
    )
    table = {}
    for key, label in RUNS:
        found = [(p, out / f"{key}{sfx}") for p, sfx in PARSERS if (out / f"{key}{sfx}").exists()]
        if not found:
            continue
        parse, f = found[0]
        try:
            r = parse(f)
        except Exception as exc:
            print(f"{label:72s} unreadable result {f.name}: {exc}")
            continue
        rate = (out / f"{key}.rate").read_text().strip() if (out / f"{key}.rate").exists() else ""
        if rate and "fixed rate" in label:
            label = label.replace("fixed rate", f"fixed {rate}/s")
        cpu, per_call, cap = "", "", ""
        if (out / f"cpu-{key}.json").exists():
            c = json.loads((out / f"cpu-{key}.json").read_text())
            cpu = "/".join(f"{c.get(k, 0):.2f}" for k in ("server", "generator", "redis", "other"))
            if r["rps"] > 0:
                srv = c.get("server", 0) * 1e6 / r["rps"]
                allin = (c.get("server", 0) + c.get("generator", 0) + c.get("redis", 0)) * 1e6 / r["rps"]
                per_call, cap = f"{srv:.0f}", f"{2e6 / allin:.0f}/s"
                r.update(server_us_per_call=srv, all_us_per_call=allin, cap_2core=2e6 / allin, cpu=c)
        fmt = lambda v: f"{v:7.2f}" if v is not None else "      -"  # noqa: E731
        lat = f"{fmt(r['p50'])} {fmt(r['p90'])} {fmt(r['p99'])}"
        print(f"{label:72s} {r['rps']:7.0f} {lat}  {cpu:31s} {per_call:>11s} {cap:>10s}")
        if r["errors"]:
            print(f"{'':72s} not ok: {r['errors']}")
        table[key] = r
    (out / "summary.json").write_text(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
