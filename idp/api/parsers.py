"""JSON request bodies with bounds: size and nesting are checked before the JSON parser runs.

Python's `json` recurses once per nesting level, so `[[[[…` (100,000 of them) ended in a
RecursionError, a 500, on every JSON endpoint. No body of this API comes near the bounds: the
largest (a new user with a 4,096-character password) stays under 25 KiB even with every character
escaped as \\uXXXX, and is one level deep.
"""

from __future__ import annotations

from typing import IO, Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser
from rest_framework.renderers import JSONRenderer

from core.bounded_json import MAX_JSON_BODY_BYTES, JSONBodyError, load_json_body


def read_bounded(stream: IO[bytes], max_bytes: int = MAX_JSON_BODY_BYTES) -> bytes:
    """At most `max_bytes` + 1 bytes of `stream`: enough to tell an oversized body, without
    reading all of it into memory."""
    return stream.read(max_bytes + 1)


class BoundedJSONParser(BaseParser):
    """The API's only parser: a JSON object, size- and depth-bounded; anything else is a 400
    `invalid_request` (through idp.api.errors), never a 500."""

    media_type = "application/json"
    renderer_class = JSONRenderer

    def parse(
        self, stream: IO[bytes] | None, media_type: str | None = None, parser_context: Any = None
    ) -> Any:
        if stream is None:
            return {}
        try:
            document = load_json_body(read_bounded(stream))
        except JSONBodyError as exc:
            raise ParseError(str(exc)) from None
        if not isinstance(document, dict):
            raise ParseError("the JSON body must be an object")
        return document
