"""Statistical comparisons of a reference summary and a current summary, one feature at a time.

Pure functions (keyword-only ``reference=``/``current=``) returning frozen
:class:`TestResult` values; :data:`REGISTRY` says which function serves which test and
feature kind. Decisions are not made here: see :mod:`monitor.decide`.
"""

from monitor.compare.categorical import chi_squared, linf, psi_categorical, unseen_share
from monitor.compare.missing import missing_rate
from monitor.compare.numeric import jsd, ks, mean_shift, psi, variance_ratio, wasserstein
from monitor.compare.registry import REGISTRY, RegisteredTest, applicable_tests
from monitor.compare.results import ADAPTER_TESTS, MAX_EFFECT, TREND_OF, TREND_TESTS, TestName, TestResult
from monitor.compare.trend import mann_kendall, trend
from monitor.compare.views import CategoricalView, NumericView, categorical_view, numeric_view

__all__ = [
    "TestName",
    "TestResult",
    "MAX_EFFECT",
    "ADAPTER_TESTS",
    "TREND_OF",
    "TREND_TESTS",
    "trend",
    "mann_kendall",
    "REGISTRY",
    "RegisteredTest",
    "applicable_tests",
    "NumericView",
    "CategoricalView",
    "numeric_view",
    "categorical_view",
    "mean_shift",
    "variance_ratio",
    "ks",
    "wasserstein",
    "psi",
    "jsd",
    "linf",
    "chi_squared",
    "psi_categorical",
    "unseen_share",
    "missing_rate",
]
