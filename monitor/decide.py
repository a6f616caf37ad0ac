"""The one place where comparison results become decisions.

Rule (per result of one window):

0. **Enough data.** Below a test's minimum sample size (the smaller of the two sides, table
   below) the finding's verdict is ``insufficient_data`` and it names the minimum: never
   silence, never an alert. A result that could not be computed at all (an empty window)
   gets the same verdict.
1. **Statistical gate.** All p-values of the window (features x tests) are adjusted
   together with Benjamini-Hochberg (1995): ``q_(i) = min_{j>=i} p_(j) m / j``. A result
   with a p-value passes when ``q <= bh_level``. A result *without* a p-value (wasserstein,
   psi, jsd, linf, psi_categorical, jsd_tfdv, linf_tfdv) needs ``min_count`` values on both
   sides (its minimum sample size, rule 0), because a distance alone is noisy on small
   samples (measured with no change, 20,000-row reference: 99th percentile of wasserstein
   0.12 baseline sd at 500 rows, 0.09 at 1,000, 0.06 at 2,000; psi, jsd and linf stay below
   half their floors from 500 rows), and then passes.
2. **Practical floor.** ``effect >= floor`` for that test. A finding alerts only when it
   passes both: at large n everything is significant, and the floor keeps tiny but real
   changes (and sketch error) quiet.
3. **Severity.** ``critical`` when ``effect >= severity_multiplier * floor``, else
   ``warning``; ``ok`` when the finding does not alert.
4. **Large-sample tier** (:class:`LargeSample`): a share-scale result (chi_squared,
   missing_rate by default) whose evidence is overwhelming (``q <= large_sample.q_value``,
   1e-10) in a large window (at least ``large_sample.min_count`` values, 10,000) is a
   ``warning`` from ``large_sample.fraction * floor`` on (half the floor): a category share
   moving 5-10 points with q below 1e-100 is reported, not hidden under the 0.1 floor. Never
   ``critical``.
5. **Trends** (:func:`trend_findings`, :class:`Trend`): against a fixed reference (every mode but
   ``drift``), a base test's effect rising steadily over the last windows is a finding of its
   own (``trend_<test>``), at most a ``warning``.
6. **Persistence** (optional, :func:`apply_persistence`): an alert stands only when the same
   (model, feature, test, mode) alerted in at least k of the last n windows.

Default floors and minimum sample sizes (effect scales are those of :mod:`monitor.compare`).
The minimum of a test on a share scale (ks, linf's p-valued twin chi_squared, unseen_share,
missing_rate) is ``ceil(2 / floor)``: from there one value moves the share by at most half the
floor, so no single row can make an alert (a 1-row window with its value missing moved the
missing share by 100 points, and a z-test then reported q = 0.0002). The moment tests need 100
values: the 1% trim removes its first value per tail there (below it one outlier sets the
mean and the variance) and Welch's and the F-test's large-sample forms hold. Distances
without a p-value need ``min_count`` (1,000). The minimum follows the floor when a floor is
configured, and can be set per test (``min_samples``).

================  =====  =========  ================================================================
test              floor  min n      meaning
================  =====  =========  ================================================================
mean_shift        0.2    100        (trimmed) mean moved 0.2 baseline sd (Cohen's "small" effect)
variance_ratio    0.405  100        |ln(var_cur / var_ref)| >= ln 1.5: variance outside [1/1.5, 1.5]x;
                                    critical at 2x floor = variance 2.25x, i.e. sd 1.5x
ks                0.1    20         KS distance D
wasserstein       0.2    1,000      W1 in baseline sd; W1 >= |mean shift|, so the same floor as
                                    mean_shift keeps a pure location shift from alerting here first
psi               0.2    1,000      PSI on baseline-decile bins (the usual "significant shift" mark)
jsd               0.1    1,000      JS divergence in bits on the same bins
linf              0.1    1,000      largest change of one value's share (TFDV's usual threshold)
chi_squared       0.1    20         largest change of one bucket's share (same scale as linf)
psi_categorical   0.2    1,000      PSI over categories
unseen_share      0.01   200        1% of current values never seen in the reference
missing_rate      0.05   40         missing share moved 5 percentage points
jsd_tfdv          0.1    1,000      TFDV's numeric JSD (bits, 10 equal-width buckets; monitor.tfdv_interop)
linf_tfdv         0.1    1,000      TFDV's infinity_norm (same scale as linf)
tfdv_schema       1      1          one TFDV schema anomaly (type, domain, range, presence)
trend_<test>      0.3 x  8 windows  the base test's effect has risen steadily to 0.3 of its floor
================  =====  =========  ================================================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Callable, Literal, Mapping, Sequence, get_args

import numpy as np

from monitor.compare.results import TREND_OF, TestName, TestResult
from monitor.compare.trend import trends as trend_results
from monitor.errors import ConfigError

_TREND_BASE: dict[TestName, TestName] = {v: k for k, v in TREND_OF.items()}

__all__ = [
    "Mode",
    "MODES",
    "FIXED_REFERENCE_MODES",
    "Verdict",
    "VERDICTS",
    "ALERTING_VERDICTS",
    "DEFAULT_FLOORS",
    "DEFAULT_BH_LEVEL",
    "DEFAULT_SEVERITY_MULTIPLIER",
    "DEFAULT_MIN_COUNT",
    "MOMENT_MIN_SAMPLES",
    "Persistence",
    "LargeSample",
    "Trend",
    "Policy",
    "Finding",
    "default_min_samples",
    "bh_adjust",
    "decide",
    "trend_findings",
    "apply_persistence",
]

#: What a window is compared with; the caller names it. skew: the training baseline; drift: the
#: previous window; seasonal: the same slot one period earlier; median: the median of the last k
#: windows; pinned: a pinned reference window; version: the other A/B version's window.
Mode = Literal["skew", "drift", "seasonal", "median", "pinned", "version"]
Verdict = Literal["ok", "warning", "critical", "insufficient_data"]
MODES: tuple[str, ...] = get_args(Mode)
VERDICTS: tuple[str, ...] = get_args(Verdict)
ALERTING_VERDICTS: frozenset[str] = frozenset({"warning", "critical"})
#: Modes whose reference stays put from window to window (trends are tested against these only).
FIXED_REFERENCE_MODES: frozenset[str] = frozenset(MODES) - {"drift"}
_MODES, _VERDICTS = MODES, VERDICTS

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
})  # a trend test's floor, unless set, is Trend.fraction x its base test's floor (Policy.floor)
DEFAULT_BH_LEVEL = 0.01
DEFAULT_SEVERITY_MULTIPLIER = 2.0
#: Fewest values on each side before a test *without* a p-value may alert.
DEFAULT_MIN_COUNT = 1000
#: Fewest values on each side for mean_shift and variance_ratio (see the table above).
MOMENT_MIN_SAMPLES = 100
_SHARE_SCALE = frozenset({TestName.KS, TestName.CHI_SQUARED, TestName.UNSEEN_SHARE, TestName.MISSING_RATE})
_MOMENTS = frozenset({TestName.MEAN_SHIFT, TestName.VARIANCE_RATIO})
_P_LESS = frozenset({TestName.WASSERSTEIN, TestName.PSI, TestName.JSD, TestName.LINF, TestName.PSI_CATEGORICAL,
                     TestName.JSD_TFDV, TestName.LINF_TFDV})


def default_min_samples(test: TestName, *, floor: float, min_count: int) -> int:
    """The minimum sample size of ``test`` at ``floor`` (the rules in the module docstring)."""
    if test in _SHARE_SCALE:
        return max(1, math.ceil(2.0 / floor - 1e-9)) if floor > 0 else 1
    if test in _MOMENTS:
        return MOMENT_MIN_SAMPLES
    if test in _P_LESS:
        return min_count
    return 1


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


@dataclass(frozen=True, slots=True)
class LargeSample:
    """Rule 4: a ``warning`` from ``fraction * floor`` when ``q <= q_value`` and the current window
    holds at least ``min_count`` values, for the share-scale ``tests`` (by default the category mix
    and the missing share). ``enabled=False`` switches it off. (The reference's size is already in
    q: a small reference cannot give q <= 1e-10 for a small change.)"""

    enabled: bool = True
    fraction: float = 0.5
    q_value: float = 1e-10
    min_count: int = 10_000
    tests: frozenset[TestName] = frozenset({TestName.CHI_SQUARED, TestName.MISSING_RATE})

    def __post_init__(self) -> None:
        if not (isinstance(self.fraction, (int, float)) and 0 < self.fraction <= 1):
            raise ConfigError(f"must be in (0, 1], got {self.fraction!r}", field="large_sample.fraction")
        if not (isinstance(self.q_value, (int, float)) and 0 < self.q_value < 1):
            raise ConfigError(f"must be in (0, 1), got {self.q_value!r}", field="large_sample.q_value")
        if not (isinstance(self.min_count, int) and self.min_count >= 1):
            raise ConfigError(f"must be an integer >= 1, got {self.min_count!r}", field="large_sample.min_count")
        try:
            object.__setattr__(self, "tests", frozenset(TestName(t) for t in self.tests))
        except ValueError as exc:
            raise ConfigError(str(exc), field="large_sample.tests") from None


@dataclass(frozen=True, slots=True)
class Trend:
    """Rule 5: over the last ``windows`` windows (this one included; at least ``min_windows``
    with a computed result), a rising effect (Mann-Kendall, one-sided, BH across the window's
    trend results at ``level``) whose Sen line reaches ``fraction * floor`` now, while this
    window's own result is significant and not already alerting, is a ``warning``."""

    enabled: bool = True
    windows: int = 12
    min_windows: int = 8
    level: float = 0.001
    fraction: float = 0.3

    def __post_init__(self) -> None:
        if not (isinstance(self.min_windows, int) and 8 <= self.min_windows):
            raise ConfigError(f"must be an integer >= 8, got {self.min_windows!r}", field="trend.min_windows")
        if not (isinstance(self.windows, int) and self.min_windows <= self.windows <= 32):
            raise ConfigError(f"must be an integer in [min_windows, 32], got {self.windows!r}", field="trend.windows")
        if not (isinstance(self.level, (int, float)) and 0 < self.level < 1):
            raise ConfigError(f"must be in (0, 1), got {self.level!r}", field="trend.level")
        if not (isinstance(self.fraction, (int, float)) and 0 < self.fraction <= 1):
            raise ConfigError(f"must be in (0, 1], got {self.fraction!r}", field="trend.fraction")


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
    min_samples: Mapping[TestName, int] = field(default_factory=dict)  # per-test minimum sample sizes
    large_sample: LargeSample = LargeSample()
    trend: Trend = Trend()

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
        minima = {}
        for name, value in self.min_samples.items():
            try:
                name = TestName(name)
            except ValueError:
                raise ConfigError(f"unknown test {name!r}", field=f"min_samples.{name}") from None
            if isinstance(value, bool) or not (isinstance(value, int) and value >= 1):
                raise ConfigError(f"must be an integer >= 1, got {value!r}", field=f"min_samples.{name.value}")
            minima[name] = value
        object.__setattr__(self, "min_samples", MappingProxyType(minima))
        # every test's floor and minimum worked out once (a window asks for them a few hundred times);
        # keyed by the members, which a test's name as a string finds too (TestName is a StrEnum)
        floors_of, minima_of = {}, {}
        for name in TestName:
            try:
                floors_of[name] = self._floor(name)
                minima_of[name] = self._minimum(name)
            except KeyError:  # a test with no floor: asking raises, as it always did
                pass
        object.__setattr__(self, "_floors_of", floors_of)
        object.__setattr__(self, "_minima_of", minima_of)

    def floor(self, test: TestName | str) -> float:
        try:
            return self._floors_of[test]  # type: ignore[attr-defined]
        except KeyError:
            return self._floor(TestName(test))

    def minimum(self, test: TestName | str) -> int:
        """Fewest values each side needs for ``test`` to decide (rule 0)."""
        try:
            return self._minima_of[test]  # type: ignore[attr-defined]
        except KeyError:
            return self._minimum(TestName(test))

    def _floor(self, name: TestName) -> float:
        if name in self.floors:
            return self.floors[name]
        return self.trend.fraction * self.floors[_TREND_BASE[name]]

    def _minimum(self, name: TestName) -> int:
        if name in self.min_samples:
            return self.min_samples[name]
        base = _TREND_BASE.get(name)
        if base is not None:  # a trend needs its base test's minimum in the current window
            return self._minimum(base)
        return default_min_samples(name, floor=self._floor(name), min_count=self.min_count)


