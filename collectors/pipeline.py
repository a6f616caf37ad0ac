"""Deciding one window: merge its partials, compare with every reference, store it in one transaction.

References (the ``mode`` of each finding):

* ``skew``: the model version's training baseline (inputs) and its outputs on the training rows;
* ``drift``: the previous decided window of the same model version and segment, read from the
  store, so a restarted collector or a new owner compares exactly as the old one would have.

Inputs and outputs are evaluated as two families, each with its own multiple-testing control; the
persistence rule reads each family's earlier verdicts from the store. Everything the window
changes (the window, findings, latest scores, profiles, sample, alert transitions and
notifications through the ``alerts`` hook) is written in one transaction. A window that cannot be
processed (a statistic that does not decode, a bundle that is gone) is stored as failed with its
error and skipped; a store that cannot be written raises :class:`~monitor.errors.StoreError` and
the caller retries later.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Sequence

from collectors.baselines import BaselineCache
from collectors.partials import merge_samples, sample_table
from monitor.config import MonitorConfig
from monitor.errors import BundleError, SchemaError, StatisticsError, StoreError
from monitor.evaluate import evaluate
from monitor.keys import WindowKey
from monitor.stats import Profile
from monitor.storage import DecisionTx, FindingIn, Store, WindowCounts, WindowDecision
from monitor.timeutil import format_instant

__all__ = ["DecidedWindow", "WindowDecider", "Outcome", "HISTORY_WINDOWS"]

log = logging.getLogger(__name__)

HISTORY_WINDOWS = 32  # earlier windows the persistence rule may look at (config n <= this)
FAMILIES = ("features", "output")


@dataclass(frozen=True, slots=True)
class DecidedWindow:
    """What the alerts hook learns about the window being decided."""

    key: WindowKey
    end_ms: int
    counts: WindowCounts
    features: Profile
    outputs: Profile


@dataclass(frozen=True, slots=True)
class Outcome:
    key: WindowKey
    window_id: int | None
    status: str  # decided | failed | already
    findings: int = 0
    alerting: int = 0


AlertsHook = Callable[[DecidedWindow, Sequence[FindingIn]], Callable[[DecisionTx], None] | None]


def _merge(blobs: Sequence[bytes]) -> Profile:
    profiles = [Profile.from_bytes(b) for b in blobs]
    merged = profiles[0]
    for p in profiles[1:]:
        merged = merged.merge(p)
    return merged


class WindowDecider:
    def __init__(self, *, store: Store, baselines: BaselineCache, config: MonitorConfig,
                 alerts: AlertsHook | None = None, tfdv_checks=None, sample_records: int = 20,
                 sample_rows: int = 1000) -> None:  # noqa: ANN001 - collectors.tfdv_checks.TfdvChecks
        self.store = store
        self.baselines = baselines
        self.config = config
        self.alerts = alerts
        self.tfdv_checks = tfdv_checks
        self.sample_records = sample_records
        self.sample_rows = sample_rows

    def decide(self, key: WindowKey, *, extra_late: int = 0) -> Outcome:
        partials = self.store.partials_for(key)
        if not partials:
            return Outcome(key, None, "already")
        counts = WindowCounts()
        for p in partials:
            counts = counts + p.counts
        counts = WindowCounts(counts.rows, counts.records, counts.invalid_instances, counts.late_records + extra_late,
                              counts.duplicate_records, counts.partials)
        end_ms = max(p.end_ms for p in partials)
        try:
            features = _merge([p.features for p in partials])
            outputs = _merge([p.outputs for p in partials])
            findings = self._findings(key, features, outputs)
        except (StatisticsError, SchemaError, BundleError) as exc:
            log.error("window %s %s %s could not be processed and is skipped: %s", key.model, key.model_version,
                      format_instant(key.start_ms), exc)
            window_id = self.store.record_failed_window(key, end_ms, counts, f"{type(exc).__name__}: {exc}")
            return Outcome(key, window_id, "failed" if window_id is not None else "already")
        sample, sample_rows = sample_table(merge_samples([p.sample for p in partials], self.sample_records),
                                           self.sample_rows)
        decision = WindowDecision(key=key, end_ms=end_ms, counts=counts, findings=findings,
                                  features=features.to_bytes(), outputs=outputs.to_bytes(), sample=sample,
                                  sample_rows=sample_rows)
        react = None
        if self.alerts is not None:
            react = self.alerts(DecidedWindow(key, end_ms, counts, features, outputs), findings)
        window_id = self.store.decide_window(decision, react=react)
        alerting = sum(1 for f in findings if f.finding.alerting)
        log.info("window %s %s %s rows=%d partials=%d alerting=%s", key.model, key.model_version,
                 format_instant(key.start_ms), counts.rows, counts.partials,
                 sorted({f"{f.finding.feature}:{f.finding.test}:{f.finding.mode}" for f in findings if f.finding.alerting}))
        return Outcome(key, window_id, "decided" if window_id is not None else "already", len(findings), alerting)

    def _references(self, key: WindowKey) -> list[tuple[str, Profile, Profile, int | None]]:
        """(mode, features reference, outputs reference, reference window id) for each reference."""
        base_features, base_outputs = self.baselines.baselines(key.model, key.model_version)
        refs: list[tuple[str, Profile, Profile, int | None]] = [("skew", base_features, base_outputs, None)]
        previous = self.store.previous_window(key)
        if previous is not None:
            blobs = self.store.load_profiles(previous.id)
            if blobs is not None:
                refs.append(("drift", Profile.from_bytes(blobs[0]), Profile.from_bytes(blobs[1]), previous.id))
        return refs

    def _findings(self, key: WindowKey, features: Profile, outputs: Profile) -> list[FindingIn]:
        found: list[FindingIn] = []
        for mode, ref_features, ref_outputs, ref_id in self._references(key):
            for family, reference, current in (("features", ref_features, features), ("output", ref_outputs, outputs)):
                if current.rows == 0 or reference.rows == 0:
                    continue
                history = self.store.recent_findings(key, mode=mode, family=family, windows=HISTORY_WINDOWS)
                report = evaluate(reference=reference, current=current, model=key.model, config=self.config,
                                  mode=mode, history=history)
                raw = {(f.feature, f.test): f.verdict for f in report.decided}
                found.extend(FindingIn(f, family, ref_id, raw.get((f.feature, f.test), f.verdict))
                             for f in report.findings)
        if self.tfdv_checks is not None and features.rows:
            found.extend(FindingIn(f, "features", None) for f in self.tfdv_checks.findings(key, features))
        return found


def decide_or_retry(decider: WindowDecider, key: WindowKey, **kw) -> Outcome | None:  # noqa: ANN003
    """:meth:`WindowDecider.decide`, or ``None`` when the store failed (retry later)."""
    try:
        return decider.decide(key, **kw)
    except StoreError as exc:
        log.warning("store unavailable while deciding %s: %s (will retry)", key, exc)
        return None
