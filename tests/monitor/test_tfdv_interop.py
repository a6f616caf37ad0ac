"""TFDV interop against TFDV itself (tensorflow_data_validation 1.16.1) on the bike-sharing data.

Oracle: ``tfdv.generate_statistics_from_dataframe`` on the very rows skewwatch profiled, and
``tfdv.validate_statistics`` on those statistics. Profiles whose numeric ``bins`` exceed the
distinct values hold exact summaries, so skewwatch must reproduce TFDV's numbers; profiles with
few ``bins`` (coarse buckets) must stay within the documented error bounds.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import schema_pb2

from monitor.config import MonitorConfig
from monitor.errors import ConfigError, StatisticsError
from monitor.evaluate import evaluate
from monitor.schema import FeatureSpec
from monitor.stats import CategoricalStats, NumericStats, Profile
from monitor.tfdv import cumulative_error, standard_histogram
from monitor.tfdv_interop import (
    TfdvMetric,
    TfdvMode,
    jsd_tfdv,
    linf_tfdv,
    profile_to_tfdv,
    tfdv_skew_drift,
)
from trainer.baseline import feature_frame, tfdv_schema, tfdv_statistics
from trainer.data import BIKESHARE_FEATURES, load_bikeshare

ROOT = Path(__file__).resolve().parents[2]
SPECS = BIKESHARE_FEATURES
NUMERIC = [s.name for s in SPECS if s.kind == "numeric"]
CATEGORICAL = [s.name for s in SPECS if s.kind == "categorical"]
EXACT_BINS = 16384  # above the 8,645 rows of 2011: every summary below is exact
COARSE_BINS = 24  # fewer than the distinct values of a month: the buckets estimate


@pytest.fixture(scope="module")
def bike() -> pd.DataFrame:
    return load_bikeshare(ROOT / "data" / "bike_sharing_hourly.csv")


def _month(df: pd.DataFrame, year: int, month: int) -> pd.DataFrame:
    t = df["event_time"]
    return df[(t.dt.year == year) & (t.dt.month == month)].reset_index(drop=True)


@pytest.fixture(scope="module")
def frames(bike: pd.DataFrame) -> dict[str, pd.DataFrame]:
    out = {f"2012-{m:02d}": _month(bike, 2012, m) for m in (1, 4, 7, 10)}
    out["fahrenheit"] = out["2012-07"].assign(temp=out["2012-07"]["temp"] * 9 / 5 + 32)
    snow = out["2012-04"].copy()
    snow.loc[:29, "weathersit"] = "Snow"  # a category never seen in 2011
    out["new_weathersit"] = snow
    feb = _month(bike, 2012, 2)
    out["outlier"] = pd.concat([feb, feb.iloc[[0]].assign(windspeed=999.0)], ignore_index=True)
    out["three_rows"] = feb.iloc[:3].reset_index(drop=True)
    out["constant_hum"] = feb.assign(hum=55.0)
    return out


@pytest.fixture(scope="module")
def baseline_frame(bike: pd.DataFrame) -> pd.DataFrame:
    return bike[bike["event_time"].dt.year == 2011].reset_index(drop=True)


@pytest.fixture(scope="module")
def baseline_stats(baseline_frame):
    return tfdv_statistics(baseline_frame, SPECS)


@pytest.fixture(scope="module")
def schema(baseline_frame, baseline_stats) -> schema_pb2.Schema:
    vocab = {name: sorted(baseline_frame[name].dropna().unique()) for name in CATEGORICAL}
    return tfdv_schema(baseline_stats, SPECS, vocab)  # the trainer's: comparators at 0.1


def _profile(frame: pd.DataFrame, bins: int = EXACT_BINS, specs=SPECS) -> Profile:
    profile = Profile.empty(specs, bins=bins)
    profile.update_frame(feature_frame(frame, specs))
    return profile


# -- export ---------------------------------------------------------------------------------
def _assert_same_buckets(ours, theirs, where):
    assert ours.type == theirs.type, where
    assert len(ours.buckets) == len(theirs.buckets), where
    for a, b in zip(ours.buckets, theirs.buckets):
        assert (a.low_value, a.high_value) == pytest.approx((b.low_value, b.high_value), rel=1e-12, abs=1e-12), where
        assert a.sample_count == pytest.approx(b.sample_count, rel=1e-9, abs=1e-9), where


def _assert_same_statistics(ours, theirs):
    (mine,), (tfdvs,) = ours.datasets, theirs.datasets
    assert mine.num_examples == tfdvs.num_examples
    assert [list(f.path.step) for f in mine.features] == [list(f.path.step) for f in tfdvs.features]
    for a, b in zip(mine.features, tfdvs.features):
        where = a.path.step[0]
        assert a.type == b.type and a.WhichOneof("stats") == b.WhichOneof("stats"), where
        if a.HasField("num_stats"):
            x, y = a.num_stats, b.num_stats
            assert x.common_stats == y.common_stats, where
            for field in ("mean", "std_dev", "min", "max", "median"):
                assert getattr(x, field) == pytest.approx(getattr(y, field), rel=1e-12, abs=1e-12), (where, field)
            assert x.num_zeros == y.num_zeros, where
            assert len(x.histograms) == len(y.histograms) == 2, where
            for hx, hy in zip(x.histograms, y.histograms):
                _assert_same_buckets(hx, hy, where)
        else:
            x, y = a.string_stats, b.string_stats
            assert x.common_stats == y.common_stats, where
            assert x.unique == y.unique and x.avg_length == pytest.approx(y.avg_length), where
            assert list(x.top_values) == list(y.top_values), where
            assert x.rank_histogram == y.rank_histogram, where


@pytest.mark.parametrize("name", ["baseline", "2012-01", "2012-07", "fahrenheit", "new_weathersit", "outlier",
                                  "three_rows", "constant_hum"])
def test_exported_profile_equals_tfdv_statistics_of_the_same_rows(name, frames, baseline_frame, baseline_stats):
    frame = baseline_frame if name == "baseline" else frames[name]
    theirs = baseline_stats if name == "baseline" else tfdv_statistics(frame, SPECS)
    _assert_same_statistics(profile_to_tfdv(_profile(frame)), theirs)


# -- the comparator values --------------------------------------------------------------------
@pytest.mark.parametrize("name", ["2012-01", "2012-04", "2012-07", "2012-10", "fahrenheit", "new_weathersit", "outlier"])
def test_linf_and_jsd_equal_what_validate_statistics_reports(name, frames, baseline_frame, baseline_stats, schema):
    frame = frames[name]
    raw = tfdv_skew_drift(baseline=baseline_stats, window=tfdv_statistics(frame, SPECS), schema=schema, mode="drift")
    reference, current = _profile(baseline_frame), _profile(frame)
    via_profiles = tfdv_skew_drift(baseline=reference, window=current, schema=schema, mode="drift")
    for feature in NUMERIC:
        ours = jsd_tfdv(reference=reference[feature], current=current[feature])
        assert ours.test == "jsd_tfdv" and ours.p_value is None and ours.detail("error_bound") == 0.0
        assert raw[feature].linf is None
        assert abs(ours.statistic - raw[feature].jsd) <= 1e-9, feature
        assert abs(via_profiles[feature].jsd - raw[feature].jsd) <= 1e-9, feature
    for feature in CATEGORICAL:
        ours = linf_tfdv(reference=reference[feature], current=current[feature])
        assert ours.test == "linf_tfdv" and ours.p_value is None
        assert raw[feature].jsd is None
        assert abs(ours.statistic - raw[feature].linf) <= 1e-9, feature
        assert abs(via_profiles[feature].linf - raw[feature].linf) <= 1e-9, feature


def test_fahrenheit_saturates_jsd_and_skew_mode_reports_the_same_symmetric_values(frames, baseline_frame, schema):
    reference, current = _profile(baseline_frame), _profile(frames["fahrenheit"])
    skew = tfdv_skew_drift(baseline=reference, window=current, schema=schema, mode=TfdvMode.SKEW)
    drift = tfdv_skew_drift(baseline=reference, window=current, schema=schema, mode="drift")
    assert skew["temp"].jsd == pytest.approx(1.0) and skew["temp"].mode is TfdvMode.SKEW
    assert {f: m.values for f, m in skew.items()} == {f: m.values for f, m in drift.items()}
    assert "COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH" in {a.kind for a in skew["temp"].anomalies}
    assert skew["temp"].schema_anomalies == ()


@pytest.mark.parametrize("name", ["2012-01", "2012-07", "outlier"])
def test_coarse_buckets_stay_within_the_documented_sketch_error(name, frames, baseline_frame, baseline_stats, schema):
    frame = frames[name]
    window_stats = tfdv_statistics(frame, SPECS)
    raw = tfdv_skew_drift(baseline=baseline_stats, window=window_stats, schema=schema, mode="drift")
    reference, current = _profile(baseline_frame, bins=COARSE_BINS), _profile(frame, bins=COARSE_BINS)
    tfdv_hists = {f.path.step[0]: f.num_stats.histograms[0] for f in window_stats.datasets[0].features
                  if f.HasField("num_stats")}
    assert any(current[feature].rank_error > 0 for feature in NUMERIC)  # the buckets are estimating
    for feature in NUMERIC:
        stats = current[feature]
        ours = np.cumsum([c for _, _, c in standard_histogram(stats)]) / stats.count
        theirs = np.cumsum([b.sample_count for b in tfdv_hists[feature].buckets]) / stats.count
        assert np.max(np.abs(ours - theirs)) <= cumulative_error(stats), feature
        result = jsd_tfdv(reference=reference[feature], current=stats)
        assert (result.detail("error_bound") > 0) == (cumulative_error(stats) > 0 or reference[feature].rank_error > 0)
        assert abs(result.statistic - raw[feature].jsd) <= result.detail("error_bound"), feature
    for feature in CATEGORICAL:  # categorical counts stay exact up to 4,096 values
        result = linf_tfdv(reference=reference[feature], current=current[feature])
        assert abs(result.statistic - raw[feature].linf) <= 1e-12


# -- anomalies --------------------------------------------------------------------------------
def test_unseen_category_out_of_range_value_presence_and_type_are_reported(frames, baseline_frame, schema):
    bounded = schema_pb2.Schema()
    bounded.CopyFrom(schema)
    tfdv.set_domain(bounded, "hum", schema_pb2.FloatDomain(min=0.0, max=100.0))
    clean = tfdv_skew_drift(baseline=_profile(baseline_frame), window=_profile(frames["2012-04"]),
                            schema=bounded, mode="skew")
    assert all(m.schema_anomalies == () for m in clean.values())

    window = frames["new_weathersit"].copy()
    window.loc[40, "hum"] = 150.0
    window.loc[50:59, "season"] = None
    specs = [s if s.name != "atemp" else FeatureSpec("atemp", "categorical", "string")
             for s in SPECS if s.name != "holiday"]
    found = tfdv_skew_drift(baseline=_profile(baseline_frame), window=_profile(window, specs=specs),
                            schema=bounded, mode="skew")
    kinds = {f: {a.kind for a in m.schema_anomalies} for f, m in found.items()}
    assert "ENUM_TYPE_UNEXPECTED_STRING_VALUES" in kinds["weathersit"]
    assert "Snow" in found["weathersit"].schema_anomalies[0].description
    assert "FLOAT_TYPE_BIG_FLOAT" in kinds["hum"]
    assert "FEATURE_TYPE_LOW_FRACTION_PRESENT" in kinds["season"]
    assert "SCHEMA_MISSING_COLUMN" in kinds["holiday"]
    assert "UNEXPECTED_DATA_TYPE" in kinds["atemp"]  # strings where floats belong
    assert all(a.severity in ("WARNING", "ERROR") for m in found.values() for a in m.anomalies)
    assert kinds["temp"] == set() and kinds["windspeed"] == set()


def test_every_value_is_reported_even_without_comparators(frames, baseline_frame, schema):
    bare = schema_pb2.Schema()
    bare.CopyFrom(schema)
    for feature in bare.feature:
        feature.ClearField("skew_comparator")
        feature.ClearField("drift_comparator")
    reference, current = _profile(baseline_frame), _profile(frames["fahrenheit"])
    found = tfdv_skew_drift(baseline=reference, window=current, schema=bare, mode="drift")
    assert set(found) == {s.name for s in SPECS}
    for feature, m in found.items():
        (value,) = m.values
        assert value.threshold is None and not any(a.is_comparator for a in m.anomalies)
        assert value.metric is (TfdvMetric.JSD if feature in NUMERIC else TfdvMetric.LINF)
    assert found["temp"].jsd == pytest.approx(1.0)  # measured, though no comparator raised it
    configured = tfdv_skew_drift(baseline=reference, window=current, schema=schema, mode="drift")
    assert {v.threshold for m in configured.values() for v in m.values} == {0.1}
    assert len(schema.feature[0].skew_comparator.ListFields()) == 1  # the caller's schema is untouched


def test_schema_is_read_from_a_text_proto_like_the_bundle_writes(tmp_path, frames, baseline_frame, schema):
    path = tmp_path / "schema.pbtxt"
    tfdv.write_schema_text(schema, str(path))
    reference, current = _profile(baseline_frame), _profile(frames["2012-10"])
    from_file = tfdv_skew_drift(baseline=reference, window=current, schema=path, mode="drift")
    assert from_file == tfdv_skew_drift(baseline=reference, window=current, schema=schema, mode="drift")
    with pytest.raises(ConfigError) as err:
        tfdv_skew_drift(baseline=reference, window=current, schema=tmp_path / "nope.pbtxt", mode="drift")
    assert err.value.field == "schema"
    with pytest.raises(ConfigError) as err:
        tfdv_skew_drift(baseline=reference, window=current, schema=schema, mode="sideways")
    assert err.value.field == "mode"
    with pytest.raises(ConfigError) as err:
        tfdv_skew_drift(baseline={"temp": 1}, window=current, schema=schema, mode="drift")
    assert err.value.field == "baseline"


# -- the outlier fact -------------------------------------------------------------------------
def test_one_outlier_moves_tfdv_jsd_but_not_the_skewwatch_decision(bike, frames, baseline_frame, baseline_stats, schema):
    plain, spiked = _month(bike, 2012, 2), frames["outlier"]  # spiked = plain + one row, windspeed 999
    before = tfdv_skew_drift(baseline=baseline_stats, window=tfdv_statistics(plain, SPECS), schema=schema, mode="drift")
    after = tfdv_skew_drift(baseline=baseline_stats, window=tfdv_statistics(spiked, SPECS), schema=schema, mode="drift")
    assert before["windspeed"].jsd < 0.03 and after["windspeed"].jsd > 0.4  # one extra row in 693: ~29x
    assert "COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH" in {a.kind for a in after["windspeed"].anomalies}
    assert not before["windspeed"].anomalies

    reference = _profile(baseline_frame, bins=COARSE_BINS)
    report = evaluate(reference=reference, current=_profile(spiked, bins=COARSE_BINS), model="bike", config=MonitorConfig(),
                      mode="drift")
    windspeed = [f for f in report.findings if f.feature == "windspeed"]
    assert windspeed and not any(f.alerting for f in windspeed)
    # the same decision does see real drift in this window (it is not blind)
    assert any(f.alerting for f in report.findings if f.feature == "temp")


# -- the pure functions on their own ----------------------------------------------------------
def test_linf_tfdv_names_the_same_value_as_tfdv_on_a_tie():
    ref = pd.DataFrame({"c": ["a", "b", "b", "b"]})
    cur = pd.DataFrame({"c": ["a", "a", "b", "b", "c", "c", "c", "c"]})
    ref_stats = tfdv.generate_statistics_from_dataframe(ref, n_jobs=1)
    schema = tfdv.infer_schema(ref_stats)
    tfdv.get_feature(schema, "c").drift_comparator.infinity_norm.threshold = 0.1
    found = tfdv_skew_drift(baseline=ref_stats, window=tfdv.generate_statistics_from_dataframe(cur, n_jobs=1),
                            schema=schema, mode="drift")
    result = linf_tfdv(reference={"a": 1, "b": 3}, current={"a": 2, "b": 2, "c": 4})
    assert result.statistic == found["c"].linf == 0.5  # b and c both moved by 0.5
    assert result.detail("value") == "c"
    assert any(a.description.endswith("is: c") for a in found["c"].anomalies)
    stats = CategoricalStats()
    stats.update(["a", "b", "b", "b", None])
    assert linf_tfdv(reference=stats, current={"a": 2, "b": 2, "c": 4}) == result


def test_empty_and_invalid_inputs():
    empty, full = NumericStats(), NumericStats()
    full.update([1.0, 2.0, 3.0])
    for result in (jsd_tfdv(reference=empty, current=full), linf_tfdv(reference={}, current={"a": 3})):
        assert result.statistic == 0.0 and result.note and result.p_value is None
    with pytest.raises(StatisticsError):
        jsd_tfdv(reference=CategoricalStats(), current=full)
    with pytest.raises(StatisticsError):
        linf_tfdv(reference={"a": -1}, current={"a": 1})
    with pytest.raises(StatisticsError):
        linf_tfdv(reference=[("a", 1)], current={"a": 1})
    with pytest.raises(ConfigError):
        profile_to_tfdv({"temp": full})


def test_importing_the_interop_does_not_load_tensorflow():
    code = ("import sys, monitor.tfdv, monitor.tfdv_interop; "
            "heavy = sorted(m for m in ('tensorflow', 'tensorflow_data_validation', 'tfx_bsl') if m in sys.modules); "
            "print(heavy); sys.exit(1 if heavy else 0)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
