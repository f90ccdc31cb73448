"""The long-lived heap of a server process, set aside from the garbage collector once it has
started.

What start-up loads (Django, the apps, the URL patterns, the libraries: over 200,000 tracked
objects) lives as long as the process, yet every full collection walked all of it: about 100 ms
with the interpreter held, so every thread of the process stalled, several times a minute under
load. Frozen (gc.freeze), they are never scanned again; full collections walk only what requests
made since. Forked children keep the frozen pages untouched, shared with their parent.
"""

from __future__ import annotations

import gc


def settle() -> None:
    """Collect what start-up left as garbage, then freeze the rest: call once, when serving starts."""
    gc.collect()
    gc.freeze()
