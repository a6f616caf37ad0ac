"""End to end: train once, write the bundle, read it back (Keras, TFDV, skewwatch baselines)."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow_data_validation as tfdv

from monitor.bundle import VERSION_PATTERN, Bundle, list_bundles, resolve_bundle
from monitor.errors import BundleError, ConfigError
from monitor.schema import specs_to_dicts
from trainer.baseline import tfdv_statistics
from trainer.bundle import MAX_SAMPLE_ROWS, write_bundle
from trainer.data import BIKESHARE_FEATURES, LABEL
from trainer.inputs import columns_from_instances
from trainer.model import describe_preprocessing, predict
from trainer.train import export_run, fit_bikeshare, train

pytestmark = pytest.mark.slow

DATA = Path(__file__).resolve().parents[2] / "data" / "bike_sharing_hourly.csv"
SPECS = BIKESHARE_FEATURES
EPOCHS = 4


@pytest.fixture(scope="module")
def run():
    return fit_bikeshare(data_path=DATA, epochs=EPOCHS, seed=0)


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def bundle(run, models_dir) -> Bundle:
    return Bundle.load(export_run(run, models_dir=models_dir, model_name="bikeshare"))


@pytest.fixture(scope="module")
def reloaded(bundle):
    return keras.saving.load_model(bundle.file("model"))


def _cols(df: pd.DataFrame) -> dict[str, list]:
    return {s.name: df[s.name].tolist() for s in SPECS}


def test_layout(bundle, models_dir) -> None:
    assert bundle.path.parent == models_dir / "bikeshare"
    assert bundle.path.name == bundle.model_version and VERSION_PATTERN.match(bundle.model_version)
    for rel in bundle.metadata["files"].values():
        assert (bundle.path / rel).is_file(), rel
    assert not [p for p in bundle.path.parent.iterdir() if p.name.startswith(".tmp-")]
    assert list_bundles(models_dir, strict=True) == [bundle]
    assert resolve_bundle(models_dir, "bikeshare") == bundle


def test_reloaded_model_predicts_identically(run, reloaded) -> None:
    rows = pd.concat([run.split.validation.head(300), run.split.serving.sample(700, random_state=1)])
    np.testing.assert_allclose(
        predict(reloaded, _cols(rows), SPECS), predict(run.model, _cols(rows), SPECS), rtol=1e-6, atol=1e-6
    )
    # the serving path: JSON instances with absent keys, nulls and unseen categories
    instances = [
        {"temp": 12.0, "atemp": 11.5, "hum": 40, "windspeed": 7.0, "season": "spring", "hr": "8am",
         "holiday": "No", "weekday": "Tue", "workingday": "Yes", "weathersit": "Clear"},
        {"temp": -3.5, "atemp": -8, "hum": 95.0, "windspeed": 30.0, "season": "monsoon", "hr": "8am",
         "holiday": None, "workingday": "Yes", "weathersit": "Blizzard"},
    ]
    cols = columns_from_instances(instances, SPECS)
    a, b = predict(reloaded, cols, SPECS), predict(run.model, cols, SPECS)
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    assert np.isfinite(a).all()


def test_metadata(bundle, run, reloaded) -> None:
    meta = bundle.metadata
    assert meta["bundle_format"] == 1 and meta["model_name"] == "bikeshare"
    assert meta["features"] == specs_to_dicts(SPECS) and bundle.specs == SPECS
    assert meta["label"] == LABEL
    assert meta["prediction"] == {"name": "prediction", "kind": "numeric", "dtype": "float"}
    created = datetime.fromisoformat(meta["created_at"].replace("Z", "+00:00"))
    assert created.tzinfo is not None and created.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ") == bundle.model_version
    assert meta["hyperparameters"] == {**run.hparams.to_dict(), "seed": 0}
    assert meta["hyperparameters"]["epochs"] == EPOCHS
    assert meta["data"]["rows"] == len(run.split.train) == 8645
    assert (meta["data"]["train_start"], meta["data"]["train_end"]) == ("2011-01-01T00:00:00Z", "2011-12-31T23:00:00Z")
    assert meta["code_version"]
    assert meta["preprocessing"] == describe_preprocessing(reloaded, SPECS)
    for name, stats in meta["preprocessing"]["normalization"].items():
        assert stats["mean"] == pytest.approx(run.split.train[name].mean(), rel=1e-5)
    # metrics recomputed with numpy from the reloaded model
    for key, frame in (("validation", run.split.validation), ("holdout", run.split.serving)):
        err = predict(reloaded, _cols(frame), SPECS) - frame[LABEL].to_numpy(dtype=float)
        assert meta["metrics"][key]["mae"] == pytest.approx(np.abs(err).mean(), rel=1e-5)
        assert meta["metrics"][key]["rmse"] == pytest.approx(np.sqrt((err**2).mean()), rel=1e-5)
        assert meta["metrics"][key]["rows"] == len(frame)
    assert json.loads((bundle.path / "metadata.json").read_text()) == meta


def test_tfdv_statistics_match_pandas(bundle, run) -> None:
    stats = tfdv.load_stats_binary(str(bundle.file("tfdv_statistics")))
    (ds,) = stats.datasets
    train = run.split.train
    assert ds.num_examples == len(train)
    by_name = {f.path.step[0]: f for f in ds.features}
    assert set(by_name) == {s.name for s in SPECS}
    for spec in SPECS:
        col, feat = train[spec.name], by_name[spec.name]
        if spec.kind == "categorical":
            common = feat.string_stats.common_stats
            assert common.num_non_missing == col.notna().sum()
            assert common.num_missing == col.isna().sum()
            assert feat.string_stats.unique == col.nunique()
            counts = {b.label: int(b.sample_count) for b in feat.string_stats.rank_histogram.buckets}
            assert counts == col.value_counts().to_dict()
        else:
            ns = feat.num_stats
            assert ns.common_stats.num_non_missing == len(col)
            assert ns.mean == pytest.approx(col.mean(), rel=1e-9)
            assert ns.std_dev == pytest.approx(col.std(ddof=0), rel=1e-9)
            assert (ns.min, ns.max) == (col.min(), col.max())
            assert ns.num_zeros == (col == 0).sum()


def test_tfdv_schema_has_comparators_and_domains(bundle, run) -> None:
    schema = tfdv.load_schema_text(str(bundle.file("tfdv_schema")))
    vocabs = bundle.metadata["preprocessing"]["vocabularies"]
    for spec in SPECS:
        feature = tfdv.get_feature(schema, spec.name)
        if spec.kind == "categorical":
            assert feature.skew_comparator.infinity_norm.threshold == pytest.approx(0.1)
            assert feature.drift_comparator.infinity_norm.threshold == pytest.approx(0.1)
            values = list(tfdv.get_domain(schema, spec.name).value)
            assert values == sorted(vocabs[spec.name]) == sorted(run.split.train[spec.name].dropna().unique())
        else:
            assert feature.skew_comparator.jensen_shannon_divergence.threshold == pytest.approx(0.1)
            assert feature.drift_comparator.jensen_shannon_divergence.threshold == pytest.approx(0.1)
    stats = tfdv.load_stats_binary(str(bundle.file("tfdv_statistics")))
    assert not tfdv.validate_statistics(stats, schema).anomaly_info  # training data fits its own schema
    # the drift comparators fire on a shifted numeric and a shifted categorical, not on the rest
    shifted = run.split.train.copy()
    shifted["temp"] = shifted["temp"] + 15.0
    shifted["weathersit"] = "Light Rain"
    anomalies = tfdv.validate_statistics(tfdv_statistics(shifted, SPECS), schema, previous_statistics=stats)
    assert {"temp", "weathersit"} <= set(anomalies.anomaly_info)
    assert not {"hum", "hr", "season"} & set(anomalies.anomaly_info)


def test_skewwatch_baselines(bundle, run) -> None:
    train = run.split.train
    profile = bundle.baseline()
    assert profile.specs == SPECS and profile.rows == len(train)
    for spec in SPECS:
        stats, col = profile[spec.name], train[spec.name]
        assert stats.missing == col.isna().sum()
        if spec.kind == "numeric":
            assert stats.count == len(col)
            assert stats.mean == pytest.approx(col.mean(), rel=1e-9)
            assert (stats.min, stats.max) == (col.min(), col.max())
        else:
            assert stats.is_exact and stats.counts() == col.value_counts().to_dict()
    preds = predict(run.model, _cols(train), SPECS)
    pb = bundle.prediction_baseline()
    assert [s.name for s in pb.specs] == ["prediction"] and pb.rows == len(train)
    assert pb["prediction"].mean == pytest.approx(preds.mean(), rel=1e-9)
    assert pb["prediction"].max == pytest.approx(preds.max(), rel=1e-12)


def test_sample_is_bounded_and_made_of_training_rows(bundle, run) -> None:
    sample = pd.read_csv(bundle.file("sample"), dtype={"weekday": str, "weathersit": str}, keep_default_na=False)
    assert 0 < len(sample) <= MAX_SAMPLE_ROWS
    assert LABEL in sample.columns and {s.name for s in SPECS} <= set(sample.columns)
    assert sample["event_time"].is_monotonic_increasing and sample["event_time"].is_unique
    train = run.split.train.assign(event_time=run.split.train["event_time"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
    joined = sample.merge(train, on="event_time", suffixes=("", "_train"), validate="one_to_one")
    assert len(joined) == len(sample)
    assert (joined[LABEL] == joined[f"{LABEL}_train"]).all()
    np.testing.assert_allclose(joined["temp"], joined["temp_train"])
    assert (joined["weekday"] == joined["weekday_train"].fillna("")).all()


def test_train_is_reproducible_and_returns_the_bundle(run, tmp_path) -> None:
    again = train(data_path=DATA, models_dir=tmp_path, model_name="bike2", epochs=EPOCHS, seed=0)
    assert isinstance(again, Bundle) and again.model_name == "bike2"
    assert resolve_bundle(tmp_path, "bike2") == again
    model = keras.saving.load_model(again.file("model"))
    rows = run.split.serving.head(500)
    np.testing.assert_allclose(predict(model, _cols(rows), SPECS), predict(run.model, _cols(rows), SPECS), rtol=1e-5)
    assert again.metrics["validation"] == pytest.approx(run.metrics["validation"], rel=1e-5)
    with pytest.raises(ConfigError) as err:
        train(data_path=DATA, models_dir=tmp_path, epochs=0)
    assert err.value.field == "hparams.epochs"


def test_same_second_gets_the_next_version_and_broken_bundles_are_caught(bundle, run, tmp_path) -> None:
    when = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    kwargs = dict(
        models_dir=tmp_path, model_name="m", model=run.model, specs=SPECS, label=LABEL,
        baseline=bundle.baseline(), prediction_baseline=bundle.prediction_baseline(),
        tfdv_statistics=tfdv.load_stats_binary(str(bundle.file("tfdv_statistics"))),
        tfdv_schema=tfdv.load_schema_text(str(bundle.file("tfdv_schema"))),
        sample=run.split.train.head(10), metrics={}, hyperparameters={},
        data={"path": "x", "train_start": "a", "train_end": "b", "rows": 10}, created_at=when,
    )
    first, second = write_bundle(**kwargs), write_bundle(**kwargs)
    assert (first.name, second.name) == ("20300102T030405Z", "20300102T030406Z")
    assert resolve_bundle(tmp_path, "m").model_version == "20300102T030406Z"
    assert resolve_bundle(tmp_path, "m", "20300102T030405Z").path == first
    (second / "baseline.swstats").unlink()
    with pytest.raises(BundleError) as err:
        resolve_bundle(tmp_path, "m")
    assert err.value.path == str(second / "baseline.swstats")
    assert [b.model_version for b in list_bundles(tmp_path)] == ["20300102T030405Z"]
    with pytest.raises(BundleError):
        list_bundles(tmp_path, strict=True)
    shutil.rmtree(second)
    with pytest.raises(BundleError):
        write_bundle(**{**kwargs, "data": {"path": "x"}})
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["20300102T030405Z"]  # nothing half-written
