"""The monitor config a collector decides with: the file's, with each model's section replaced by the
one stored through the monitor API (``PUT /models/{model}/config``), re-read every few seconds.

A stored section that no longer validates (a newer skewwatch wrote it, say) is logged and the
previous good config stays in force; a store that cannot be read keeps the last one read.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from monitor.config import MonitorConfig
from monitor.errors import ConfigError, StoreError

__all__ = ["LiveConfig"]

log = logging.getLogger(__name__)


class LiveConfig:
    def __init__(self, file_config: MonitorConfig, store, *, refresh_seconds: float = 5.0,  # noqa: ANN001
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.file_config = file_config
        self._store = store
        self._refresh = refresh_seconds
        self._clock = clock
        self._current = file_config
        self._stamp: tuple | None = None
        self._read_at = -1e18
        self._lock = threading.Lock()

    def __call__(self) -> MonitorConfig:
        now = self._clock()
        with self._lock:
            if now - self._read_at < self._refresh:
                return self._current
            self._read_at = now
            try:
                rows = self._store.monitor_configs()
            except StoreError as exc:
                log.warning("cannot read stored monitor configs (keeping the last ones): %s", exc)
                return self._current
            stamp = tuple((r.model, r.updated_ms) for r in rows)
            if stamp != self._stamp:
                try:
                    self._current = self.file_config.with_models({r.model: r.document for r in rows})
                    if self._stamp is not None or rows:
                        log.info("monitor config: %d model section(s) from the store in force", len(rows))
                except ConfigError as exc:
                    log.error("a stored monitor config does not validate (keeping the previous one): %s", exc)
                self._stamp = stamp
            return self._current
