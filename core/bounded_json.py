"""JSON from untrusted bytes, with bounds: size and nesting are checked before the parser runs.

Python's `json` recurses once per nesting level, so `[[[[…` (100,000 of them) ends in a
RecursionError, a 500 wherever it is parsed: request bodies, token headers, Kafka messages and
answers fetched from other servers. Every one of those parses through `load_json_body`.
"""

from __future__ import annotations

import json
from typing import Any

MAX_JSON_BODY_BYTES = 64 * 1024
MAX_JSON_DEPTH = 32

_OPENERS = frozenset("[{")
_CLOSERS = frozenset("]}")


class JSONBodyError(ValueError):
    """A body refused before or while parsing; the message is fixed text, never the body's."""


def json_depth_exceeds(text: str, max_depth: int) -> bool:
    """True if `text` nests arrays/objects deeper than `max_depth`. One linear pass, no
    recursion; brackets inside strings (escaped quotes included) do not count."""
    if text.count("[") + text.count("{") <= max_depth:
        return False  # cannot be deeper than the number of openers: the common case
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in _OPENERS:
            depth += 1
            if depth > max_depth:
                return True
        elif char in _CLOSERS:
            depth -= 1
    return False


def _refuse_constant(name: str) -> Any:
    # NaN and Infinity are not JSON (RFC 8259 §6); Python accepts them by default.
    raise JSONBodyError(f"the JSON body contains {name}, which is not JSON")


def load_json_body(
    raw: bytes, *, max_bytes: int = MAX_JSON_BODY_BYTES, max_depth: int = MAX_JSON_DEPTH
) -> Any:
    """Parse a JSON document from untrusted bytes, or raise JSONBodyError (size, UTF-8, nesting,
    syntax). For any view that reads a JSON body; DRF views get it through BoundedJSONParser."""
    if len(raw) > max_bytes:
        raise JSONBodyError(f"the JSON body is larger than {max_bytes} bytes")
    try:
        # RFC 8259 §8.1: JSON exchanged between systems is UTF-8, whatever the charset says.
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise JSONBodyError("the JSON body is not UTF-8 text (RFC 8259 §8.1)") from None
    if json_depth_exceeds(text, max_depth):
        raise JSONBodyError(f"the JSON body is nested deeper than {max_depth} levels")
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        # The position only: the decoder's message could quote the body (a password).
        raise JSONBodyError(f"the body is not JSON (line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:  # unreachable below the depth bound; a 400 all the same
        raise JSONBodyError(f"the JSON body is nested deeper than {max_depth} levels") from None
