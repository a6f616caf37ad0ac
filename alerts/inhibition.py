"""Root cause first: schema-level findings inhibit the distribution tests of their feature.

When a feature's values go missing (``missing_rate``) or take categories the baseline never
saw (``unseen_share``), its distribution tests (KS, chi-square, PSI, ...) alert too, but only
as a consequence. skewwatch keeps one alert per feature and mode, so inhibition does not drop
those findings: it lists the schema-level ones first as the root cause, marks the others
``"inhibited": true``, names them as inhibited in the summary, and takes the alert's severity
from the root cause alone (an inhibited test never raises the severity). Without an alerting
schema-level finding nothing is inhibited and the severity is the highest verdict.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from alerts.alert import SEVERITY_RANK, Severity
from monitor.decide import Finding

__all__ = ["SCHEMA_TESTS", "Assessment", "assess", "finding_dict"]

SCHEMA_TESTS: frozenset[str] = frozenset({"unseen_share", "missing_rate", "tfdv_schema"})
_FIELDS = ("model", "feature", "test", "mode", "statistic", "p_value", "q_value", "effect", "floor",
           "significant", "verdict", "message")  # fmt: skip


def _safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # numpy scalar
        return _safe(value.item())
    return value


def finding_dict(finding: Finding, *, inhibited: bool = False) -> dict[str, Any]:
    """A finding as a JSON-safe dict (non-finite floats become ``None``) plus ``inhibited``."""
    to_dict = getattr(finding, "to_dict", None)
    raw = dict(to_dict()) if callable(to_dict) else {k: getattr(finding, k) for k in _FIELDS}
    out = {k: _safe(v) for k, v in raw.items()}
    out["alerting"] = bool(finding.alerting)
    out["inhibited"] = inhibited
    return out


def _severity(findings: Iterable[Finding]) -> Severity:
    rank = max((SEVERITY_RANK.get(f.verdict, 1) for f in findings), default=1)
    return "critical" if rank >= SEVERITY_RANK["critical"] else "warning"


def _order(findings: Iterable[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (-SEVERITY_RANK.get(f.verdict, 0), f.test))


@dataclass(frozen=True, slots=True)
class Assessment:
    severity: Severity
    findings: tuple[dict[str, Any], ...]  # root causes first, then the others
    root_causes: tuple[str, ...]  # test names
    inhibited: tuple[str, ...]  # test names


def assess(alerting: Sequence[Finding]) -> Assessment:
    """Order the alerting findings of one feature and mode, mark inhibited ones, pick the severity."""
    roots = _order(f for f in alerting if f.test in SCHEMA_TESTS)
    rest = _order(f for f in alerting if f.test not in SCHEMA_TESTS)
    if roots:
        return Assessment(
            severity=_severity(roots),
            findings=tuple([finding_dict(f) for f in roots] + [finding_dict(f, inhibited=True) for f in rest]),
            root_causes=tuple(f.test for f in roots),
            inhibited=tuple(f.test for f in rest),
        )
    return Assessment(
        severity=_severity(rest),
        findings=tuple(finding_dict(f) for f in rest),
        root_causes=(),
        inhibited=(),
    )
