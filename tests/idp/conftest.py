from __future__ import annotations

# The admin pages' tests: tests/idp/test_admin_site.py and tests/idp/oidc/test_admin_*.py.
from tests.staff import as_irina, as_olga, as_root, boss, irina, ivan, olga  # noqa: F401 - fixtures
