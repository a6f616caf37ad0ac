"""Fixtures of the alert tests (helpers are in ``tests/alerts/helpers.py``)."""

from __future__ import annotations

import pytest

from monitor.storage import Store
from tests.alerts.helpers import Clock, HttpReceiver


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sqlite_store(tmp_path, clock):
    with Store(f"sqlite:///{tmp_path / 'alerts.sqlite3'}", clock=clock) as s:
        yield s


@pytest.fixture
def receiver():
    r = HttpReceiver()
    yield r
    r.close()
