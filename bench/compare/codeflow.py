"""The authorization code flow end to end, as a browser and its relying party do it, per second.

    codeflow.py --system project --base http://127.0.0.1:P --client-id ID --client-secret S \
        --users users.txt (--concurrency 8 | --rate 2) --duration 15 [--json FILE]
    codeflow.py --system keycloak --base http://127.0.0.1:P/realms/bench ...

One flow, with a new cookie jar each time (a new browser, so a new login and a new session):
GET the authorization endpoint (PKCE S256, state, nonce, scope "openid profile email") -> follow
the server's own redirects -> the page with the password form (the project: its login page, with
the CSRF token; Keycloak: its login theme) -> POST user name and password -> follow redirects until
one goes to the relying party's redirect URI with `code` -> POST the code, the verifier and the
client's credentials (HTTP Basic) to the token endpoint -> 200 with an access and an ID token.
Both take 3 requests: the authorization endpoint shows the form, the form's POST is answered with
the code, then the token (the project took 5 until step 15: authorize, login page, login POST,
authorize again, token). The loop follows whatever redirects each server sends.

Closed loop (--concurrency N): N flows at a time, back to back, for --duration s.
Open loop (--rate R): flow i is due at t0 + i/R whatever happened before (no coordinated
omission); its latency counts from its due time; up to --max-inflight flows at once.
Latency is per whole flow. Users are taken round-robin from --users ("name password" lines).
Standard library only; loopback targets only. Cookies are kept by hand and sent back over plain
HTTP even when marked Secure (both servers mark them so in production mode; the benchmark runs
without TLS on loopback).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import html
import http.client
import itertools
import json
import math
import re
import secrets
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

REDIRECT_URI = "https://rp.example.com/callback"
SCOPE = "openid profile email"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
FORM = re.compile(r"<form\b([^>]*)>(.*?)</form>", re.S | re.I)
INPUT = re.compile(r"<input\b([^>]*)>", re.I)
ATTR = re.compile(r'([\w:-]+)\s*=\s*"([^"]*)"')


class FlowError(Exception):
    pass


def attrs(tag: str) -> dict[str, str]:
    return {k.lower(): html.unescape(v) for k, v in ATTR.findall(tag)}


class Browser:
    """One keep-alive connection per thread (reopened when the server closes it) and a cookie jar."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.conn: http.client.HTTPConnection | None = None
        self.cookies: dict[str, str] = {}

    def request(
        self, method: str, url: str, body: str | None = None, headers: dict | None = None
    ) -> tuple[int, dict, str]:
        parts = urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        hdrs = {"Host": f"{self.host}:{self.port}", "User-Agent": "codeflow-bench"} | (headers or {})
        if self.cookies:
            hdrs["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if body is not None:
            hdrs["Content-Type"] = "application/x-www-form-urlencoded"
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self.conn.request(method, target, body=body, headers=hdrs)
                resp = self.conn.getresponse()
                data = resp.read().decode("utf-8", "replace")
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # an idle kept-alive connection the server had closed: once more, on a new one
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
                continue
            if resp.will_close:
                self.conn.close()
                self.conn = None
            for line in resp.msg.get_all("Set-Cookie") or []:
                name, _, rest = line.partition("=")
                value = rest.split(";", 1)[0]
                low = line.lower()
                if not value or "max-age=0" in low or "expires=thu, 01 jan 1970" in low:
                    self.cookies.pop(name.strip(), None)
                else:
                    self.cookies[name.strip()] = value
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        raise AssertionError("unreachable")


def one_flow(args: argparse.Namespace, browser: Browser, user: tuple[str, str]) -> None:
    browser.cookies = {}
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    state = secrets.token_urlsafe(12)
    params = {
        "response_type": "code",
        "client_id": args.client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": SCOPE,
        "state": state,
        "nonce": secrets.token_urlsafe(12),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    if args.system == "project":
        authorize, token_url = f"{args.base}/o/authorize/", f"{args.base}/o/token/"
    else:
        authorize = f"{args.base}/protocol/openid-connect/auth"
        token_url = f"{args.base}/protocol/openid-connect/token"
    url = f"{authorize}?{urlencode(params)}"
    status, headers, body = browser.request("GET", url)
    code = None
    posted = False
    for _ in range(8):
        if status in (301, 302, 303):
            location = headers.get("location", "")
            if location.startswith(REDIRECT_URI):
                query = parse_qs(urlsplit(location).query)
                if query.get("state", [""])[0] != state or "code" not in query:
                    raise FlowError(f"bad redirect to the client: {location[:200]}")
                code = query["code"][0]
                break
            url = urljoin(url, location)
            status, headers, body = browser.request("GET", url)
        elif status == 200 and not posted:
            form = next((f for f in FORM.findall(body) if 'name="password"' in f[1]), None)
            if form is None:
                raise FlowError(f"no password form on {url[:120]}")
            fields = {}
            for tag in INPUT.findall(form[1]):
                a = attrs(tag)
                if a.get("type", "").lower() == "hidden" and a.get("name"):
                    fields[a["name"]] = a.get("value", "")
            fields.update(username=user[0], password=user[1])
            action = attrs(form[0]).get("action") or url
            url = urljoin(url, action)
            status, headers, body = browser.request("POST", url, urlencode(fields))
            posted = True
        else:
            raise FlowError(f"HTTP {status} at {url[:120]}{' after the login POST' if posted else ''}")
    if code is None:
        raise FlowError("no code after 8 steps")
    basic = base64.b64encode(f"{args.client_id}:{args.client_secret}".encode()).decode()
    browser.cookies = {}  # the back channel is the relying party, not the browser
    status, _, body = browser.request(
        "POST",
        token_url,
        urlencode(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT_URI,
                "code_verifier": verifier,
            }
        ),
        {"Authorization": f"Basic {basic}"},
    )
    if status != 200 or '"access_token"' not in body or '"id_token"' not in body:
        raise FlowError(f"token exchange: HTTP {status} {body[:200]}")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    return values[max(0, min(len(values) - 1, math.ceil(q / 100 * len(values)) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--system", choices=("project", "keycloak"), required=True)
    parser.add_argument("--base", required=True)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", required=True)
    parser.add_argument("--users", required=True)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rate", type=float, default=0.0, help="open loop: flows per second")
    parser.add_argument("--max-inflight", type=int, default=64)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--json")
    args = parser.parse_args()
    args.base = args.base.rstrip("/")
    target = urlsplit(args.base)
    if target.hostname not in LOOPBACK:
        raise SystemExit(f"refusing non-loopback target {target.hostname!r}")
    with open(args.users) as fh:
        users = itertools.cycle([tuple(line.split()[:2]) for line in fh if line.strip()])
    lock = threading.Lock()
    latencies: list[float] = []
    errors: Counter = Counter()
    local = threading.local()

    def run_one(due: float) -> None:
        browser = getattr(local, "browser", None)
        if browser is None:
            browser = local.browser = Browser(target.hostname or "", target.port or 80, args.timeout)
        with lock:
            user = next(users)
        try:
            one_flow(args, browser, user)
        except Exception as exc:  # a failed flow is counted, not fatal
            with lock:
                errors[f"{type(exc).__name__}: {str(exc)[:120]}"] += 1
            return
        done = time.monotonic()
        with lock:
            latencies.append(done - due)

    t0 = time.monotonic()
    deadline = t0 + args.duration
    if args.rate > 0:
        total = int(args.rate * args.duration)
        with ThreadPoolExecutor(args.max_inflight) as ex:
            for i in range(total):
                due = t0 + i / args.rate
                time.sleep(max(0.0, due - time.monotonic()))
                ex.submit(run_one, due)
        elapsed = max(time.monotonic() - t0, args.duration)
    else:

        def worker() -> None:
            while time.monotonic() < deadline:
                run_one(time.monotonic())

        threads = [threading.Thread(target=worker) for _ in range(args.concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - t0
    lat = sorted(latencies)
    ms = 1000.0
    result = {
        "system": args.system,
        "mode": f"open loop {args.rate:g}/s"
        if args.rate > 0
        else f"closed loop, {args.concurrency} at a time",
        "duration_s": args.duration,
        "elapsed_s": elapsed,
        "ok": len(lat),
        "failed": sum(errors.values()),
        "errors": dict(errors),
        "rps": len(lat) / elapsed,
        "p50_ms": percentile(lat, 50) * ms,
        "p90_ms": percentile(lat, 90) * ms,
        "p99_ms": percentile(lat, 99) * ms,
        "max_ms": (lat[-1] if lat else math.nan) * ms,
    }
    if args.rate > 0:
        result["target_rate"] = args.rate
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)
    print(
        f"code flow ({args.system}, {result['mode']}): {result['ok']} flows ok, {result['failed']} failed "
        f"in {elapsed:.1f}s = {result['rps']:.1f}/s; p50 {result['p50_ms']:.0f} ms "
        f"p90 {result['p90_ms']:.0f} ms "
        f"p99 {result['p99_ms']:.0f} ms" + (f"; errors {dict(errors)}" if errors else "")
    )


if __name__ == "__main__":
    main()
