"""JSON log lines (IDP_LOG_FORMAT=json) and the request id they carry."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from core import context
from core.logs import JsonFormatter


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tests.json")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield stream
    logger.removeHandler(handler)


def _parsed(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_line_is_one_json_object_with_the_request_id(lines):
    with context.bind(context.RequestContext(request_id="req-42")):
        logging.getLogger("tests.json").warning("refused %s", "ivan", extra={"action": "login.failed"})
    logging.getLogger("tests.json").info("outside")

    inside, outside = _parsed(lines)
    assert inside["message"] == "refused ivan"
    assert inside["level"] == "WARNING"
    assert inside["logger"] == "tests.json"
    assert inside["request_id"] == "req-42"
    assert inside["action"] == "login.failed"
    assert inside["time"].endswith("Z")
    assert "trace_id" not in inside  # tracing is off
    assert outside["request_id"] is None


def test_exceptions_and_odd_extras_stay_on_one_line(lines):
    log = logging.getLogger("tests.json")
    try:
        raise ValueError("broken\nacross lines")
    except ValueError:
        log.exception("failed", extra={"thing": object(), "count": 3})

    (entry,) = _parsed(lines)  # one line, however many the traceback has
    assert "ValueError: broken" in entry["exception"]
    assert entry["count"] == 3
    assert entry["thing"].startswith("<object object")


def test_a_line_about_a_request_uses_its_id_and_never_its_text(lines):
    """django.request logs 4xx answers after the middleware ended: the request names the id."""
    request = SimpleNamespace(request_id="req-7", __str__=lambda self: "GET /?code=secret")
    logging.getLogger("tests.json").warning(
        "Unauthorized: /x", extra={"request": request, "status_code": 401}
    )

    (entry,) = _parsed(lines)
    assert entry["request_id"] == "req-7"
    assert entry["status_code"] == 401
    assert "request" not in entry


@pytest.mark.parametrize(
    "given",
    ["", "a" * 65, "abc\x01", "abc\n", "abc def", "ünïcode", "<script>", "a/b"],
)
def test_a_request_id_that_is_not_harmless_is_replaced(given):
    chosen = context.request_id(given)
    assert chosen != given
    assert len(chosen) == 32
    int(chosen, 16)


@pytest.mark.parametrize("given", ["a", "a" * 64, "req-1.2:3_x", "0f3c2a"])
def test_a_harmless_request_id_is_kept(given):
    assert context.request_id(given) == given
