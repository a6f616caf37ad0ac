"""Compare one window's profile with a reference profile and decide: the monitor's main entry.

:func:`evaluate` runs every enabled test that applies to each feature present in both
profiles (tests from :data:`monitor.compare.REGISTRY`, switches and floors from the
:class:`~monitor.config.MonitorConfig`), then hands all results to
:func:`monitor.decide.decide` at once (one Benjamini-Hochberg family per window) and, given
the earlier windows' findings, adds the trend findings and applies the persistence rule.

The caller chooses the reference and names it with ``mode`` (:data:`monitor.decide.Mode`): the
training baseline (``skew``), the previous window (``drift``), the same slot one period earlier
(``seasonal``), the median of the last k windows (``median``), a pinned window (``pinned``), the
other A/B version's window (``version``). One window may be evaluated against several
references; each call is one decision family.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from monitor.compare.registry import REGISTRY, applicable_tests
from monitor.compare.results import TestResult
from monitor.compare.views import ViewCache, categorical_view, numeric_view
from monitor.config import MonitorConfig
from monitor.decide import Finding, Mode, Policy, apply_persistence, decide, trend_findings
from monitor.errors import SchemaError, StatisticsError

if TYPE_CHECKING:  # pragma: no cover - typing only
    from monitor.stats import Profile

__all__ = ["WindowReport", "TestFailure", "evaluate"]


@dataclass(frozen=True, slots=True)
class TestFailure:
    """A test that could not be computed for one feature (the rest of the window still is)."""

    __test__ = False  # not a pytest test class

    feature: str
    test: str
    error: str


@dataclass(frozen=True, slots=True)
class WindowReport:
    """The findings of one window against its reference.

    ``rows``/``reference_rows`` are the profiles' row counts; ``unmatched`` names features
    present in only one of the two profiles (not compared); ``failures`` lists tests that
    raised a :class:`StatisticsError` (or an arithmetic error: a numeric edge case no test should
    reach), their feature's other tests still ran.
    """

    model: str
    mode: Mode
    rows: int
    reference_rows: int
    findings: tuple[Finding, ...]
    unmatched: tuple[str, ...] = ()
    failures: tuple[TestFailure, ...] = ()
    decided: tuple[Finding, ...] = ()  # the verdicts before the persistence rule: next windows' history

    @property
    def alerting(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.alerting)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict."""
        return {
            "model": self.model,
            "mode": self.mode,
            "rows": self.rows,
            "reference_rows": self.reference_rows,
            "findings": [f.to_dict() for f in self.findings],
            "unmatched": list(self.unmatched),
            "failures": [{"feature": x.feature, "test": x.test, "error": x.error} for x in self.failures],
        }


def evaluate(*, reference: "Profile", current: "Profile", model: str, config: MonitorConfig, mode: Mode,
             history: Sequence[Sequence[Finding]] = (), families: int = 1,
             views: ViewCache | None = None) -> WindowReport:
    """Run the enabled comparisons of every shared feature and decide on them.

    A feature whose kind differs between the two profiles raises :class:`SchemaError`
    naming it (the profiles do not describe the same model). ``history`` (earlier windows'
    ``WindowReport.decided`` against the same kind of reference, oldest first) feeds the
    persistence rule and the trend tests; with no history a rule of k > 1 holds the first alert
    back, as it should, and trends report ``insufficient_data``. ``families``: how many windows
    decided apart share one false-discovery budget (a model's segments of one time span, all
    traffic included); each is tested at ``bh_level / families`` (:func:`~monitor.decide.family_adjust`).
    ``views``: where the caller keeps the views of statistics it will compare again unchanged (see
    :class:`~monitor.compare.views.ViewCache`); the findings are the same with or without it.
    """
    ref_specs = {spec.name: spec for spec in reference.specs}
    cur_names = {spec.name for spec in current.specs}
    unmatched = tuple(sorted(set(ref_specs) ^ cur_names))
    policies: dict[str, Policy] = {}
    results: list[tuple[str, TestResult]] = []
    failures: list[TestFailure] = []
    for spec in current.specs:
        ref_spec = ref_specs.get(spec.name)
        if ref_spec is None:
            continue
        if ref_spec.kind != spec.kind:
            raise SchemaError(f"is {ref_spec.kind} in the reference but {spec.kind} in the current window",
                              feature=spec.name)
        policy = policies[spec.name] = config.policy_for(model, spec.name)
        if views is None:
            view = numeric_view if spec.kind == "numeric" else categorical_view
        else:
            view = views.numeric if spec.kind == "numeric" else views.categorical
        ref_view, cur_view = view(reference.features[spec.name]), view(current.features[spec.name])
        for name in applicable_tests(spec.kind):
            if name not in policy.enabled:
                continue
            try:
                results.append((spec.name, REGISTRY[name].function(reference=ref_view, current=cur_view)))
            except StatisticsError as exc:
                failures.append(TestFailure(feature=spec.name, test=name.value, error=str(exc)))
            except (ArithmeticError, ValueError) as exc:  # a numeric edge no test should reach: the others still run
                failures.append(TestFailure(feature=spec.name, test=name.value, error=f"{type(exc).__name__}: {exc}"))
    base = decide(results, policy=policies.__getitem__, model=model, mode=mode, families=families)
    sizes = {(feature, r.test.value): min(r.n_reference, r.n_current) for feature, r in results}
    decided = base + trend_findings(base, history, policy=policies.__getitem__, n_current=sizes,
                                    families=families)
    findings = apply_persistence(decided, history, policy=policies.__getitem__)
    return WindowReport(model=model, mode=mode, rows=current.rows, reference_rows=reference.rows,
                        findings=findings, unmatched=unmatched, failures=tuple(failures), decided=decided)
