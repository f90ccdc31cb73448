"""DjangoInterceptor, the one place every gRPC method passes: bad strings refused before the
servicer runs, unexpected exceptions answered INTERNAL with a request id (never UNKNOWN with
their text), store outages still UNAVAILABLE."""

from __future__ import annotations

import logging

import grpc
import pytest
from django.db import OperationalError

from audit.models import AuditLog
from authproto import auth_pb2
from idp.api import auth
from idp.api.grpc_server import SERVICE_NAME
from tests.conftest import server_errors

pytestmark = pytest.mark.django_db(transaction=True)


def test_every_authservice_method_is_unary_so_the_interceptor_covers_it():
    """The interceptor wraps unary-unary handlers only; a streaming method would pass unchecked."""
    service = auth_pb2.DESCRIPTOR.services_by_name["AuthService"]
    assert service.full_name == SERVICE_NAME
    assert [(m.name, m.client_streaming, m.server_streaming) for m in service.methods] == [
        ("Login", False, False),
        ("TokenValidate", False, False),
        ("CheckPermission", False, False),
    ]


def test_an_unexpected_exception_is_internal_with_the_request_id(stub, monkeypatch, caplog):
    def broken(token: str, **_presented: str) -> auth.ValidationOutcome:
        raise RuntimeError("secret internals: /etc/idp/key.pem")

    monkeypatch.setattr(auth, "validate", broken)
    with (
        caplog.at_level(logging.ERROR, logger="idp.api.grpc_service"),
        pytest.raises(grpc.RpcError) as failed,
    ):
        stub.TokenValidate(auth_pb2.TokenValidateRequest(token="t"), metadata=(("x-request-id", "req-42"),))
    assert failed.value.code() == grpc.StatusCode.INTERNAL
    assert failed.value.details() == "internal error; request id req-42"
    (record,) = [r for r in caplog.records if r.name == "idp.api.grpc_service"]
    assert record.getMessage() == "gRPC /AuthService/TokenValidate failed (request id req-42)"
    assert "secret internals" in str(record.exc_info[1])
    server_errors.clear()  # the INTERNAL was this test's own doing


def test_a_request_id_that_is_not_harmless_is_replaced(stub, monkeypatch):
    monkeypatch.setattr(auth, "validate", lambda token: 1 / 0)
    with pytest.raises(grpc.RpcError) as failed:
        stub.TokenValidate(
            auth_pb2.TokenValidateRequest(token="t"), metadata=(("x-request-id", "a b <script>"),)
        )
    details = failed.value.details()
    assert details.startswith("internal error; request id ")
    assert "a b" not in details
    assert len(details.rsplit(" ", 1)[1]) == 32  # a fresh uuid4 hex
    server_errors.clear()  # the INTERNAL was this test's own doing


def test_a_store_outage_is_still_unavailable(stub, monkeypatch):
    def down(token: str, **_presented: str) -> auth.ValidationOutcome:
        raise OperationalError("connection refused")

    monkeypatch.setattr(auth, "validate", down)
    with pytest.raises(grpc.RpcError) as failed:
        stub.TokenValidate(auth_pb2.TokenValidateRequest(token="t"))
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    assert failed.value.details() == "database unavailable"


def test_a_servicers_own_abort_stands(stub):
    with pytest.raises(grpc.RpcError) as refused:
        stub.Login(auth_pb2.LoginRequest(login="", password="p"))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details() == "login and password are required"


def test_a_bad_string_never_reaches_the_servicer(stub, monkeypatch):
    called = []
    monkeypatch.setattr(auth, "login", lambda **kwargs: called.append(kwargs))
    with pytest.raises(grpc.RpcError) as refused:
        stub.Login(auth_pb2.LoginRequest(login="ivan\x00", password="p"))
    assert (refused.value.code(), refused.value.details()) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "field login contains a NUL character",
    )
    assert called == []
    assert not AuditLog.objects.exists()


def test_bytes_that_are_not_the_message_are_invalid_argument(grpc_channel):
    raw_login = grpc_channel.unary_unary("/AuthService/Login")  # bytes in, bytes out
    bad_utf8 = b"\n\x04iv\xffn\x12\x01p"  # field 1 (login), 4 bytes, not UTF-8
    with pytest.raises(grpc.RpcError) as refused:
        raw_login(bad_utf8)
    assert (refused.value.code(), refused.value.details()) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "the request is not a valid /AuthService/Login message",
    )


def test_health_checks_pass_the_interceptor_too(grpc_channel):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    health = health_pb2_grpc.HealthStub(grpc_channel)
    assert health.Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME)).status == 1
    with pytest.raises(grpc.RpcError) as refused:
        health.Check(health_pb2.HealthCheckRequest(service="Auth\x00Service"))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
