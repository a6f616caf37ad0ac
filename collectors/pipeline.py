"""Deciding one window: merge its partials, compare with every reference, store it in one transaction.

References (the ``mode`` of each finding; per model in the monitor YAML, :mod:`monitor.references`):

* ``skew``: the training rows: the window's segment slice of the baseline if the bundle has it,
  else its calendar slot's (``skew: {slots: month_of_year}``: a season is not mistaken for skew),
  else every training row; the model's outputs on the same rows for the output family;
* ``drift``: the previous decided window of the same model version and segment;
* ``seasonal``: the window one period earlier (a day, a week, 52 weeks), same slot of the calendar;
* ``median``: each test against each of the last k windows, the comparison of median effect
  standing (robust to one odd window);
* ``pinned``: one fixed earlier window;
* ``version``: the other A/B versions' windows of the same span (a canary that sees other inputs).

Every earlier window is read from the store, so a restarted collector or a new owner compares
exactly as the old one would have. Inputs and outputs are evaluated as two families, each with its
own multiple-testing control; the persistence rule reads each family's earlier verdicts (before the
rule) from the store. Everything the window changes (the window, findings, latest scores, profiles,
sample, alert transitions and notifications through the ``alerts`` hook) is written in one
transaction. A window that cannot be processed (a statistic that does not decode, a bundle that is
gone) is stored as failed with its error and skipped; a store that cannot be written raises
:class:`~monitor.errors.StoreError` and the caller retries later.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

import orjson

from collectors.baselines import BaselineCache
from collectors.partials import best_samples, merge_samples, sample_table
from monitor.compare.views import ViewCache
from monitor.config import MonitorConfig
from monitor.errors import BundleError, SchemaError, StaleDecisionError, StatisticsError, StoreError
from monitor.evaluate import evaluate
from monitor.keys import ALL_TRAFFIC, WindowKey
from monitor.lru import remember
from monitor.references import OTHER_SEGMENT, References
from monitor.slots import PERIODS_MS, window_slot
from monitor.stats import Profile
from monitor.storage import DecisionTx, FindingIn, PartialIn, Store, WindowCounts, WindowDecision
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


#: Windows whose partials this process keeps merged as they arrive (least recently added dropped first).
RUNNING_WINDOWS = 64
#: Series (model, version, segment) whose history this process keeps: the findings of each one's last
#: HISTORY_WINDOWS decided windows (a decided window's findings never change), about 50 KB a window of
#: 150 findings; a window leaves with its series' history, the least recently decided series first.
HISTORY_SERIES = 32
#: Decided windows whose profiles this process keeps decoded (the drift reference is the window it
#: has just decided; the median reference reads the last k): equal to what the store holds
#: (``from_bytes(to_bytes(p)) == p``), and used only while the store still has them.
PROFILE_CACHE_WINDOWS = 32
_STALE_RETRIES = 5  # decisions refused because the window's partials changed meanwhile, before giving up


class _Running:
    """What this process has merged so far of one window's stored partials: decoded once each as they
    arrive, so deciding reads no profile from the store and decodes nothing. Used only when its
    partials are exactly those stored (another process may have stored more): merging is exact in
    any order and grouping, so the result is byte for byte the one read back from the store."""

    __slots__ = ("ids", "features", "outputs", "sample", "counts", "end_ms")

    def __init__(self, ident: tuple[str, int, int, int], features: Profile, outputs: Profile,
                 sample: list[Any], counts: WindowCounts, end_ms: int) -> None:
        self.ids = {ident}
        self.features, self.outputs, self.sample = features, outputs, sample
        self.counts, self.end_ms = counts, end_ms


class WindowDecider:
    def __init__(self, *, store: Store, baselines: BaselineCache, config: MonitorConfig | Callable[[], MonitorConfig],
                 alerts: AlertsHook | None = None, tfdv_checks=None, sample_records: int = 20,
                 sample_rows: int = 1000) -> None:  # noqa: ANN001 - collectors.tfdv_checks.TfdvChecks
        self.store = store
        self.baselines = baselines
        self._config = config if callable(config) else (lambda: config)
        self._pinned: MonitorConfig | None = None  # one config for the whole of one decision
        self.alerts = alerts
        self.tfdv_checks = tfdv_checks
        self.sample_records = sample_records
        self.sample_rows = sample_rows
        self._missing_slots: set[tuple[str, str, str]] = set()  # (model, version, kind) already logged
        self._running: OrderedDict[WindowKey, _Running] = OrderedDict()
        # decided windows by (id, decided_at_ms): their findings, their profiles
        self._history: dict[tuple[int, int], dict[tuple[str, str], list[Any]]] = {}
        self._series: OrderedDict[tuple[str, str, str], list[tuple[int, int]]] = OrderedDict()  # -> its windows
        self._history_ids: list[tuple[int, int]] | None = None  # the earlier windows of the window being decided
        self._decoded: OrderedDict[tuple[int, int], tuple[Profile, Profile]] = OrderedDict()
        self._views = ViewCache()  # of baselines and decided windows' profiles: never updated again

    @property
    def config(self) -> MonitorConfig:
        """The config in force (a :class:`collectors.live_config.LiveConfig` re-reads the API's changes)."""
        return self._pinned if self._pinned is not None else self._config()

    def fold(self, p: PartialIn) -> None:
        """Merge a partial the store has just accepted into its window's running merge (the merge stage
        calls this for every partial it stores). A partial that cannot be decoded is left to
        :meth:`decide`, which reads the window's partials back from the store and records the error."""
        ident = (p.source_topic, p.source_partition, p.first_offset, p.last_offset)
        running = self._running.get(p.key)
        try:
            features, outputs = Profile.from_bytes(p.features), Profile.from_bytes(p.outputs)
            sample = orjson.loads(p.sample) if p.sample else []
            if running is not None:
                features, outputs = running.features.merge(features), running.outputs.merge(outputs)
                sample = running.sample + sample
        except (StatisticsError, SchemaError, orjson.JSONDecodeError):
            self._running.pop(p.key, None)
            return
        sample = best_samples(sample, self.sample_records)
        c = p.counts  # as partials_for reads it back: one partial each
        counts = WindowCounts(c.rows, c.records, c.invalid_instances, c.late_records, c.duplicate_records, 1)
        if running is None:
            running = _Running(ident, features, outputs, sample, counts, p.end_ms)
        elif ident not in running.ids:
            running.ids.add(ident)
            running.features, running.outputs, running.sample = features, outputs, sample
            running.counts, running.end_ms = running.counts + counts, max(running.end_ms, p.end_ms)
        else:
            return  # this partial is folded in already
        remember(self._running, p.key, running, RUNNING_WINDOWS)

    def decide(self, key: WindowKey, *, extra_late: int = 0) -> Outcome:
        self._pinned = self._config()
        try:
            for _ in range(_STALE_RETRIES):
                try:
                    return self._decide(key, extra_late)
                except StaleDecisionError as exc:  # another merge stage stored a partial meanwhile
                    log.info("deciding again: %s", exc)
                    self._running.pop(key, None)
            return self._decide(key, extra_late)
        finally:
            self._pinned = None
            self._history_ids = None
            self._running.pop(key, None)

    def _decide(self, key: WindowKey, extra_late: int) -> Outcome:
        self._history_ids = None
        running = self._running.get(key)
        if running is not None:
            # what this process stored of the window: deciding writes it only if those are still exactly the
            # stored partials (checked inside the write transaction; else StaleDecisionError, and decide()
            # tries again from the store)
            used, counts, end_ms = frozenset(running.ids), running.counts, running.end_ms
        else:
            partials = self.store.partials_for(key)
            if not partials:
                return Outcome(key, None, "already")
            used = frozenset(p.identity for p in partials)
            counts = WindowCounts()
            for p in partials:
                counts = counts + p.counts
            end_ms = max(p.end_ms for p in partials)
        counts = WindowCounts(counts.rows, counts.records, counts.invalid_instances, counts.late_records + extra_late,
                              counts.duplicate_records, counts.partials)
        try:
            if running is not None:
                features, outputs, entries = running.features, running.outputs, running.sample
            else:
                features = _merge([p.features for p in partials])
                outputs = _merge([p.outputs for p in partials])
                entries = merge_samples([p.sample for p in partials], self.sample_records)
            findings = self._findings(key, end_ms, features, outputs)
        except StoreError:
            raise  # the store is away: decided again later (decide_or_retry)
        except Exception as exc:  # noqa: BLE001 - one window's data must never stop the merge stage
            if isinstance(exc, (StatisticsError, SchemaError, BundleError)):
                log.error("window %s %s %s could not be processed and is skipped: %s", key.model, key.model_version,
                          format_instant(key.start_ms), exc)
            else:  # a defect of ours, met on this window's data: kept with its error, the stream goes on
                log.exception("window %s %s %s could not be processed (unexpected %s) and is skipped", key.model,
                              key.model_version, format_instant(key.start_ms), type(exc).__name__)
            window_id = self.store.record_failed_window(key, end_ms, counts, f"{type(exc).__name__}: {exc}",
                                                        partials=used)
            return Outcome(key, window_id, "failed" if window_id is not None else "already")
        sample, sample_rows = sample_table(entries, self.sample_rows)
        decision = WindowDecision(key=key, end_ms=end_ms, counts=counts, findings=findings,
                                  features=features.to_bytes(), outputs=outputs.to_bytes(), sample=sample,
                                  sample_rows=sample_rows, partials=used)
        alerts = None if self.alerts is None else self.alerts(DecidedWindow(key, end_ms, counts, features, outputs),
                                                              findings)
        decided_at: list[int] = []

        def react(tx: DecisionTx) -> None:  # inside the window's transaction: the decision's own timestamp
            decided_at.append(tx.now_ms)
            if alerts is not None:
                alerts(tx)

        window_id = self.store.decide_window(decision, react=react)
        if window_id is not None:
            ident = (window_id, decided_at[0])  # as the stored row names it (decided_at_ms is tx.now_ms)
            self._keep_profiles(ident, (features, outputs))  # the next window's drift reference
            self._keep_findings(key, ident, decision.findings)  # and the next windows' history
        alerting = sum(1 for f in findings if f.finding.alerting)
        log.info("window %s %s %s rows=%d partials=%d alerting=%s", key.model, key.model_version,
                 format_instant(key.start_ms), counts.rows, counts.partials,
                 sorted({f"{f.finding.feature}:{f.finding.test}:{f.finding.mode}" for f in findings if f.finding.alerting}))
        return Outcome(key, window_id, "decided" if window_id is not None else "already", len(findings), alerting)

    def _profiles(self, ident: tuple[int, int]) -> tuple[Profile, Profile] | None:
        """A decided window's profiles (the window named by (id, decided_at_ms)), decoded once while this
        process keeps them."""
        found = self._decoded.get(ident)
        if found is not None:
            if self.store.has_profiles(ident[0]):
                self._decoded.move_to_end(ident)
                return found
            del self._decoded[ident]  # retention removed them
            return None
        blobs = self.store.load_profiles(ident[0])
        if blobs is None:
            return None
        found = (Profile.from_bytes(blobs[0]), Profile.from_bytes(blobs[1]))
        self._keep_profiles(ident, found)
        return found

    def _keep_profiles(self, ident: tuple[int, int], profiles: tuple[Profile, Profile]) -> None:
        remember(self._decoded, ident, profiles, PROFILE_CACHE_WINDOWS)

    def _stored(self, key: WindowKey) -> tuple[Profile, Profile, int] | None:
        """A decided window's profiles and id, if it is stored (and kept its profiles)."""
        row = self.store.window_at(key)
        if row is None or row.status != "decided":
            return None
        profiles = self._profiles((row.id, row.decided_at_ms))
        return None if profiles is None else (*profiles, row.id)

    def _skew_reference(self, key: WindowKey, end_ms: int, refs: References) -> tuple[Profile, Profile]:
        """The training rows this window is compared with: its segment's slice, else its calendar slot's,
        else all of them (a slice the bundle does not have falls back to the next)."""
        bundle = self.baselines.bundle(key.model, key.model_version)
        segments = self.config.segments_for(key.model)
        if key.segment != ALL_TRAFFIC and key.segment != OTHER_SEGMENT and segments is not None and \
                segments.source == "feature":
            found = bundle.segment_baseline(segments.name, key.segment)
            if found is not None:
                return found
        if refs.skew_slots:
            slot = window_slot(key.start_ms, end_ms, refs.skew_slots)
            found = bundle.slot_baseline(refs.skew_slots, slot)
            if found is not None:
                return found
            seen = (key.model, key.model_version, refs.skew_slots)
            if seen not in self._missing_slots:  # once per bundle and kind: bounded by the config
                self._missing_slots.add(seen)
                log.warning("%s %s: the bundle has no %s baseline for slot %d (fewer than 24 training rows, or a "
                            "bundle trained before this kind was built); its windows are compared with the whole "
                            "training baseline", key.model, key.model_version, refs.skew_slots, slot)
        return self.baselines.baselines(key.model, key.model_version)

    def _references(self, key: WindowKey, end_ms: int) -> list[tuple[str, Profile, Profile, int | None]]:
        """(mode, features reference, outputs reference, reference window id) for each reference."""
        refs = self.config.references_for(key.model)
        out: list[tuple[str, Profile, Profile, int | None]] = []
        if refs.skew_enabled:
            out.append(("skew", *self._skew_reference(key, end_ms, refs), None))
        if refs.drift:
            earlier = self._recent(key)  # the previous decided window is the newest of them
            if earlier:
                profiles = self._profiles(earlier[-1])
                if profiles is not None:
                    out.append(("drift", *profiles, earlier[-1][0]))
        if refs.seasonal is not None:
            earlier = self._stored(replace(key, start_ms=key.start_ms - PERIODS_MS[refs.seasonal.period]))
            if earlier is not None:
                out.append(("seasonal", *earlier))
        if refs.pinned is not None:
            window_ms = end_ms - key.start_ms
            pinned = refs.pinned.start_ms - refs.pinned.start_ms % window_ms
            if pinned < key.start_ms:
                found = self._stored(replace(key, start_ms=pinned))
                if found is not None:
                    out.append(("pinned", *found))
        if refs.version:
            for model, version in self.store.models():
                if model == key.model and version != key.model_version:
                    other = self._stored(replace(key, model_version=version))
                    if other is not None:
                        out.append(("version", *other))
        return out

    def _findings(self, key: WindowKey, end_ms: int, features: Profile, outputs: Profile) -> list[FindingIn]:
        found: list[FindingIn] = []
        for mode, ref_features, ref_outputs, ref_id in self._references(key, end_ms):
            found += self._compare(key, mode, ref_features, ref_outputs, ref_id, features, outputs)
        median = self.config.references_for(key.model).median
        if median is not None:
            found += self._median(key, median.windows, features, outputs)
        if self.tfdv_checks is not None and features.rows:
            found.extend(FindingIn(f, "features", None) for f in self.tfdv_checks.findings(key, features))
        return found

    def _compare(self, key: WindowKey, mode: str, ref_features: Profile, ref_outputs: Profile, ref_id: int | None,
                 features: Profile, outputs: Profile, *, history: bool = True) -> list[FindingIn]:
        found: list[FindingIn] = []
        for family, reference, current in (("features", ref_features, features), ("output", ref_outputs, outputs)):
            if current.rows == 0 or reference.rows == 0:
                continue
            past = self._past(key, mode, family) if history else ()
            segments = self.config.segments_for(key.model)
            report = evaluate(reference=reference, current=current, model=key.model, config=self.config, mode=mode,
                              history=past, families=segments.families if segments is not None else 1,
                              views=self._views)
            for failure in report.failures:
                log.warning("window %s %s %s: %s %s %s not computed: %s", key.model, key.model_version,
                            format_instant(key.start_ms), mode, failure.feature, failure.test, failure.error)
            raw = {(f.feature, f.test): f.verdict for f in report.decided}
            found.extend(FindingIn(f, family, ref_id, raw.get((f.feature, f.test), f.verdict)) for f in report.findings)
        return found

    def _past(self, key: WindowKey, mode: str, family: str) -> list[list[Any]]:
        """What ``store.recent_findings`` answers, with the earlier windows' findings read from the store
        once per window: which windows they are is asked anew for every decision (another process may
        have decided one, retention may have removed one), their findings only for a window not seen yet."""
        return [self._history[i].get((mode, family), []) for i in self._recent(key)]

    def _recent(self, key: WindowKey) -> list[tuple[int, int]]:
        """(id, decided_at_ms) of the last HISTORY_WINDOWS decided windows before ``key``, oldest first, asked
        of the store once per decision, with their findings kept in ``_history``."""
        if self._history_ids is None:
            ids = self.store.recent_windows(key, HISTORY_WINDOWS)
            series = (key.model, key.model_version, key.segment)
            kept = set(ids)
            for i in self._series.pop(series, ()):
                if i not in kept:
                    self._history.pop(i, None)  # no longer among the series' last windows (or gone)
            missing = [i for i in ids if i not in self._history]
            if missing:
                found = self.store.findings_by_window([i for i, _decided in missing])
                for i in missing:
                    self._history[i] = found[i[0]]
            for dropped in remember(self._series, series, ids, HISTORY_SERIES):
                for i in dropped:
                    self._history.pop(i, None)
            self._history_ids = ids
        return self._history_ids

    def _keep_findings(self, key: WindowKey, ident: tuple[int, int], findings: Sequence[FindingIn]) -> None:
        """Add the window just stored to its series' history as the store would answer for it, so the next
        decision does not read it back. Only for a series already kept (else the next decision reads its
        history whole); which windows the history holds is still asked of the store every time."""
        series = (key.model, key.model_version, key.segment)
        ids = self._series.get(series)
        if ids is None:
            return
        self._history[ident] = self.store.history_of(key, findings)
        ids = [*ids, ident]
        for old in ids[:-HISTORY_WINDOWS]:
            self._history.pop(old, None)
        self._series[series] = ids[-HISTORY_WINDOWS:]

    def _median(self, key: WindowKey, k: int, features: Profile, outputs: Profile) -> list[FindingIn]:
        """Against each of the last ``k`` decided windows; per test the comparison of median effect stands
        (an alert needs the window to differ from most of the recent ones, not from one odd window)."""
        earlier = self.store.list_windows(model=key.model, model_version=key.model_version, segment=key.segment,
                                          until_ms=key.start_ms, limit=k)
        earlier = [w for w in earlier if w.status == "decided"]
        if len(earlier) < 2:
            return []
        runs: dict[tuple[str, str, str], list[FindingIn]] = {}
        for w in earlier:
            profiles = self._profiles((w.id, w.decided_at_ms))
            if profiles is None:
                continue
            for f in self._compare(key, "median", *profiles, w.id, features, outputs, history=False):
                runs.setdefault((f.family, f.finding.feature, f.finding.test), []).append(f)
        out = []
        for group in runs.values():
            group.sort(key=lambda f: (f.finding.effect, f.reference_window_id or 0))
            mid = group[(len(group) - 1) // 2]
            note = f" (median of {len(group)} comparisons with the last {len(group)} windows)"
            out.append(FindingIn(replace(mid.finding, message=mid.finding.message + note), mid.family,
                                 mid.reference_window_id, mid.raw_verdict))
        return out


def decide_or_retry(decider: WindowDecider, key: WindowKey, **kw) -> Outcome | None:  # noqa: ANN003
    """:meth:`WindowDecider.decide`, or ``None`` when the store failed (retry later)."""
    try:
        return decider.decide(key, **kw)
    except StoreError as exc:
        log.warning("store unavailable while deciding %s: %s (will retry)", key, exc)
        return None
