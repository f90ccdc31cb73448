"""authproto/ is generated from proto/ by `make proto`; it must be current and keep the seed's numbers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from authproto import registration_events_pb2 as pb

ROOT = Path(__file__).resolve().parents[2]


def _protoc(*args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-Iauthproto=proto", *args], cwd=ROOT, check=True
    )


def test_generated_modules_are_current(tmp_path):
    """Regenerates as `make proto` does, into a temporary directory, and compares byte for byte."""
    protos = sorted(str(path.relative_to(ROOT)) for path in (ROOT / "proto").glob("*.proto"))
    services = [name for name in protos if "\nservice " in (ROOT / name).read_text()]
    _protoc(f"--python_out={tmp_path}", f"--pyi_out={tmp_path}", *protos)
    _protoc(f"--grpc_python_out={tmp_path}", *services)

    generated = sorted(path.name for path in (tmp_path / "authproto").iterdir())
    committed = sorted(path.name for path in (ROOT / "authproto").glob("*_pb2*"))
    assert generated == committed, "run `make proto`"
    for name in generated:
        assert (tmp_path / "authproto" / name).read_bytes() == (ROOT / "authproto" / name).read_bytes(), (
            f"authproto/{name} is stale: run `make proto`"
        )


def test_the_request_keeps_the_seeds_field_numbers_and_a_package_of_its_own():
    fields = {f.name: f.number for f in pb.UserRegisterRequestedEvent.DESCRIPTOR.fields}
    assert fields == {"login": 1, "password": 2, "correlation_id": 3}
    assert pb.DESCRIPTOR.package == "authsvc.events.v1"


def test_wire_format_round_trip():
    message = pb.UserRegisterRequestedEvent(login="ivan", password="p", correlation_id="c")
    assert message.SerializeToString() == b"\n\x04ivan\x12\x01p\x1a\x01c"
    assert pb.UserRegisterRequestedEvent.FromString(message.SerializeToString()) == message
