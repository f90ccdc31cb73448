"""Tables for bench/compare from the files run.sh leaves in OUT (markdown on stdout).

    summarize.py OUT                 # the whole summary
    summarize.py OUT --one KEY       # one line for one run (progress output)
    summarize.py OUT --half PATH-SYS # half of the best closed-loop rate of that path and system
    summarize.py --trim-ghz FILE     # drop the per-call list and the token pool from ghz's JSON
    summarize.py --runs OUT...       # several runs: their warmed rounds and the acceptance lines

Run keys: r<round>-<path>-<system> (closed loop, peak), half-<path>-<system> (open loop at half
the peak). Result files per key: KEY.wrk.txt (bench.lua / validate.lua "JSON" line),
KEY.flow.json (codeflow.py), KEY.oha.json, KEY.chain.json (chainloop.py), KEY.ghz.json; beside
them cpu-KEY.json (cores per group over the middle of the run, token_validate/cpusplit.py) and
mem-KEY.json (procmem.py on the server after the run). ok/s counts successful answers only.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from pathlib import Path

PATHS = {
    "cc": "client_credentials tokens",
    "introspect": "RFC 7662 introspections",
    "refresh": "refresh grants",
    "userinfo": "userinfo",
    "codeflow": "code flows (authorize, login, code, token)",
    "grpc": "gRPC TokenValidate (project only)",
    "restvalidate": "REST POST /api/v1/auth/validate (project only)",
    "barewsgi": "floor: a bare WSGI app under granian (introspection's requests)",
    "baredjango": "floor: a Django view, no middleware, no database (introspection's requests)",
    "baregrpc": "floor: a bare grpcio TokenValidate (gRPC's requests)",
    "gogrpc": "floor: the same answer from a bare gRPC server in Go (gRPC's requests)",
    "ccfloor": "floor: sign, and the project's statement for the token's rows (client_credentials' requests)",
    "ccfloornorow": "floor: the same without the token's own row, audit record and event only",
}
FLOORS = ("barewsgi", "baredjango", "baregrpc", "gogrpc", "ccfloor", "ccfloornorow")
# Each floor against the Keycloak paths it bounds: (floor, Keycloak path, the line's multiple).
CEILINGS = (
    ("baredjango", "introspect", 2.0),
    ("baredjango", "userinfo", 1.0),
    ("baregrpc", "introspect", 4.0),
    ("gogrpc", "introspect", 4.0),
    ("ccfloor", "cc", None),  # the client_credentials line of the run's algorithm (cc_line)
    ("ccfloornorow", "cc", None),
)
SYSTEMS = ("project", "keycloak")


def _wrk(path: Path) -> dict:
    line = next(x for x in path.read_text().splitlines() if x.startswith("JSON "))
    d = json.loads(line[5:])
    errors = {k: d[k] for k in ("connect_err", "read_err", "write_err", "timeout_err", "non2xx") if d[k]}
    ok = d["requests"] - d["non2xx"]
    return {
        "rps": ok / (d["duration_us"] / 1e6),
        "p50": d["p50_us"] / 1e3,
        "p99": d["p99_us"] / 1e3,
        "errors": errors,
    }


def _flow(path: Path) -> dict:
    d = json.loads(path.read_text())
    return {
        "rps": d["rps"],
        "p50": d["p50_ms"],
        "p99": d["p99_ms"],
        "errors": {"failed": d["failed"]} if d["failed"] else {},
    }


def _chain(path: Path) -> dict:
    d = json.loads(path.read_text())
    bad = {k: v for k, v in d["status"].items() if k != "200"} | d["errors"]
    return {"rps": d["rps"], "p50": d["p50_ms"], "p99": d["p99_ms"], "errors": bad}


def _oha(path: Path) -> dict:
    d = json.loads(path.read_text())
    pct = d["latencyPercentiles"]
    codes = d.get("statusCodeDistribution") or {}
    errors = {k: v for k, v in codes.items() if k != "200"}
    # With -z, the requests still in flight at the deadline are cancelled: not an error of the server.
    errors |= {k: v for k, v in (d.get("errorDistribution") or {}).items() if "deadline" not in k}
    return {
        "rps": codes.get("200", 0) / d["summary"]["total"],
        "p50": (pct["p50"] or math.nan) * 1e3,
        "p99": (pct["p99"] or math.nan) * 1e3,
        "errors": errors,
    }


def _ghz(path: Path) -> dict:
    d = json.loads(path.read_text())
    pct = {p["percentage"]: p["latency"] / 1e6 for p in d.get("latencyDistribution") or []}
    codes = d.get("statusCodeDistribution") or {}
    # At the end of a -z run ghz cancels the calls in flight ("Canceled") and closes its
    # connections under the rest ("Unavailable desc = transport is closing"): ghz's doing, not
    # the server's answer, so not counted as errors (there are at most as many as calls in flight).
    errors = {k: v for k, v in codes.items() if k not in ("OK", "Canceled")}
    closing = sum(v for k, v in (d.get("errorDistribution") or {}).items() if "transport is closing" in k)
    if closing and "Unavailable" in errors:
        errors["Unavailable"] -= closing
        errors = {k: v for k, v in errors.items() if v}
    return {
        "rps": codes.get("OK", 0) / (d["total"] / 1e9),
        "p50": pct.get(50, math.nan),
        "p99": pct.get(99, math.nan),
        "errors": errors,
        "cut_at_deadline": closing + codes.get("Canceled", 0),
    }


PARSERS = (
    (".wrk.txt", _wrk),
    (".flow.json", _flow),
    (".chain.json", _chain),
    (".oha.json", _oha),
    (".ghz.json", _ghz),
)


def load(out: Path, key: str) -> dict | None:
    for suffix, parse in PARSERS:
        f = out / f"{key}{suffix}"
        if f.exists():
            try:
                r = parse(f)
            except (ValueError, KeyError, StopIteration, ZeroDivisionError) as exc:
                return {"rps": 0.0, "p50": math.nan, "p99": math.nan, "errors": {"unreadable": str(exc)[:80]}}
            break
    else:
        return None
    cpu_file, mem_file, rate_file = out / f"cpu-{key}.json", out / f"mem-{key}.json", out / f"{key}.rate"
    r["cpu"] = json.loads(cpu_file.read_text()) if cpu_file.exists() else {}
    r["mem"] = json.loads(mem_file.read_text()) if mem_file.exists() else {}
    r["rate"] = float(rate_file.read_text()) if rate_file.exists() else None
    r["ms"] = {
        k: r["cpu"].get(k, 0) / r["rps"] * 1e3 if r["rps"] > 0 else math.nan
        for k in ("server", "postgresql", "redis", "grpc", "generator")
    }
    return r


def busier(r: dict) -> str:
    """The busier server process's share of the server's CPU, when the run has a per-process
    split: gRPC's processes each take the connections the kernel hashed to them, and each is held
    to about one core, so an uneven split decides the half-peak tail (RESULTS.md, step 14)."""
    split = (r.get("cpu") or {}).get("split", {}).get("server") or []
    if len(split) < 2 or sum(split) <= 0:
        return ""
    return f" (busier process {100 * max(split) / sum(split):.0f} % of the server's CPU)"


def flow_caps(out: Path) -> dict[int, float]:
    """The bcrypt cap (checks/s on the machine's cores) measured right after each code-flow round
    of the project (hashfloor-rN.json), by round; the machine's speed drifts within a run, so a
    round is best set against the check measured beside it."""
    caps = {}
    for f in out.glob("hashfloor-r*.json"):
        m = re.fullmatch(r"hashfloor-r(\d+)", f.name.split(".")[0])
        if m:
            caps[int(m.group(1))] = json.loads(f.read_text())["cap_per_second"]
    return caps


def rounds(out: Path, path: str, sys_: str) -> list[dict]:
    found = []
    for f in out.glob(f"r*-{path}-{sys_}.*"):
        m = re.fullmatch(rf"r(\d+)-{path}-{sys_}", f.name.split(".")[0])
        if m:
            found.append(int(m.group(1)))
    return [r for n in sorted(set(found)) if (r := load(out, f"r{n}-{path}-{sys_}")) is not None]


def fmt(v: float | None, digits: int = 0) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:,.{digits}f}"


def rate_str(v: float) -> str:
    return fmt(v, 1 if v < 20 else 0)


def ms_str(v: float) -> str:
    return fmt(v, 2 if v < 10 else 1 if v < 100 else 0)


def cpu_str(r: dict, sys_: str) -> str:
    ms = r["ms"]
    s = f"{ms['server']:.2f} + {ms['postgresql']:.2f}"
    if sys_ == "project" and r["cpu"].get("redis") is not None:
        s += f" + {ms['redis']:.2f}"
        if ms["grpc"] >= 0.05:  # the gRPC server's share (revocations fanned out), when it has one
            s += f" [+ {ms['grpc']:.2f} gRPC]"
    return s


def mem_str(r: dict) -> str:
    m = r.get("mem") or {}
    return f"{m['rss_mb']:.0f} ({m['pss_mb']:.0f})" if m else "-"


def errors_str(r: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in r["errors"].items()) if r["errors"] else ""


def server_cores(c: dict) -> str:
    """The server's cores, and each of its processes' when there are several (cpusplit --split):
    one worker at its core's limit beside an idle one is a connection split, not the code."""
    each = (c.get("split") or {}).get("server") or []
    parts = f" ({' + '.join(f'{v:.2f}' for v in each)})" if len(each) > 1 else ""
    return f"{c.get('server', 0):.2f}{parts}"


def one(out: Path, key: str) -> str:
    r = load(out, key)
    if r is None:
        return "no result"
    c = r["cpu"]
    text = (
        f"{rate_str(r['rps'])}/s ok, p50 {ms_str(r['p50'])} ms, p99 {ms_str(r['p99'])} ms; CPU cores "
        + f"server {server_cores(c)} "
        + " ".join(f"{k} {c.get(k, 0):.2f}" for k in ("postgresql", "redis", "grpc", "generator", "other"))
        + f"; ms/req server {r['ms']['server']:.2f} pg {r['ms']['postgresql']:.2f}; mem {mem_str(r)} MB"
    )
    return text + (f"; NOT OK: {errors_str(r)}" if r["errors"] else "")


def half_rate(out: Path, path_sys: str) -> str:
    path, sys_ = path_sys.rsplit("-", 1)
    runs = rounds(out, path, sys_)
    peak = max((r["rps"] for r in runs), default=0.0)
    if path == "codeflow":
        return f"{max(0.5, round(peak / 2, 1)):g}" if peak > 0 else "0"
    return str(int(peak / 2))


def machine_cores(out: Path) -> int:
    """The run's cores, from its env.txt ("machine: N cores, ..."); this machine's if absent."""
    env = out / "env.txt"
    m = re.search(r"^machine: (\d+) cores", env.read_text(), re.M) if env.exists() else None
    return int(m.group(1)) if m else (os.cpu_count() or 1)


def cc_line(dirs: list[Path]) -> float:
    """The client_credentials line: 3 x with an ES256 client (CC_ALG=ES256), else 1.5 x."""
    env = [d / "env.txt" for d in dirs]
    return 3.0 if any("CC_ALG=ES256" in f.read_text() for f in env if f.exists()) else 1.5


def summary(out: Path) -> None:
    env = out / "env.txt"
    if env.exists():
        print("```\n" + env.read_text().strip() + "\n```\n")
    present = [p for p in PATHS if rounds(out, p, "project")]
    print("### Peak, closed loop (wrk -t1 -c8; code flow: 8 flows at a time), rounds alternating\n")
    print(
        "| path | project ok/s, rounds | Keycloak ok/s, rounds | project ÷ Keycloak, last round (median) "
        "| p50 / p99 ms, project | p50 / p99 ms, Keycloak |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for path in present:
        p, k = rounds(out, path, "project"), rounds(out, path, "keycloak")
        prow = " → ".join(rate_str(r["rps"]) for r in p)
        krow = " → ".join(rate_str(r["rps"]) for r in k) if k else "n/a"
        ratio = "-"
        if k and k[-1]["rps"] > 0:
            med = sorted(r["rps"] for r in p)[len(p) // 2] / sorted(r["rps"] for r in k)[len(k) // 2]
            ratio = f"{p[-1]['rps'] / k[-1]['rps']:.2f} ({med:.2f})"
        plat = f"{ms_str(p[-1]['p50'])} / {ms_str(p[-1]['p99'])}"
        klat = f"{ms_str(k[-1]['p50'])} / {ms_str(k[-1]['p99'])}" if k else "n/a"
        bad = [
            f"{s} r{i + 1}: {errors_str(r)}"
            for s, rs in (("project", p), ("Keycloak", k))
            for i, r in enumerate(rs)
            if r["errors"]
        ]
        print(
            f"| {PATHS[path]} | {prow} | {krow} | {ratio} | {plat} | {klat} |"
            + (f" not ok: {'; '.join(bad)}" if bad else "")
        )
    if path_k := [p for p in ("grpc", "restvalidate", *FLOORS) if p in present]:
        kin = rounds(out, "introspect", "keycloak")
        if kin:
            for path in path_k:
                p = rounds(out, path, "project")
                print(
                    f"\n{PATHS[path]} ÷ Keycloak's introspection, last round: "
                    f"{p[-1]['rps']:,.0f} ÷ {kin[-1]['rps']:,.0f} = {p[-1]['rps'] / kin[-1]['rps']:.2f}"
                )

    print("\n### CPU per request and memory (last round)\n")
    print(
        "CPU ms per successful request: server + PostgreSQL (+ Redis, and the project's gRPC server when "
        "a path makes it work: revocations reach it by pub/sub), from /proc over the middle of the run; "
        "`other` = cores used by anything else on the machine meanwhile (the other system idling, the "
        "OS; it should stay near 0). Memory: RSS summed over the server's processes after the run (PSS "
        "in brackets: shared pages split between the web server's processes).\n"
    )
    print(
        "| path | project CPU ms/req: server + PG + Redis [+ gRPC] | Keycloak CPU ms/req: server + PG "
        "| load generator ms/req, project / Keycloak "
        "| other cores, project / Keycloak | project RSS (PSS) MB | Keycloak RSS (PSS) MB |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for path in present:
        p, k = rounds(out, path, "project")[-1], (rounds(out, path, "keycloak") or [None])[-1]
        gens = (
            f"{p['ms']['generator']:.2f} / {k['ms']['generator']:.2f}" if k else f"{p['ms']['generator']:.2f}"
        )
        other = (
            f"{p['cpu'].get('other', 0):.2f} / {k['cpu'].get('other', 0):.2f}"
            if k
            else f"{p['cpu'].get('other', 0):.2f}"
        )
        print(
            f"| {PATHS[path]} | {cpu_str(p, 'project')} | {cpu_str(k, 'keycloak') if k else 'n/a'} | {gens} "
            f"| {other} | {mem_str(p)} | {mem_str(k) if k else 'n/a'} |"
        )

    halves = [p for p in present if load(out, f"half-{p}-project")]
    if halves:
        print("\n### Open loop at half of each system's own peak (latency from each request's due time)\n")
        print(
            "oha -q RATE --latency-correction (client_credentials, introspection, userinfo, REST validate), "
            "chainloop.py (refresh), codeflow.py --rate (code flow), ghz --async --rps (gRPC).\n"
        )
        print(
            "| path | project: rate → ok/s, p50 / p99 ms | Keycloak: rate → ok/s, p50 / p99 ms "
            "| p99 project ÷ Keycloak |"
        )
        print("| --- | --- | --- | --- |")
        for path in halves:
            cells, p99 = [], {}
            for s in SYSTEMS:
                r = load(out, f"half-{path}-{s}")
                if r is None:
                    cells.append("n/a")
                    continue
                p99[s] = r["p99"]
                cell = f"{rate_str(r['rate'] or 0)} → {rate_str(r['rps'])}, "
                cell += f"{ms_str(r['p50'])} / {ms_str(r['p99'])}"
                cells.append(cell + (f" (not ok: {errors_str(r)})" if r["errors"] else ""))
            ratio = (
                f"{p99['project'] / p99['keycloak']:.2f}" if len(p99) == 2 and p99["keycloak"] > 0 else "-"
            )
            print(f"| {PATHS[path]} | {cells[0]} | {cells[1]} | {ratio} |")

    floor = out / "hashfloor.json"
    flows = rounds(out, "codeflow", "project")
    if floor.exists() and flows:
        f = json.loads(floor.read_text())
        best = max(r["rps"] for r in flows)
        cpu_ms, cap = f["cpu_ms_per_check"], f["cap_per_second"]
        per_flow = [r["ms"]["server"] for r in flows if r["rps"] > 0]
        lo, hi = min(per_flow), max(per_flow)
        print(
            f"\nCode flow against the password hash: one {f['hasher']} check (work factor "
            f"{f['work_factor']}) takes {cpu_ms:.0f} ms of CPU, so {cap:.1f} logins/s is the cap on this "
            f"machine's cores ({f['per_second']:.1f} checks/s measured on {f['procs']} processes). "
            f"The project's best round did {best:.1f} flows/s = {best / cap * 100:.0f}% of that cap; "
            f"its server spent {lo:.0f}-{hi:.0f} ms of CPU per flow, the check "
            f"{cpu_ms / hi * 100:.0f}-{cpu_ms / lo * 100:.0f}% of it. Keycloak hashes with its own "
            "default (argon2), a different cost: its flows/s are not bound by bcrypt."
        )
    caps = flow_caps(out)
    beside = [(n, r["rps"], caps[n]) for n, r in enumerate(flows, start=1) if n in caps and caps[n] > 0]
    if beside:
        print(
            "\nAgainst the check measured right after each round (5 s, the same two processes): "
            + "; ".join(
                f"round {n} {rps:.2f} flows/s of a cap of {cap:.2f} = {rps / cap * 100:.1f}%"
                for n, rps, cap in beside
            )
            + f". Best: {max(rps / cap for _, rps, cap in beside) * 100:.1f}%."
        )

    print("\n### Every run\n")
    print(
        "| run | ok/s | p50 ms | p99 ms "
        "| CPU cores server (per process) / pg / redis / gRPC / generator / other "
        "| ms/req server / pg | RSS (PSS) MB | not ok |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    keys = sorted(
        {
            f.name.split(".")[0]
            for f in out.iterdir()
            if re.match(r"(r\d+|half)-.*\.(wrk\.txt|json)$", f.name)
        },
        key=lambda k: (k.startswith("half"), int(k.split("-")[0][1:]) if k[0] == "r" else 0, k),
    )
    for key in keys:
        r = load(out, key)
        if r is None:
            continue
        c = r["cpu"]
        cores = " / ".join(
            [
                server_cores(c),
                *(f"{c.get(g, 0):.2f}" for g in ("postgresql", "redis", "grpc", "generator", "other")),
            ]
        )
        name = key + (f" @{rate_str(r['rate'])}/s" if r["rate"] else "")
        print(
            f"| {name} | {rate_str(r['rps'])} | {ms_str(r['p50'])} | {ms_str(r['p99'])} | {cores} "
            f"| {r['ms']['server']:.2f} / {r['ms']['postgresql']:.2f} | {mem_str(r)} | {errors_str(r)} |"
        )
    ends = {s: out / f"mem-end-{s}.json" for s in ("project", "keycloak", "grpc")}
    if all(f.exists() for f in ends.values()):
        m = {s: json.loads(f.read_text()) for s, f in ends.items()}
        tree = {
            s: f"{m[s]['processes']} processes, RSS {m[s]['rss_mb']:.0f} MB (PSS {m[s]['pss_mb']:.0f})"
            for s in m
        }
        print(
            f"\nAt the end: web tier {tree['project']}; gRPC server {tree['grpc']}; "
            f"Keycloak (kc.sh + java) {tree['keycloak']}."
        )


def span(values: list[float], digits: int = 0) -> str:
    """ "a" or "a-b" over runs."""
    vals = [v for v in values if v is not None and not math.isnan(v)]
    if not vals:
        return "-"
    lo, hi = min(vals), max(vals)
    return (
        f"{lo:,.{digits}f}"
        if f"{lo:,.{digits}f}" == f"{hi:,.{digits}f}"
        else f"{lo:,.{digits}f}-{hi:,.{digits}f}"
    )


BUSY = 0.15  # cores used by anything else during a run, above which its figure is marked


def mark(*runs: dict | None) -> str:
    return "†" if any(r and r["cpu"].get("other", 0) > BUSY for r in runs) else ""


def across(dirs: list[Path]) -> None:
    """One table over several runs of run.sh (each with its rounds): the warmed (last) round of
    each run, the open loop at half peak, and the issue's acceptance lines."""
    print(
        f"Runs: {', '.join(d.name for d in dirs)}; per run (in that order), the last (warmed) of its "
        f"rounds. † = something else used more than {BUSY:g} cores of the machine during that run "
        "(`other` in its CPU split): a figure measured on a shared machine.\n"
    )
    print(
        "| path | project ok/s | Keycloak ok/s | project ÷ Keycloak | CPU ms/req project: server + PG "
        "| CPU ms/req Keycloak: server + PG | p99 ms at half peak: project ‖ Keycloak |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    last = {}
    for path in PATHS:
        for s in SYSTEMS:
            last[path, s] = [(rounds(d, path, s) or [None])[-1] for d in dirs]
        p, k = last[path, "project"], last[path, "keycloak"]
        if not any(p):
            continue
        half = {s: [load(d, f"half-{path}-{s}") for d in dirs] for s in SYSTEMS}
        ratios = [
            f"{a['rps'] / b['rps']:.2f}{mark(a, b)}"
            for a, b in zip(p, k, strict=True)
            if a and b and b["rps"] > 0
        ]
        cells = [
            " / ".join(rate_str(r["rps"]) + mark(r) for r in p if r),
            " / ".join(rate_str(r["rps"]) + mark(r) for r in k if r) or "n/a",
            " / ".join(ratios) or "-",
        ]
        for rs in (p, k):
            rs = [r for r in rs if r]
            cells.append(
                " / ".join(f"{r['ms']['server']:.2f} + {r['ms']['postgresql']:.2f}{mark(r)}" for r in rs)
                or "n/a"
            )
        hp = " / ".join(ms_str(r["p99"]) + mark(r) for r in half["project"] if r) or "-"
        hk = " / ".join(ms_str(r["p99"]) + mark(r) for r in half["keycloak"] if r) or "n/a"
        cells.append(f"{hp} ‖ {hk}")
        print(f"| {PATHS[path]} | " + " | ".join(cells) + " |")

    mem = {
        s: [json.loads(f.read_text()) for d in dirs if (f := d / f"mem-end-{s}.json").exists()]
        for s in ("project", "grpc", "keycloak")
    }
    print(
        "\nMemory after the run (RSS, PSS in brackets, MB): web tier "
        + " / ".join(f"{m['rss_mb']:.0f} ({m['pss_mb']:.0f})" for m in mem["project"])
        + "; gRPC server "
        + " / ".join(f"{m['rss_mb']:.0f} ({m['pss_mb']:.0f})" for m in mem["grpc"])
        + "; Keycloak "
        + " / ".join(f"{m['rss_mb']:.0f} ({m['pss_mb']:.0f})" for m in mem["keycloak"])
        + "."
    )

    def ratio(path: str) -> list[float]:
        return [
            a["rps"] / b["rps"]
            for a, b in zip(last[path, "project"], last[path, "keycloak"], strict=True)
            if a and b and b["rps"] > 0
        ]

    def verdict(ok: bool) -> str:
        return "met" if ok else "**not met**"

    ceilings = []
    for floor, kpath, need in CEILINGS:
        need = need or cc_line(dirs)
        runs = [
            (a, b, machine_cores(d))
            for a, b, d in zip(last[floor, "project"], last[kpath, "keycloak"], dirs, strict=True)
            if a and b and b["rps"] > 0
        ]
        pairs = [(a["rps"], b["rps"]) for a, b, _ in runs]
        if pairs:
            text = " / ".join(f"{a:,.0f} ÷ {b:,.0f} = {a / b:.2f} x" for a, b in pairs)
            # What a path would have beyond its floor at the line: the machine's CPU per request at
            # `need` x Keycloak's rate, less what the floor used (its server, stores, generator).
            left = [
                cores * 1e3 / (need * b["rps"]) - sum(v for v in a["ms"].values() if not math.isnan(v))
                for a, b, cores in runs
            ]
            reach = (
                "the line is above the floor"
                if max(a / b for a, b in pairs) < need
                else "within reach: at the line, "
                + " / ".join(f"{x:.2f}" for x in left)
                + " ms of CPU per request left beyond the floor"
            )
            ceilings.append(
                f"| {PATHS[floor]} ÷ Keycloak's {PATHS[kpath]} (the line: {need:g} x) | {text} | {reach} |"
            )
    if ceilings:
        print(
            "\nThe floors (floor.py, ccfloor.py; same run): no path of the project can pass what its server "
            "does with no work at all, nor client_credentials what it does with only the work the issue "
            "keeps (sign, and write the token's row, audit record and event before answering).\n"
        )
        print("| floor ÷ Keycloak | per run | |\n| --- | --- | --- |")
        print("\n".join(ceilings))
    # The gRPC latency line asked of the floors themselves: a bare answer, nothing of ours.
    floor_halves = [
        (path, [r for d in dirs if (r := load(d, f"half-{path}-project"))]) for path in ("baregrpc", "gogrpc")
    ]
    if any(rs for _, rs in floor_halves):
        print("\n| floor at 50% of its own peak (the gRPC line: p99 < 20 ms, no UNAVAILABLE) | per run |")
        print("| --- | --- |")
        for path, rs in floor_halves:
            if rs:
                text = " / ".join(
                    f"{rate_str(r['rate'] or 0)}/s: p99 {ms_str(r['p99'])} ms, "
                    f"{r['errors'].get('Unavailable', 0)} UNAVAILABLE{busier(r)}"
                    for r in rs
                )
                print(f"| {PATHS[path]} | {text} |")

    print("\n| issue 14 acceptance line | measured (per run) | |")
    print("| --- | --- | --- |")
    for path, need in (("cc", cc_line(dirs)), ("introspect", 2.0), ("refresh", 1.0), ("userinfo", 1.0)):
        r = ratio(path)
        if r:
            print(
                f"| {PATHS[path]}: project ≥ {need:g} x Keycloak | "
                + " / ".join(f"{x:.2f} x" for x in r)
                + f" | {verdict(min(r) >= need)} |"
            )
    grpc, kin = last.get(("grpc", "project"), []), last.get(("introspect", "keycloak"), [])
    g = [a["rps"] / b["rps"] for a, b in zip(grpc, kin, strict=True) if a and b and b["rps"] > 0]
    if g:
        print(
            "| gRPC TokenValidate ≥ 4 x Keycloak's introspection | "
            + " / ".join(f"{x:.2f} x" for x in g)
            + f" | {verdict(min(g) >= 4)} |"
        )
    share = []
    for d, r in zip(dirs, last.get(("codeflow", "project"), []), strict=False):
        # The last round against the check measured beside it, else against the run's end-of-run check.
        n = len(rounds(d, "codeflow", "project"))
        cap = flow_caps(d).get(n) or (
            json.loads(f.read_text())["cap_per_second"] if (f := d / "hashfloor.json").exists() else 0
        )
        if r and cap:
            share.append(r["rps"] / cap)
    if share:
        print(
            "| code flow within 10% of what bcrypt allows | "
            + " / ".join(f"{x * 100:.1f}% of the cap" for x in share)
            + f" | {verdict(min(share) >= 0.9)} |"
        )
    worse, compared = [], 0
    for path in PATHS:
        for d in dirs:
            a, b = load(d, f"half-{path}-project"), load(d, f"half-{path}-keycloak")
            if a and b:
                compared += 1
                if not a["p99"] < b["p99"]:
                    worse.append(f"{path} ({d.name})")
    if compared:  # not with HALF=0
        print(
            "| p99 at half of own peak below Keycloak's, every path | "
            + (f"higher on {len(worse)} of the path runs" if worse else "lower everywhere")
            + f" | {verdict(not worse)} |"
        )
    gh = [load(d, "half-grpc-project") for d in dirs]
    gh = [r for r in gh if r]
    if gh:
        text = " / ".join(
            f"p99 {ms_str(r['p99'])} ms, {r['errors'].get('Unavailable', 0)} UNAVAILABLE{busier(r)}"
            for r in gh
        )
        ok = all(r["p99"] < 20 and not r["errors"].get("Unavailable") for r in gh)
        print(f"| gRPC at 50% of its peak: p99 < 20 ms, no UNAVAILABLE | {text} | {verdict(ok)} |")
    if mem["project"] and mem["keycloak"]:
        web = [m["rss_mb"] for m in mem["project"]]
        kc = [m["rss_mb"] for m in mem["keycloak"]]
        print(
            f"| web tier RSS after load ≤ Keycloak's | web tier {span(web)} MB, Keycloak {span(kc)} MB "
            f"| {verdict(max(web) <= min(kc))} |"
        )


def trim_ghz(path: Path) -> None:
    """ghz -O json lists every call and repeats its --data-file (the token pool): drop both."""
    d = json.loads(path.read_text())
    d.pop("details", None)
    d.get("options", {}).pop("data", None)
    path.write_text(json.dumps(d))


def main() -> None:
    if sys.argv[1] == "--trim-ghz":
        trim_ghz(Path(sys.argv[2]))
        return
    if sys.argv[1] == "--runs":
        across([Path(d) for d in sys.argv[2:]])
        return
    out = Path(sys.argv[1])
    if len(sys.argv) > 3 and sys.argv[2] == "--one":
        print(one(out, sys.argv[3]))
    elif len(sys.argv) > 3 and sys.argv[2] == "--half":
        print(half_rate(out, sys.argv[3]))
    else:
        summary(out)


if __name__ == "__main__":
    main()
