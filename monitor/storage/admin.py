"""What the monitor API reads and administers: bounded pages, feature histories, the latest window of
each stream, monitor configs and uploaded baselines per model, and retention.

Every read here costs the same however long the history is:

* a page follows one index in order from a keyset position (``after``), returns at most ``limit``
  rows and examines at most ``scan`` index entries. Filters the index cannot serve are applied to
  the examined entries, so a page can be short (even empty) and still have a ``next`` position:
  the caller follows ``next`` until it is ``None``. Nothing ever scans the whole history.
* the latest window of each stream (model, version, segment) is found from ``latest_scores``
  (one row per score) and the windows' unique index, never by scanning windows.

Retention (:meth:`AdminStore.enforce_retention`) deletes by the wall-clock time a window was
decided (``decided_at_ms``), not by its event time, so a replay of old traffic is kept as long as
fresh traffic. It works in small batches, one short write transaction each, so collectors writing
at the same time wait for milliseconds, not for the sweep. Windows still needed are kept: the
latest window of each stream (the next drift reference), the windows its findings were compared
with (``reference_window_id``), and whatever the ``protect`` hook returns (pinned references).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

from sqlalchemy import and_, delete, exists, func, select, tuple_
from sqlalchemy.engine import Connection

from monitor.storage import tables as t
from monitor.storage.base import upsert
from monitor.storage.rows import FindingRow, ScoreRow, WindowRow
from monitor.storage.windows import _finding_fast, _finding_row, _positional, _window_row

__all__ = [
    "AdminStore",
    "Page",
    "WindowFilter",
    "FindingFilter",
    "ScorePoint",
    "ConfigRow",
    "BaselineRow",
    "RetentionPolicy",
    "RetentionResult",
    "DEFAULT_SCAN",
]

#: Index entries one page examines at most (see the module docstring).
DEFAULT_SCAN = 10_000
_DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class Page:
    """Rows of one page and the keyset position after its last examined entry (``None``: the end)."""

    rows: list[Any]
    next: tuple[int, ...] | None


@dataclass(frozen=True, slots=True)
class WindowFilter:
    model: str | None = None
    model_version: str | None = None
    segment: str | None = None
    status: str | None = None
    mode: str | None = None  # windows carrying at least one finding in this mode
    since_ms: int | None = None  # start_ms >= since_ms
    until_ms: int | None = None  # start_ms < until_ms


@dataclass(frozen=True, slots=True)
class FindingFilter:
    window_id: int | None = None
    model: str | None = None
    model_version: str | None = None
    segment: str | None = None
    family: str | None = None
    feature: str | None = None
    test: str | None = None
    mode: str | None = None
    verdict: str | None = None
    alerting: bool | None = None
    since_ms: int | None = None
    until_ms: int | None = None

    @property
    def order(self) -> str:
        """Which index a page of these findings follows: ``window`` (one window, by id),
        ``feature`` (one model's feature, newest window first) or ``id`` (newest first)."""
        if self.window_id is not None:
            return "window"
        if self.model is not None and self.feature is not None:
            return "feature"
        return "id"


@dataclass(frozen=True, slots=True)
class ScorePoint:
    """One score of one window in a feature's history."""

    id: int
    window_id: int
    start_ms: int
    end_ms: int
    model_version: str
    segment: str
    mode: str
    family: str
    test: str
    statistic: float | None
    q_value: float | None
    effect: float | None
    floor: float | None
    verdict: str
    alerting: bool


_POINT = [f for f in ScorePoint.__slots__]  # type: ignore[attr-defined]


def _point(r: Any) -> ScorePoint:
    v = list(r)
    for i in (9, 10, 11, 12):
        x = v[i]
        v[i] = None if x is None or x != x or x in (float("inf"), float("-inf")) else float(x)
    v[14] = bool(v[14])
    return ScorePoint(*v)


@dataclass(frozen=True, slots=True)
class ConfigRow:
    model: str
    document: dict[str, Any]
    updated_ms: int
    updated_by: str


@dataclass(frozen=True, slots=True)
class BaselineRow:
    model: str
    model_version: str
    statistics: bytes = field(repr=False)
    schema: str = field(repr=False)
    sha256: str
    features: int
    uploaded_ms: int
    uploaded_by: str


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """How long to keep things after the window they belong to was decided (``None``: forever)."""

    windows_ms: int | None = None
    findings_ms: int | None = None
    profiles_ms: int | None = None

    @classmethod
    def from_days(cls, *, windows: float, findings: float, profiles: float) -> "RetentionPolicy":
        """Days as the settings give them; 0 means keep forever."""

        def ms(days: float) -> int | None:
            return None if days <= 0 else int(days * _DAY_MS)

        return cls(windows_ms=ms(windows), findings_ms=ms(findings), profiles_ms=ms(profiles))


@dataclass(frozen=True, slots=True)
class RetentionResult:
    windows: int = 0
    findings: int = 0
    profiles: int = 0
    samples: int = 0
    protected: int = 0  # windows kept past their time because they are still needed

    def to_dict(self) -> dict[str, int]:
        return {"windows": self.windows, "findings": self.findings, "profiles": self.profiles,
                "samples": self.samples, "protected": self.protected}


def _keyset_before(columns: Sequence[Any], key: tuple[int, ...]) -> Any:
    """Rows strictly after ``key`` in descending order of ``columns``."""
    if len(columns) == 1:
        return columns[0] < key[0]
    return tuple_(*columns) < tuple_(*key)


def _keyset_after(columns: Sequence[Any], key: tuple[int, ...]) -> Any:
    if len(columns) == 1:
        return columns[0] > key[0]
    return tuple_(*columns) > tuple_(*key)


def _at_least(columns: Sequence[Any], key: tuple[int, ...], *, descending: bool) -> Any:
    """Rows not beyond ``key`` (inclusive) in the scan order."""
    if len(columns) == 1:
        return columns[0] >= key[0] if descending else columns[0] <= key[0]
    return tuple_(*columns) >= tuple_(*key) if descending else tuple_(*columns) <= tuple_(*key)


def _scan_page(conn: Connection, table: Any, *, base: list[Any], extra: list[Any], order: Sequence[Any],
               descending: bool, after: tuple[int, ...] | None, limit: int, scan: int,
               convert: Callable[[Any], Any], columns: Sequence[Any] | None = None) -> Page:
    """One page over ``order`` (an index) restricted by ``base`` (conditions the index serves)."""
    where = list(base)
    if after is not None:
        where.append(_keyset_before(order, after) if descending else _keyset_after(order, after))
    ordering = [c.desc() for c in order] if descending else [c.asc() for c in order]
    boundary = None
    if extra:
        # the last entry this page may examine (and whether any lies beyond it): the filters below
        # only look at entries up to it
        found = conn.execute(select(*order).where(*where).order_by(*ordering).offset(scan - 1).limit(2)).all()
        if found:
            where.append(_at_least(order, tuple(int(v) for v in found[0]), descending=descending))
            if len(found) == 2:
                boundary = tuple(int(v) for v in found[0])
    chosen = select(*columns) if columns is not None else select(table)
    rows = list(conn.execute(chosen.where(*where, *extra).order_by(*ordering).limit(limit + 1)))
    if len(rows) > limit:
        rows = rows[:limit]
        return Page([convert(r) for r in rows], tuple(int(getattr(rows[-1], c.key)) for c in order))
    return Page([convert(r) for r in rows], boundary)


_score_fast = _positional(t.latest_scores, ScoreRow, lambda r: ScoreRow(**{k: getattr(r, k) for k in ScoreRow.__slots__}))
_window_fast = _positional(t.windows, WindowRow, _window_row)


def _clip_scan(scan: int, limit: int) -> int:
    return max(int(scan), int(limit), 1)


class AdminStore:
    """Mixin of :class:`monitor.storage.Store`: the monitor API's reads, configs, baselines, retention."""

    # -- pages -------------------------------------------------------------------------------

    def page_windows(self, f: WindowFilter = WindowFilter(), *, after: tuple[int, int] | None = None,
                     limit: int = 100, scan: int = DEFAULT_SCAN) -> Page:
        """Windows newest first (start, then id); ``after`` is a previous page's ``next``."""
        c = t.windows.c
        base: list[Any] = []
        extra: list[Any] = []
        if f.model is not None:
            base.append(c.model == f.model)
        if f.model_version is not None:
            (base if f.model is not None and f.segment is not None else extra).append(c.model_version == f.model_version)
        if f.segment is not None:
            (base if f.model is not None and f.model_version is not None else extra).append(c.segment == f.segment)
        if f.since_ms is not None:
            base.append(c.start_ms >= f.since_ms)
        if f.until_ms is not None:
            base.append(c.start_ms < f.until_ms)
        if f.status is not None:
            extra.append(c.status == f.status)
        if f.mode is not None:
            fc = t.findings.c
            extra.append(exists().where(fc.window_id == c.id, fc.mode == f.mode))
        with self.read("listing windows") as conn:  # type: ignore[attr-defined]
            return _scan_page(conn, t.windows, base=base, extra=extra, order=(c.start_ms, c.id), descending=True,
                              after=after, limit=limit, scan=_clip_scan(scan, limit), convert=_window_fast)

    def page_findings(self, f: FindingFilter = FindingFilter(), *, after: tuple[int, ...] | None = None,
                      limit: int = 1000, scan: int = DEFAULT_SCAN) -> Page:
        """Findings of one window (by id), of one feature (newest window first), or of anything
        (newest first); see :attr:`FindingFilter.order`. ``after`` is a previous page's ``next``."""
        c = t.findings.c
        conditions = {
            "window_id": c.window_id == f.window_id, "model": c.model == f.model,
            "model_version": c.model_version == f.model_version, "segment": c.segment == f.segment,
            "family": c.family == f.family, "feature": c.feature == f.feature, "test": c.test == f.test,
            "mode": c.mode == f.mode, "verdict": c.verdict == f.verdict, "alerting": c.alerting == f.alerting,
        }
        given = {name for name in conditions if getattr(f, name) is not None}
        order_kind = f.order
        if order_kind == "window":
            served, order, descending = {"window_id"}, (c.id,), False
        elif order_kind == "feature":
            served, order, descending = {"model", "feature"}, (c.start_ms, c.id), True
            if {"test", "mode"} <= given:
                served |= {"test", "mode"}  # the (model, feature, test, mode, start) index
        else:
            served, order, descending = set(), (c.id,), True
        base = [conditions[n] for n in given & served]
        extra = [conditions[n] for n in given - served]
        time_filters = []
        if f.since_ms is not None:
            time_filters.append(c.start_ms >= f.since_ms)
        if f.until_ms is not None:
            time_filters.append(c.start_ms < f.until_ms)
        (base if order_kind == "feature" else extra).extend(time_filters)
        with self.read("listing findings") as conn:  # type: ignore[attr-defined]
            return _scan_page(conn, t.findings, base=base, extra=extra, order=order, descending=descending,
                              after=after, limit=limit, scan=_clip_scan(scan, limit), convert=_finding_fast)

    def feature_history(self, model: str, feature: str, *, model_version: str | None = None,
                        segment: str | None = None, mode: str | None = None, test: str | None = None,
                        since_ms: int | None = None, until_ms: int | None = None,
                        after: tuple[int, int] | None = None, limit: int = 1000, scan: int = DEFAULT_SCAN) -> Page:
        """Every score of one feature, newest window first: a page of :class:`ScorePoint` (the numbers of each
        finding without its message, which a history does not show and which costs the most to read)."""
        c = t.findings.c
        f = FindingFilter(model=model, feature=feature, model_version=model_version, segment=segment, mode=mode,
                          test=test)
        conditions = {"model_version": c.model_version == model_version, "segment": c.segment == segment,
                      "mode": c.mode == mode, "test": c.test == test}
        served = {"test", "mode"} if test is not None and mode is not None else set()
        base = [c.model == model, c.feature == feature] + [conditions[n] for n in served]
        extra = [cond for n, cond in conditions.items() if n not in served and getattr(f, n) is not None]
        if since_ms is not None:
            base.append(c.start_ms >= since_ms)
        if until_ms is not None:
            base.append(c.start_ms < until_ms)
        with self.read("reading a feature's history") as conn:  # type: ignore[attr-defined]
            return _scan_page(conn, t.findings, base=base, extra=extra, order=(c.start_ms, c.id), descending=True,
                              after=after, limit=limit, scan=_clip_scan(scan, limit), convert=_point,
                              columns=[getattr(c, n) for n in _POINT])

    # -- streams -----------------------------------------------------------------------------

    def scores(self, *, model: str | None = None) -> list[ScoreRow]:
        """``latest_scores`` (the same rows), read by position: what a metrics scrape and /scores read."""
        c = t.latest_scores.c
        where = [] if model is None else [c.model == model]
        with self.read("reading the latest scores") as conn:  # type: ignore[attr-defined]
            rows = conn.execute(select(t.latest_scores).where(*where)
                                .order_by(c.model, c.model_version, c.segment, c.mode, c.family, c.feature, c.test))
            return [_score_fast(r) for r in rows]

    def latest_windows(self, *, model: str | None = None) -> list[WindowRow]:
        """The newest decided window of each (model, version, segment) that has scores: one backward step
        on the windows' (model, version, segment, start) index per stream, whatever the history's length."""
        w, s = t.windows.c, t.latest_scores.c
        streams = select(s.model, s.model_version, s.segment).distinct()
        if model is not None:
            streams = streams.where(s.model == model)
        streams = streams.subquery()
        inner = t.windows.alias("newest").c
        newest = (select(inner.id)
                  .where(inner.model == streams.c.model, inner.model_version == streams.c.model_version,
                         inner.segment == streams.c.segment, inner.status == "decided")
                  .order_by(inner.start_ms.desc()).limit(1)
                  .correlate(streams).scalar_subquery())
        ids = select(newest).select_from(streams)
        query = select(t.windows).where(w.id.in_(ids)).order_by(w.model, w.model_version, w.segment)
        with self.read("reading the latest windows") as conn:  # type: ignore[attr-defined]
            return [_window_fast(r) for r in conn.execute(query)]

    def reference_windows(self, window_id: int) -> list[int]:
        """The windows the findings of ``window_id`` were compared with (drift, seasonal, pinned)."""
        c = t.findings.c
        with self.read() as conn:  # type: ignore[attr-defined]
            return sorted(r[0] for r in conn.execute(
                select(c.reference_window_id).distinct()
                .where(c.window_id == window_id, c.reference_window_id.is_not(None))))

    def findings_of(self, window_id: int) -> list[FindingRow]:
        """Every finding of one window (a window carries a bounded number: features x tests x modes)."""
        c = t.findings.c
        with self.read() as conn:  # type: ignore[attr-defined]
            return [_finding_row(r) for r in conn.execute(select(t.findings).where(c.window_id == window_id)
                                                          .order_by(c.id))]

    # -- monitor configs ---------------------------------------------------------------------

    def monitor_config(self, model: str) -> ConfigRow | None:
        c = t.monitor_configs.c
        with self.read() as conn:  # type: ignore[attr-defined]
            r = conn.execute(select(t.monitor_configs).where(c.model == model)).first()
        return None if r is None else ConfigRow(r.model, json.loads(r.document), r.updated_ms, r.updated_by)

    def monitor_configs(self) -> list[ConfigRow]:
        """Every model's stored config (one row per model: a small table)."""
        c = t.monitor_configs.c
        with self.read() as conn:  # type: ignore[attr-defined]
            return [ConfigRow(r.model, json.loads(r.document), r.updated_ms, r.updated_by)
                    for r in conn.execute(select(t.monitor_configs).order_by(c.model))]

    def put_monitor_config(self, model: str, document: dict[str, Any], *, by: str) -> ConfigRow:
        """Replace ``model``'s config (a validated ``ModelOverrides`` document, as JSON)."""
        now = self.now()  # type: ignore[attr-defined]
        text = json.dumps(document, sort_keys=True, separators=(",", ":"))
        with self.write("saving a monitor config") as conn:  # type: ignore[attr-defined]
            upsert(conn, t.monitor_configs, [{"model": model, "document": text, "updated_ms": now, "updated_by": by}],
                   keys=("model",), update=("document", "updated_ms", "updated_by"))
        return ConfigRow(model, json.loads(text), now, by)

    def delete_monitor_config(self, model: str) -> bool:
        with self.write("deleting a monitor config") as conn:  # type: ignore[attr-defined]
            done = conn.execute(delete(t.monitor_configs).where(t.monitor_configs.c.model == model))
        return bool(done.rowcount)

    # -- uploaded baselines ------------------------------------------------------------------

    def save_baseline(self, model: str, model_version: str, *, statistics: bytes, schema: str, features: int,
                      by: str) -> BaselineRow:
        """Keep an uploaded TFDV statistics + schema pair for one model version (replacing any earlier)."""
        now = self.now()  # type: ignore[attr-defined]
        digest = hashlib.sha256(statistics + b"\0" + schema.encode("utf-8")).hexdigest()
        row = {"model": model, "model_version": model_version, "statistics": statistics, "schema": schema,
               "sha256": digest, "features": features, "uploaded_ms": now, "uploaded_by": by}
        with self.write("saving a baseline") as conn:  # type: ignore[attr-defined]
            upsert(conn, t.baselines, [row], keys=("model", "model_version"),
                   update=("statistics", "schema", "sha256", "features", "uploaded_ms", "uploaded_by"))
        return BaselineRow(**row)

    def baseline(self, model: str, model_version: str) -> BaselineRow | None:
        c = t.baselines.c
        with self.read() as conn:  # type: ignore[attr-defined]
            r = conn.execute(select(t.baselines).where(c.model == model, c.model_version == model_version)).first()
        return None if r is None else BaselineRow(r.model, r.model_version, bytes(r.statistics), r.schema, r.sha256,
                                                  r.features, r.uploaded_ms, r.uploaded_by)

    def baselines(self, model: str | None = None) -> list[BaselineRow]:
        """Uploaded baselines without their bytes (``statistics`` and ``schema`` are empty)."""
        c = t.baselines.c
        where = [] if model is None else [c.model == model]
        with self.read() as conn:  # type: ignore[attr-defined]
            return [BaselineRow(r.model, r.model_version, b"", "", r.sha256, r.features, r.uploaded_ms, r.uploaded_by)
                    for r in conn.execute(select(c.model, c.model_version, c.sha256, c.features, c.uploaded_ms,
                                                 c.uploaded_by).where(*where).order_by(c.model, c.model_version))]

    # -- retention ---------------------------------------------------------------------------

    def protected_windows(self, conn: Connection) -> set[int]:
        """Windows retention keeps whatever their age: each stream's latest window and the windows its
        findings were compared with."""
        latest = {r[0] for r in conn.execute(select(t.latest_scores.c.window_id).distinct())}
        if not latest:
            return set()
        c = t.findings.c
        refs = {r[0] for r in conn.execute(select(c.reference_window_id).distinct().where(
            c.window_id.in_(sorted(latest)), c.reference_window_id.is_not(None)))}
        return latest | refs

    def enforce_retention(self, policy: RetentionPolicy, *, now_ms: int | None = None,
                          protect: Callable[[Connection], Iterable[int]] | None = None,
                          batch: int = 200) -> RetentionResult:
        """Delete what ``policy`` no longer keeps, in batches of ``batch`` windows; see the module docstring.

        ``protect(conn)`` may name more windows to keep (for instance pinned reference windows).
        An expired window takes its findings, profiles, sample and latest scores with it; a window
        kept as a reference keeps all of them.
        """
        now = self.now() if now_ms is None else now_ms  # type: ignore[attr-defined]
        with self.read("reading retention state") as conn:  # type: ignore[attr-defined]
            protected = self.protected_windows(conn) | set(protect(conn) if protect is not None else ())
        keep = sorted(protected)
        w = t.windows.c
        counts = {"windows": 0, "findings": 0, "profiles": 0, "samples": 0}

        def sweep(cutoff: int, *, has: Any, delete_rows: Callable[[Connection, list[int]], None]) -> None:
            while True:
                with self.write("enforcing retention") as conn:  # type: ignore[attr-defined]
                    query = select(w.id).where(w.decided_at_ms < cutoff, *([has] if has is not None else []))
                    if keep:
                        query = query.where(w.id.not_in(keep))
                    ids = [r[0] for r in conn.execute(query.order_by(w.decided_at_ms, w.id).limit(batch))]
                    if ids:
                        delete_rows(conn, ids)
                if len(ids) < batch:
                    return

        def drop_children(conn: Connection, ids: list[int], *, findings: bool, profiles: bool) -> None:
            if findings:
                counts["findings"] += conn.execute(delete(t.findings).where(t.findings.c.window_id.in_(ids))).rowcount
            if profiles:
                counts["profiles"] += conn.execute(
                    delete(t.window_profiles).where(t.window_profiles.c.window_id.in_(ids))).rowcount
                counts["samples"] += conn.execute(
                    delete(t.window_samples).where(t.window_samples.c.window_id.in_(ids))).rowcount

        def drop_windows(conn: Connection, ids: list[int]) -> None:
            drop_children(conn, ids, findings=True, profiles=True)
            conn.execute(delete(t.latest_scores).where(t.latest_scores.c.window_id.in_(ids)))
            counts["windows"] += conn.execute(delete(t.windows).where(w.id.in_(ids))).rowcount

        protected_count = 0
        if policy.windows_ms is not None:
            sweep(now - policy.windows_ms, has=None, delete_rows=drop_windows)
            if keep:
                with self.read() as conn:  # type: ignore[attr-defined]
                    protected_count = int(conn.execute(select(func.count()).select_from(t.windows).where(
                        w.decided_at_ms < now - policy.windows_ms, w.id.in_(keep))).scalar_one())
        if policy.findings_ms is not None:
            fc = t.findings.c
            sweep(now - policy.findings_ms, has=exists().where(fc.window_id == w.id),
                  delete_rows=lambda conn, ids: drop_children(conn, ids, findings=True, profiles=False))
        if policy.profiles_ms is not None:
            pc, sc = t.window_profiles.c, t.window_samples.c
            sweep(now - policy.profiles_ms,
                  has=exists().where(pc.window_id == w.id) | exists().where(sc.window_id == w.id),
                  delete_rows=lambda conn, ids: drop_children(conn, ids, findings=False, profiles=True))
        return RetentionResult(protected=protected_count, **counts)
