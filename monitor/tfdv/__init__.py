"""TFDV's numbers from skewwatch statistics, pure (numpy only: no TFDV, TensorFlow or protos).

* :mod:`monitor.tfdv.histograms`: the STANDARD and QUANTILES histograms TFDV's
  ``basic_stats_generator`` builds for a numeric feature, rebuilt from a
  :class:`~monitor.stats.NumericStats` sketch.
* :mod:`monitor.tfdv.metrics`: TFDV's skew/drift comparator values, ``linf_tfdv``
  (``infinity_norm``) and ``jsd_tfdv`` (``jensen_shannon_divergence``), as
  :class:`~monitor.compare.TestResult` values.

Exporting statistics as TFDV protos and running TFDV itself live in :mod:`monitor.tfdv_interop`
(the one module of ``monitor`` that imports TFDV).
"""

from monitor.tfdv.histograms import (
    NUM_HISTOGRAM_BUCKETS,
    NUM_QUANTILES_HISTOGRAM_BUCKETS,
    Bucket,
    TfdvHistograms,
    cumulative_error,
    standard_histogram,
    tfdv_histograms,
)
from monitor.tfdv.metrics import NUM_RANK_HISTOGRAM_BUCKETS, jsd_error_bound, jsd_tfdv, linf_tfdv, ranked_counts

__all__ = [
    "NUM_HISTOGRAM_BUCKETS",
    "NUM_QUANTILES_HISTOGRAM_BUCKETS",
    "NUM_RANK_HISTOGRAM_BUCKETS",
    "Bucket",
    "TfdvHistograms",
    "tfdv_histograms",
    "standard_histogram",
    "cumulative_error",
    "ranked_counts",
    "linf_tfdv",
    "jsd_tfdv",
    "jsd_error_bound",
]
