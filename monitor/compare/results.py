"""What every statistical comparison returns: a :class:`TestResult` named by a :class:`TestName`.

Results are plain frozen values. They never carry NaN or infinity: a comparison whose
formula would divide by zero (constant reference, empty window) returns a *defined* result
and says why in ``note``; an effect that would be infinite is capped at :data:`MAX_EFFECT`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from monitor.errors import StatisticsError

__all__ = ["TestName", "TestResult", "MAX_EFFECT", "ADAPTER_TESTS", "TREND_OF", "TREND_TESTS", "Detail"]

#: Cap for effects and statistics that would otherwise be infinite (e.g. a constant
#: reference whose value changed: "moved infinitely many baseline sd").
MAX_EFFECT = 1e6

Detail = tuple[str, float | str]


class TestName(StrEnum):
    """Every comparison skewwatch knows. The value is the stable name stored and shown."""

    __test__ = False  # not a pytest test class

    MEAN_SHIFT = "mean_shift"
    VARIANCE_RATIO = "variance_ratio"
    KS = "ks"
    WASSERSTEIN = "wasserstein"
    PSI = "psi"
    JSD = "jsd"
    LINF = "linf"
    CHI_SQUARED = "chi_squared"
    PSI_CATEGORICAL = "psi_categorical"
    UNSEEN_SHARE = "unseen_share"
    MISSING_RATE = "missing_rate"
    # TFDV-compatible values, computed by the adapter monitor.tfdv_interop (not in REGISTRY:
    # the core runs without TFDV), decided like every other result.
    JSD_TFDV = "jsd_tfdv"
    LINF_TFDV = "linf_tfdv"
    # TFDV's schema checks (types, domains, ranges, presence) on a window: the collector's
    # optional TFDV step (collectors/tfdv_checks.py); effect = number of anomaly reasons.
    TFDV_SCHEMA = "tfdv_schema"
    # Slow drift across windows (monitor.compare.trend over the effect series of one base test,
    # decided by monitor.decide.trend_findings): a finding of its own, at most a warning.
    TREND_MEAN_SHIFT = "trend_mean_shift"
    TREND_VARIANCE_RATIO = "trend_variance_ratio"
    TREND_KS = "trend_ks"
    TREND_LINF = "trend_linf"
    TREND_UNSEEN_SHARE = "trend_unseen_share"
    TREND_MISSING_RATE = "trend_missing_rate"


#: Tests whose results come from an adapter rather than from :data:`monitor.compare.REGISTRY`.
ADAPTER_TESTS: frozenset[TestName] = frozenset({TestName.JSD_TFDV, TestName.LINF_TFDV, TestName.TFDV_SCHEMA})

#: Base test -> the trend test over its effect series (the only tests a trend is run for).
TREND_OF: dict[TestName, TestName] = {
    TestName.MEAN_SHIFT: TestName.TREND_MEAN_SHIFT,
    TestName.VARIANCE_RATIO: TestName.TREND_VARIANCE_RATIO,
    TestName.KS: TestName.TREND_KS,
    TestName.LINF: TestName.TREND_LINF,
    TestName.UNSEEN_SHARE: TestName.TREND_UNSEEN_SHARE,
    TestName.MISSING_RATE: TestName.TREND_MISSING_RATE,
}
#: Tests computed across windows (from the history of findings), not from two profiles.
TREND_TESTS: frozenset[TestName] = frozenset(TREND_OF.values())


def _finite(name: str, value: float) -> float:
    value = float(value)
    if math.isnan(value):
        raise StatisticsError(f"{name} is NaN")
    return max(-MAX_EFFECT, min(MAX_EFFECT, value))


@dataclass(frozen=True, slots=True)
class TestResult:
    """One comparison of one feature between a reference and a current summary.

    ``statistic`` is the test's own statistic (z, F, D, ...), ``effect`` the size of the
    difference on the scale its practical floor is stated in (see monitor.decide),
    ``p_value`` is None for tests that have no sampling distribution here.
    ``n_reference``/``n_current`` are the sample sizes the test used. ``note`` explains a
    degenerate case (empty window, constant reference); ``computed`` is False when there
    was too little data to compute the test at all (then statistic = effect = 0 and no
    p-value). ``details`` are small extra values (e.g. the category that moved most).
    """

    __test__ = False  # not a pytest test class

    test: TestName
    statistic: float
    p_value: float | None
    effect: float
    n_reference: int
    n_current: int
    details: tuple[Detail, ...] = ()
    note: str | None = None
    computed: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.test, TestName):
            object.__setattr__(self, "test", TestName(self.test))
        object.__setattr__(self, "statistic", _finite("statistic", self.statistic))
        effect = _finite("effect", self.effect)
        if effect < 0:
            raise StatisticsError(f"effect must be >= 0, got {effect}")
        object.__setattr__(self, "effect", effect)
        if self.p_value is not None:
            p = float(self.p_value)
            if math.isnan(p):
                raise StatisticsError("p_value is NaN")
            object.__setattr__(self, "p_value", min(1.0, max(0.0, p)))
        if self.n_reference < 0 or self.n_current < 0:
            raise StatisticsError("sample sizes must be >= 0")
        object.__setattr__(self, "n_reference", int(self.n_reference))
        object.__setattr__(self, "n_current", int(self.n_current))

    def detail(self, key: str, default: float | str | None = None) -> float | str | None:
        """The value of one ``details`` entry, or ``default``."""
        for k, v in self.details:
            if k == key:
                return v
        return default
