"""idp.api.grpc_input: the caller's address from gRPC peer strings, and the generic walk over a
request's string fields (nested messages, repeated fields and maps included)."""

from __future__ import annotations

import pytest
from google.protobuf import descriptor_pb2, struct_pb2
from grpc_health.v1 import health_pb2

from authproto import auth_pb2
from idp.api.grpc_input import MAX_STRING_FIELD_LENGTH, peer_ip, string_field_problem


@pytest.mark.parametrize(
    ("peer", "ip"),
    [
        ("ipv4:127.0.0.1:5678", "127.0.0.1"),
        ("ipv4:203.0.113.7:443", "203.0.113.7"),
        ("ipv6:[::1]:5678", "::1"),
        ("ipv6:%5B::1%5D:5678", "::1"),  # brackets percent-encoded by some grpcio versions
        ("ipv6:%5b2001:db8::7%5d:5678", "2001:db8::7"),
        ("ipv6:[2001:db8:0:0:0:0:0:7]:1", "2001:db8::7"),  # one spelling per address: one bucket
        ("ipv6:[fe80::1%25eth0]:5678", "fe80::1"),  # the zone is ours, not the caller's
        ("ipv6:[::ffff:198.51.100.4]:5678", "198.51.100.4"),  # IPv4 client on a dual-stack socket
        ("unix:/run/idp/grpc.sock", None),
        ("unix-abstract:idp", None),
        ("ipv4:not-an-address:1", None),
        ("ipv6:[::1:5678", None),
        ("", None),
        ("garbage", None),
    ],
)
def test_peer_ip(peer, ip):
    assert peer_ip(peer) == ip


def test_two_ipv6_clients_have_two_addresses():
    """The finding: every IPv6 client was `None`, one shared rate-limit bucket."""
    assert peer_ip("ipv6:[2001:db8::1]:40000") != peer_ip("ipv6:[2001:db8::2]:40000")


@pytest.mark.parametrize(
    ("message", "problem"),
    [
        (auth_pb2.LoginRequest(login="ivan", password="p"), None),
        (auth_pb2.LoginRequest(), None),
        (auth_pb2.LoginRequest(login="iv\x00an", password="p"), "field login contains a NUL character"),
        (auth_pb2.LoginRequest(login="ivan", password="\x00"), "field password contains a NUL character"),
        (auth_pb2.TokenValidateRequest(token="t" * MAX_STRING_FIELD_LENGTH), None),
        (
            auth_pb2.TokenValidateRequest(token="t" * (MAX_STRING_FIELD_LENGTH + 1)),
            f"field token is longer than {MAX_STRING_FIELD_LENGTH} characters",
        ),
        (
            auth_pb2.CheckPermissionRequest(user_id="u", permission="p", client_id="\x00"),
            "field client_id contains a NUL character",
        ),
        (health_pb2.HealthCheckRequest(service="AuthService\x00"), "field service contains a NUL character"),
    ],
)
def test_string_fields_of_our_requests(message, problem):
    assert string_field_problem(message) == problem


def test_the_walk_reaches_nested_and_repeated_fields():
    file = descriptor_pb2.FileDescriptorProto(name="a.proto", dependency=["b.proto", "c\x00.proto"])
    assert string_field_problem(file) == "field dependency contains a NUL character"
    file = descriptor_pb2.FileDescriptorProto(name="a.proto")
    file.message_type.add(name="Ok")
    file.message_type.add(name="Bad").field.add(name="x" * (MAX_STRING_FIELD_LENGTH + 1))
    assert string_field_problem(file) == (
        f"field message_type.field.name is longer than {MAX_STRING_FIELD_LENGTH} characters"
    )


def test_the_walk_reaches_map_keys_and_values():
    value = struct_pb2.Struct()
    value.update({"fine": "yes", "list": ["a", {"deep": "b\x00"}]})
    assert string_field_problem(value) == (
        "field fields.list_value.values.struct_value.fields.string_value contains a NUL character"
    )
    key = struct_pb2.Struct()
    key.update({"k\x00": 1})
    assert string_field_problem(key) == "field fields (key) contains a NUL character"


def test_the_message_names_the_field_never_the_value():
    problem = string_field_problem(auth_pb2.LoginRequest(login="secret\x00", password="hunter2" * 2000))
    assert problem == "field login contains a NUL character"
    assert "secret" not in problem
