"""core.bounded_json and idp.api.parsers: JSON is bounded in size and depth before it is parsed."""

from __future__ import annotations

import io
import json
import time

import pytest
from rest_framework.exceptions import ParseError

from core.bounded_json import (
    MAX_JSON_BODY_BYTES,
    MAX_JSON_DEPTH,
    JSONBodyError,
    json_depth_exceeds,
    load_json_body,
)
from idp.api.parsers import BoundedJSONParser


def nested(depth: int) -> str:
    return '{"a": ' * depth + "1" + "}" * depth


@pytest.mark.parametrize(
    ("text", "depth", "too_deep"),
    [
        ("{}", 1, False),
        ("[[]]", 1, True),
        ("[[]]", 2, False),
        ('["[[[[", "{{{{"]', 1, False),  # brackets inside strings do not count
        ('["\\"[[[["]', 1, False),  # an escaped quote does not end the string
        ('["\\\\", [[]]]', 2, True),  # an escaped backslash does: the brackets after it count
        ('["\\\\"]', 1, False),
        ('{"a": "\\u005b\\u005b"}', 1, False),
        ("[]" * 1000, 1, False),  # many siblings are not depth
        ("[" * 33 + "]" * 33, 32, True),
        ("[" * 32 + "]" * 32, 32, False),
        ('"[[[[[', 1, False),  # unterminated string: everything after the quote is in it
    ],
)
def test_depth_scan(text, depth, too_deep):
    assert json_depth_exceeds(text, depth) is too_deep


def test_depth_scan_agrees_with_the_parser_on_valid_documents():
    for depth in range(1, 40):
        text = nested(depth)
        json.loads(text)
        assert json_depth_exceeds(text, MAX_JSON_DEPTH) is (depth > MAX_JSON_DEPTH)


def test_depth_scan_is_linear_on_the_largest_body():
    started = time.perf_counter()
    siblings = "[" + '"[{", ' * (MAX_JSON_BODY_BYTES // 6) + "0]"  # every opener inside a string
    assert json_depth_exceeds(siblings, MAX_JSON_DEPTH) is False
    assert time.perf_counter() - started < 1


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"[" * 100_000, f"the JSON body is larger than {MAX_JSON_BODY_BYTES} bytes"),
        (b"[" * 50_000, f"the JSON body is nested deeper than {MAX_JSON_DEPTH} levels"),
        (nested(33).encode(), f"the JSON body is nested deeper than {MAX_JSON_DEPTH} levels"),
        (b'{"login": "\xff"}', "the JSON body is not UTF-8 text (RFC 8259 \u00a78.1)"),
        ('{"a": 1}'.encode("utf-16"), "the JSON body is not UTF-8 text (RFC 8259 \u00a78.1)"),
        (b'{"login": "x", "password": ', "the body is not JSON (line 1, column 28)"),
        (b'{"a": NaN}', "the JSON body contains NaN, which is not JSON"),
        (b'{"a": -Infinity}', "the JSON body contains -Infinity, which is not JSON"),
    ],
)
def test_refused_bodies(raw, message):
    with pytest.raises(JSONBodyError) as refused:
        load_json_body(raw)
    assert str(refused.value) == message


def test_the_syntax_error_does_not_quote_the_body():
    with pytest.raises(JSONBodyError) as refused:
        load_json_body(b'{"password": "hunter2-secret" oops}')
    assert "hunter2" not in str(refused.value)


def test_bodies_within_the_bounds_parse():
    assert load_json_body(nested(MAX_JSON_DEPTH).encode())["a"]["a"]
    big = {"password": "x" * (MAX_JSON_BODY_BYTES - 20)}
    assert load_json_body(json.dumps(big).encode()) == big
    assert load_json_body('{"name": "Ünïcødé ✓"}'.encode()) == {"name": "Ünïcødé ✓"}


def test_the_parser_wants_an_object_and_answers_parse_errors():
    parser = BoundedJSONParser()
    assert parser.parse(io.BytesIO(b'{"a": [1]}')) == {"a": [1]}
    for raw in (b"[]", b"1", b'"x"', b"null"):
        with pytest.raises(ParseError) as refused:
            parser.parse(io.BytesIO(raw))
        assert refused.value.detail == "the JSON body must be an object"
    with pytest.raises(ParseError) as refused:
        parser.parse(io.BytesIO(b"[" * 100_000))
    assert refused.value.detail == f"the JSON body is larger than {MAX_JSON_BODY_BYTES} bytes"


def test_the_parser_reads_no_more_than_the_bound_plus_one():
    stream = io.BytesIO(b" " * (10 * MAX_JSON_BODY_BYTES))
    with pytest.raises(ParseError):
        BoundedJSONParser().parse(stream)
    assert stream.tell() == MAX_JSON_BODY_BYTES + 1


@pytest.mark.django_db
def test_every_drf_endpoint_uses_only_the_bounded_parser():
    """Form and multipart parsers are off: no endpoint takes them, and each is a parser to bound."""
    from django.urls import get_resolver
    from rest_framework.views import APIView

    def views(patterns):
        for pattern in patterns:
            if hasattr(pattern, "url_patterns"):
                yield from views(pattern.url_patterns)
            else:
                cls = getattr(pattern.callback, "cls", None)
                if cls is not None and issubclass(cls, APIView):
                    yield cls

    found = list(views(get_resolver().url_patterns))
    assert len(found) > 10
    for view in found:
        assert [type(p) for p in view().get_parsers()] == [BoundedJSONParser], view
