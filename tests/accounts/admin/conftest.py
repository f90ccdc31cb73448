from __future__ import annotations

from tests.staff import as_irina, as_olga, as_root, boss, irina, ivan, olga  # noqa: F401 - fixtures
