"""Calling the WSGI application itself, as gunicorn does: Django's test client builds its own
handler from settings.MIDDLEWARE, so it never sees the machine paths' lean stack (idp.machine)."""

from __future__ import annotations

import io
import sys
from typing import Any

from idp.wsgi import application


def wsgi_call(
    method: str,
    path: str,
    *,
    body: bytes = b"",
    host: str = "localhost",
    content_type: str = "application/x-www-form-urlencoded",
    app: Any = None,
    **headers: str,
) -> Any:
    """The status, headers and body of one request to `app` (the project's WSGI application by
    default); `headers` by name without HTTP_."""
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path.partition("?")[0],
        "QUERY_STRING": path.partition("?")[2],
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": host,
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
        "CONTENT_TYPE": content_type,
        "CONTENT_LENGTH": str(len(body)),
    }
    environ.update({"HTTP_" + name.upper(): value for name, value in headers.items()})
    answer: dict[str, Any] = {}

    def start_response(status: str, response_headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        answer["status"] = int(status[:3])
        answer["headers"] = response_headers

    answer["body"] = b"".join((app or application)(environ, start_response))
    return answer
