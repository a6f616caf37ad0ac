"""The detection benchmark's stream generator: reproducible windows and changes of the stated size.

Paired windows (same seed, stream and index, with and without a change) share their base rows, so
deterministic changes are checked exactly against the unchanged window and random ones against their
expected size within 5 binomial standard errors.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from monitor import errors

ROOT = Path(__file__).resolve().parents[2]


def _load_generator():
    path = ROOT / "bench" / "detection" / "generator.py"
    spec = importlib.util.spec_from_file_location("bench_detection_generator", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


gen_mod = _load_generator()
Change, ChangeKind, StreamGenerator = gen_mod.Change, gen_mod.ChangeKind, gen_mod.StreamGenerator
ROWS = 100_000


@pytest.fixture(scope="module")
def gen():
    return StreamGenerator.from_csv(ROOT / "data" / "bike_sharing_hourly.csv", seed=7)


@pytest.fixture(scope="module")
def base(gen):
    return gen.window(ROWS, None, stream=1, index=3)


def _paired(gen, change):
    return gen.window(ROWS, change, stream=1, index=3)


def _others_unchanged(changed: pd.DataFrame, base: pd.DataFrame, feature: str) -> None:
    others = [c for c in base.columns if c != feature]
    pd.testing.assert_frame_equal(changed[others], base[others])


def _within(observed: float, expected: float, p: float, n: int) -> None:
    se = math.sqrt(p * (1 - p) / n)
    assert abs(observed - expected) < 5 * se, (observed, expected, se)


def test_reference_is_the_2011_training_rows_plus_a_standard_normal_z(gen):
    ref = gen.reference
    assert len(ref) == 8645
    assert list(ref.columns) == [s.name for s in gen_mod.SPECS]
    z = ref["z"].to_numpy()
    assert abs(z.mean()) < 5 / math.sqrt(len(z)) and abs(z.std() - 1) < 5 / math.sqrt(2 * len(z))


def test_stationary_stream_reproduces_with_its_seed_and_differs_without(gen, base):
    again = StreamGenerator.from_csv(ROOT / "data" / "bike_sharing_hourly.csv", seed=7)
    pd.testing.assert_frame_equal(again.reference, gen.reference)
    first = gen.window(1000, None, stream=0, index=5)
    pd.testing.assert_frame_equal(again.window(1000, None, stream=0, index=5), first)
    other_seed = StreamGenerator(gen.reference.drop(columns="z"), seed=8)
    assert not other_seed.window(1000, None, stream=0, index=5).equals(gen.window(1000, None, stream=0, index=5))
    assert not gen.window(1000, None, stream=0, index=6).equals(gen.window(1000, None, stream=0, index=5))
    assert not gen.window(1000, None, stream=1, index=5).equals(gen.window(1000, None, stream=0, index=5))


def test_stationary_window_resamples_training_rows_and_draws_z_fresh(gen, base):
    real = [c for c in base.columns if c != "z"]
    keys = set(map(tuple, gen.reference[real].astype(str).to_numpy()))
    sample = base[real].iloc[:2000].astype(str).to_numpy()
    assert all(tuple(row) in keys for row in sample)
    assert not np.isin(base["z"].to_numpy()[:2000], gen.reference["z"].to_numpy()).any()
    assert abs(base["z"].mean()) < 5 / math.sqrt(ROWS)
    assert base["season"].map(type).eq(str).all() and base["temp"].dtype == np.float64


@pytest.mark.parametrize("d", [0.05, 0.2, 0.5])
def test_mean_shift_moves_the_mean_by_d_reference_sd(gen, base, d):
    changed = _paired(gen, Change("m", ChangeKind.MEAN_SHIFT, "z", d))
    sd = gen.reference_sd("z")
    np.testing.assert_allclose(changed["z"] - base["z"], d * sd, rtol=1e-12)
    assert abs((changed["z"].mean() - gen.reference["z"].mean()) / sd - d) < 5 * math.sqrt(1 / ROWS + 1 / 8645)
    _others_unchanged(changed, base, "z")


def test_variance_change_multiplies_the_variance_and_keeps_the_mean(gen, base):
    changed = _paired(gen, Change("v", ChangeKind.VARIANCE, "z", 1.5))
    assert changed["z"].var() / base["z"].var() == pytest.approx(1.5, rel=1e-9)
    assert changed["z"].var() == pytest.approx(1.5, rel=5 * math.sqrt(2 / ROWS))
    m = gen.reference["z"].mean()  # scaled around the reference mean: the mean does not move on average
    assert changed["z"].mean() - m == pytest.approx((base["z"].mean() - m) * math.sqrt(1.5), rel=1e-9)
    _others_unchanged(changed, base, "z")


@pytest.mark.parametrize("d", [0.05, 0.20])
def test_share_change_adds_d_to_the_category_share(gen, base, d):
    p = gen.reference_share("season", "summer")
    assert 0.2 < p < 0.3
    changed = _paired(gen, Change("s", ChangeKind.SHARE, "season", d, "summer"))
    share = (changed["season"] == "summer").mean()
    _within(share, p + d, p + d, ROWS)
    was = base["season"] == "summer"
    assert (changed["season"][was] == "summer").all()  # only other values were switched
    moved = ~was & (changed["season"] == "summer")
    assert (changed["season"][~was & ~moved] == base["season"][~was & ~moved]).all()
    _others_unchanged(changed, base, "season")


def test_new_category_takes_its_share_of_present_values(gen, base):
    assert not (gen.reference["weathersit"] == "Fog").any()
    changed = _paired(gen, Change("n", ChangeKind.NEW_CATEGORY, "weathersit", 0.02, "Fog"))
    present = base["weathersit"].notna()
    assert (changed["weathersit"].isna() == ~present).all()
    _within((changed["weathersit"][present] == "Fog").mean(), 0.02, 0.02, int(present.sum()))
    _others_unchanged(changed, base, "weathersit")


@pytest.mark.parametrize("feature", ["hum", "weekday"])
def test_missing_change_adds_ten_points_of_missing(gen, base, feature):
    m = gen.reference_missing(feature)
    changed = _paired(gen, Change("x", ChangeKind.MISSING, feature, 0.10))
    _within(changed[feature].isna().mean(), m + 0.10, m + 0.10, ROWS)
    kept = changed[feature].notna()
    assert (changed[feature][kept] == base[feature][kept]).all() and base[feature].isna().le(~kept).all()
    _others_unchanged(changed, base, feature)


def test_unit_change_multiplies_the_values(gen, base):
    changed = _paired(gen, Change("u", ChangeKind.UNIT, "temp", 41.0))
    np.testing.assert_allclose(changed["temp"], 41.0 * base["temp"], rtol=1e-15)
    _others_unchanged(changed, base, "temp")


def test_bad_changes_are_refused_naming_the_field(gen):
    with pytest.raises(errors.ConfigError) as err:
        Change("s", ChangeKind.SHARE, "season", 0.05)
    assert err.value.field == "category"
    with pytest.raises(errors.ConfigError) as err:
        Change("x", ChangeKind.MISSING, "hum", 1.5)
    assert err.value.field == "size"
    with pytest.raises(errors.SchemaError) as err:
        gen.window(10, Change("u", ChangeKind.UNIT, "season", 2.0))
    assert err.value.feature == "season"
    with pytest.raises(errors.ConfigError) as err:
        gen.window(10, Change("n", ChangeKind.NEW_CATEGORY, "season", 0.02, "summer"))
    assert err.value.field == "category"
