"""What happens when a window closes: compare, store, alert.

Skew compares the window with its model version's training baseline; drift compares it with
the previous closed window of the same model version. Input features and the model's output
(prediction drift) are evaluated as two families, each with its own multiple-testing control.
The persistence rule (k of the last n windows) sees each family's earlier decided findings.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Sequence

from collectors.baselines import BaselineCache
from collectors.windows import ClosedWindow
from monitor.config import MonitorConfig
from monitor.decide import Finding
from monitor.evaluate import evaluate

__all__ = ["WindowProcessor", "WindowOutcome"]

log = logging.getLogger(__name__)

HISTORY = 32  # windows of decided findings kept per model version, mode and family (persistence n <= this)


@dataclass(frozen=True, slots=True)
class WindowOutcome:
    window: ClosedWindow
    skew: tuple[Finding, ...]
    drift: tuple[Finding, ...]
    notifications: int

    @property
    def alerting(self) -> tuple[Finding, ...]:
        return tuple(f for f in (*self.skew, *self.drift) if f.alerting)


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


class WindowProcessor:
    def __init__(self, *, baselines: BaselineCache, config: MonitorConfig, store, alert_manager, dispatcher,
                 tfdv_checks=None) -> None:
        self.baselines = baselines
        self.tfdv_checks = tfdv_checks  # collectors.tfdv_checks.TfdvChecks, or None
        self.config = config
        self.store = store
        self.alert_manager = alert_manager
        self.dispatcher = dispatcher
        self._previous: dict[tuple[str, str], ClosedWindow] = {}
        self._history: dict[tuple[str, str, str, str], deque] = {}

    def _compare(self, reference: tuple, window: ClosedWindow, mode: str) -> tuple[Finding, ...]:
        key = window.key
        found: list[Finding] = []
        for family, ref, cur in (("features", reference[0], window.features), ("output", reference[1], window.predictions)):
            if cur.rows == 0 or ref.rows == 0:
                continue
            history = self._history.setdefault((key.model_name, key.model_version, mode, family), deque(maxlen=HISTORY))
            report = evaluate(reference=ref, current=cur, model=key.model_name, config=self.config, mode=mode,
                              history=tuple(history))
            history.append(report.decided)
            found.extend(report.findings)
        return tuple(found)

    def process(self, window: ClosedWindow) -> WindowOutcome:
        key = window.key
        model_key = (key.model_name, key.model_version)
        skew = self._compare(self.baselines.baselines(*model_key), window, "skew")
        if self.tfdv_checks is not None and window.features.rows:
            skew += self.tfdv_checks.findings(window)
        previous = self._previous.get(model_key)
        drift = (
            self._compare((previous.features, previous.predictions), window, "drift") if previous is not None else ()
        )
        self._previous[model_key] = window
        common = dict(
            model=key.model_name,
            model_version=key.model_version,
            window_start=_utc(key.start_ms),
            window_end=_utc(window.end_ms),
            rows=window.instances - window.invalid_instances,
            late_records=window.late_records,
            invalid_records=window.invalid_instances,
        )
        self.store.save_profiles(model=key.model_name, model_version=key.model_version,
                                 window_start=common["window_start"], features=window.features.to_bytes(),
                                 predictions=window.predictions.to_bytes())
        window_ids = {"skew": self.store.save_window(mode="skew", findings=skew, **common)}
        if previous is not None:
            window_ids["drift"] = self.store.save_window(mode="drift", findings=drift, **common)
        sent = 0
        for mode, findings in (("skew", skew), ("drift", drift)):
            if mode not in window_ids:
                continue
            for note in self.alert_manager.observe(dict(common, mode=mode, window_id=window_ids[mode]), findings):
                self.dispatcher.send(note)
                sent += 1
        outcome = WindowOutcome(window=window, skew=skew, drift=drift, notifications=sent)
        log.info(
            "window %s %s %s rows=%d alerting=%s",
            key.model_name,
            key.model_version,
            _utc(key.start_ms).isoformat(),
            common["rows"],
            sorted({f"{f.feature}:{f.test}" for f in outcome.alerting}),
        )
        return outcome

    def process_all(self, windows: Sequence[ClosedWindow]) -> list[WindowOutcome]:
        return [self.process(w) for w in windows]
