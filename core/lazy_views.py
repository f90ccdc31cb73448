"""Views imported on their first request.

A URLconf names such a view by its dotted path: a process that never serves it never imports its
module, nor the library behind it (pysaml2, scim2-models with pydantic, py_webauthn: about 25-50 MB
each, in every web worker). What Django reads from a view before calling it (`csrf_exempt`, the
only such attribute our middleware reads) is declared here and checked against the real view by
tests/core/test_lazy_views.py.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.utils.module_loading import import_string

View = Callable[..., HttpResponse]


def lazy_view(dotted: str, *, csrf_exempt: bool = False) -> View:
    """A view that imports `dotted` (a function view, or a class-based view's class) when first
    called, then calls it."""
    lock = threading.Lock()
    loaded: list[View] = []

    def view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not loaded:
            with lock:
                if not loaded:
                    loaded.append(resolve(dotted))
        return loaded[0](request, *args, **kwargs)

    view.csrf_exempt = csrf_exempt  # type: ignore[attr-defined]
    view.lazy_target = dotted  # type: ignore[attr-defined]
    view.__name__ = dotted.rsplit(".", 1)[-1]
    view.__qualname__ = view.__name__
    view.__module__ = dotted.rsplit(".", 1)[0]
    return view


def resolve(dotted: str) -> View:
    target = import_string(dotted)
    as_view = getattr(target, "as_view", None)
    return as_view() if as_view is not None else target
