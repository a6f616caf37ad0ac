"""The one place where comparison results become decisions.

Rule (per result of one window):

1. **Statistical gate.** All p-values of the window (features x tests) are adjusted
   together with Benjamini-Hochberg (1995): ``q_(i) = min_{j>=i} p_(j) m / j``. A result
   with a p-value passes when ``q <= bh_level``. A result *without* a p-value (wasserstein,
   psi, jsd, linf, psi_categorical, jsd_tfdv, linf_tfdv) passes when both samples have at least
   ``min_count`` values, because a distance alone is noisy on small samples (measured with
   no change, 20,000-row reference, KLL k=200: 99th percentile of wasserstein 0.12 baseline
   sd at 500 rows, 0.09 at 1,000, 0.06 at 2,000; psi, jsd and linf stay below half their
   floors from 500 rows).
2. **Practical floor.** ``effect >= floor`` for that test. A finding alerts only when it
   passes both: at large n everything is significant, and the floor keeps tiny but real
   changes (and sketch error) quiet.
3. **Severity.** ``critical`` when ``effect >= severity_multiplier * floor``, else
   ``warning``; ``ok`` when the finding does not alert.
4. **Persistence** (optional, :func:`apply_persistence`): an alert stands only when the same
   (model, feature, test, mode) alerted in at least k of the last n windows.

Default floors (effect scales are those of :mod:`monitor.compare`):

================  =====  ===========================================================
test              floor  meaning
================  =====  ===========================================================
mean_shift        0.2    (trimmed) mean moved 0.2 baseline sd (Cohen's "small" effect)
variance_ratio    0.405  |ln(var_cur / var_ref)| >= ln 1.5: variance outside [1/1.5, 1.5]x;
                         critical at 2x floor = variance 2.25x, i.e. sd 1.5x
ks                0.1    KS distance D
wasserstein       0.2    W1 in baseline sd; W1 >= |mean shift|, so the same floor as
                         mean_shift keeps a pure location shift from alerting here first
psi               0.2    PSI on baseline-decile bins (the usual "significant shift" mark)
jsd               0.1    JS divergence in bits on the same bins
linf              0.1    largest change of one value's share (TFDV's usual threshold)
chi_squared       0.1    largest change of one bucket's share (same scale as linf)
psi_categorical   0.2    PSI over categories
unseen_share      0.01   1% of current values never seen in the reference
missing_rate      0.05   missing share moved 5 percentage points
jsd_tfdv          0.1    TFDV's numeric JSD (bits, 10 equal-width buckets; monitor.tfdv_interop)
linf_tfdv         0.1    TFDV's infinity_norm (same scale as linf)
tfdv_schema       1      one TFDV schema anomaly (type, domain, range, presence)
================  =====  ===========================================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Callable, Literal, Mapping, Sequence, get_args

import numpy as np

from monitor.compare.results import TestName, TestResult
from monitor.errors import ConfigError

__all__ = [
    "Mode",
    "Verdict",
    "DEFAULT_FLOORS",
    "DEFAULT_BH_LEVEL",
    "DEFAULT_SEVERITY_MULTIPLIER",
    "DEFAULT_MIN_COUNT",
    "Persistence",
    "Policy",
    "Finding",
    "bh_adjust",
    "decide",
    "apply_persistence",
]

Mode = Literal["skew", "drift"]
Verdict = Literal["ok", "warning", "critical"]
_MODES: tuple[str, ...] = get_args(Mode)
_VERDICTS: tuple[str, ...] = get_args(Verdict)

DEFAULT_FLOORS: Mapping[TestName, float] = MappingProxyType({
    TestName.MEAN_SHIFT: 0.2,
    TestName.VARIANCE_RATIO: math.log(1.5),
    TestName.KS: 0.1,
    TestName.WASSERSTEIN: 0.2,
    TestName.PSI: 0.2,
    TestName.JSD: 0.1,
    TestName.LINF: 0.1,
    TestName.CHI_SQUARED: 0.1,
    TestName.PSI_CATEGORICAL: 0.2,
    TestName.UNSEEN_SHARE: 0.01,
    TestName.MISSING_RATE: 0.05,
    TestName.JSD_TFDV: 0.1,
    TestName.LINF_TFDV: 0.1,
    TestName.TFDV_SCHEMA: 1.0,
})
DEFAULT_BH_LEVEL = 0.01
DEFAULT_SEVERITY_MULTIPLIER = 2.0
#: Fewest values on each side before a test *without* a p-value may alert.
DEFAULT_MIN_COUNT = 1000


@dataclass(frozen=True, slots=True)
class Persistence:
    """Alert only when the same finding alerted in at least ``k`` of the last ``n`` windows."""

    k: int
    n: int

    def __post_init__(self) -> None:
        if not (isinstance(self.n, int) and 1 <= self.n <= 1000):
            raise ConfigError(f"must be an integer in [1, 1000], got {self.n!r}", field="persistence.n")
        if not (isinstance(self.k, int) and 1 <= self.k <= self.n):
            raise ConfigError(f"must be an integer in [1, n={self.n}], got {self.k!r}", field="persistence.k")


@dataclass(frozen=True)
class Policy:
    """Decision rules for one feature (see the module docstring). ``floors`` may be partial:
    tests it does not name keep :data:`DEFAULT_FLOORS`. ``enabled`` are the tests to run."""

    floors: Mapping[TestName, float] = field(default_factory=lambda: DEFAULT_FLOORS)
    enabled: frozenset[TestName] = frozenset(TestName)
    bh_level: float = DEFAULT_BH_LEVEL
    severity_multiplier: float = DEFAULT_SEVERITY_MULTIPLIER
    min_count: int = DEFAULT_MIN_COUNT
    persistence: Persistence | None = None

    def __post_init__(self) -> None:
        floors = dict(DEFAULT_FLOORS)
        for name, value in self.floors.items():
            if not isinstance(name, TestName):
                try:
                    name = TestName(name)
                except ValueError:
                    raise ConfigError(f"unknown test {name!r}", field=f"floors.{name}") from None
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ConfigError(f"must be a finite number >= 0, got {value!r}", field=f"floors.{name.value}")
            floors[name] = float(value)
        object.__setattr__(self, "floors", MappingProxyType(floors))
        object.__setattr__(self, "enabled", frozenset(TestName(t) for t in self.enabled))
        if not (isinstance(self.bh_level, (int, float)) and 0 < self.bh_level < 1):
            raise ConfigError(f"must be in (0, 1), got {self.bh_level!r}", field="bh_level")
        if not (isinstance(self.severity_multiplier, (int, float)) and 1 <= self.severity_multiplier < math.inf):
            raise ConfigError(f"must be a finite number >= 1, got {self.severity_multiplier!r}",
                              field="severity_multiplier")
        if not (isinstance(self.min_count, int) and self.min_count >= 1):
            raise ConfigError(f"must be an integer >= 1, got {self.min_count!r}", field="min_count")

    def floor(self, test: TestName | str) -> float:
        return self.floors[TestName(test)]


def _json_number(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


@dataclass(frozen=True, slots=True)
class Finding:
    """The decision about one test of one feature in one window. Every result yields one."""

    model: str
    feature: str
    test: str
    mode: Mode
    statistic: float
    p_value: float | None
    q_value: float | None
    effect: float
    floor: float
    significant: bool
    verdict: Verdict
    message: str

    def __post_init__(self) -> None:
        if self.mode not in _MODES:
            raise ConfigError(f"must be one of {_MODES}, got {self.mode!r}", field="mode")
        if self.verdict not in _VERDICTS:
            raise ConfigError(f"must be one of {_VERDICTS}, got {self.verdict!r}", field="verdict")

    @property
    def alerting(self) -> bool:
        return self.verdict != "ok"

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (non-finite numbers become None)."""
        return {
            "model": self.model,
            "feature": self.feature,
            "test": self.test,
            "mode": self.mode,
            "statistic": _json_number(self.statistic),
            "p_value": _json_number(self.p_value),
            "q_value": _json_number(self.q_value),
            "effect": _json_number(self.effect),
            "floor": _json_number(self.floor),
            "significant": self.significant,
            "verdict": self.verdict,
            "message": self.message,
        }


