"""What an operator watches, end to end: the counts each process type exports moving by the right
amounts after real sign-ins, lockouts, tokens, relays and consumed messages; the request id in
the response, the log line and the audit record; and traces (an in-memory exporter) across web,
gRPC, Celery and Kafka."""

from __future__ import annotations

import io
import json
import logging
import re
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from django.conf import settings
from django.db import transaction
from django.test import Client
from django.utils import timezone
from prometheus_client import generate_latest
from prometheus_client.mmap_dict import MmapedDict

from accounts import services as accounts
from accounts.models import User
from audit import consumer, consumer_runner
from audit import metrics as audit_metrics
from audit import services as audit
from audit.models import AuditLog, OutboxEvent
from audit.outbox import relay
from audit.registry import AuditAction, EventType
from audit.tasks import prune_outbox
from authproto import auth_pb2, auth_pb2_grpc
from core import context, metrics, tracing
from core.logs import JsonFormatter
from idp import celery as idp_celery
from idp import machine
from idp.api.grpc_server import build_server
from idp.oidc.models import Application
from tests import events
from tests.idp.oidc.conftest import basic_auth, make_app
from tests.idp.test_configuration import manage
from tests.metrics import sample, scrape
from tests.ports import free_ports
from tests.wsgi import wsgi_call

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "observed-password-1"
KAFKA = pytest.mark.needs("postgresql", "kafka")

pytestmark = pytest.mark.django_db(transaction=True)


def _web_metrics() -> str:
    answer = wsgi_call("GET", "/metrics")
    assert answer["status"] == 200
    return answer["body"].decode()


def _delta(before: str, after: str, name: str, **labels: str) -> float:
    return sample(after, name, **labels) - sample(before, name, **labels)


def _login(client: Client, password: str, **headers: str) -> Any:
    return client.post(
        "/api/v1/auth/login",
        {"login": "ivan", "password": password},
        content_type="application/json",
        **headers,
    )


@pytest.fixture
def ivan(transactional_db: None) -> User:
    return accounts.create_user(actor=None, username="ivan", password=PASSWORD, email="ivan@example.com")


# --- web: sign-ins, lockouts, tokens, requests ----------------------------------------------------


def test_sign_ins_lockouts_and_tokens_move_their_counters_by_what_happened(ivan, settings):
    settings.IDP_LOCKOUT_THRESHOLD = 3
    service, secret = make_app(name="Billing", grant=Application.GRANT_CLIENT_CREDENTIALS)
    client = Client()
    before = _web_metrics()

    assert _login(client, PASSWORD).status_code == 200
    for _ in range(3):  # the third locks the account
        assert _login(client, "wrong-password-9").status_code == 401
    token = wsgi_call(
        "POST",
        "/o/token/",
        body=b"grant_type=client_credentials",
        AUTHORIZATION=basic_auth(service.client_id, secret),
    )
    assert token["status"] == 200

    after = _web_metrics()
    assert _delta(before, after, "idp_logins_total", result="succeeded", channel="rest") == 1
    assert _delta(before, after, "idp_logins_total", result="invalid_credentials", channel="rest") == 3
    assert _delta(before, after, "idp_audit_records_total", action="login.succeeded") == 1
    assert _delta(before, after, "idp_audit_records_total", action="login.failed") == 3
    assert _delta(before, after, "idp_audit_records_total", action="user.locked") == 1
    assert (
        _delta(
            before,
            after,
            "idp_tokens_issued_total",
            grant_type="direct_login",
            client_id=settings.IDP_DIRECT_LOGIN_CLIENT_ID,
        )
        == 1
    )
    assert (
        _delta(
            before,
            after,
            "idp_tokens_issued_total",
            grant_type="client_credentials",
            client_id=service.client_id,
        )
        == 1
    )
    assert (
        _delta(
            before, after, "idp_http_requests_total", route="/api/v1/auth/login", method="POST", status="401"
        )
        == 3
    )
    assert (
        _delta(before, after, "idp_http_requests_total", route="/o/token/", method="POST", status="200") == 1
    )
    # Every audit record is counted, and only committed ones: the database agrees.
    assert AuditLog.objects.filter(action=AuditAction.LOGIN_FAILED).count() == 3


