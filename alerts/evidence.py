"""What one window says about one alert: alerting or not, severity, score, the findings to show. Pure.

* A feature alerts in a window when any of its findings alerts (``monitor.decide`` made that
  decision; nothing here second-guesses it).
* Root cause first: when a schema-level test alerts (``unseen_share``, ``missing_rate``,
  ``tfdv_schema``), it is listed first and the distribution tests it explains are marked
  ``inhibited``; the severity then comes from the root cause alone.
* The score of a finding is ``effect / floor`` (how many floors past); an alert's score is its
  largest, and messages rank alerts and features by it.
* ``hold`` is the largest score among significant findings, alerting or not: with hysteresis a
  firing alert heals only in a window where ``hold < resolve_below``.
* The model-wide view of a window and mode counts the features that alert against those evaluated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from monitor.alerting_config import SEVERITY_RANK
from monitor.decide import Finding

__all__ = ["SCHEMA_TESTS", "Evidence", "weigh", "score_of", "ModelWide", "weigh_model"]

SCHEMA_TESTS: frozenset[str] = frozenset({"unseen_share", "missing_rate", "tfdv_schema"})
_MAX_SCORE = 1e9
_MAX_MESSAGE = 500


def score_of(f: Finding) -> float:
    """``effect / floor``, finite and >= 0 (a floor of 0 counts any effect as very far past it)."""
    effect, floor = f.effect, f.floor
    if effect is None or not math.isfinite(effect):
        return 0.0
    if floor is None or not math.isfinite(floor) or floor <= 0:
        return _MAX_SCORE if effect > 0 else 0.0
    return min(_MAX_SCORE, max(0.0, effect / floor))


def _number(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _finding(f: Finding, *, inhibited: bool = False) -> dict[str, Any]:
    message = f.message if len(f.message) <= _MAX_MESSAGE else f.message[: _MAX_MESSAGE - 1] + "…"
    return {"feature": f.feature, "test": f.test, "effect": _number(f.effect), "floor": _number(f.floor),
            "q_value": _number(f.q_value), "score": round(score_of(f), 6), "verdict": f.verdict,
            "message": message, "inhibited": inhibited}


def _severity(findings: Sequence[Finding]) -> str:
    return "critical" if any(SEVERITY_RANK.get(f.verdict, 0) >= SEVERITY_RANK["critical"] for f in findings) else "warning"


@dataclass(frozen=True, slots=True)
class Evidence:
    alerting: bool
    severity: str  # meaningful when alerting
    score: float
    hold: float
    findings: tuple[dict[str, Any], ...]  # the alerting ones, root causes first, then by score


def weigh(findings: Sequence[Finding]) -> Evidence:
    """The evidence of one (kind, feature, mode) in one window."""
    alerting = [f for f in findings if f.alerting]
    hold = max((score_of(f) for f in findings if f.significant), default=0.0)
    if not alerting:
        return Evidence(False, "warning", 0.0, hold, ())
    by_score = lambda f: (-score_of(f), f.test)  # noqa: E731
    roots = sorted((f for f in alerting if f.test in SCHEMA_TESTS), key=by_score)
    rest = sorted((f for f in alerting if f.test not in SCHEMA_TESTS), key=by_score)
    shown = tuple([_finding(f) for f in roots] + [_finding(f, inhibited=bool(roots)) for f in rest])
    return Evidence(True, _severity(roots or rest), max(score_of(f) for f in alerting), hold, shown)


@dataclass(frozen=True, slots=True)
class ModelWide:
    evaluated: int  # features with findings in this window and mode
    alerting: int  # of them, alerting
    severity: str
    score: float
    features: tuple[dict[str, Any], ...]  # one line per alerting feature (its top finding), by score


def weigh_model(per_feature: dict[str, Evidence]) -> ModelWide:
    moving = sorted(((name, ev) for name, ev in per_feature.items() if ev.alerting), key=lambda x: (-x[1].score, x[0]))
    severity = "critical" if any(ev.severity == "critical" for _, ev in moving) else "warning"
    lines = tuple({**ev.findings[0], "feature": name, "severity": ev.severity} for name, ev in moving)
    return ModelWide(len(per_feature), len(moving), severity, max((ev.score for _, ev in moving), default=0.0), lines)
