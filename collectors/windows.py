"""Event-time tumbling windows of mergeable statistics.

Records are assigned to ``[start, start + window)`` by their event time. The watermark is the
largest event time seen; a window closes once the watermark passes its end plus the allowed
lateness. A record for a window that has already closed is *late*: it is counted, never
silently folded into a newer window. Instances are buffered and folded into the window's
:class:`~monitor.stats.Profile` in vectorised batches, so the per-record cost is a list append.

Exactly-once effect: the windower remembers, per Kafka partition, the lowest offset that
belongs to a still-open window (:meth:`Windower.safe_offsets`). Committing those offsets (not
the consumed position) means a crash re-reads every record of every unsaved window, and the
``is_closed`` callback lets a restarted collector skip records of windows it already saved.
Pure: no Kafka here.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable

from monitor.record import PredictionRecord
from monitor.schema import FeatureSpec
from monitor.stats import Profile

__all__ = ["WindowKey", "ClosedWindow", "Admission", "Windower", "PREDICTION_SPEC"]

PREDICTION_SPEC = FeatureSpec(name="prediction", kind="numeric", dtype="float")
_MAX_ERRORS_KEPT = 20


@dataclass(frozen=True, slots=True, order=True)
class WindowKey:
    model_name: str
    model_version: str
    start_ms: int


@dataclass(frozen=True, slots=True)
class ClosedWindow:
    """A finished window: its statistics and what happened to the records that fed it."""

    key: WindowKey
    end_ms: int
    features: Profile
    predictions: Profile
    records: int
    instances: int
    invalid_instances: int
    late_records: int  # arrived after the watermark passed the window's end, within the lateness
    errors: tuple[str, ...]


class Admission(str, Enum):
    ACCEPTED = "accepted"
    LATE_DROPPED = "late_dropped"  # its window had already closed
    UNKNOWN_MODEL = "unknown_model"  # no baseline for this model version


@dataclass
class _OpenWindow:
    key: WindowKey
    end_ms: int
    features: Profile
    predictions: Profile
    pending: list[dict[str, Any]] = field(default_factory=list)
    pending_predictions: list[Any] = field(default_factory=list)
    records: int = 0
    instances: int = 0
    invalid_instances: int = 0
    late_records: int = 0
    errors: list[str] = field(default_factory=list)
    min_offsets: dict[int, int] = field(default_factory=dict)

    def flush(self) -> None:
        if not self.pending:
            return
        errors = self.features.update_instances(self.pending, skip_invalid=True)
        bad = {e.instance for e in errors}
        self.invalid_instances += len(bad)
        for err in errors[: max(0, _MAX_ERRORS_KEPT - len(self.errors))]:
            self.errors.append(str(err))
        preds = [_scalar(p) for i, p in enumerate(self.pending_predictions) if i not in bad]
        self.predictions.update_columns({PREDICTION_SPEC.name: preds})
        self.pending.clear()
        self.pending_predictions.clear()

    def close(self) -> ClosedWindow:
        self.flush()
        return ClosedWindow(
            key=self.key,
            end_ms=self.end_ms,
            features=self.features,
            predictions=self.predictions,
            records=self.records,
            instances=self.instances,
            invalid_instances=self.invalid_instances,
            late_records=self.late_records,
            errors=tuple(self.errors),
        )


def _scalar(prediction: Any) -> float | None:
    """One number per instance: TF Serving wraps single outputs in a list; anything else is missing."""
    if isinstance(prediction, list) and len(prediction) == 1:
        prediction = prediction[0]
    if isinstance(prediction, (int, float)) and not isinstance(prediction, bool):
        return float(prediction)
    return None


class Windower:
    """Assigns records to event-time tumbling windows and hands back the ones that closed."""

    def __init__(
        self,
        *,
        window_seconds: int,
        allowed_lateness_seconds: int,
        specs_for: Callable[[str, str], tuple[FeatureSpec, ...] | None],
        is_closed: Callable[[WindowKey], bool] = lambda key: False,
        batch_size: int = 2048,
    ) -> None:
        self.window_ms = int(window_seconds * 1000)
        self.lateness_ms = int(allowed_lateness_seconds * 1000)
        self._specs_for = specs_for
        self._is_closed = is_closed
        self._batch_size = batch_size
        self._open: dict[WindowKey, _OpenWindow] = {}
        self._closed_before: dict[tuple[str, str], int] = {}  # (model, version) -> start_ms of newest closed window
        self.watermark_ms: int | None = None
        self.counts: Counter[str] = Counter()

    def add(self, record: PredictionRecord, *, partition: int | None = None, offset: int | None = None) -> Admission:
        specs = self._specs_for(record.model_name, record.model_version)
        if specs is None:
            self.counts[Admission.UNKNOWN_MODEL.value] += 1
            return Admission.UNKNOWN_MODEL
        ts = record.event_time_ms
        start = ts - ts % self.window_ms
        key = WindowKey(record.model_name, record.model_version, start)
        window = self._open.get(key)
        if window is None:
            newest_closed = self._closed_before.get((key.model_name, key.model_version))
            if (newest_closed is not None and start <= newest_closed) or self._is_closed(key):
                self.counts[Admission.LATE_DROPPED.value] += 1
                return Admission.LATE_DROPPED
            window = self._open[key] = _OpenWindow(
                key=key,
                end_ms=start + self.window_ms,
                features=Profile.empty(specs),
                predictions=Profile.empty((PREDICTION_SPEC,)),
            )
        if self.watermark_ms is not None and ts < self.watermark_ms and self.watermark_ms >= window.end_ms:
            window.late_records += 1
        window.records += 1
        window.instances += len(record.instances)
        window.pending.extend(record.instances)
        window.pending_predictions.extend(record.predictions)
        if partition is not None and offset is not None:
            known = window.min_offsets.get(partition)
            if known is None or offset < known:
                window.min_offsets[partition] = offset
        if len(window.pending) >= self._batch_size:
            window.flush()
        if self.watermark_ms is None or ts > self.watermark_ms:
            self.watermark_ms = ts
        self.counts[Admission.ACCEPTED.value] += 1
        return Admission.ACCEPTED

    @property
    def open_windows(self) -> int:
        return len(self._open)

    def pop_ready(self) -> list[ClosedWindow]:
        """Close every window whose end plus lateness the watermark has passed."""
        if self.watermark_ms is None:
            return []
        ready = [k for k, w in self._open.items() if w.end_ms + self.lateness_ms <= self.watermark_ms]
        return self._close(ready)

    def pop_all(self) -> list[ClosedWindow]:
        """Close every open window (idle timeout or shutdown)."""
        return self._close(list(self._open))

    def _close(self, keys: list[WindowKey]) -> list[ClosedWindow]:
        closed = []
        for key in sorted(keys):
            window = self._open.pop(key)
            model = (key.model_name, key.model_version)
            self._closed_before[model] = max(self._closed_before.get(model, key.start_ms), key.start_ms)
            closed.append(window.close())
        return closed

    def discard_open(self) -> int:
        """Forget every open window (partitions revoked: their records will be re-read by the new owner)."""
        dropped = len(self._open)
        self._open.clear()
        return dropped

    def safe_offsets(self) -> dict[int, int]:
        """Per partition, the lowest offset still needed by an open window (commit these)."""
        safe: dict[int, int] = {}
        for window in self._open.values():
            for partition, offset in window.min_offsets.items():
                if partition not in safe or offset < safe[partition]:
                    safe[partition] = offset
        return safe
