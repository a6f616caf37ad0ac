"""Do decisions from the statistics agree with the exact computation? (goal: >= 99% of the cells
whose exact effect is more than 5% away from its floor), and are they the same on every run?

Two kinds of data, each compared with the monitor's default configuration (``monitor.evaluate``,
mode ``skew``):

* **Bike sharing** (``data/bike_sharing_hourly.csv``): the 2011 rows as the baseline (built as
  ``trainer.baseline.feature_profile`` builds it), each 2012 week as a window.
* **Hard shapes**, generated (seeded): delays (40% exact zeros, a lognormal tail), hours (0-23),
  counts (negative binomial), a top-coded score (normal clipped at 100, ~5% at the cap), a reading
  far from zero with a small spread (290 +- 10), a heavy tail (lognormal sigma 2), a plain normal,
  and a long tail of categories (Zipf 1.1 over 200,000 values). Baseline 200,000 rows; windows of
  1,000, 10,000 and 100,000 rows, each with a random change per column (none, or a shift, a
  rescale, a spike, a share move or extra missing values of random size), so effects land on
  both sides of every floor.

For every window, two profiles of the same rows are evaluated: the production one (default
``bins``/``capacity``; baselines at ``BASELINE_BINS``/``BASELINE_CAPACITY``) and an exact one
(every distinct value kept, ks evaluated at every sample point). A cell is (window, feature,
test); it counts when the exact effect is more than 5% away from the test's floor; it agrees when
both give the same verdict class (alerting or not) and, separately, the same verdict. The exact
side is checked against scipy (``ks_2samp``) and numpy on the raw rows for a few windows.

Determinism: every window's production profile is also built from a shuffled copy split into
random partial profiles merged in random order; its bytes must equal the one-pass profile's.

    .venv/bin/python bench/bench_sketch_accuracy.py            # writes bench/results/sketch_accuracy.md
    .venv/bin/python bench/bench_sketch_accuracy.py --quick    # fewer windows, no file
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import monitor.compare.numeric as numeric_tests  # noqa: E402
from monitor.config import MonitorConfig  # noqa: E402
from monitor.evaluate import evaluate  # noqa: E402
from monitor.schema import FeatureSpec  # noqa: E402
from monitor.stats import BASELINE_BINS, BASELINE_CAPACITY, DEFAULT_BINS, DEFAULT_CAPACITY, Profile  # noqa: E402
from monitor.stats.numeric import MAX_BINS  # noqa: E402
from trainer.data import BIKESHARE_FEATURES, load_bikeshare  # noqa: E402

NEAR = 0.05  # cells with |effect / floor - 1| <= NEAR are left out
EXACT_CAPACITY = 2**31 - 1
CONFIG = MonitorConfig()

HARD = (
    FeatureSpec("delay", "numeric", "float"),
    FeatureSpec("hour", "numeric", "int"),
    FeatureSpec("count", "numeric", "int"),
    FeatureSpec("score", "numeric", "float"),
    FeatureSpec("reading", "numeric", "float"),
    FeatureSpec("heavy", "numeric", "float"),
    FeatureSpec("plain", "numeric", "float"),
    FeatureSpec("item", "categorical", "string"),
)
_ITEM_P = 1.0 / np.arange(1, 200_001) ** 1.1
_ITEM_P /= _ITEM_P.sum()


def hard_frame(rng: np.random.Generator, n: int, change: dict[str, tuple[str, float]]) -> pd.DataFrame:
    """``n`` rows of the hard shapes; ``change[column] = (kind, size)`` perturbs one column."""

    def kind(col: str) -> tuple[str, float]:
        return change.get(col, ("none", 0.0))

    k, s = kind("delay")
    zero = 0.4 + (s if k == "spike" else 0.0)
    delay = np.where(rng.random(n) < zero, 0.0, rng.lognormal(2.0 + (s if k == "shift" else 0.0), 1.2, n))
    k, s = kind("hour")
    hour = rng.integers(0, 24, n).astype(np.float64)
    if k == "shift":
        hour = np.where(rng.random(n) < s, rng.integers(7, 10, n), hour)  # more rush hours
    k, s = kind("count")
    count = rng.negative_binomial(5, 5 / (5 + 300 * (1 + (s if k == "shift" else 0.0))), n).astype(np.float64)
    k, s = kind("score")
    score = np.minimum(np.round(rng.normal(60 + (25 * s if k == "shift" else 0.0), 25 * (1 + (s if k == "scale" else 0.0)), n), 1), 100.0)
    k, s = kind("reading")
    reading = rng.normal(290 + (10 * s if k == "shift" else 0.0), 10 * (1 + (s if k == "scale" else 0.0)), n)
    k, s = kind("heavy")
    heavy = rng.lognormal(0.0 + (2 * s if k == "shift" else 0.0), 2.0 * (1 + (s if k == "scale" else 0.0)), n)
    k, s = kind("plain")
    plain = rng.normal(s if k == "shift" else 0.0, 1 + (s if k == "scale" else 0.0), n)
    k, s = kind("item")
    idx = rng.choice(_ITEM_P.size, size=n, p=_ITEM_P)
    if k == "shift":
        idx = np.where(rng.random(n) < s, 1, idx)  # the second most frequent value gains share
    item = np.array([f"i{j}" for j in idx.tolist()], dtype=object)
    frame = pd.DataFrame({"delay": delay, "hour": hour, "count": count, "score": score, "reading": reading,
                          "heavy": heavy, "plain": plain, "item": item})
    for col, (k, s) in change.items():
        if k == "missing":
            frame.loc[rng.random(n) < s, col] = np.nan if col != "item" else None
    return frame


def random_change(rng: np.random.Generator) -> dict[str, tuple[str, float]]:
    out: dict[str, tuple[str, float]] = {}
    for spec in HARD:
        r = rng.random()
        if r < 0.3:
            continue
        kinds = ["shift", "missing"] + (["scale"] if spec.name in ("score", "reading", "heavy", "plain") else []) + (
            ["spike"] if spec.name == "delay" else [])
        k = kinds[int(rng.integers(0, len(kinds)))]
        size = float(rng.uniform(0.0, 0.15 if k in ("missing", "spike") else 0.5))
        out[spec.name] = (k, size)
    return out


def build(frame: pd.DataFrame, specs, *, bins: int, capacity: int) -> Profile:
    p = Profile.empty(specs, bins=bins, capacity=capacity)
    p.update_frame(frame)
    return p


def split_merged(frame: pd.DataFrame, specs, rng: np.random.Generator, *, bins: int, capacity: int) -> Profile:
    """The same rows, shuffled, cut into 1-8 partial profiles (each fed in 1-4 batches), merged in random order."""
    shuffled = frame.iloc[rng.permutation(len(frame))].reset_index(drop=True)
    cuts = np.sort(rng.integers(0, len(frame), int(rng.integers(0, 8))))
    partials = []
    for part in np.split(np.arange(len(frame)), cuts):
        p = Profile.empty(specs, bins=bins, capacity=capacity)
        for batch in np.array_split(part, int(rng.integers(1, 5))):
            p.update_frame(shuffled.iloc[batch])
        partials.append(p)
    order = rng.permutation(len(partials))
    out = partials[order[0]]
    for i in order[1:]:
        out = out.merge(partials[i]) if rng.random() < 0.5 else partials[i].merge(out)
    return out


def exact_evaluate(reference: Profile, current: Profile):
    saved = numeric_tests.KS_EXACT_POINTS
    numeric_tests.KS_EXACT_POINTS = 10**9  # every breakpoint: ks is exact on exact summaries
    try:
        return evaluate(reference=reference, current=current, model="m", config=CONFIG, mode="skew")
    finally:
        numeric_tests.KS_EXACT_POINTS = saved


@dataclass
class Cells:
    counted: int = 0
    alert_agree: int = 0
    verdict_agree: int = 0
    near: int = 0
    byte_identical: int = 0
    windows: int = 0


def compare(tally: dict, where: str, sketch, exact, feature_shapes: dict[str, str]) -> list[str]:
    by_key = {(f.feature, f.test): f for f in exact.findings}
    misses = []
    for f in sketch.findings:
        e = by_key[(f.feature, f.test)]
        cell = tally[(where, feature_shapes.get(f.feature, f.feature))]
        if e.floor > 0 and abs(e.effect / e.floor - 1.0) <= NEAR:
            cell.near += 1
            continue
        cell.counted += 1
        cell.alert_agree += f.alerting == e.alerting
        cell.verdict_agree += f.verdict == e.verdict
        if f.alerting != e.alerting:
            misses.append(f"{where}: {f.feature}/{f.test} sketch {f.verdict} ({f.effect:.4g}, q={f.q_value}) vs exact "
                          f"{e.verdict} ({e.effect:.4g}, q={e.q_value}), floor {e.floor:.3g}")
    return misses


def oracle_check(ref_frame: pd.DataFrame, cur_frame: pd.DataFrame, exact) -> float:
    """Largest gap between the exact profile's ks D and scipy's on the raw rows, and the missing share."""
    worst = 0.0
    for f in exact.findings:
        if f.test == "ks" and f.verdict != "insufficient_data":
            a = ref_frame[f.feature].dropna().to_numpy(dtype=np.float64)
            b = cur_frame[f.feature].dropna().to_numpy(dtype=np.float64)
            worst = max(worst, abs(stats.ks_2samp(a, b).statistic - f.effect))
        if f.test == "missing_rate" and f.verdict != "insufficient_data":
            diff = abs(cur_frame[f.feature].isna().mean() - ref_frame[f.feature].isna().mean())
            worst = max(worst, abs(diff - f.effect))
    return worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "sketch_accuracy.md")
    ap.add_argument("--bins", type=int, default=DEFAULT_BINS, help="window numeric buckets")
    ap.add_argument("--capacity", type=int, default=DEFAULT_CAPACITY, help="window categorical capacity")
    ap.add_argument("--baseline-bins", type=int, default=BASELINE_BINS)
    ap.add_argument("--baseline-capacity", type=int, default=BASELINE_CAPACITY)
    args = ap.parse_args()
    sizing = dict(bins=args.bins, capacity=args.capacity)
    base_sizing = dict(bins=args.baseline_bins, capacity=args.baseline_capacity)
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    tally: dict = defaultdict(Cells)
    misses: list[str] = []
    oracle_gap = 0.0
    sizes: dict[str, list[int]] = defaultdict(list)

    # -- bike sharing: 2011 baseline vs the weeks of 2012 ------------------------------------------
    bike = load_bikeshare(ROOT / "data" / "bike_sharing_hourly.csv")
    specs = BIKESHARE_FEATURES
    base_rows = bike[bike["event_time"].dt.year == 2011]
    ref = build(base_rows, specs, **base_sizing)
    ref_exact = build(base_rows, specs, bins=MAX_BINS, capacity=EXACT_CAPACITY)
    weeks = [g for _, g in bike[bike["event_time"].dt.year == 2012].groupby(bike["event_time"].dt.isocalendar().week)]
    for i, week in enumerate(weeks[: 8 if args.quick else None]):
        cur = build(week, specs, **sizing)
        sketch = evaluate(reference=ref, current=cur, model="m", config=CONFIG, mode="skew")
        exact = exact_evaluate(ref_exact, build(week, specs, bins=MAX_BINS, capacity=EXACT_CAPACITY))
        misses += compare(tally, "bike weekly", sketch, exact, {})
        cell = tally[("bike weekly", "(all)")]
        cell.windows += 1
        cell.byte_identical += split_merged(week, specs, rng, **sizing).to_bytes() == cur.to_bytes()
        if i < 3:
            oracle_gap = max(oracle_gap, oracle_check(base_rows, week, exact))

    # -- hard shapes ----------------------------------------------------------------------------
    base_n = 50_000 if args.quick else 200_000
    base_frame = hard_frame(rng, base_n, {})
    ref = build(base_frame, HARD, **base_sizing)
    ref_exact = build(base_frame, HARD, bins=MAX_BINS, capacity=EXACT_CAPACITY)
    for name, stat in ref.features.items():
        sizes[f"baseline {name}"].append(len(stat.to_bytes()))
    plan = {1_000: 40, 10_000: 30, 100_000: 12} if not args.quick else {1_000: 6, 10_000: 4, 100_000: 2}
    for rows, count in plan.items():
        for i in range(count):
            frame = hard_frame(rng, rows, random_change(rng) if i % 4 else {})
            cur = build(frame, HARD, **sizing)
            sketch = evaluate(reference=ref, current=cur, model="m", config=CONFIG, mode="skew")
            exact = exact_evaluate(ref_exact, build(frame, HARD, bins=MAX_BINS, capacity=EXACT_CAPACITY))
            where = f"hard {rows:,} rows"
            misses += compare(tally, where, sketch, exact, {})
            cell = tally[(where, "(all)")]
            cell.windows += 1
            cell.byte_identical += split_merged(frame, HARD, rng, **sizing).to_bytes() == cur.to_bytes()
            for name, stat in cur.features.items():
                sizes[f"{rows:,}-row window {name}"].append(len(stat.to_bytes()))
            if i < 2:
                oracle_gap = max(oracle_gap, oracle_check(base_frame, frame, exact))
        print(f"[{rows:,} rows] done at {time.perf_counter() - started:.0f} s", flush=True)

    report = render(tally, misses, oracle_gap, sizes, time.perf_counter() - started, args)
    print(report)
    if not args.quick:
        args.out.write_text(report, encoding="utf-8")
        print(f"written: {args.out}")


def render(tally, misses, oracle_gap, sizes, elapsed, args) -> str:
    lines = ["# Sketch vs exact: decision agreement and run-to-run identity", "",
             f"Command: `.venv/bin/python bench/bench_sketch_accuracy.py` (seed {args.seed}); "
             f"{elapsed / 60:.1f} min. Windows: bins {args.bins}, capacity {args.capacity}; baselines: bins "
             f"{args.baseline_bins}, capacity {args.baseline_capacity}.", "",
             "Cells are (window, feature, test) with the exact effect more than 5% away from the floor; "
             "agreement is the share of them where the production statistics and the exact computation "
             "give the same alerting decision (and the same verdict: ok / warning / critical / "
             "insufficient_data).", "",
             "| data | feature | cells | alerting agrees | verdict agrees | left out (near floor) |",
             "|---|---|---|---|---|---|"]
    totals: dict[str, Cells] = defaultdict(Cells)
    for (where, feature), c in sorted(tally.items()):
        if feature == "(all)":
            continue
        t = totals[where]
        t.counted += c.counted
        t.alert_agree += c.alert_agree
        t.verdict_agree += c.verdict_agree
        t.near += c.near
        lines.append(f"| {where} | {feature} | {c.counted} | {100 * c.alert_agree / max(c.counted, 1):.2f}% | "
                     f"{100 * c.verdict_agree / max(c.counted, 1):.2f}% | {c.near} |")
    lines += ["", "| data | windows | cells | alerting agrees | verdict agrees | partial-merge bytes identical |",
              "|---|---|---|---|---|---|"]
    for where, t in sorted(totals.items()):
        w = tally[(where, "(all)")]
        goal = "PASS" if t.alert_agree >= 0.99 * t.counted else "FAIL"
        lines.append(f"| {where} | {w.windows} | {t.counted} | {100 * t.alert_agree / max(t.counted, 1):.2f}% ({goal}) | "
                     f"{100 * t.verdict_agree / max(t.counted, 1):.2f}% | {w.byte_identical}/{w.windows} |")
    lines += ["", f"Exact side vs scipy/numpy on the raw rows: largest |D - ks_2samp D| or missing-share gap "
              f"{oracle_gap:.2g}.", "", "## Disagreements (alerting)", ""]
    lines += [f"- {m}" for m in misses[:40]] or ["- none"]
    if len(misses) > 40:
        lines.append(f"- ... {len(misses) - 40} more")
    lines += ["", "## Serialized size per feature (bytes, median over windows)", "",
              "| statistic | bytes |", "|---|---|"]
    for name, values in sorted(sizes.items()):
        lines.append(f"| {name} | {int(np.median(values)):,} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
