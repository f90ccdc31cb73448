from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests import events
from tests.staff import as_root, boss, ivan  # noqa: F401 - fixtures of test_admin_export.py


@pytest.fixture
def topics(settings) -> events.Topics:
    return events.fresh_topics(settings)


@pytest.fixture
def private_broker() -> Iterator[events.PrivateBroker]:
    yield from events.private_broker()
