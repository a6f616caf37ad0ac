"""How long does one window take to compare and decide? (goal: well under 50 ms for 50 features)

A 50-feature profile (40 numeric, 10 categorical of cardinality 5 to 200) of a 5,000-row
window against a 100,000-row baseline; every test enabled. Profiles are built once (that
cost belongs to bench_stats_update.py); only evaluate() is timed, repeated, and the
median and best are printed, with the time per feature and per test.

    .venv/bin/python bench/bench_compare.py
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import pandas as pd

from monitor.config import MonitorConfig
from monitor.evaluate import evaluate
from monitor.schema import FeatureSpec
from monitor.stats import Profile

N_NUMERIC, N_CATEGORICAL = 40, 10
REFERENCE_ROWS, WINDOW_ROWS = 100_000, 5_000
REPEATS = 30


def frame(rng: np.random.Generator, rows: int, shift: float) -> pd.DataFrame:
    cols: dict[str, np.ndarray] = {}
    for i in range(N_NUMERIC):
        x = rng.normal(shift * (i % 4 == 0), 1.0 + i / 40, size=rows)
        x[rng.random(rows) < 0.01] = np.nan
        cols[f"n{i}"] = x
    for j in range(N_CATEGORICAL):
        cardinality = 5 + 20 * j
        weights = 1.0 / np.arange(1, cardinality + 1)
        cols[f"c{j}"] = rng.choice(np.arange(cardinality).astype(str).astype(object), p=weights / weights.sum(),
                                   size=rows)
    return pd.DataFrame(cols)


def main() -> None:
    rng = np.random.default_rng(2026)
    specs = [FeatureSpec(f"n{i}", "numeric", "float") for i in range(N_NUMERIC)] + [
        FeatureSpec(f"c{j}", "categorical", "string") for j in range(N_CATEGORICAL)]
    reference, window = Profile.empty(specs), Profile.empty(specs)
    reference.update_frame(frame(rng, REFERENCE_ROWS, 0.0))
    window.update_frame(frame(rng, WINDOW_ROWS, 0.3))
    config = MonitorConfig()

    report = evaluate(reference=reference, current=window, model="bench", config=config, mode="drift")  # warm-up
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        evaluate(reference=reference, current=window, model="bench", config=config, mode="drift")
        times.append(time.perf_counter() - start)
    median, best = statistics.median(times) * 1e3, min(times) * 1e3
    features, tests = len(specs), len(report.findings)
    print(f"evaluate(): {features} features ({N_NUMERIC} numeric, {N_CATEGORICAL} categorical), {tests} tests, "
          f"window {WINDOW_ROWS:,} rows vs baseline {REFERENCE_ROWS:,} rows, {REPEATS} runs")
    print(f"  median {median:6.2f} ms   best {best:6.2f} ms   "
          f"({median / features * 1e3:.0f} us/feature, {median / tests * 1e3:.0f} us/test)")
    print(f"  alerting findings: {len(report.alerting)} of {tests}")


if __name__ == "__main__":
    main()
