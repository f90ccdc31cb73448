"""core.heap: a server process sets its start-up heap aside from the garbage collector."""

from __future__ import annotations

import gc


def test_the_served_application_sets_its_start_up_heap_aside():
    import idp.wsgi  # noqa: F401 - the module the web server loads

    # Django, the apps and the libraries: far more than a full collection should walk each time.
    assert gc.get_freeze_count() > 50_000
