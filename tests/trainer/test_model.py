"""trainer.model: preprocessing inside the model (checked against numpy/pandas), predict, OOV."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import trainer.model as model_module
from monitor.errors import SchemaError
from trainer.data import BIKESHARE_FEATURES, load_bikeshare, split_by_time
from trainer.hparams import HParams
from trainer.model import build_model, describe_preprocessing, predict, vocabulary

DATA = Path(__file__).resolve().parents[2] / "data" / "bike_sharing_hourly.csv"
SPECS = BIKESHARE_FEATURES


@pytest.fixture(scope="module")
def split():
    return split_by_time(load_bikeshare(DATA), 2011)


@pytest.fixture(scope="module")
def model(split):
    """Built and adapted on the 2011 rows, not trained: preprocessing does not need training."""
    return build_model(split.train, SPECS, HParams(num_buckets=6), label_mean=4.5, seed=0)


def _columns(df: pd.DataFrame) -> dict[str, list]:
    return {s.name: df[s.name].tolist() for s in SPECS}


def test_vocabularies_come_from_training_rows_by_frequency(model, split) -> None:
    vocabs = describe_preprocessing(model, SPECS)["vocabularies"]
    assert set(vocabs) == {s.name for s in SPECS if s.kind == "categorical"}
    for name, vocab in vocabs.items():
        counts = split.train[name].value_counts()  # pandas drops None
        assert set(vocab) == set(counts.index)
        assert "" not in vocab
        freqs = [int(counts[v]) for v in vocab]
        assert freqs == sorted(freqs, reverse=True)
    assert vocabulary(pd.Series(["b", "a", None, "", "b", "a", "c"])) == ["a", "b", "c"]


def test_normalization_stats_match_numpy(model, split) -> None:
    norm = describe_preprocessing(model, SPECS)["normalization"]
    assert set(norm) == {s.name for s in SPECS if s.kind == "numeric"}
    for name, stats in norm.items():
        values = split.train[name].to_numpy(dtype=np.float32).astype(np.float64)
        assert stats["mean"] == pytest.approx(values.mean(), rel=1e-5)
        assert stats["variance"] == pytest.approx(values.var(), rel=1e-4)


def test_bucket_boundaries_are_training_quantiles(model, split) -> None:
    bounds = describe_preprocessing(model, SPECS)["bucket_boundaries"]
    assert set(bounds) == {"temp", "hum"}
    for name, b in bounds.items():
        values = split.train[name].to_numpy(dtype=np.float32)
        expected = sorted(set(np.quantile(values.astype(np.float64), np.linspace(0, 1, 7)[1:-1]).tolist()))
        np.testing.assert_allclose(b, expected, rtol=1e-6)
        assert all(x < y for x, y in zip(b, b[1:]))
        # every bucket is actually populated by training rows
        idx = np.searchsorted(np.asarray(b), values, side="right")
        assert set(idx.tolist()) == set(range(len(b) + 1))


def test_predict_shape_dtype_and_empty(model, split) -> None:
    rows = split.serving.head(37)
    out = predict(model, _columns(rows), SPECS)
    assert out.dtype == np.float64 and out.shape == (37,)
    assert np.isfinite(out).all() and (out > -1).all()  # expm1 of a finite head is > -1
    empty = predict(model, {s.name: [] for s in SPECS}, SPECS)
    assert empty.shape == (0,) and empty.dtype == np.float64


def test_predict_in_chunks_equals_one_batch(model, split, monkeypatch) -> None:
    cols = _columns(split.serving.head(50))
    whole = predict(model, cols, SPECS)
    monkeypatch.setattr(model_module, "_PREDICT_BATCH", 7)
    np.testing.assert_allclose(predict(model, cols, SPECS), whole, rtol=1e-6)


def test_unseen_and_missing_categories_map_to_oov(model, split) -> None:
    base = split.train.head(20)
    cols = _columns(base)
    unseen = {**cols, "weathersit": ["Blizzard"] * 20, "season": ["monsoon"] * 20}
    missing = {**cols, "weathersit": [None] * 20, "season": [None] * 20}
    known = {**cols, "weathersit": ["Clear"] * 20, "season": ["winter"] * 20}
    p_unseen, p_missing, p_known = (predict(model, c, SPECS) for c in (unseen, missing, known))
    assert np.isfinite(p_unseen).all()
    np.testing.assert_allclose(p_unseen, p_missing, rtol=1e-6)  # both are the OOV index
    assert not np.allclose(p_unseen, p_known)


def test_predict_errors_name_the_feature(model, split) -> None:
    cols = _columns(split.train.head(4))
    cols["hum"][1] = None
    with pytest.raises(SchemaError) as err:
        predict(model, cols, SPECS)
    assert (err.value.feature, err.value.instance) == ("hum", 1)
    cols = _columns(split.train.head(4))
    del cols["season"]
    with pytest.raises(SchemaError) as err:
        predict(model, cols, SPECS)
    assert err.value.feature == "season"


def test_build_rejects_bad_feature_choices(split) -> None:
    with pytest.raises(SchemaError) as err:
        build_model(split.train.head(100), SPECS, HParams(bucket_features=("season",)))
    assert err.value.feature == "season"
    with pytest.raises(SchemaError) as err:
        build_model(split.train.head(100), SPECS, HParams(crosses=(("hr", "temp"),)))
    assert err.value.feature == "temp"
    with pytest.raises(SchemaError) as err:
        build_model(split.train.drop(columns=["windspeed"]), SPECS, HParams())
    assert err.value.feature == "windspeed"


def test_compiled_forward_pass_matches_eager_and_does_not_leak_models(split) -> None:
    small = split.train.head(300)
    m = build_model(small, SPECS, HParams(hidden_units=(4,)), seed=1)
    cols = _columns(split.serving.head(64))
    eager = np.asarray(m(model_module._to_tensors(model_module.to_model_inputs(cols, SPECS)), training=False))
    np.testing.assert_allclose(predict(m, cols, SPECS), eager.astype(np.float64), rtol=1e-6)
    alive = weakref.ref(m)
    del m
    gc.collect()
    assert alive() is None


def test_strings_reach_the_lookup_exactly(split) -> None:
    """Predict packs strings as code points: non-ASCII, embedded NULs, the empty string and a lone
    surrogate come out of the model as the eager call on the same strings does."""
    small = split.train.head(400).copy()
    awkward = ["ñandú", "日本語", "x\0y", "xy", "\0z", "tab\there", "🚲 bike"]
    small["weathersit"] = [awkward[i % len(awkward)] for i in range(len(small))]
    m = build_model(small, SPECS, HParams(hidden_units=(4,)), seed=2)
    lookup = m.get_layer("lookup_weathersit")
    indices = [int(lookup(np.array([[v]], dtype=object))[0, 0]) for v in awkward]
    assert 0 not in indices and len(set(indices)) == len(awkward)  # all distinct vocabulary entries
    probe = split.serving.head(len(awkward) + 3)
    cols = _columns(probe)
    cols["weathersit"] = [*awkward, "", None, "\ud800"]  # "" and None are OOV; a surrogate becomes U+FFFD
    cols["season"] = ["wïnter", *cols["season"][1:]]
    got = predict(m, cols, SPECS)
    reference = {**cols, "weathersit": [v if v != "\ud800" else "\ufffd" for v in cols["weathersit"]]}
    eager = np.asarray(m(model_module._to_tensors(model_module.to_model_inputs(reference, SPECS)), training=False))
    np.testing.assert_allclose(got, eager.astype(np.float64), rtol=1e-6)