def test_a_rolled_back_change_is_not_counted(ivan):
    def block_then_fail() -> None:
        with transaction.atomic():
            accounts.block_user(actor=None, user=ivan, reason="counted only if kept")
            raise RuntimeError("roll it back")

    before = _web_metrics()
    with pytest.raises(RuntimeError):
        block_then_fail()

    assert _delta(before, _web_metrics(), "idp_audit_records_total", action="user.blocked") == 0
    assert not AuditLog.objects.filter(action=AuditAction.USER_BLOCKED).exists()


def test_a_second_factor_failure_is_counted_by_reason():
    before = _web_metrics()
    audit.record(AuditAction.MFA_FAILED, actor=None, details={"reason": "wrong_code"})
    after = _web_metrics()
    assert _delta(before, after, "idp_mfa_failures_total", reason="wrong_code") == 1
    assert _delta(before, after, "idp_audit_records_total", action="mfa.failed") == 1


# --- the request id: response header, log line, audit record, event ------------------------------


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """The root logger's lines as IDP_LOG_FORMAT=json writes them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    yield stream
    root.removeHandler(handler)


def test_a_process_started_with_json_logs_writes_json_lines(tmp_path):
    code = "import logging; logging.getLogger('idp.check').warning('ready %s', 1)"
    result = manage("shell", "-c", code, env={"IDP_LOG_FORMAT": "json", "IDP_DATA_DIR": str(tmp_path)})

    assert result.returncode == 0, result.stderr
    (line,) = [json.loads(text) for text in result.stderr.splitlines() if "idp.check" in text]
    assert (line["level"], line["logger"], line["message"], line["request_id"]) == (
        "WARNING",
        "idp.check",
        "ready 1",
        None,
    )


def test_an_unknown_log_format_is_refused_at_start(tmp_path):
    result = manage("check", env={"IDP_LOG_FORMAT": "xml", "IDP_DATA_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert "IDP_LOG_FORMAT must be plain or json, not 'xml'" in result.stderr


def test_the_request_id_is_in_the_answer_the_log_line_and_the_audit_record(ivan, json_lines):
    response = _login(Client(), "wrong-password-9", HTTP_X_REQUEST_ID="gw-7f3a.01")

    assert response.status_code == 401
    assert response["X-Request-ID"] == "gw-7f3a.01"
    entry = AuditLog.objects.get(action=AuditAction.LOGIN_FAILED)
    assert entry.request_id == "gw-7f3a.01"
    event = OutboxEvent.objects.get(type=EventType.AUDIT_RECORDED, payload__auditId=entry.pk)
    assert event.payload["requestId"] == "gw-7f3a.01"
    lines = [json.loads(line) for line in json_lines.getvalue().splitlines()]
    unauthorized = [line for line in lines if line["logger"] == "django.request"]
    assert unauthorized
    assert {line["request_id"] for line in unauthorized} == {"gw-7f3a.01"}


@pytest.mark.parametrize("given", ["x" * 65, "abc\x01def", "abc\ndef", "a b"])
def test_a_bad_request_id_is_replaced_never_echoed(ivan, given, json_lines):
    response = _login(Client(), "wrong-password-9", HTTP_X_REQUEST_ID=given)

    chosen = response["X-Request-ID"]
    assert chosen != given
    assert len(chosen) == 32
    assert AuditLog.objects.get(action=AuditAction.LOGIN_FAILED).request_id == chosen
    assert given not in json_lines.getvalue()
    assert chosen in json_lines.getvalue()


class _Request(dict):
    is_eager = False

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key, default)


def test_a_celery_task_runs_under_the_request_id_it_was_queued_with():
    headers: dict[str, Any] = {}
    with context.bind(context.RequestContext(request_id="req-from-web")):
        idp_celery._send_request_id(headers=headers)
    assert headers == {idp_celery.REQUEST_ID_HEADER: "req-from-web"}

    # In a worker: the message's header names the task's id, for its log lines and audit records.
    task = type("Task", (), {"name": "audit.relay_outbox", "request": _Request(headers)})()
    idp_celery._bind_request_id(task_id="t-1", task=task)
    assert context.current().request_id == "req-from-web"
    idp_celery._unbind_request_id(task_id="t-1", task=task, state="SUCCESS")
    assert context.current().request_id == ""

    # Queued from no request (beat), or with a header that is not harmless: an id of its own.
    task.request = _Request({idp_celery.REQUEST_ID_HEADER: "bad id\n"})
    idp_celery._bind_request_id(task_id="t-2", task=task)
    assert len(context.current().request_id) == 32
    idp_celery._unbind_request_id(task_id="t-2", task=task, state="SUCCESS")


def test_an_eager_task_keeps_the_context_of_the_request_that_ran_it(celery_eager):
    seen = []

    @idp_celery.app.task(name="tests.observability.note_request_id")
    def note() -> None:
        seen.append(context.current().request_id)

    with context.bind(context.RequestContext(request_id="req-eager")):
        note.delay()
    assert seen == ["req-eager"]


# --- gRPC ------------------------------------------------------------------------------------------


@pytest.fixture
def exporter_port() -> int:
    return free_ports(1)[0]


def test_the_grpc_server_counts_calls_by_method_and_code_on_its_own_port(ivan, exporter_port):
    server, port, _health = build_server(bind="127.0.0.1:0", max_workers=2)
    server.start()
    exporter = metrics.start_exporter(port=exporter_port, address="127.0.0.1")
    url = f"http://127.0.0.1:{exporter_port}/metrics"
    try:
        before = scrape(url)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = auth_pb2_grpc.AuthServiceStub(channel)
            assert stub.Login(auth_pb2.LoginRequest(login="ivan", password=PASSWORD), timeout=10).token
            stub.TokenValidate(auth_pb2.TokenValidateRequest(token="not-a-jwt"), timeout=10)
            with pytest.raises(grpc.RpcError) as refused:
                stub.TokenValidate(auth_pb2.TokenValidateRequest(token="x" * 9000), timeout=10)
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        after = scrape(url)
    finally:
        metrics.stop_exporter(exporter)
        server.stop(0).wait()

    handled = "idp_grpc_server_handled_total"
    assert _delta(before, after, handled, method="/AuthService/Login", code="OK") == 1
    assert _delta(before, after, handled, method="/AuthService/TokenValidate", code="OK") == 1
    assert _delta(before, after, handled, method="/AuthService/TokenValidate", code="INVALID_ARGUMENT") == 1
    seconds = "idp_grpc_server_handling_seconds_count"
    assert _delta(before, after, seconds, method="/AuthService/Login", code="OK") == 1
    assert _delta(before, after, "idp_logins_total", result="succeeded", channel="grpc") == 1


def _validations_per_process(directory: Path) -> dict[str, float]:
    """What each server process's own file says it counted (OK TokenValidate calls)."""
    counted = {}
    for path in directory.glob("counter_*.db"):
        for key, value, _timestamp, _position in MmapedDict.read_all_values_from_file(str(path)):
            name, _sample, labels, _help = json.loads(key)
            if name == "idp_grpc_server_handled" and labels == {
                "method": "/AuthService/TokenValidate",
                "code": "OK",
            }:
                counted[path.name] = value
    return counted


