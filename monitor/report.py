"""Drill-down tables: what exactly moved in one feature of one window.

Pure functions over two :class:`~monitor.stats.Profile` objects (the baseline or the
previous window, and the window under suspicion), returning pandas DataFrames a notebook or a
report shows as they are. The numbers come from the same mergeable statistics the tests used.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from monitor.errors import SchemaError
from monitor.stats import CategoricalStats, NumericStats, Profile

__all__ = ["compare_feature", "findings_table", "QUANTILES", "MISSING", "OTHER"]

QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
MISSING = "(missing)"
OTHER = "(other values)"


def _numeric(ref: NumericStats, cur: NumericStats) -> pd.DataFrame:
    qs = np.asarray(QUANTILES)

    def column(s: NumericStats) -> list[float]:
        total = s.count + s.missing + s.nonfinite
        share = s.missing / total if total else float("nan")
        quantiles = list(s.quantiles(qs)) if s.count else [float("nan")] * len(qs)
        return [float(s.count), share, s.mean, s.std, s.min, *quantiles, s.max]

    index = ["count", "missing share", "mean", "std", "min", *[f"p{round(q * 100):02d}" for q in qs], "max"]
    frame = pd.DataFrame({"reference": column(ref), "window": column(cur)}, index=index)
    sd = ref.std if ref.std and np.isfinite(ref.std) else float("nan")
    location = [i for i in index if i not in ("count", "missing share", "std")]
    frame["change (reference sd)"] = np.nan
    frame.loc[location, "change (reference sd)"] = (frame.loc[location, "window"] - frame.loc[location, "reference"]) / sd
    return frame


def _categorical(ref: CategoricalStats, cur: CategoricalStats, top: int) -> pd.DataFrame:
    ref_counts, cur_counts = ref.counts(), cur.counts()
    ref_total, cur_total = ref.count + ref.missing, cur.count + cur.missing

    def share(counts: Mapping[str, int], value: str, total: int) -> float:
        return counts.get(value, 0) / total if total else float("nan")

    ranked = sorted(set(ref_counts) | set(cur_counts),
                    key=lambda v: -max(share(ref_counts, v, ref_total), share(cur_counts, v, cur_total)))
    shown = ranked[:top]
    rows = {v: (share(ref_counts, v, ref_total), share(cur_counts, v, cur_total), v not in ref_counts) for v in shown}
    rest = ranked[top:]
    if rest:
        rows[OTHER] = (sum(share(ref_counts, v, ref_total) for v in rest), sum(share(cur_counts, v, cur_total) for v in rest), False)
    rows[MISSING] = (ref.missing / ref_total if ref_total else float("nan"), cur.missing / cur_total if cur_total else float("nan"), False)
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=["reference share", "window share", "unseen in reference"])
    frame["change (points)"] = 100 * (frame["window share"] - frame["reference share"])
    return frame.sort_values("change (points)", key=np.abs, ascending=False)


def compare_feature(reference: Profile, current: Profile, feature: str, *, top: int = 15) -> pd.DataFrame:
    """Reference vs window for one feature.

    Numeric: count, missing share, mean, std, min, quantiles, max, and each location statistic's
    move in reference standard deviations. Categorical: the shares of the ``top`` values that
    matter most on either side, the rest pooled, the missing share, and which values the
    reference never saw; sorted by the size of the change.
    """
    try:
        ref, cur = reference.features[feature], current.features[feature]
    except KeyError:
        raise SchemaError("not in both profiles", feature=feature) from None
    if isinstance(ref, NumericStats) and isinstance(cur, NumericStats):
        return _numeric(ref, cur)
    if isinstance(ref, CategoricalStats) and isinstance(cur, CategoricalStats):
        return _categorical(ref, cur, top)
    raise SchemaError("has different kinds in the two profiles", feature=feature)


def findings_table(findings: Iterable[Mapping[str, object]]) -> pd.DataFrame:
    """Findings (as the store or the API returns them) as one row per feature and test, worst first."""
    frame = pd.DataFrame(list(findings))
    if frame.empty:
        return frame
    order = {"critical": 0, "warning": 1, "ok": 2}
    frame["effect / floor"] = frame["effect"] / frame["floor"]
    frame = frame.sort_values(["verdict", "effect / floor"], key=lambda c: c.map(order) if c.name == "verdict" else -c)
    columns = ["feature", "test", "mode", "verdict", "effect", "floor", "effect / floor", "q_value", "message"]
    return frame[[c for c in columns if c in frame.columns]].reset_index(drop=True)
