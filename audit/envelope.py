"""CloudEvents 1.0 over Kafka, binary content mode (the CloudEvents Kafka protocol binding, §3.2).

The message value is the event's JSON data, nothing around it; the context attributes travel
as `ce_`-prefixed headers and `datacontenttype` as `content-type`. A consumer that knows
nothing of CloudEvents still reads plain JSON, and one that does can route on `ce_type`
without parsing the value. The message key is the event's partition key (the user id).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from django.conf import settings

SPEC_VERSION = "1.0"
JSON = "application/json"
PROTOBUF = "application/x-protobuf"

# Extension headers this service sets or reads beside the CloudEvents attributes.
CORRELATION_ID = "correlation_id"


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def encode_data(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


def headers_for(
    *,
    event_id: str,
    event_type: str,
    time: datetime,
    subject: str = "",
    extra: Mapping[str, str] | None = None,
) -> list[tuple[str, bytes]]:
    """The Kafka headers of one event (CloudEvents Kafka binding §3.2.3: `ce_` + attribute)."""
    headers = [
        ("ce_specversion", SPEC_VERSION),
        ("ce_id", event_id),
        ("ce_source", settings.IDP_EVENT_SOURCE),
        ("ce_type", event_type),
        ("ce_time", rfc3339(time)),
        ("content-type", JSON),
    ]
    if subject:
        headers.append(("ce_subject", subject))
    for name, value in (extra or {}).items():
        headers.append((name, value))
    return [(name, value.encode()) for name, value in headers]


def decode_headers(headers: Iterable[tuple[str, bytes | None]] | None) -> dict[str, str]:
    """Kafka headers as text; the last value wins for a repeated name, undecodable bytes are replaced."""
    decoded: dict[str, str] = {}
    for name, value in headers or ():
        decoded[name.lower()] = "" if value is None else value.decode("utf-8", errors="replace")
    return decoded
