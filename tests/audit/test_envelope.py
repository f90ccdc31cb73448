from __future__ import annotations

from datetime import UTC, datetime

from audit import envelope


def test_events_travel_as_cloudevents_binary_mode_kafka_headers(settings):
    settings.IDP_EVENT_SOURCE = "urn:idp:test"
    headers = envelope.headers_for(
        event_id="e-1",
        event_type="user.created",
        time=datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        subject="u-1",
        extra={"correlation_id": "c-1"},
    )
    assert dict(headers) == {
        "ce_specversion": b"1.0",
        "ce_id": b"e-1",
        "ce_source": b"urn:idp:test",
        "ce_type": b"user.created",
        "ce_time": b"2026-01-02T03:04:05.678901Z",
        "ce_subject": b"u-1",
        "content-type": b"application/json",
        "correlation_id": b"c-1",
    }


def test_data_is_compact_utf8_json():
    assert envelope.encode_data({"b": "ж", "a": None}) == '{"a":null,"b":"ж"}'.encode()


def test_headers_decode_leniently():
    assert envelope.decode_headers([("CE_ID", b"x"), ("bad", b"\xff"), ("none", None)]) == {
        "ce_id": "x",
        "bad": "\ufffd",
        "none": "",
    }
