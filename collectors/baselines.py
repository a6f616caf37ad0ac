"""Which baseline a record is compared with: the bundle of its model name and version."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from monitor.bundle import Bundle, resolve_bundle
from monitor.errors import BundleError
from monitor.schema import FeatureSpec
from monitor.stats import Profile

__all__ = ["BaselineCache"]

log = logging.getLogger(__name__)


class BaselineCache:
    """Loads each bundle's baselines once; a version not found is looked up again at most every ``retry_seconds``
    (a model deployed after the collector started is picked up without a restart)."""

    def __init__(self, models_dir: Path, *, retry_seconds: float = 30.0) -> None:
        self.models_dir = Path(models_dir)
        self.retry_seconds = retry_seconds
        self._bundles: dict[tuple[str, str], tuple[Bundle, Profile, Profile]] = {}
        self._missing: dict[tuple[str, str], float] = {}

    def _load(self, model: str, version: str) -> tuple[Bundle, Profile, Profile] | None:
        key = (model, version)
        if key in self._bundles:
            return self._bundles[key]
        missed_at = self._missing.get(key)
        if missed_at is not None and time.monotonic() - missed_at < self.retry_seconds:
            return None
        try:
            bundle = resolve_bundle(self.models_dir, model, version)
            entry = (bundle, bundle.baseline(), bundle.prediction_baseline())
        except BundleError as exc:
            log.warning("no baseline for %s version %s: %s", model, version, exc)
            self._missing[key] = time.monotonic()
            return None
        self._missing.pop(key, None)
        self._bundles[key] = entry
        return entry

    def specs_for(self, model: str, version: str) -> tuple[FeatureSpec, ...] | None:
        entry = self._load(model, version)
        return None if entry is None else entry[0].specs

    def bundle(self, model: str, version: str) -> Bundle:
        entry = self._load(model, version)
        if entry is None:
            raise BundleError(f"no bundle for {model} version {version}", path=str(self.models_dir))
        return entry[0]

    def baselines(self, model: str, version: str) -> tuple[Profile, Profile]:
        entry = self._load(model, version)
        if entry is None:
            raise BundleError(f"no bundle for {model} version {version}", path=str(self.models_dir))
        return entry[1], entry[2]
