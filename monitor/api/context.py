"""What every route of one app shares: settings, the store, the bundles on disk, the Kafka probe.

One :class:`Context` per app (no module state). Bundle metadata and baseline profiles are read
from ``models_dir`` and cached: metadata for a few seconds (new bundles appear without a
restart), profiles by (model, version) since a bundle never changes once written.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from monitor.bundle import Bundle, list_bundles
from monitor.config import MonitorConfig, load_monitor_config
from monitor.errors import BundleError
from monitor.settings import Settings
from monitor.stats import Profile
from monitor.storage import Store

__all__ = ["Context", "BundleIndex", "KafkaProbe"]

log = logging.getLogger(__name__)


class BundleIndex:
    """The bundles under ``models_dir``, rescanned at most every ``ttl_s`` seconds."""

    def __init__(self, models_dir: Any, *, ttl_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.models_dir = models_dir
        self.ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._bundles: dict[tuple[str, str], Bundle] = {}
        self._at: float | None = None
        self._profiles: dict[tuple[str, str], tuple[Profile, Profile]] = {}

    def all(self) -> dict[tuple[str, str], Bundle]:
        with self._lock:
            now = self._clock()
            if self._at is None or now - self._at > self.ttl_s:
                try:
                    found = list_bundles(self.models_dir)
                except BundleError:  # no models directory: a monitor over a store only
                    found = []
                self._bundles = {(b.model_name, b.model_version): b for b in found}
                self._at = now
            return dict(self._bundles)

    def get(self, model: str, version: str) -> Bundle | None:
        return self.all().get((model, version))

    def latest(self, model: str) -> Bundle | None:
        versions = sorted(v for (m, v) in self.all() if m == model)
        return self.get(model, versions[-1]) if versions else None

    def profiles(self, model: str, version: str) -> tuple[Profile, Profile] | None:
        """(features, predictions) baselines of one bundle (kept: a bundle never changes once written)."""
        key = (model, version)
        with self._lock:
            if key in self._profiles:
                return self._profiles[key]
        bundle = self.get(model, version)
        if bundle is None:
            return None
        pair = (bundle.baseline(), bundle.prediction_baseline())
        with self._lock:
            if len(self._profiles) >= 32:
                self._profiles.pop(next(iter(self._profiles)))
            self._profiles[key] = pair
        return pair


class KafkaProbe:
    """Is Kafka answering? A metadata request with a short timeout, the answer kept a few seconds."""

    def __init__(self, bootstrap_servers: str, *, timeout_s: float = 2.0, keep_s: float = 5.0) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.timeout_s = timeout_s
        self.keep_s = keep_s
        self._lock = threading.Lock()
        self._last: tuple[float, bool, str] | None = None

    def check(self) -> tuple[bool, str]:
        with self._lock:
            now = time.monotonic()
            if self._last is not None and now - self._last[0] < self.keep_s:
                return self._last[1], self._last[2]
            ok, detail = self._ask()
            self._last = (time.monotonic(), ok, detail)
            return ok, detail

    def _ask(self) -> tuple[bool, str]:
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient

        quiet = logging.getLogger("monitor.api.kafka")
        quiet.setLevel(logging.CRITICAL)
        client = AdminClient({"bootstrap.servers": self.bootstrap_servers,
                              "socket.timeout.ms": int(self.timeout_s * 1000), "logger": quiet})
        try:
            meta = client.list_topics(timeout=self.timeout_s)
        except KafkaException as exc:
            return False, f"Kafka did not answer within {self.timeout_s:g}s ({exc.args[0].name() if exc.args else exc})"
        return True, f"{len(meta.brokers)} broker(s)"


@dataclass
class Context:
    settings: Settings
    store: Store
    bundles: BundleIndex
    kafka: KafkaProbe | None
    file_config: Callable[[], MonitorConfig] = field(repr=False)

    @classmethod
    def build(cls, settings: Settings, store: Store) -> "Context":
        path = settings.monitor_config
        return cls(settings=settings, store=store, bundles=BundleIndex(settings.models_dir),
                   kafka=KafkaProbe(settings.kafka_bootstrap_servers) if settings.monitor_check_kafka else None,
                   file_config=lambda: load_monitor_config(path))

    @property
    def max_chars(self) -> int:
        return self.settings.api_max_value_chars
