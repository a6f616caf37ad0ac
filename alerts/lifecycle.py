"""The alert lifecycle: a pure function of (alert state, one decided window, its findings, config, time).

Per alert (see :mod:`alerts.identity`)::

    (none) --alerting--> pending --for_windows in a row--> firing --resolve_after healthy--> resolved
              pending --a window not alerting--> (none)        resolved --alerting--> pending ...

* **Event time drives it.** Windows are counted, not clocks: ``for_windows`` consecutive alerting
  windows before an alert fires (pages), ``resolve_after`` consecutive healthy windows before it
  resolves. A replay of the same windows gives the same states. A window the alert has already
  seen (its end is not after ``updated_ms``) changes nothing. A window without findings for an
  alert (not evaluated) leaves it as it is.
* **Hysteresis.** A firing alert fires at the floor but heals only in a window whose significant
  findings all stay below ``resolve_below`` x floor; a window between the two holds it (neither
  healthy nor alerting), so a feature hovering at its floor does not flap.
* **One incident, one page.** While an alert stays firing, new alerting windows (a re-fire after a
  held window, an escalation) update it but never open a new incident; only firing after a resolve
  does (``incident`` counts them). Acknowledgements belong to an incident and end with it.
* **Model-wide.** When at least ``min_features`` features and ``fraction`` of those evaluated alert
  in one window and mode, a ``kind=model`` alert for the series follows the same lifecycle. While
  it is pending or firing, the feature alerts of that series and mode are *inhibited*
  (``inhibited_by``): they keep their state but do not notify (inhibiting while pending too, so a
  storm never pages feature by feature while the model-wide alert waits for its ``for_windows``).
* Parameters (``for_windows``, per severity, ``resolve_after``, ``resolve_below``) come from the
  first route the alert's labels match, so they can differ per route; by default a warning needs
  two windows in a row and a critical finding pages from its first.

The result says which alerts changed in a way receivers must hear about (``notable``): they are
the ones whose groups the engine schedules. Silences and acknowledgements (wall time, human) are
applied when groups are flushed, not here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Iterable, Mapping, Sequence

from alerts.evidence import Evidence, ModelWide, weigh, weigh_model
from alerts.identity import KIND_OF_FAMILY, Identity
from alerts.routing import match_routes
from monitor.alerting_config import AlertingConfig, RouteNode
from monitor.decide import Finding
from monitor.storage.alerting import AlertRow

__all__ = ["WindowInfo", "Evaluation", "evaluate", "drilldown_url"]


@dataclass(frozen=True, slots=True)
class WindowInfo:
    """The decided window: its series, its event-time span, and its id in the store."""

    model: str
    model_version: str
    segment: str
    start_ms: int
    end_ms: int
    window_id: int | None = None


@dataclass(frozen=True, slots=True)
class Evaluation:
    rows: tuple[AlertRow, ...]  # alerts to write (new or changed)
    deleted: tuple[str, ...]  # pending alerts that never fired and stopped alerting
    notable: tuple[AlertRow, ...]  # changes receivers must hear about (their groups get scheduled)


@dataclass(frozen=True, slots=True)
class _Params:
    for_windows: int
    resolve_after: int
    resolve_below: float


def drilldown_url(external_url: str, fingerprint: str, window_id: int | None = None) -> str:
    """The dashboard at the window that raised the alert (the alert's JSON when no window is known)."""
    base = external_url.rstrip("/")
    return f"{base}/ui/#window={window_id}" if window_id is not None else f"{base}/alerts/{fingerprint}"


def _params(tree: RouteNode, labels: Mapping[str, str]) -> _Params:
    route = match_routes(tree, labels)[0]
    severity = labels.get("severity", "warning")
    return _Params(route.for_windows.get(severity, max(route.for_windows.values())), route.resolve_after,
                   route.resolve_below)


def _series(ident: Identity) -> str:
    return f"{ident.model}/{ident.version}" + (f" [{ident.segment}]" if ident.segment else "") + f" {ident.mode}"


def _subject(ident: Identity) -> str:
    if ident.kind == "model":
        return "all features"
    return f"output {ident.feature}" if ident.kind == "output" else ident.feature


def _where(ident: Identity) -> str:
    return f"{_series(ident)}: {_subject(ident)}"


def _annotations(ident: Identity, fp: str, severity: str, findings: Sequence[Mapping[str, Any]], external_url: str,
                 model_view: ModelWide | None, window_id: int | None = None) -> dict[str, str]:
    if model_view is not None:
        top = ", ".join(f"{f['feature']} {f['score']:.3g}x" for f in findings[:5])
        summary = (f"[{severity.upper()}] {_where(ident)}: {model_view.alerting} of {model_view.evaluated} "
                   f"features moved (top: {top})")
        lines = [f"{f['feature']}: {f['message']}" if not str(f["message"]).startswith(f"{f['feature']}:")
                 else str(f["message"]) for f in findings]
    else:
        head = str(findings[0]["message"]) if findings else ""
        named = head.startswith(f"{ident.feature}:")
        summary = f"[{severity.upper()}] {_series(ident)}: " + (head if named else f"{_subject(ident)}: {head}")
        lines = [f["message"] + (" (explained by a root cause)" if f.get("inhibited") else "") for f in findings]
    return {"summary": summary[:1000], "description": "\n".join(lines)[:4000],
            "drilldown": drilldown_url(external_url, fp, window_id)}


def _new_row(ident: Identity, severity: str, w: WindowInfo, now_ms: int) -> AlertRow:
    fp = ident.fingerprint
    return AlertRow(
        fingerprint=fp, state="pending", kind=ident.kind, model=ident.model, model_version=ident.version,
        segment=ident.segment, feature=ident.feature, mode=ident.mode, severity=severity,
        labels=ident.labels(severity), annotations={}, findings=(), score=0.0, pending_since_ms=w.start_ms,
        starts_ms=w.start_ms, ends_ms=None, updated_ms=w.end_ms, window_id=w.window_id, firing_windows=0,
        healthy_windows=0, incident=0, inhibited_by=None, acknowledged_by=None, acknowledged_until_ms=None,
        acknowledged_comment=None, acknowledged_ms=None, resolved_by=None, changed_ms=now_ms,
    )


def _step(cur: AlertRow | None, ident: Identity, *, alerting: bool, hold: float, severity: str, score: float,
          findings: tuple[dict[str, Any], ...], w: WindowInfo, tree: RouteNode, external_url: str, now_ms: int,
          model_view: ModelWide | None) -> tuple[AlertRow | None, bool, bool]:
    """One window for one alert: ``(row or None to delete, changed, notable)``."""
    if cur is not None and w.end_ms <= cur.updated_ms:
        return cur, False, False  # already seen: a replay or an older window
    if not alerting and (cur is None or cur.state == "resolved"):
        return cur, False, False
    base = cur
    if alerting:
        if base is None:
            base = _new_row(ident, severity, w, now_ms)
        labels = ident.labels(severity)
        p = _params(tree, labels)
        row = replace(base, severity=severity, labels=labels, score=score, findings=findings,
                      annotations=_annotations(ident, base.fingerprint, severity, findings, external_url, model_view,
                                               w.window_id),
                      updated_ms=w.end_ms, window_id=w.window_id, healthy_windows=0)
        if base.state == "resolved":  # alerting again after a resolve: a new streak
            row = replace(row, state="pending", firing_windows=1, pending_since_ms=w.start_ms)
        else:
            row = replace(row, firing_windows=base.firing_windows + 1)
        notable = False
        if row.state == "pending" and row.firing_windows >= p.for_windows:
            row = replace(row, state="firing", starts_ms=row.pending_since_ms or w.start_ms, ends_ms=None,
                          incident=row.incident + 1, acknowledged_by=None, acknowledged_until_ms=None,
                          acknowledged_comment=None, acknowledged_ms=None, resolved_by=None, changed_ms=now_ms)
            notable = True
        elif row.state == "firing" and severity != base.severity:
            row = replace(row, changed_ms=now_ms)
            notable = True
        elif row.state == "pending" and base.state != "pending":
            row = replace(row, changed_ms=now_ms)
        return row, True, notable
    if cur is None:  # not reached: a missing alert that is not alerting returned above
        return cur, False, False
    p = _params(tree, cur.labels)
    if cur.state == "pending":  # the streak broke before for_windows
        if cur.incident == 0:
            return None, True, False
        return replace(cur, state="resolved", firing_windows=0, pending_since_ms=None, updated_ms=w.end_ms,
                       window_id=w.window_id, changed_ms=now_ms), True, False
    if hold >= p.resolve_below:  # hysteresis: between resolve_below x floor and the floor, hold
        return replace(cur, firing_windows=0, healthy_windows=0, updated_ms=w.end_ms, window_id=w.window_id), True, False
    healthy = cur.healthy_windows + 1
    row = replace(cur, firing_windows=0, healthy_windows=healthy, updated_ms=w.end_ms, window_id=w.window_id)
    if healthy < p.resolve_after:
        return row, True, False
    annotations = dict(cur.annotations)
    annotations["summary"] = (f"[RESOLVED] {_where(ident)}: healthy for {healthy} window(s) "
                              f"(was {cur.severity})")[:1000]
    row = replace(row, state="resolved", ends_ms=w.end_ms, pending_since_ms=None, annotations=annotations,
                  changed_ms=now_ms)
    return row, True, True


def _groups(findings: Iterable[tuple[Finding, str]]) -> dict[tuple[str, str, str], list[Finding]]:
    out: dict[tuple[str, str, str], list[Finding]] = {}
    for finding, family in findings:
        kind = KIND_OF_FAMILY.get(family, "feature")
        out.setdefault((kind, finding.feature, finding.mode), []).append(finding)
    return out


def _computed(findings: Sequence[Finding]) -> bool:
    return any(f.effect is not None and math.isfinite(f.effect) for f in findings)


def evaluate(current: Mapping[str, AlertRow], window: WindowInfo, findings: Iterable[tuple[Finding, str]], *,
             config: AlertingConfig, tree: RouteNode, now_ms: int, external_url: str) -> Evaluation:
    """Apply one decided window to the alerts of its series.

    ``current`` holds the series' alerts by fingerprint (any state); ``findings`` are
    ``(finding, family)`` pairs of the window; ``now_ms`` (wall time) only stamps ``changed_ms``.
    """
    w = window
    rows: dict[str, AlertRow] = {}
    deleted: list[str] = []
    notable: dict[str, AlertRow] = {}

    def apply(ident: Identity, **kw: Any) -> None:
        fp = ident.fingerprint
        row, changed, is_notable = _step(current.get(fp), ident, w=w, tree=tree, external_url=external_url,
                                         now_ms=now_ms, **kw)
        if not changed:
            return
        if row is None:
            deleted.append(fp)
        else:
            rows[fp] = row
            if is_notable:
                notable[fp] = row

    groups = _groups(findings)
    per_mode: dict[str, dict[str, Evidence]] = {}
    for (kind, feature, mode), group in sorted(groups.items()):
        ev = weigh(group)
        ident = Identity(w.model, w.model_version, w.segment, kind, feature, mode)  # type: ignore[arg-type]
        apply(ident, alerting=ev.alerting, hold=ev.hold, severity=ev.severity, score=ev.score, findings=ev.findings,
              model_view=None)
        if kind == "feature" and _computed(group):
            per_mode.setdefault(mode, {})[feature] = ev

    mw = config.model_wide
    for mode, per_feature in sorted(per_mode.items()):
        if not mw.enabled:
            break
        view = weigh_model(per_feature)
        need = max(mw.min_features, math.ceil(mw.fraction * view.evaluated))
        ident = Identity(w.model, w.model_version, w.segment, "model", "", mode)
        hold = view.alerting / need  # 1.0 at the threshold, as a score is 1.0 at the floor
        apply(ident, alerting=view.alerting >= need, hold=hold, severity=view.severity, score=view.score, findings=view.features, model_view=view)

    # inhibition: an active model-wide alert mutes the feature alerts of its series and mode
    def latest(fp: str) -> AlertRow | None:
        return rows.get(fp, current.get(fp)) if fp not in deleted else None

    modes = {a.mode for a in list(current.values()) + list(rows.values())}
    for mode in sorted(modes):
        source = latest(Identity(w.model, w.model_version, w.segment, "model", "", mode).fingerprint)
        source_fp = source.fingerprint if source is not None and source.state in ("pending", "firing") else None
        for fp in sorted(set(current) | set(rows)):
            a = latest(fp)
            if a is None or a.kind != "feature" or a.mode != mode:
                continue
            want = source_fp if a.state in ("pending", "firing") else None
            if a.inhibited_by != want:
                a = replace(a, inhibited_by=want, changed_ms=now_ms)
                rows[fp] = a
                if a.state == "firing" or fp in notable:
                    notable[fp] = a
    return Evaluation(tuple(rows[k] for k in sorted(rows)), tuple(deleted), tuple(notable[k] for k in sorted(notable)))

