"""Retention on a timer: the monitor process enforces the configured retention every
``retention_interval_seconds`` on a daemon thread (one sweep at a time; a failing sweep is logged
and retried at the next tick)."""

from __future__ import annotations

import logging
import threading

from monitor.errors import StoreError
from monitor.settings import Settings
from monitor.storage.admin import RetentionPolicy

__all__ = ["policy_of", "RetentionThread"]

log = logging.getLogger(__name__)


def policy_of(settings: Settings) -> RetentionPolicy:
    return RetentionPolicy.from_days(windows=settings.retention_windows_days,
                                     findings=settings.retention_findings_days,
                                     profiles=settings.retention_profiles_days)


class RetentionThread:
    def __init__(self, store, settings: Settings) -> None:  # noqa: ANN001 - monitor.storage.Store
        self.store = store
        self.policy = policy_of(settings)
        self.interval = settings.retention_interval_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.sweeps = 0

    def start(self) -> "RetentionThread":
        if self.interval > 0 and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="skewwatch-retention", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                done = self.store.enforce_retention(self.policy)
                self.sweeps += 1
                if any(done.to_dict()[k] for k in ("windows", "findings", "profiles", "samples")):
                    log.info("retention: deleted %s", done.to_dict())
            except StoreError as exc:
                log.warning("retention sweep failed (retrying in %.0fs): %s", self.interval, exc)
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
