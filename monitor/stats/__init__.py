"""Mergeable statistics: per-feature sketches and the per-window :class:`Profile`.

Pure core: numpy, pandas and Apache DataSketches only (no Kafka, HTTP, database or TensorFlow).
"""

from monitor.stats.base import Mergeable, Statistic
from monitor.stats.categorical import DEFAULT_CAPACITY, HLL_LG_K, CategoricalStats, Tally, normalize_category, tally
from monitor.stats.codec import FORMAT_VERSION
from monitor.stats.instances import columns_from_instances, unknown_feature_counts
from monitor.stats.numeric import DEFAULT_K, NumericStats, to_float_array
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
    "DEFAULT_K",
    "DEFAULT_CAPACITY",
    "HLL_LG_K",
    "FORMAT_VERSION",
]
