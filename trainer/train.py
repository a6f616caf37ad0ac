"""Train the bike-sharing model and write its bundle: what ``skewwatch train`` runs."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import keras
import numpy as np

from monitor.bundle import Bundle
from monitor.errors import ConfigError
from trainer.baseline import feature_profile, prediction_profile, tfdv_schema, tfdv_statistics
from trainer.bundle import sample_rows, write_bundle
from trainer.data import BIKESHARE_FEATURES, LABEL, TimeSplit, load_bikeshare, split_by_time
from trainer.hparams import HParams
from trainer.model import FitResult, build_model, describe_preprocessing, evaluate, fit_model, predict

__all__ = ["TrainingRun", "export_run", "fit_bikeshare", "train"]

log = logging.getLogger(__name__)


def _iso(ts: Any) -> str:
    return ts.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class TrainingRun:
    """A trained model and everything about it that goes into its bundle (not yet written)."""

    model: keras.Model
    split: TimeSplit
    hparams: HParams
    seed: int
    data_path: str
    fit: FitResult
    metrics: dict[str, Any]


def fit_bikeshare(
    *,
    data_path: str | os.PathLike[str],
    epochs: int | None = None,
    seed: int = 0,
    hparams: HParams | Mapping[str, Any] | None = None,
    train_year: int = 2011,
) -> TrainingRun:
    """Load the data and fit on ``train_year`` (its last two months validate); write nothing.

    ``epochs`` overrides ``hparams.epochs`` (the maximum; early stopping may stop sooner).
    The same ``seed`` on the same data gives the same model.
    """
    hp = hparams if isinstance(hparams, HParams) else HParams.from_dict(hparams)
    if epochs is not None:
        if isinstance(epochs, bool) or not isinstance(epochs, int):
            raise ConfigError(f"must be an integer, got {epochs!r}", field="epochs")
        hp = hp.replace(epochs=epochs)
    specs = BIKESHARE_FEATURES

    df = load_bikeshare(data_path)
    split = split_by_time(df, train_year)
    log.info(
        "loaded %d rows from %s: train %d (fit %d, validation %d), holdout %d",
        len(df), data_path, len(split.train), len(split.fit), len(split.validation), len(split.serving),
    )

    y_fit = split.fit[LABEL].to_numpy(dtype=np.float64)
    label_mean = float(np.mean(np.log1p(y_fit) if hp.log_target else y_fit))
    model = build_model(split.train, specs, hp, label_mean=label_mean, seed=seed)
    fit_started = time.perf_counter()
    fit = fit_model(model, split.fit, split.validation, specs, hp, label=LABEL, seed=seed)
    fit_seconds = time.perf_counter() - fit_started
    log.info("trained %d epochs (best %d) in %.1fs", fit.epochs_run, fit.best_epoch, fit_seconds)

    metrics: dict[str, Any] = {
        "train": evaluate(model, split.train, specs, label=LABEL),
        "validation": evaluate(model, split.validation, specs, label=LABEL),
        "holdout": evaluate(model, split.serving, specs, label=LABEL),
        "holdout_start": _iso(split.serving["event_time"].min()),
        "holdout_end": _iso(split.serving["event_time"].max()),
        "epochs_run": fit.epochs_run,
        "best_epoch": fit.best_epoch,
        "fit_seconds": round(fit_seconds, 3),
    }
    log.info("metrics: validation %s, holdout %s", metrics["validation"], metrics["holdout"])
    return TrainingRun(model, split, hp, seed, str(data_path), fit, metrics)


def export_run(run: TrainingRun, *, models_dir: str | os.PathLike[str], model_name: str = "bikeshare") -> Path:
    """Compute the baselines of ``run``'s training rows and write its bundle; return its path."""
    specs = BIKESHARE_FEATURES
    train_df = run.split.train
    train_predictions = predict(run.model, {s.name: train_df[s.name] for s in specs}, specs)
    stats = tfdv_statistics(train_df, specs)
    schema = tfdv_schema(stats, specs, describe_preprocessing(run.model, specs)["vocabularies"])
    return write_bundle(
        models_dir=models_dir,
        model_name=model_name,
        model=run.model,
        specs=specs,
        label=LABEL,
        baseline=feature_profile(train_df, specs),
        prediction_baseline=prediction_profile(train_predictions),
        tfdv_statistics=stats,
        tfdv_schema=schema,
        sample=sample_rows(train_df, seed=run.seed),
        metrics=run.metrics,
        hyperparameters={**run.hparams.to_dict(), "seed": run.seed},
        data={
            "path": run.data_path,
            "train_start": _iso(train_df["event_time"].min()),
            "train_end": _iso(train_df["event_time"].max()),
            "rows": int(len(train_df)),
            "fit_rows": int(len(run.split.fit)),
            "validation_start": _iso(run.split.validation["event_time"].min()),
            "validation_rows": int(len(run.split.validation)),
        },
    )


def train(
    *,
    data_path: str | os.PathLike[str],
    models_dir: str | os.PathLike[str],
    model_name: str = "bikeshare",
    epochs: int | None = None,
    seed: int = 0,
    hparams: HParams | Mapping[str, Any] | None = None,
    train_year: int = 2011,
) -> Bundle:
    """Train the model and write its bundle under ``models_dir/model_name``; return the bundle."""
    started = time.perf_counter()
    run = fit_bikeshare(data_path=data_path, epochs=epochs, seed=seed, hparams=hparams, train_year=train_year)
    path = export_run(run, models_dir=models_dir, model_name=model_name)
    log.info("bundle %s written in %.1fs total", path, time.perf_counter() - started)
    return Bundle.load(path)
