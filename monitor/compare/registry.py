"""The one table of comparisons: which function computes each test and for which kinds.

Nothing else maps test names to code; add a test here and everywhere (config validation,
evaluate, decide) picks it up. The TFDV-compatible tests (``ADAPTER_TESTS``) are not here:
they need TFDV's protos and are computed by the adapter ``monitor.tfdv_interop``.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

from monitor.compare import categorical, missing, numeric
from monitor.compare.results import TestName, TestResult
from monitor.schema import FeatureKind

__all__ = ["RegisteredTest", "REGISTRY", "applicable_tests"]


class RegisteredTest(NamedTuple):
    function: Callable[..., TestResult]
    kinds: frozenset[FeatureKind]


_NUMERIC: frozenset[FeatureKind] = frozenset({"numeric"})
_CATEGORICAL: frozenset[FeatureKind] = frozenset({"categorical"})
_ANY: frozenset[FeatureKind] = frozenset({"numeric", "categorical"})

REGISTRY: dict[TestName, RegisteredTest] = {
    TestName.MEAN_SHIFT: RegisteredTest(numeric.mean_shift, _NUMERIC),
    TestName.VARIANCE_RATIO: RegisteredTest(numeric.variance_ratio, _NUMERIC),
    TestName.KS: RegisteredTest(numeric.ks, _NUMERIC),
    TestName.WASSERSTEIN: RegisteredTest(numeric.wasserstein, _NUMERIC),
    TestName.PSI: RegisteredTest(numeric.psi, _NUMERIC),
    TestName.JSD: RegisteredTest(numeric.jsd, _NUMERIC),
    TestName.LINF: RegisteredTest(categorical.linf, _CATEGORICAL),
    TestName.CHI_SQUARED: RegisteredTest(categorical.chi_squared, _CATEGORICAL),
    TestName.PSI_CATEGORICAL: RegisteredTest(categorical.psi_categorical, _CATEGORICAL),
    TestName.UNSEEN_SHARE: RegisteredTest(categorical.unseen_share, _CATEGORICAL),
    TestName.MISSING_RATE: RegisteredTest(missing.missing_rate, _ANY),
}


def applicable_tests(kind: FeatureKind) -> tuple[TestName, ...]:
    """The tests applicable to a feature of ``kind``, in registry order."""
    return tuple(name for name, entry in REGISTRY.items() if kind in entry.kinds)