def bh_adjust(p_values: Sequence[float]) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values), in the input order.

    q_(i) = min(1, min_{j >= i} p_(j) * m / j) over the ascending p_(1..m); rejecting
    ``q <= level`` is the BH step-up procedure at that level (as R's p.adjust "BH" and
    ``scipy.stats.false_discovery_control``).
    """
    p = np.asarray(p_values, dtype=np.float64)
    m = p.shape[0]
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    scaled = p[order] * m / np.arange(1, m + 1)
    q_sorted = np.minimum.accumulate(scaled[::-1])[::-1]
    q = np.empty(m)
    q[order] = np.clip(q_sorted, 0.0, 1.0)
    return q


PolicyLike = Policy | Callable[[str], Policy]


def _resolver(policy: PolicyLike) -> Callable[[str], Policy]:
    if isinstance(policy, Policy):
        return lambda _feature: policy
    return policy


def _g(x: float) -> str:
    return f"{x:.2g}" if abs(x) < 1e5 else f"{x:.1e}"


def _describe(feature: str, r: TestResult, floor: float) -> str:
    e, fl = _g(r.effect), _g(floor)
    t = r.test
    if t is TestName.MEAN_SHIFT:
        return f"{feature}: mean moved {e} baseline sd (floor {fl})"
    if t is TestName.VARIANCE_RATIO:
        return f"{feature}: variance changed {_g(r.statistic)}x (|ln ratio| {e}, floor {fl})"
    if t is TestName.KS:
        return f"{feature}: KS distance {e} (floor {fl})"
    if t is TestName.WASSERSTEIN:
        return f"{feature}: Wasserstein distance {e} baseline sd (floor {fl})"
    if t is TestName.PSI:
        return f"{feature}: PSI {e} (floor {fl})"
    if t is TestName.JSD:
        return f"{feature}: Jensen-Shannon divergence {e} bits (floor {fl})"
    if t is TestName.LINF:
        return f"{feature}: share of {r.detail('value')!r} moved {e} (L-inf, floor {fl})"
    if t is TestName.CHI_SQUARED:
        return f"{feature}: category mix changed, largest share change {e} (chi2 {_g(r.statistic)}, floor {fl})"
    if t is TestName.PSI_CATEGORICAL:
        return f"{feature}: PSI over categories {e} (floor {fl})"
    if t is TestName.UNSEEN_SHARE:
        top = r.detail("top")
        example = f", e.g. {top!r}" if top is not None else ""
        return (f"{feature}: {_g(100 * r.effect)}% of values never seen in the reference{example} "
                f"(floor {_g(100 * floor)}%)")
    if t is TestName.JSD_TFDV:
        return f"{feature}: TFDV Jensen-Shannon divergence {e} (floor {fl})"
    if t is TestName.LINF_TFDV:
        return f"{feature}: TFDV L-infinity distance {e}, value {r.detail('value')!r} (floor {fl})"
    if t is TestName.MISSING_RATE:
        before, after = r.detail("share_reference", 0.0), r.detail("share_current", 0.0)
        return f"{feature}: missing share {before:.1%} -> {after:.1%} (change {e}, floor {fl})"
    return f"{feature}: {t.value} effect {e} (floor {fl})"  # pragma: no cover - every test has a line above


def _q_text(q: float) -> str:
    return "q<1e-12" if q < 1e-12 else f"q={q:.2g}"


def _message(feature: str, r: TestResult, floor: float, q: float | None, gated: str | None) -> str:
    if not r.computed:
        return f"{feature}: {r.test.value} not computed: {r.note} (n_ref={r.n_reference}, n_cur={r.n_current})"
    text = _describe(feature, r, floor)
    if q is not None:
        text += f", {_q_text(q)}"
    if gated is not None:
        text += f", {gated}"
    if r.note is not None:
        text += f"; {r.note}"
    return text


def decide(results: Sequence[tuple[str, TestResult]], *, policy: PolicyLike, model: str,
           mode: Mode) -> tuple[Finding, ...]:
    """Turn one window's results (``(feature, result)`` pairs) into findings, in input order.

    ``policy`` is one :class:`Policy` or a function feature -> Policy. The BH family is every
    result in ``results`` that has a p-value; each feature's ``bh_level`` is then applied
    to its q-values (one level for all = the plain BH procedure).
    """
    if mode not in _MODES:
        raise ConfigError(f"must be one of {_MODES}, got {mode!r}", field="mode")
    resolve = _resolver(policy)
    with_p = [i for i, (_, r) in enumerate(results) if r.p_value is not None]
    q_values: dict[int, float] = dict(zip(with_p, bh_adjust([results[i][1].p_value for i in with_p]).tolist()))
    findings = []
    for i, (feature, r) in enumerate(results):
        pol = resolve(feature)
        floor = pol.floor(r.test)
        q = q_values.get(i)
        gated = None
        if not r.computed:
            significant = False
        elif q is not None:
            significant = q <= pol.bh_level
        else:
            n = min(r.n_reference, r.n_current)
            significant = n >= pol.min_count
            if not significant:
                gated = f"too few values for a distance alone (n={n} < {pol.min_count})"
        if significant and r.effect >= floor:
            verdict: Verdict = "critical" if r.effect >= pol.severity_multiplier * floor else "warning"
        else:
            verdict = "ok"
        findings.append(Finding(
            model=model, feature=feature, test=r.test.value, mode=mode, statistic=r.statistic,
            p_value=r.p_value, q_value=q, effect=r.effect, floor=floor, significant=significant,
            verdict=verdict, message=_message(feature, r, floor, q, gated),
        ))
    return tuple(findings)


def apply_persistence(findings: Sequence[Finding], history: Sequence[Sequence[Finding]], *,
                      policy: PolicyLike) -> tuple[Finding, ...]:
    """Keep an alert only if it persists: k of the last n windows, this one included.

    ``history`` holds the findings of earlier windows *as decided before this rule*
    (``WindowReport.decided``), oldest first (only the last n - 1 matter): were it fed the
    persisted verdicts, an alert held back once could never reach k. A finding matches an earlier one with the same model, feature, test and mode.
    Alerts that do not persist become ``ok`` with the reason appended to the message;
    findings whose policy has no persistence rule pass unchanged. Pure: no state kept.
    """
    resolve = _resolver(policy)
    out = []
    for f in findings:
        rule = resolve(f.feature).persistence
        if not f.alerting or rule is None or rule.k <= 1:
            out.append(f)
            continue
        recent = history[max(len(history) - (rule.n - 1), 0):] if rule.n > 1 else ()
        key = (f.model, f.feature, f.test, f.mode)
        hits = 1 + sum(
            any(g.alerting and (g.model, g.feature, g.test, g.mode) == key for g in window) for window in recent
        )
        if hits >= rule.k:
            out.append(f)
        else:
            reason = f"alerting in {hits} of the last {rule.n} windows; needs {rule.k}"
            out.append(replace(f, verdict="ok", message=f"{f.message} ({reason})"))
    return tuple(out)
