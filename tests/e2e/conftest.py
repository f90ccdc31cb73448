"""The fixtures these tests share with the tests of the code they drive, imported from there."""

from __future__ import annotations

from tests.idp.api.conftest import api_user  # noqa: F401 - fixture of test_gateway.py
from tests.idp.oidc.conftest import rp_user  # noqa: F401 - fixture of test_oidc_browser.py
from tests.staff import irina, olga  # noqa: F401 - fixtures of test_admin_browser.py
