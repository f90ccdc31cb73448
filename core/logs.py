"""Log lines as JSON objects (IDP_LOG_FORMAT=json): one per line, for a log pipeline to index.

Each carries the time (RFC 3339, UTC), level, logger, message and the request id of the request,
gRPC call, Celery task or consumed message being served (core.context), the same id the response
header and the audit record carry; with tracing on, the trace and span ids too; and the fields a
call passed as `extra=`.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from core import context, tracing

# What every LogRecord has; anything else on a record was passed as `extra=`.
_STANDARD_FIELDS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    # django.request's HttpRequest: its text would carry the query string, codes and all.
    "request",
}
_PLAIN_TYPES = (str, int, float, bool, type(None))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            # django.request reports 4xx and 5xx answers after the middleware has returned: the
            # request it passes holds the id (core.context.RequestContextMiddleware).
            "request_id": context.current().request_id
            or getattr(record.__dict__.get("request"), "request_id", None)
            or None,
        }
        ids = tracing.current_ids()
        if ids is not None:
            entry["trace_id"], entry["span_id"] = ids
        for name, value in record.__dict__.items():
            if name not in _STANDARD_FIELDS and name not in entry and not name.startswith("_"):
                entry[name] = value if isinstance(value, _PLAIN_TYPES) else str(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False)
