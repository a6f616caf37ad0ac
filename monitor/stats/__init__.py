"""Mergeable statistics: per-feature summaries and the per-window :class:`Profile`.

Every statistic is a function of the multiset of values it saw: the same rows give the same
bytes whatever the batching of updates and however partial statistics are merged.

Pure core: numpy and pandas only (no Kafka, HTTP, database or TensorFlow).
"""

from monitor.stats.base import Mergeable, Statistic
from monitor.stats.categorical import (BASELINE_CAPACITY, DEFAULT_CAPACITY, HLL_LG_K, CategoricalStats, Tally,
                                      category_key, normalize_category, tally)
from monitor.stats.codec import FORMAT_VERSION
from monitor.stats.instances import columns_from_instances, unknown_feature_counts
from monitor.stats.numeric import BASELINE_BINS, DEFAULT_BINS, NumericStats, to_float_array
from monitor.stats.profile import FeatureStats, Profile

__all__ = [
    "Mergeable",
    "Statistic",
    "NumericStats",
    "CategoricalStats",
    "Profile",
    "FeatureStats",
    "Tally",
    "tally",
    "normalize_category",
    "to_float_array",
    "columns_from_instances",
    "unknown_feature_counts",
    "DEFAULT_BINS",
    "BASELINE_BINS",
    "DEFAULT_CAPACITY",
    "BASELINE_CAPACITY",
    "category_key",
    "HLL_LG_K",
    "FORMAT_VERSION",
]
