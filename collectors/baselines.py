"""Which baseline a record is compared with: the bundle of its model name and version.

Bundles are loaded once and kept. Names that do not resolve cost bounded memory and bounded log
lines, however many distinct ones arrive (a client sending random model names must not grow the
collector or flood its log): at most ``max_misses`` recent misses are remembered (an LRU), each
looked up again at most every ``retry_seconds`` (a model deployed after start-up is picked up
without a restart), and unknown names are logged at most once per ``log_every_seconds`` with a
count of the others.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from pathlib import Path
from typing import Callable

from collectors.partition import Resolved
from collectors.segments import segmenter_for
from monitor.bundle import Bundle, resolve_bundle
from monitor.errors import BundleError, SchemaError
from monitor.lru import remember
from monitor.references import Segments
from monitor.record import DeadLetterReason
from monitor.stats import Profile

__all__ = ["BaselineCache"]

log = logging.getLogger(__name__)


class BaselineCache:
    def __init__(self, models_dir: Path, *, retry_seconds: float = 30.0, max_misses: int = 1024,
                 log_every_seconds: float = 10.0, clock: Callable[[], float] = time.monotonic,
                 segments_for: Callable[[str], Segments | None] = lambda model: None) -> None:
        self.models_dir = Path(models_dir)
        self._segments_for = segments_for
        self.retry_seconds = retry_seconds
        self._max_misses = max_misses
        self._log_every = log_every_seconds
        self._clock = clock
        self._bundles: dict[tuple[str, str], Bundle] = {}
        self._resolved: dict[tuple[str, str], Resolved] = {}
        self._profiles: dict[tuple[str, str], tuple[Profile, Profile]] = {}
        self._misses: OrderedDict[tuple[str, str], tuple[float, Resolved]] = OrderedDict()
        self._last_log = -1e18
        self._unlogged = 0

    def resolve(self, model: str, version: str) -> Resolved:
        """The specs a record of this model version is checked against, or why there are none."""
        key = (model, version)
        found = self._resolved.get(key)
        if found is not None:
            return found
        now = self._clock()
        miss = self._misses.get(key)
        if miss is not None and now - miss[0] < self.retry_seconds:
            self._misses.move_to_end(key)
            return miss[1]
        try:
            bundle = resolve_bundle(self.models_dir, model, version)
            try:
                segmenter = segmenter_for(self._segments_for(model), bundle.baseline())
            except SchemaError as exc:
                log.error("model %s: segments are off (%s); fix the monitor config", model, exc)
                segmenter = None
            resolved = Resolved(specs=bundle.specs, output_specs=bundle.output_specs, segmenter=segmenter)
        except BundleError as exc:
            model_known = (self.models_dir / model).is_dir() if model and "/" not in model and model not in (".", "..") else False
            reason = DeadLetterReason.UNKNOWN_VERSION if model_known else DeadLetterReason.UNKNOWN_MODEL
            resolved = Resolved(specs=None, reason=reason, detail=str(exc)[:300])
            remember(self._misses, key, (now, resolved), self._max_misses)
            self._log_miss(model, version, reason, now)
            return resolved
        self._misses.pop(key, None)
        self._bundles[key] = bundle
        self._resolved[key] = resolved
        return resolved

    def _log_miss(self, model: str, version: str, reason: DeadLetterReason, now: float) -> None:
        if now - self._last_log < self._log_every:
            self._unlogged += 1
            return
        others = f" ({self._unlogged} other unknown names since the last report)" if self._unlogged else ""
        log.warning("no bundle for model %.80r version %.40r (%s): its records go to the dead-letter topic%s",
                    model, version, reason.value, others)
        self._last_log, self._unlogged = now, 0

    def bundle(self, model: str, version: str) -> Bundle:
        if self.resolve(model, version).specs is None:
            raise BundleError(f"no bundle for {model} version {version}", path=str(self.models_dir))
        return self._bundles[(model, version)]

    def baselines(self, model: str, version: str) -> tuple[Profile, Profile]:
        """(features, outputs) training baselines of a model version."""
        key = (model, version)
        if key not in self._profiles:
            bundle = self.bundle(model, version)
            self._profiles[key] = (bundle.baseline(), bundle.prediction_baseline())
        return self._profiles[key]

    @property
    def remembered_misses(self) -> int:
        return len(self._misses)
