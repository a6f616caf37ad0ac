"""``Store``: the one place state survives in (SQLite by default, PostgreSQL by URL).

It is assembled from one mixin per area, each in its own module, over :class:`StoreBase`
(engine, transactions, migrations):

* :class:`~monitor.storage.windows.WindowsStore`: decided windows, findings, latest scores,
  profiles and samples; one transaction per decided window;
* :class:`~monitor.storage.collection.CollectionStore`: partials, partition progress,
  collectors' checkpoints, dead letters.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from monitor.storage.admin import AdminStore
from monitor.storage.alerting import AlertingStore
from monitor.storage.base import StoreBase
from monitor.storage.collection import CollectionStore
from monitor.storage.engine import store_url
from monitor.storage.windows import WindowsStore
from monitor.timeutil import now_ms

__all__ = ["Store", "open_store"]


class Store(WindowsStore, CollectionStore, AdminStore, AlertingStore, StoreBase):
    """See the module docstring; ``Store(url)`` migrates the database to the current schema."""


def open_store(settings, *, clock: Callable[[], int] = now_ms) -> Store:  # noqa: ANN001 - monitor.settings.Settings
    """The store the settings point at: ``store_url``, else ``state_dir/skewwatch.sqlite3``."""
    url = store_url(getattr(settings, "store_url", None), Path(settings.state_dir))
    return Store(url, busy_timeout_s=getattr(settings, "store_busy_timeout_seconds", 10.0), clock=clock)