def _json_number(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


@dataclass(frozen=True, slots=True)
class Finding:
    """The decision about one test of one feature in one window. Every result yields one.

    ``min_samples`` is set when ``verdict == "insufficient_data"``: the values each side needs.
    """

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
    min_samples: int | None = None

    def __post_init__(self) -> None:
        if self.mode not in _MODES:
            raise ConfigError(f"must be one of {_MODES}, got {self.mode!r}", field="mode")
        if self.verdict not in _VERDICTS:
            raise ConfigError(f"must be one of {_VERDICTS}, got {self.verdict!r}", field="verdict")
        if (self.verdict == "insufficient_data") != (self.min_samples is not None):
            raise ConfigError("min_samples is set exactly when the verdict is insufficient_data", field="min_samples")

    @property
    def alerting(self) -> bool:
        return self.verdict in ALERTING_VERDICTS

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
            "min_samples": self.min_samples,
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
    if t in _TREND_BASE:
        return (f"{feature}: {_TREND_BASE[t].value} effect rising {_g(float(r.detail('slope', 0.0)))} per window over "
                f"{int(float(r.detail('windows', 0)))} windows, now {e} (trend floor {fl})")
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


def _decide_one(feature: str, r: TestResult, q: float | None, pol: Policy, *, model: str, mode: Mode) -> Finding:
    floor = pol.floor(r.test)
    need = pol.minimum(r.test)
    n = min(r.n_reference, r.n_current)
    if not r.computed or n < need:
        why = r.note if not r.computed else f"n={n}"
        message = (f"{feature}: {r.test.value} has too little data ({why}; needs {need} values each side; "
                   f"n_ref={r.n_reference}, n_cur={r.n_current})")
        return Finding(model=model, feature=feature, test=r.test.value, mode=mode, statistic=r.statistic,
                       p_value=r.p_value, q_value=q, effect=r.effect, floor=floor, significant=False,
                       verdict="insufficient_data", message=message, min_samples=need)
    significant = q <= pol.bh_level if q is not None else True  # p-less: n >= min_count (rule 0)
    gated = None
    if significant and r.effect >= floor:
        verdict: Verdict = "critical" if r.effect >= pol.severity_multiplier * floor else "warning"
    else:
        verdict = "ok"
        tier = pol.large_sample
        if (tier.enabled and r.test in tier.tests and q is not None and q <= tier.q_value
                and r.n_current >= tier.min_count and r.effect >= tier.fraction * floor):
            verdict = "warning"
            gated = (f"large-sample tier: overwhelming evidence in {r.n_current} values, effect at least "
                     f"{_g(tier.fraction)} x floor")
    return Finding(model=model, feature=feature, test=r.test.value, mode=mode, statistic=r.statistic,
                   p_value=r.p_value, q_value=q, effect=r.effect, floor=floor, significant=significant,
                   verdict=verdict, message=_message(feature, r, floor, q, gated))


def _check_families(families: int) -> None:
    if isinstance(families, bool) or not isinstance(families, int) or families < 1:
        raise ConfigError(f"must be an integer >= 1, got {families!r}", field="families")


def family_adjust(q_values: np.ndarray, families: int) -> np.ndarray:
    """q-values of one of ``families`` families decided apart, made to answer for all of them.

    Rejecting ``families * q <= level`` runs each family's BH at ``level / families``; with V_i
    false and R_i total rejections per family, V/R = sum V_i / sum R_i <= sum V_i / R_i, so the
    false discovery rate over the union of the families is at most ``level`` (whatever their
    dependence, and with no family waiting for another). One family: unchanged.
    """
    if families == 1:
        return q_values
    return np.minimum(1.0, np.asarray(q_values, dtype=np.float64) * families)


def decide(results: Sequence[tuple[str, TestResult]], *, policy: PolicyLike, model: str,
           mode: Mode, families: int = 1) -> tuple[Finding, ...]:
    """Turn one window's results (``(feature, result)`` pairs) into findings, in input order.

    ``policy`` is one :class:`Policy` or a function feature -> Policy. The BH family is every
    result in ``results`` that has a p-value and enough data (rule 0); each feature's
    ``bh_level`` is then applied to its q-values (one level for all = the plain BH procedure).
    ``families`` > 1 when this window is one of that many decided apart whose false discoveries
    count together (the segments of one time span): see :func:`family_adjust`.
    """
    if mode not in _MODES:
        raise ConfigError(f"must be one of {_MODES}, got {mode!r}", field="mode")
    _check_families(families)
    resolve = _resolver(policy)
    enough = [r.computed and min(r.n_reference, r.n_current) >= resolve(f).minimum(r.test) for f, r in results]
    with_p = [i for i, (_, r) in enumerate(results) if r.p_value is not None and enough[i]]
    adjusted = family_adjust(bh_adjust([results[i][1].p_value for i in with_p]), families)
    q_values: dict[int, float] = dict(zip(with_p, adjusted.tolist()))
    return tuple(_decide_one(feature, r, q_values.get(i), resolve(feature), model=model, mode=mode)
                 for i, (feature, r) in enumerate(results))


def _key(f: Finding) -> tuple[str, str, str, str]:
    return (f.model, f.feature, f.test, f.mode)


def trend_findings(findings: Sequence[Finding], history: Sequence[Sequence[Finding]], *, policy: PolicyLike,
                   n_current: Mapping[tuple[str, str], int] | None = None, families: int = 1) -> tuple[Finding, ...]:
    """Rule 5: one ``trend_<test>`` finding per base finding of this window that has a trend test.

    ``findings`` are this window's decided findings; ``history`` the earlier windows' decided
    findings (``WindowReport.decided``), oldest first, of which the last ``Trend.windows - 1``
    count. The series is the base test's effect in every window where it was decided (not
    ``insufficient_data``), then this window's. Trend p-values are adjusted with BH among
    themselves (and for ``families`` as :func:`decide` does). Drift mode (the previous window as reference) has no trends: its reference moves.
    Pure: the caller passes the history.
    """
    resolve = _resolver(policy)
    wanted = {_key(f): resolve(f.feature).trend.windows - 1 for f in findings
              if f.mode in FIXED_REFERENCE_MODES and TestName(f.test) in TREND_OF}
    if not wanted:
        return ()  # drift mode, or no test with a trend: the history is not read
    # (windows back, effect) of every earlier window where the base test was decided, within the last
    # ``windows - 1`` windows of its feature's rule (of the 32 a caller keeps, 11 by default)
    past: dict[tuple[str, str, str, str], list[tuple[int, float]]] = {k: [] for k in wanted}
    span = min(len(history), max(wanted.values()))
    for back, window in zip(range(span, 0, -1), history[len(history) - span:]):  # the key made inline
        for g in window:
            series = past.get((g.model, g.feature, g.test, g.mode))
            if series is not None and g.verdict != "insufficient_data":
                series.append((back, g.effect))
    candidates: list[tuple[Finding, TestResult | None, Policy]] = []
    series_of: list[tuple[int, TestName, list[float], int]] = []  # (candidate, trend test, effects, n)
    for f in findings:
        base = TestName(f.test)
        trend_name = TREND_OF.get(base)
        pol = resolve(f.feature)
        if trend_name is None or f.mode not in FIXED_REFERENCE_MODES or not pol.trend.enabled:
            continue
        if trend_name not in pol.enabled:
            continue
        series = [effect for back, effect in past.get(_key(f), ()) if back < pol.trend.windows]
        n = (n_current or {}).get((f.feature, f.test), 0)
        r = None
        if f.verdict == "insufficient_data":
            r = TestResult(test=trend_name, statistic=0.0, p_value=None, effect=0.0, n_reference=0, n_current=n,
                           computed=False, note="this window has too little data for the base test")
        else:
            series_of.append((len(candidates), trend_name, [*series, f.effect], n))
        candidates.append((f, r, pol))
    computed = trend_results([(name, effects, n, n) for _i, name, effects, n in series_of])
    for (i, name, effects, n), r in zip(series_of, computed):
        f, _none, pol = candidates[i]
        windows = len(effects)
        if windows < pol.trend.min_windows and r.computed:
            r = TestResult(test=name, statistic=0.0, p_value=None, effect=0.0, n_reference=n, n_current=n,
                           computed=False, note=f"{windows} windows, needs {pol.trend.min_windows}")
        candidates[i] = (f, r, pol)
    with_p = [i for i, (_, r, _) in enumerate(candidates) if r.p_value is not None]
    _check_families(families)
    adjusted = family_adjust(bh_adjust([candidates[i][1].p_value for i in with_p]), families)
    q_values = dict(zip(with_p, adjusted.tolist()))
    out = []
    for i, (f, r, pol) in enumerate(candidates):
        floor = pol.floor(r.test)
        if not r.computed:
            need = pol.trend.min_windows
            out.append(Finding(model=f.model, feature=f.feature, test=r.test.value, mode=f.mode, statistic=0.0,
                               p_value=None, q_value=None, effect=0.0, floor=floor, significant=False,
                               verdict="insufficient_data", min_samples=need,
                               message=f"{f.feature}: {r.test.value} not computed: {r.note}"))
            continue
        q = q_values.get(i)
        significant = q is not None and q <= pol.trend.level
        verdict: Verdict = "ok"
        gated = None
        if significant and r.effect >= floor:
            if f.alerting:
                gated = f"{f.test} is already alerting"
            elif not f.significant:
                gated = f"{f.test} is not significant in this window"
            else:
                verdict = "warning"
        out.append(Finding(model=f.model, feature=f.feature, test=r.test.value, mode=f.mode, statistic=r.statistic,
                           p_value=r.p_value, q_value=q, effect=r.effect, floor=floor, significant=significant,
                           verdict=verdict, message=_message(f.feature, r, floor, q, gated)))
    return tuple(out)


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
