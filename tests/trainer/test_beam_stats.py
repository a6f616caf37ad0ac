"""trainer.beam_stats: TFDV statistics on Beam equal the in-memory ones (and pandas) on the same rows."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tensorflow_data_validation as tfdv
from apache_beam.options.pipeline_options import DirectOptions, FlinkRunnerOptions, GoogleCloudOptions, StandardOptions

from monitor.bundle import Bundle
from monitor.errors import ConfigError, SchemaError
from trainer.baseline import feature_frame, tfdv_statistics
from trainer.beam_stats import (
    YearFilter,
    beam_statistics,
    csv_header,
    input_format_of,
    make_pipeline_options,
    write_examples,
)
from trainer.data import BIKESHARE_FEATURES, load_bikeshare, split_by_time

DATA = Path(__file__).resolve().parents[2] / "data" / "bike_sharing_hourly.csv"
SPECS = BIKESHARE_FEATURES
REL = 1e-9


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return load_bikeshare(DATA)


@pytest.fixture(scope="module")
def in_memory(frame):
    return tfdv_statistics(frame, SPECS)


def _features(stats) -> dict:
    (ds,) = stats.datasets
    return {f.path.step[0]: f for f in ds.features}


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= REL * max(1.0, abs(a), abs(b))


def assert_same_statistics(got, want) -> None:
    """Counts, missing, top values and string stats exactly; floats (moments, quantiles, histograms) to 1e-9."""
    assert got.datasets[0].num_examples == want.datasets[0].num_examples
    g, w = _features(got), _features(want)
    assert sorted(g) == sorted(w) == sorted(s.name for s in SPECS)
    for name in w:
        assert g[name].type == w[name].type, name
        if w[name].HasField("string_stats"):
            assert g[name].string_stats == w[name].string_stats, name
            continue
        gs, ws = g[name].num_stats, w[name].num_stats
        for field in ("num_non_missing", "num_missing", "min_num_values", "max_num_values", "tot_num_values"):
            assert getattr(gs.common_stats, field) == getattr(ws.common_stats, field), (name, field)
        assert gs.num_zeros == ws.num_zeros
        for field in ("mean", "std_dev", "min", "max", "median"):
            assert _close(getattr(gs, field), getattr(ws, field)), (name, field, getattr(gs, field), getattr(ws, field))
        assert len(gs.histograms) == len(ws.histograms)
        for gh, wh in zip(gs.histograms, ws.histograms):
            assert gh.type == wh.type and len(gh.buckets) == len(wh.buckets)
            for gb, wb in zip(gh.buckets, wh.buckets):
                assert _close(gb.low_value, wb.low_value) and _close(gb.high_value, wb.high_value), name
                assert _close(gb.sample_count, wb.sample_count), name


def assert_matches_pandas(stats, df: pd.DataFrame) -> None:
    f = _features(stats)
    for spec in SPECS:
        col = df[spec.name]
        if spec.kind == "numeric":
            ns = f[spec.name].num_stats
            assert ns.common_stats.num_non_missing == col.notna().sum()
            assert ns.mean == pytest.approx(col.mean(), rel=REL)
            assert ns.std_dev == pytest.approx(col.std(ddof=0), rel=REL)
            # pandas' text-to-float parser is not correctly rounded (56.996900000000004 -> 56.9969); Python's is
            assert (ns.min, ns.max) == (pytest.approx(col.min(), rel=1e-15), pytest.approx(col.max(), rel=1e-15))
        else:
            ss = f[spec.name].string_stats
            assert ss.common_stats.num_missing == col.isna().sum()
            assert {b.label: int(b.sample_count) for b in ss.rank_histogram.buckets} == col.value_counts().to_dict()


def test_csv_on_beam_equals_in_memory_and_pandas(frame, in_memory) -> None:
    stats = beam_statistics(DATA, SPECS)
    assert_same_statistics(stats, in_memory)
    assert_matches_pandas(stats, frame)
    f = _features(stats)
    assert f["weekday"].string_stats.common_stats.num_missing == 875  # "" is missing, not a category
    assert f["weathersit"].string_stats.common_stats.num_missing == 1258
    assert not {"dteday", "casual", "registered", "cnt"} & set(f)  # non-features dropped


def test_row_filter_selects_the_training_year(frame) -> None:
    train = split_by_time(frame, 2011).train
    stats = beam_statistics(DATA, SPECS, row_filter=YearFilter(column="dteday", year=2011))
    assert stats.datasets[0].num_examples == len(train) == 8645
    assert_same_statistics(stats, tfdv_statistics(train, SPECS))
    assert_matches_pandas(stats, train)


def test_pipeline_options_reach_the_runner(in_memory) -> None:
    options = ["--direct_num_workers=2", "--direct_running_mode=multi_threading"]
    parsed = make_pipeline_options("DirectRunner", options)
    assert parsed.view_as(DirectOptions).direct_num_workers == 2
    assert_same_statistics(beam_statistics(DATA, SPECS, pipeline_options=options), in_memory)
    with pytest.raises(Exception, match="NoSuchRunner"):  # the runner name really goes to Beam
        beam_statistics(DATA, SPECS, runner="NoSuchRunner")


def test_gzipped_csv_glob(tmp_path, in_memory) -> None:
    lines = DATA.read_text().splitlines(keepends=True)
    header, body = lines[0], lines[1:]
    half = len(body) // 2
    for i, part in enumerate((body[:half], body[half:])):
        with gzip.open(tmp_path / f"part-{i}.csv.gz", "wt") as out:
            out.write(header + "".join(part))
    assert csv_header(str(tmp_path / "part-*.csv.gz")) == header.strip().split(",")
    assert_same_statistics(beam_statistics(str(tmp_path / "part-*.csv.gz"), SPECS), in_memory)


def test_parquet_equals_in_memory(frame, in_memory, tmp_path) -> None:
    path = tmp_path / "features.parquet"
    data = feature_frame(frame, SPECS).assign(weekday=lambda d: d["weekday"].fillna(""))  # "" means missing too
    data.to_parquet(path)
    assert_same_statistics(beam_statistics(path, SPECS), in_memory)


def test_tfrecord_holds_float32_and_equals_in_memory_of_float32(frame, tmp_path) -> None:
    path = tmp_path / "features.tfrecord"
    assert write_examples(frame, SPECS, path) == len(frame)
    as_float32 = frame.copy()
    for spec in SPECS:
        if spec.kind == "numeric":
            as_float32[spec.name] = frame[spec.name].astype(np.float32).astype(np.float64)
    assert_same_statistics(beam_statistics(path, SPECS), tfdv_statistics(as_float32, SPECS))


def test_bad_input_names_the_feature(tmp_path) -> None:
    lines = DATA.read_text().splitlines()[:300]
    header = lines[0].split(",")
    bad = lines[200].split(",")
    bad[header.index("atemp")] = "warm"
    (tmp_path / "bad.csv").write_text("\n".join(lines[:200] + [",".join(bad)] + lines[201:]) + "\n")
    with pytest.raises(SchemaError) as err:
        beam_statistics(tmp_path / "bad.csv", SPECS)
    assert err.value.feature == "atemp" and "warm" in str(err.value)

    (tmp_path / "short.csv").write_text("\n".join(lines[:5] + ["2011-01-01,spring,1am"]) + "\n")
    with pytest.raises(SchemaError, match="3 fields"):
        beam_statistics(tmp_path / "short.csv", SPECS)

    no_hum = "\n".join(",".join(c for i, c in enumerate(line.split(",")) if i != header.index("hum")) for line in lines)
    (tmp_path / "no_hum.csv").write_text(no_hum + "\n")
    with pytest.raises(SchemaError) as err:
        beam_statistics(tmp_path / "no_hum.csv", SPECS)
    assert err.value.feature == "hum"

    pd.DataFrame({"temp": [1.0], "hr": ["1am"]}).to_parquet(tmp_path / "narrow.parquet")
    with pytest.raises(SchemaError) as err:
        beam_statistics(tmp_path / "narrow.parquet", SPECS)
    assert err.value.feature == "atemp"


def test_options_and_formats_are_checked(tmp_path) -> None:
    assert [input_format_of(p) for p in ("a.csv", "gs://b/x-*.csv.gz", "t.parquet", "e.tfrecord.gz", "e.tfr")] == [
        "csv", "csv", "parquet", "tfrecord", "tfrecord"]
    with pytest.raises(ConfigError) as err:
        input_format_of("data.json")
    assert err.value.field == "input_format"

    flink = make_pipeline_options("FlinkRunner", ["--flink_master=localhost:8081", "--parallelism=4",
                                                  "--temp_location=/tmp/beam"])
    assert flink.view_as(StandardOptions).runner == "FlinkRunner"
    assert flink.view_as(FlinkRunnerOptions).flink_master == "localhost:8081"
    assert flink.view_as(FlinkRunnerOptions).parallelism == 4
    assert flink.view_as(GoogleCloudOptions).temp_location == "/tmp/beam"
    for bad, field in ((["--runner=FlinkRunner"], "pipeline_options"), ("--parallelism=4", "pipeline_options")):
        with pytest.raises(ConfigError) as err:
            make_pipeline_options("DirectRunner", bad)
        assert err.value.field == field
    with pytest.raises(ConfigError) as err:
        make_pipeline_options(" ", [])
    assert err.value.field == "runner"

    with pytest.raises(ConfigError) as err:
        beam_statistics(tmp_path / "x.parquet", SPECS, row_filter=YearFilter(column="dteday", year=2011))
    assert err.value.field == "row_filter"
    with pytest.raises(ConfigError) as err:
        beam_statistics(tmp_path / "nothing-*.csv", SPECS)
    assert err.value.field == "data_path"

    keep = YearFilter(column="dteday", year=2011)
    assert keep({"dteday": "2011-12-31"}) and not keep({"dteday": "2012-01-01"})
    with pytest.raises(SchemaError) as err:
        keep({"day": "2011-01-01"})
    assert err.value.feature == "dteday"


@pytest.mark.slow
def test_train_with_beam_writes_the_same_baseline(tmp_path, frame) -> None:
    from trainer.train import train

    bundle = train(data_path=DATA, models_dir=tmp_path, epochs=1, seed=0, beam_runner="DirectRunner",
                   beam_options=["--direct_num_workers=1", "--s3_secret_access_key=hunter2"])
    assert isinstance(bundle, Bundle)
    info = bundle.metadata["data"]["baseline_statistics"]
    assert (info["engine"], info["runner"]) == ("tfdv-beam", "DirectRunner")
    assert info["pipeline_option_flags"] == ["--direct_num_workers", "--s3_secret_access_key"]
    assert "hunter2" not in (bundle.path / "metadata.json").read_text()  # flag values may be credentials
    stats = tfdv.load_stats_binary(str(bundle.file("tfdv_statistics")))
    train_rows = split_by_time(frame, 2011).train
    assert_same_statistics(stats, tfdv_statistics(train_rows, SPECS))
    schema = tfdv.load_schema_text(str(bundle.file("tfdv_schema")))
    assert not tfdv.validate_statistics(stats, schema).anomaly_info
    assert json.loads((bundle.path / "metadata.json").read_text())["data"]["rows"] == len(train_rows)
