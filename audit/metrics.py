"""What the audit log, the outbox relay and the consumers count for Prometheus.

Every change is audited through audit.services, so one counter of committed audit records by
action covers sign-ins, lockouts, second-factor failures, tokens and the rest. Where operators
need a label the action does not carry (why a sign-in failed, which grant and client a token went
to), a dedicated counter takes it from the record's details, written by our own code with values
from fixed sets, never from what a caller typed. Records are counted once committed: a change
that was rolled back is not.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from django.db import transaction
from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily, Metric

from audit.registry import AuditAction

AUDIT_RECORDS = Counter("idp_audit_records", "Audit records committed, by action", ["action"])
LOGINS = Counter(
    "idp_logins",
    "Password sign-ins by result (succeeded, or the refusal: invalid_credentials, rate_limited, "
    "account_blocked, mfa_required, sso_required, invalid_request) and door (web, rest, grpc)",
    ["result", "channel"],
)
MFA_FAILURES = Counter(
    "idp_mfa_failures", "Second-factor codes refused, by reason (wrong_code, throttled, ...)", ["reason"]
)
TOKENS = Counter(
    "idp_tokens_issued",
    "Access tokens issued, by grant type and OAuth client (registered applications)",
    ["grant_type", "client_id"],
)
OUTBOX_SENT = Counter("idp_outbox_events_sent", "Outbox events Kafka acknowledged, by topic", ["topic"])
OUTBOX_FAILED = Counter(
    "idp_outbox_events_failed",
    "Outbox events not acknowledged by Kafka, by topic and reason (unavailable: the broker; "
    "refused: this message, e.g. too large)",
    ["topic", "reason"],
)
RELAY_FAILURES = Counter(
    "idp_outbox_relay_failures", "Relay passes that could not reach Kafka (each starts a back-off)"
)
CONSUMED = Counter(
    "idp_kafka_consumer_messages",
    "Messages the consumer finished, by topic and outcome (handled, duplicate, dead_lettered)",
    ["topic", "outcome"],
)

_MAX_LABEL = 64
# Each counter's child per label values, kept: a token's count is a dict lookup, not labels().
_children: dict[tuple[Counter, tuple[str, ...]], Counter] = {}


def _inc(counter: Counter, *values: str) -> None:
    child = _children.get((counter, values))
    if child is None:
        child = _children.setdefault((counter, values), counter.labels(*values))
    child.inc()


def _label(value: Any) -> str:
    """A details value as a label: our own words, bounded; anything else says so."""
    return value[:_MAX_LABEL] if isinstance(value, str) and value else "unknown"


def _login(details: Mapping[str, Any], succeeded: bool) -> None:
    result = "succeeded" if succeeded else _label(details.get("reason"))
    _inc(LOGINS, result, _label(details.get("channel")))


def _mfa_failure(details: Mapping[str, Any]) -> None:
    _inc(MFA_FAILURES, _label(details.get("reason")))


def _token(details: Mapping[str, Any]) -> None:
    _inc(TOKENS, _label(details.get("grantType")), _label(details.get("clientId")))


# The actions some dedicated counter wants, and what it takes from the record's details.
_DEDICATED: dict[str, Callable[[Mapping[str, Any]], None]] = {
    AuditAction.LOGIN_SUCCEEDED: functools.partial(_login, succeeded=True),
    AuditAction.LOGIN_FAILED: functools.partial(_login, succeeded=False),
    AuditAction.MFA_FAILED: _mfa_failure,
    AuditAction.TOKEN_ISSUED: _token,
    AuditAction.TOKEN_REFRESHED: _token,
}


def count_record(action: str, details: Mapping[str, Any]) -> None:
    _inc(AUDIT_RECORDS, str(action))
    dedicated = _DEDICATED.get(action)
    if dedicated is not None:
        dedicated(details)


def count_record_on_commit(action: str, details: Mapping[str, Any]) -> None:
    """Count the record when the transaction that wrote it commits (at once outside one)."""
    transaction.on_commit(functools.partial(count_record, action, details), robust=True)


def count_relayed(topics_sent: Mapping[str, int], topics_failed: Mapping[tuple[str, str], int]) -> None:
    for topic, n in topics_sent.items():
        OUTBOX_SENT.labels(topic).inc(n)
    for (topic, reason), n in topics_failed.items():
        OUTBOX_FAILED.labels(topic, reason).inc(n)


class ConsumerLag:
    """Messages behind, per topic and partition this process consumes for its group: the
    partition's high watermark minus the group's committed offset. The consumer loop measures
    it every few seconds (audit.consumer_runner); the exporter reads the last measurement."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._group = ""
        self._lags: dict[tuple[str, int], int] = {}

    def update(self, group: str, lags: Mapping[tuple[str, int], int]) -> None:
        with self._lock:
            self._group, self._lags = group, dict(lags)

    def snapshot(self) -> tuple[str, dict[tuple[str, int], int]]:
        with self._lock:
            return self._group, dict(self._lags)

    def collect(self) -> Iterator[Metric]:
        group, lags = self.snapshot()
        family = GaugeMetricFamily(
            "idp_kafka_consumer_lag",
            "Messages not yet committed by our consumer group, per topic and partition it holds",
            labels=["group", "topic", "partition"],
        )
        for (topic, partition), lag in sorted(lags.items()):
            family.add_metric([group, topic, str(partition)], lag)
        yield family


consumer_lag = ConsumerLag()