@pytest.mark.needs("postgresql", "redis")
def test_grpc_server_processes_export_their_sum_from_one_port(tmp_path):
    from tests.idp.api.conftest import mint

    port, exporter_port = free_ports(2)
    directory = tmp_path / "grpc-metrics"
    env = {**events.database_env(), "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    command = [sys.executable, "manage.py", "grpcserver", "--bind", f"127.0.0.1:{port}"]
    command += ["--processes", "2", "--workers", "2", "--metrics-port", str(exporter_port)]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    token = mint(sub="svc-user")
    calls = 0
    try:
        for _ in range(2):
            assert "listening on 127.0.0.1" in process.stdout.readline()
        # A new connection each time, until the kernel has given calls to both processes.
        while calls < 8 or (len(_validations_per_process(directory)) < 2 and calls < 64):
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                answer = auth_pb2_grpc.AuthServiceStub(channel).TokenValidate(
                    auth_pb2.TokenValidateRequest(token=token), timeout=10
                )
            assert answer.userId == "svc-user"
            calls += 1
        text = scrape(f"http://127.0.0.1:{exporter_port}/metrics")
    finally:
        process.send_signal(signal.SIGTERM)  # the supervisor stops its servers (a kill would not)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
    assert process.returncode == 0
    per_process = _validations_per_process(directory)
    assert len(per_process) == 2, per_process  # both served...
    assert sum(per_process.values()) == calls
    # ... and the one exporter adds them up.
    assert (
        sample(text, "idp_grpc_server_handled_total", method="/AuthService/TokenValidate", code="OK") == calls
    )


# --- Celery worker ----------------------------------------------------------------------------------


def test_the_worker_exports_its_tasks_on_its_own_port(settings, exporter_port, celery_eager):
    settings.IDP_METRICS_PORT_WORKER = exporter_port
    idp_celery._start_metrics_exporter()  # what worker_init does in the worker's main process
    url = f"http://127.0.0.1:{exporter_port}/metrics"
    try:
        before = scrape(url)
        prune_outbox.apply()
        after = scrape(url)
    finally:
        metrics.stop_exporter(idp_celery.exporter)
    labels = {"task": "audit.prune_outbox", "state": "SUCCESS"}
    assert _delta(before, after, "idp_celery_tasks_total", **labels) == 1
    assert _delta(before, after, "idp_celery_task_duration_seconds_count", task="audit.prune_outbox") == 1


# --- Kafka: the relay and the consumer ------------------------------------------------------------


class _Note(consumer.Handler):
    name = "test-observed"
    topic_setting = "KAFKA_TOPIC_USER_EVENTS"

    def handle(self, message: consumer.Message) -> dict:
        return {"offset": message.offset}


@KAFKA
def test_relay_and_consumer_counts_and_the_consumer_lag(settings, exporter_port):
    topics = events.fresh_topics(settings)
    before = _web_metrics()
    for n in range(3):
        audit.publish(EventType.USER_UPDATED, key="k", payload={"n": n})
    result = relay.relay_pending(ignore_backoff=True)
    assert result.published == 3
    after = _web_metrics()  # the relay ran in this process, as in a worker
    assert _delta(before, after, "idp_outbox_events_sent_total", topic=topics.users) == 3
    assert _delta(before, after, "idp_outbox_events_failed_total", topic=topics.users) == 0

    group = f"test-{uuid.uuid4().hex[:8]}"
    exporter = metrics.start_exporter(
        port=exporter_port, address="127.0.0.1", collectors=[audit_metrics.consumer_lag]
    )
    url = f"http://127.0.0.1:{exporter_port}/metrics"
    try:
        before = scrape(url)
        runner = consumer_runner.EventConsumer(
            [_Note()], group_id=group, poll_timeout=0.2, relay_inline=False
        )
        stats = runner.run(max_messages=1, idle_timeout=45)
        after = scrape(url)
    finally:
        metrics.stop_exporter(exporter)
    assert stats.handled == 1
    assert (
        _delta(before, after, "idp_kafka_consumer_messages_total", topic=topics.users, outcome="handled") == 1
    )
    # Three on the partition, one committed: two behind.
    assert sample(after, "idp_kafka_consumer_lag", group=group, topic=topics.users, partition="0") == 2


@KAFKA
def test_a_relay_that_cannot_reach_kafka_is_counted(settings, free_port):
    events.fresh_topics(settings)
    settings.KAFKA_BOOTSTRAP_SERVERS = f"127.0.0.1:{free_port}"
    settings.KAFKA_DELIVERY_TIMEOUT = 1
    audit.publish(EventType.USER_UPDATED, key="k", payload={})
    before = _web_metrics()
    assert relay.relay_pending(ignore_backoff=True).kafka_unavailable
    assert _delta(before, _web_metrics(), "idp_outbox_relay_failures_total") == 1


# --- tracing -----------------------------------------------------------------------------------------


@pytest.fixture
def spans() -> Iterator[Any]:
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = _EXPORTER.setdefault("exporter", InMemorySpanExporter())
    exporter.clear()
    assert tracing.setup(span_processor=_EXPORTER.setdefault("processor", SimpleSpanProcessor(exporter)))
    yield exporter
    tracing.stop_instrumenting()
    exporter.clear()


_EXPORTER: dict[str, Any] = {}


def _trace_id(traceparent: str) -> str:
    return traceparent.split("-")[1]


def test_tracing_is_off_by_default_and_then_costs_nothing():
    assert not settings.IDP_OTEL
    assert not tracing.enabled()
    assert tracing.context_headers() == {}
    assert tracing.grpc_server_interceptors() == []
    assert not any("opentelemetry" in path for path in settings.MIDDLEWARE)


def _events_since(moment: datetime) -> list[OutboxEvent]:
    return list(OutboxEvent.objects.filter(type=EventType.AUDIT_RECORDED, created_at__gt=moment))


def test_a_process_without_tracing_starts_none_of_it(tmp_path):
    """redis-py imports OpenTelemetry's API by itself when it is installed (its own metrics, off
    unless initialised); the SDK's tracing, the exporter, the instrumentations and propagation
    are ours to load, and stay out."""
    ours = ("opentelemetry.instrumentation", "opentelemetry.exporter", "opentelemetry.sdk.trace")
    code = (
        "import sys; from idp.wsgi import application; from idp.api import grpc_server; "
        f"print(sorted(name for name in sys.modules if name.startswith({ours!r}) "
        "or name == 'opentelemetry.propagate'))"
    )
    result = manage("shell", "-c", code, env={"IDP_DATA_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_a_web_request_is_traced_and_its_events_carry_the_trace(ivan, spans):
    application = machine.Application()  # built after tracing started, as in a traced process
    assert any("opentelemetry" in path for path in machine.machine_middleware())
    last = timezone.now()

    body = json.dumps({"login": "ivan", "password": PASSWORD}).encode()
    json_type = "application/json"
    login = wsgi_call("POST", "/api/v1/auth/login", body=body, content_type=json_type, app=application)
    assert login["status"] == 200

    (server,) = [span for span in spans.get_finished_spans() if span.kind.name == "SERVER"]
    trace_id = format(server.context.trace_id, "032x")
    written = _events_since(last)
    assert len(written) == 2  # login.succeeded, token.issued
    assert {_trace_id(event.headers["traceparent"]) for event in written} == {trace_id}

    # A machine path (the lean stack) is traced too.
    token = wsgi_call("POST", "/o/token/", body=b"grant_type=client_credentials", app=application)
    assert token["status"] == 401
    assert len([span for span in spans.get_finished_spans() if span.kind.name == "SERVER"]) == 2


def test_a_grpc_call_and_a_celery_task_are_traced(ivan, spans, celery_eager):
    last = timezone.now()
    server, port, _health = build_server(bind="127.0.0.1:0", max_workers=2)
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = auth_pb2_grpc.AuthServiceStub(channel)
            assert stub.Login(auth_pb2.LoginRequest(login="ivan", password=PASSWORD), timeout=10).token
    finally:
        server.stop(0).wait()
    (call,) = [span for span in spans.get_finished_spans() if span.name == "/AuthService/Login"]
    # The call's events were written inside its span, though gRPC ran it in another context.
    written = _events_since(last)
    assert len(written) == 2
    assert {_trace_id(event.headers["traceparent"]) for event in written} == {
        format(call.context.trace_id, "032x")
    }

    prune_outbox.apply()
    assert any("audit.prune_outbox" in span.name for span in spans.get_finished_spans())


@KAFKA
def test_the_trace_crosses_from_the_change_through_kafka_to_the_consumer(settings, spans):
    topics = events.fresh_topics(settings)
    from opentelemetry import trace

    with trace.get_tracer("tests").start_as_current_span("the change") as change:
        audit.publish(EventType.USER_UPDATED, key="k", payload={"n": 1})
    trace_id = format(change.get_span_context().trace_id, "032x")
    assert relay.relay_pending(ignore_backoff=True).published == 1

    (record,) = events.read_topic(topics.users, expect=1)
    assert _trace_id(record.headers["traceparent"]) == trace_id
    runner = consumer_runner.EventConsumer(
        [_Note()], group_id=f"test-{uuid.uuid4().hex[:8]}", poll_timeout=0.2, relay_inline=False
    )
    assert runner.run(max_messages=1, idle_timeout=45).handled == 1

    by_name = {span.name: span for span in spans.get_finished_spans()}
    send, process = by_name[f"send {topics.users}"], by_name[f"process {topics.users}"]
    assert format(send.context.trace_id, "032x") == trace_id
    assert format(process.context.trace_id, "032x") == trace_id
    assert process.parent.span_id == send.context.span_id


# --- deploy/: the alert rules and the dashboard name only what we export ---------------------------

ALERTS = ROOT / "deploy" / "prometheus" / "idp-alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "idp-dashboard.json"


def _exported_series() -> set[str]:
    """Every series name some process type of ours can export (families without samples too)."""
    import accounts.metrics  # noqa: F401 - registers its families (imported by accounts.mfa)
    import idp.api.grpc_metrics  # registers its families
    import idp.metrics

    text = generate_latest(idp.metrics.registry).decode()
    text += generate_latest(metrics.exposition_registry(audit_metrics.consumer_lag)).decode()
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            names |= {f"{name}_bucket", f"{name}_count", f"{name}_sum"} if kind == "histogram" else {name}
    return names


def _named(expression: str) -> set[str]:
    return set(re.findall(r"\bidp_[a-z0-9_]+\b", expression))


def test_every_alert_names_only_metrics_we_export():
    exported = _exported_series()
    rules = yaml.safe_load(ALERTS.read_text())
    expressions = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    assert len(expressions) >= 10
    named = set().union(*(_named(expression) for expression in expressions))
    assert named
    assert named <= exported, sorted(named - exported)


def test_every_dashboard_panel_names_only_metrics_we_export():
    exported = _exported_series()
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    assert len(expressions) >= 20
    named = set().union(*(_named(expression) for expression in expressions))
    assert named <= exported, sorted(named - exported)
    wanted = {
        "idp_http_requests_total",
        "idp_http_request_duration_seconds_bucket",
        "idp_logins_total",
        "idp_audit_records_total",
        "idp_tokens_issued_total",
        "idp_mfa_failures_total",
        "idp_outbox_oldest_unsent_age_seconds",
        "idp_outbox_events_failed_total",
        "idp_kafka_consumer_lag",
        "idp_grpc_server_handled_total",
        "idp_grpc_server_handling_seconds_bucket",
    }
    assert wanted <= named


@pytest.mark.skipif(not shutil.which("promtool"), reason="promtool not installed (Debian: prometheus)")
def test_promtool_accepts_the_alert_rules():
    result = subprocess.run(
        ["promtool", "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
