"""The models a serving process answers for: bundles on disk, loaded on demand.

``ModelRegistry(models_dir)`` discovers bundles with :mod:`monitor.bundle`
(``<models_dir>/<name>/<version>/``), loads the Keras model of a ``(name, version)`` the
first time it is asked for (or at start-up via :meth:`ModelRegistry.preload`) and keeps it.
The default version is the latest (versions are lexically sortable UTC stamps). The
directory is rescanned every ``rescan_seconds`` and when a name or version is not known yet
(at most once a second), so a newly trained bundle is picked up without a restart. Broken
bundles are skipped by :func:`monitor.bundle.list_bundles` (logged), so they answer 404.

This is the only serving module that imports TensorFlow/Keras.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from monitor.bundle import Bundle, list_bundles
from monitor.errors import BundleError, SchemaError
from monitor.schema import FeatureSpec

__all__ = ["ModelNotFoundError", "ServedModel", "VersionStatus", "ModelRegistry"]

log = logging.getLogger(__name__)

_FORCED_RESCAN_S = 1.0


class ModelNotFoundError(BundleError):
    """No bundle for the requested model name or version (the app answers 404).

    The message never carries a filesystem path: it goes back to clients as is.
    """


@dataclass(frozen=True, slots=True)
class ServedModel:
    """A loaded bundle: its Keras model and the feature specs its inputs follow."""

    name: str
    version: str
    specs: tuple[FeatureSpec, ...]
    bundle: Bundle
    model: Any = field(repr=False)

    def predict(self, instances: Sequence[Mapping[str, Any]]) -> list[float]:
        """One float per instance, via the trainer's own input conversion and predict."""
        from trainer.inputs import columns_from_instances
        from trainer.model import predict

        columns = columns_from_instances(instances, self.specs)
        out = np.asarray(predict(self.model, columns, self.specs), dtype=np.float64)
        if out.size != len(instances):
            raise SchemaError(f"model returned {out.size} values for {len(instances)} instances")
        return [float(v) for v in out.reshape(-1)]


@dataclass(frozen=True, slots=True)
class VersionStatus:
    version: str
    loaded: bool
    error: str | None


class ModelRegistry:
    """Bundles under ``models_dir`` keyed by ``(name, version)``; Keras models load lazily."""

    def __init__(self, models_dir: str | Path, *, rescan_seconds: float = 10.0) -> None:
        self.models_dir = Path(models_dir)
        self._rescan_seconds = rescan_seconds
        self._lock = threading.Lock()
        self._bundles: dict[str, dict[str, Bundle]] = {}
        self._scanned_at: float | None = None
        self._loaded: dict[tuple[str, str], ServedModel] = {}
        self._errors: dict[tuple[str, str], str] = {}
        self._load_locks: dict[tuple[str, str], threading.Lock] = {}

    # -- discovery ----------------------------------------------------------------------

    def rescan(self) -> None:
        """Re-read the bundle directory."""
        found: dict[str, dict[str, Bundle]] = {}
        if self.models_dir.is_dir():
            for bundle in list_bundles(self.models_dir):
                found.setdefault(bundle.model_name, {})[bundle.model_version] = bundle
        with self._lock:
            self._bundles = found
            self._scanned_at = time.monotonic()

    def _maybe_rescan(self, force: bool = False) -> None:
        # A forced rescan (unknown name or version) still waits _FORCED_RESCAN_S since the
        # last one, so a stream of requests for missing models cannot hammer the disk.
        scanned = self._scanned_at
        age = float("inf") if scanned is None else time.monotonic() - scanned
        if age >= self._rescan_seconds or (force and age >= min(self._rescan_seconds, _FORCED_RESCAN_S)):
            self.rescan()

    def names(self) -> list[str]:
        self._maybe_rescan()
        with self._lock:
            return sorted(self._bundles)

    def versions(self, name: str) -> list[str]:
        """The versions of ``name`` on disk, oldest first; :class:`ModelNotFoundError` if none."""
        self._maybe_rescan()
        with self._lock:
            known = self._bundles.get(name)
        if not known:
            self._maybe_rescan(force=True)
            with self._lock:
                known = self._bundles.get(name)
        if not known:
            raise ModelNotFoundError(f"no model named {name!r}")
        return sorted(known)

    def bundle(self, name: str, version: str | None = None) -> Bundle:
        versions = self.versions(name)
        if version is None:
            version = versions[-1]
        elif version not in versions:
            self._maybe_rescan(force=True)
            versions = self.versions(name)
            if version not in versions:
                raise ModelNotFoundError(f"model {name!r} has no version {version!r} (versions: {versions})")
        with self._lock:
            return self._bundles[name][version]

    def status(self, name: str) -> list[VersionStatus]:
        """Every version of ``name`` on disk with whether it is loaded or failed to load."""
        out = []
        for version in self.versions(name):
            key = (name, version)
            with self._lock:
                out.append(VersionStatus(version, key in self._loaded, self._errors.get(key)))
        return out

    # -- loading ------------------------------------------------------------------------

    def get(self, name: str, version: str | None = None) -> ServedModel:
        """The loaded model for ``name`` at ``version`` (latest when ``None``), loading it once."""
        bundle = self.bundle(name, version)
        key = (bundle.model_name, bundle.model_version)
        with self._lock:
            served = self._loaded.get(key)
            if served is not None:
                return served
            load_lock = self._load_locks.setdefault(key, threading.Lock())
        with load_lock:
            with self._lock:
                served = self._loaded.get(key)
            if served is not None:
                return served
            try:
                served = self._load(bundle)
            except BundleError as exc:
                with self._lock:
                    self._errors[key] = str(exc)
                raise
            with self._lock:
                self._loaded[key] = served
                self._errors.pop(key, None)
            return served

    def preload(self) -> list[ServedModel]:
        """Load the latest version of every model now (start-up warm-up); log failures."""
        served = []
        for name in self.names():
            try:
                served.append(self.get(name))
            except BundleError as exc:
                log.error("cannot load model %s: %s", name, exc)
        return served

    @staticmethod
    def _load(bundle: Bundle) -> ServedModel:
        import keras

        model_file = bundle.file("model")
        if not model_file.is_file():
            raise BundleError("model file is missing", path=str(model_file))
        started = time.perf_counter()
        try:
            model = keras.saving.load_model(model_file)
        except Exception as exc:  # keras raises many types for unreadable files
            raise BundleError(f"cannot load Keras model ({type(exc).__name__}: {exc})", path=str(model_file)) from exc
        log.info(
            "loaded model %s version %s in %.2fs", bundle.model_name, bundle.model_version, time.perf_counter() - started
        )
        return ServedModel(
            name=bundle.model_name,
            version=bundle.model_version,
            specs=tuple(bundle.specs),
            bundle=bundle,
            model=model,
        )
