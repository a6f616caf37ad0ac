"""trainer.tuning: seeded, budgeted search over model and preprocessing choices; the best one is bundled."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import optuna
import pytest

from monitor.errors import ConfigError
from trainer.data import BIKESHARE_FEATURES, LABEL, load_bikeshare, split_by_time
from trainer.hparams import HParams
from trainer.model import describe_preprocessing, predict
from trainer.tuning import SearchSpace, check_budget, tune

DATA = Path(__file__).resolve().parents[2] / "data" / "bike_sharing_hourly.csv"
SPECS = BIKESHARE_FEATURES
EPOCHS = 2
# A small space keeps trials cheap; it still spans preprocessing (buckets, crosses, vocabulary) and the model.
SMALL = SearchSpace(
    num_buckets=(4, 8),
    bucket_features=(("temp", "hum"), ("atemp", "hum")),
    crosses=((), (("hr", "workingday"),)),
    max_tokens=(None, 6),
    embedding_dim=(4, 8),
    hidden_units=((32,), (32, 16)),
    dropout=(0.0,),
    batch_size=(256, 512),
    learning_rate=(2e-3, 1e-2),
)


@pytest.fixture(scope="module")
def split():
    return split_by_time(load_bikeshare(DATA), 2011)


def test_suggest_maps_labels_to_hparams() -> None:
    space = SearchSpace()
    params = {
        "num_buckets": 12, "bucket_features": "temp*hum*windspeed", "crosses": "hr*workingday,season*weathersit",
        "max_tokens": 16, "embedding_dim": 4, "hidden_units": "128-64", "dropout": 0.1, "batch_size": 512,
        "learning_rate": 0.004,
    }
    hp = space.suggest(optuna.trial.FixedTrial(params), HParams(epochs=3, patience=2))
    assert hp == HParams(
        num_buckets=12, bucket_features=("temp", "hum", "windspeed"),
        crosses=(("hr", "workingday"), ("season", "weathersit")), max_tokens=16, embedding_dim=4,
        hidden_units=(128, 64), dropout=0.1, batch_size=512, learning_rate=0.004, epochs=3, patience=2,
    )
    labels = json.loads(json.dumps(space.to_dict()))
    for name, value in params.items():
        if name != "learning_rate":
            assert value in labels[name], name
    assert labels["crosses"][0] == "none" and labels["learning_rate"] == {"low": 1e-3, "high": 1e-2, "log": True}


def test_params_of_inverts_suggest() -> None:
    space = SearchSpace()
    base = HParams(epochs=3)
    params = space.params_of(base)
    assert params is not None and space.suggest(optuna.trial.FixedTrial(params), base) == base
    assert space.params_of(base.replace(hidden_units=(7,))) is None
    assert space.params_of(base.replace(learning_rate=0.5)) is None
    assert SMALL.params_of(base) is None  # (64, 32) is not among SMALL's hidden_units


@pytest.mark.parametrize(
    ("changes", "field"),
    [({"num_buckets": ()}, "search_space.num_buckets"), ({"num_buckets": (1, 4)}, "search_space.num_buckets"),
     ({"learning_rate": (0.1, 0.01)}, "search_space.learning_rate"), ({"max_tokens": (1,)}, "search_space.max_tokens"),
     ({"dropout": (0.0, 0.0)}, "search_space.dropout")],
)
def test_bad_search_space_names_the_field(changes, field) -> None:
    with pytest.raises(ConfigError) as err:
        SearchSpace(**changes)
    assert err.value.field == field


@pytest.mark.parametrize(
    ("trials", "timeout", "field"),
    [(None, None, "tune_trials"), (0, None, "tune_trials"), (2.5, None, "tune_trials"), (None, 0, "tune_timeout"),
     (3, float("inf"), "tune_timeout")],
)
def test_a_search_needs_a_budget(trials, timeout, field) -> None:
    with pytest.raises(ConfigError) as err:
        check_budget(trials, timeout)
    assert err.value.field == field


def test_max_tokens_keeps_the_most_frequent_values(split) -> None:
    from trainer.model import build_model

    model = build_model(split.train, SPECS, HParams(max_tokens=4), label_mean=4.5, seed=0)
    vocabs = describe_preprocessing(model, SPECS)["vocabularies"]
    for spec in SPECS:
        if spec.kind == "categorical":
            counts = split.train[spec.name].value_counts()
            expected = sorted(counts.index, key=lambda v: (-counts[v], v))[:3]
            assert vocabs[spec.name] == expected
    assert "Heavy Rain" not in vocabs["weathersit"] and len(vocabs["hr"]) == 3
    # one row, four weathers: a value cut from the vocabulary, a missing one and an unseen one share the OOV index
    rows = split.train.iloc[[100] * 4].assign(weathersit=["Heavy Rain", None, "Blizzard", "Clear"])
    out = predict(model, {s.name: rows[s.name] for s in SPECS}, SPECS)
    assert out[0] == out[1] == out[2] != out[3]


@pytest.mark.slow
def test_search_is_seeded_and_scores_on_validation(split) -> None:
    base = HParams(epochs=EPOCHS)
    first = tune(split, base=base, space=SMALL, trials=2, seed=7, include_base=False)
    again = tune(split, base=base, space=SMALL, trials=2, seed=7, include_base=False)
    assert [t.number for t in first.trials] == [0, 1] and all(t.state == "COMPLETE" for t in first.trials)
    assert [t.params for t in again.trials] == [t.params for t in first.trials]
    np.testing.assert_allclose([t.value for t in again.trials], [t.value for t in first.trials], rtol=1e-5)
    best = min(first.trials, key=lambda t: t.value)
    assert (first.best_trial, first.best_value) == (best.number, best.value)
    assert first.best_hparams == HParams.from_dict(best.hparams)
    for t in first.trials:
        assert t.value == t.validation["rmse"] and t.validation["rows"] == len(split.validation)
        assert SMALL.suggest(optuna.trial.FixedTrial(dict(t.params)), base) == HParams.from_dict(t.hparams)
    assert len({json.dumps(t.params, sort_keys=True) for t in first.trials}) == 2

    # a time budget stops after the trial that crosses it; another seed draws another first configuration
    timed = tune(split, base=base, space=SMALL, timeout=1e-3, seed=8, include_base=False)
    assert len(timed.trials) == 1 and timed.budget == {"trials": None, "timeout_seconds": 1e-3, "epochs_per_trial": 2}
    assert timed.trials[0].params != first.trials[0].params

    meta = json.loads(json.dumps(first.to_metadata()))
    assert meta["best_params"] == best.params and len(meta["trials"]) == 2 and meta["seed"] == 7
    assert meta["objective"] == "validation_rmse" and meta["completed_trials"] == 2


@pytest.mark.slow
def test_train_with_tuning_bundles_the_best_configuration(tmp_path, split) -> None:
    from trainer.train import train

    bundle = train(data_path=DATA, models_dir=tmp_path, epochs=EPOCHS, seed=3, tune_trials=2)
    tuning = bundle.metadata["tuning"]
    assert tuning["library"] == "optuna" and tuning["sampler"] == "TPESampler" and tuning["seed"] == 3
    assert tuning["budget"]["trials"] == 2 and len(tuning["trials"]) == 2
    best = min(tuning["trials"], key=lambda t: t["value"])
    assert tuning["best_trial"] == best["number"] and tuning["best_value"] == best["value"]
    assert bundle.metadata["hyperparameters"] == {**best["hparams"], "seed": 3}
    # trial 0 is the starting configuration (the defaults lie in the default space): never worse than it
    assert tuning["base_trial"] == 0 and tuning["trials"][0]["hparams"] == HParams(epochs=EPOCHS).to_dict()
    assert tuning["best_value"] <= tuning["trials"][0]["value"]
    # the bundled model is the best configuration trained again with the same seed: the same score
    assert tuning["refit_validation_rmse"] == pytest.approx(best["value"], rel=1e-4)
    model = keras.saving.load_model(bundle.file("model"))
    val = split.validation
    err = predict(model, {s.name: val[s.name] for s in SPECS}, SPECS) - val[LABEL].to_numpy(dtype=float)
    assert np.sqrt(np.mean(err**2)) == pytest.approx(tuning["refit_validation_rmse"], rel=1e-5)
    assert bundle.metadata["metrics"]["validation"]["rmse"] == tuning["refit_validation_rmse"]
