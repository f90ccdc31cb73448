"""Before and after the load: the doors answer as they should, and the benchmark's tokens are valid.

    smoke.py --grpc 127.0.0.1:PORT --rest http://127.0.0.1:PORT --tokens DIR [--login]

--login also signs in through gRPC `Login` and REST `POST /api/v1/auth/login` (user 0 of
mint.py) and validates those tokens. Then validates a sample of the pool and distinct tokens
through gRPC TokenValidate and REST validate; exits non-zero (one line why) on any refusal,
so a run whose tokens had expired or were refused cannot pass for a fast one.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import grpc

from authproto import auth_pb2, auth_pb2_grpc


def rest(base: str, path: str, body: dict) -> tuple[int, dict]:
    if not base.startswith("http://127.0.0.1:"):
        raise SystemExit("smoke: loopback http only")
    req = urllib.request.Request(  # noqa: S310 - loopback http, checked above
        base + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback http, checked above
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--grpc", required=True)
    parser.add_argument("--rest", required=True)
    parser.add_argument("--tokens", required=True, type=Path)
    parser.add_argument("--login", action="store_true")
    args = parser.parse_args()
    stub = auth_pb2_grpc.AuthServiceStub(grpc.insecure_channel(args.grpc))
    sample: list[tuple[str, str]] = []
    for name in ("pool", "distinct"):
        toks = [m["token"] for m in json.loads((args.tokens / f"{name}.json").read_text())]
        sample += [(name, toks[i]) for i in sorted({0, len(toks) // 2, len(toks) - 1})]
    if args.login:
        username, password = (args.tokens / "login.txt").read_text().split()
        answer = stub.Login(auth_pb2.LoginRequest(login=username, password=password), timeout=10)
        if not answer.token:
            sys.exit(f"smoke: gRPC Login refused: {answer.error}")
        sample.append(("grpc-login", answer.token))
        status, body = rest(args.rest, "/api/v1/auth/login", {"login": username, "password": password})
        if status != 200:
            sys.exit(f"smoke: REST login answered {status}: {body}")
        sample.append(("rest-login", body["access_token"]))
    for name, token in sample:
        answer = stub.TokenValidate(auth_pb2.TokenValidateRequest(token=token), timeout=10)
        if answer.WhichOneof("result") != "userId":
            sys.exit(f"smoke: gRPC TokenValidate refused a {name} token: {answer.error}")
        status, body = rest(args.rest, "/api/v1/auth/validate", {"token": token})
        if status != 200 or not body.get("active"):
            sys.exit(f"smoke: REST validate refused a {name} token: {status} {body}")
    bad = stub.TokenValidate(auth_pb2.TokenValidateRequest(token=sample[0][1][:-4] + "AAAA"), timeout=10)
    if bad.error != "invalid_signature":
        sys.exit(f"smoke: a tampered token was not refused as invalid_signature: {bad}")
    print(f"smoke: {len(sample)} tokens valid through gRPC and REST; a tampered one refused")


if __name__ == "__main__":
    main()
