"""Train the bike-sharing model and write its bundle: what ``skewwatch train`` runs."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import keras
import numpy as np

from monitor.bundle import Bundle
from monitor.errors import ConfigError, StatisticsError
from trainer.baseline import feature_profile, prediction_profile, tfdv_schema, tfdv_statistics
from trainer.bundle import sample_rows, write_bundle
from trainer.slices import segment_baselines, slot_baselines
from trainer.data import BIKESHARE_FEATURES, LABEL, TimeSplit, load_bikeshare, split_by_time
from trainer.hparams import HParams
from trainer.model import FitResult, build_model, evaluate, fit_model, predict, vocabulary

__all__ = [
    "FitFunction", "TrainingRun", "export_run", "fit_bikeshare", "fit_split", "load_split", "resolve_hparams", "train",
]

# fit_model's signature: (model, fit_df, validation_df, specs, hparams, *, label, seed) -> FitResult.
FitFunction = Callable[..., FitResult]

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
    tuning: Mapping[str, Any] | None = None  # the search that chose ``hparams`` (trainer.tuning)


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
    hp = resolve_hparams(hparams, epochs)
    split = load_split(data_path, train_year)
    return fit_split(split, hparams=hp, seed=seed, data_path=data_path)


def resolve_hparams(hparams: HParams | Mapping[str, Any] | None, epochs: int | None = None) -> HParams:
    """``hparams`` as :class:`HParams`, ``epochs`` (when given) overriding ``hparams.epochs``."""
    hp = hparams if isinstance(hparams, HParams) else HParams.from_dict(hparams)
    if epochs is not None:
        if isinstance(epochs, bool) or not isinstance(epochs, int):
            raise ConfigError(f"must be an integer, got {epochs!r}", field="epochs")
        hp = hp.replace(epochs=epochs)
    return hp


def load_split(data_path: str | os.PathLike[str], train_year: int = 2011) -> TimeSplit:
    """Load the CSV and split it by time (see :func:`trainer.data.split_by_time`)."""
    df = load_bikeshare(data_path)
    split = split_by_time(df, train_year)
    log.info(
        "loaded %d rows from %s: train %d (fit %d, validation %d), holdout %d",
        len(df), data_path, len(split.train), len(split.fit), len(split.validation), len(split.serving),
    )
    return split


def fit_split(
    split: TimeSplit,
    *,
    hparams: HParams | Mapping[str, Any] | None = None,
    seed: int = 0,
    data_path: str | os.PathLike[str] = "",
    fit_fn: FitFunction | None = None,
) -> TrainingRun:
    """Build, fit and evaluate one model on an already loaded split; write nothing.

    ``fit_fn`` replaces :func:`trainer.model.fit_model` (the distributed trainer passes its
    own loop); the model is built in the caller's ``tf.distribute`` scope, if any.
    """
    hp = resolve_hparams(hparams)
    specs = BIKESHARE_FEATURES
    y_fit = split.fit[LABEL].to_numpy(dtype=np.float64)
    label_mean = float(np.mean(np.log1p(y_fit) if hp.log_target else y_fit))
    model = build_model(split.train, specs, hp, label_mean=label_mean, seed=seed)
    fit_started = time.perf_counter()
    fit = (fit_fn or fit_model)(model, split.fit, split.validation, specs, hp, label=LABEL, seed=seed)
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


def _baseline_statistics(
    run: TrainingRun, beam_runner: str | None, beam_options: Sequence[str]
) -> tuple[Any, dict[str, Any]]:
    """TFDV statistics of the training rows: in memory, or on Beam from ``run.data_path``."""
    specs = BIKESHARE_FEATURES
    train_df = run.split.train
    started = time.perf_counter()
    if beam_runner is None:
        stats = tfdv_statistics(train_df, specs)
        info: dict[str, Any] = {"engine": "tfdv-in-memory"}
    else:
        from trainer.beam_stats import YearFilter, beam_statistics

        year = int(train_df["event_time"].dt.year.iloc[0])
        stats = beam_statistics(
            run.data_path, specs, runner=beam_runner, pipeline_options=beam_options,
            row_filter=YearFilter(column="dteday", year=year),
        )
        rows = stats.datasets[0].num_examples if stats.datasets else 0
        if rows != len(train_df):
            raise StatisticsError(
                f"the Beam pipeline saw {rows} training rows of {run.data_path}, pandas {len(train_df)}"
            )
        # flag names only: values may hold credentials (e.g. --s3_secret_access_key)
        flags = sorted({o.split("=", 1)[0] for o in beam_options if o.startswith("--")})
        info = {"engine": "tfdv-beam", "runner": beam_runner, "pipeline_option_flags": flags}
    info["seconds"] = round(time.perf_counter() - started, 3)
    log.info("baseline statistics (%s) in %.1fs", info["engine"], info["seconds"])
    return stats, info


def export_run(
    run: TrainingRun,
    *,
    models_dir: str | os.PathLike[str],
    model_name: str = "bikeshare",
    beam_runner: str | None = None,
    beam_options: Sequence[str] = (),
) -> Path:
    """Compute the baselines of ``run``'s training rows and write its bundle; return its path.

    With ``beam_runner`` the TFDV statistics come from a Beam pipeline over ``run.data_path``
    (:func:`trainer.beam_stats.beam_statistics`, ``beam_options`` passed through unchanged),
    else from the in-memory rows. The schema's string domains hold every training value
    (with ``max_tokens`` the model's vocabulary may keep fewer).
    """
    specs = BIKESHARE_FEATURES
    train_df = run.split.train
    train_predictions = predict(run.model, {s.name: train_df[s.name] for s in specs}, specs)
    stats, stats_info = _baseline_statistics(run, beam_runner, beam_options)
    domains = {s.name: vocabulary(train_df[s.name]) for s in specs if s.kind == "categorical"}
    schema = tfdv_schema(stats, specs, domains)
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
            "baseline_statistics": stats_info,
        },
        tuning=run.tuning,
        baseline_slots=slot_baselines(train_df, specs, train_predictions),
        baseline_segments=segment_baselines(train_df, specs, train_predictions),
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
    tune_trials: int | None = None,
    tune_timeout: float | None = None,
    beam_runner: str | None = None,
    beam_options: Sequence[str] = (),
) -> Bundle:
    """Train the model and write its bundle under ``models_dir/model_name``; return the bundle.

    With ``tune_trials`` and/or ``tune_timeout`` (seconds) a seeded hyperparameter search
    (:func:`trainer.tuning.tune`, starting from ``hparams``) runs first on the same time
    split; the best configuration is then trained again and exported, and the search is
    recorded as ``metadata["tuning"]``. ``beam_runner``/``beam_options``: see :func:`export_run`.
    """
    started = time.perf_counter()
    if tune_trials is None and tune_timeout is None:
        run = fit_bikeshare(data_path=data_path, epochs=epochs, seed=seed, hparams=hparams, train_year=train_year)
    else:
        from trainer.tuning import tune

        hp = resolve_hparams(hparams, epochs)
        split = load_split(data_path, train_year)
        result = tune(split, base=hp, trials=tune_trials, timeout=tune_timeout, seed=seed)
        run = fit_split(split, hparams=result.best_hparams, seed=seed, data_path=data_path)
        refit = run.metrics["validation"]["rmse"]
        log.info("best trial %d refit: validation rmse %.4f (search %.4f)", result.best_trial, refit, result.best_value)
        run = replace(run, tuning={**result.to_metadata(), "refit_validation_rmse": refit})
    path = export_run(run, models_dir=models_dir, model_name=model_name, beam_runner=beam_runner, beam_options=beam_options)
    log.info("bundle %s written in %.1fs total", path, time.perf_counter() - started)
    return Bundle.load(path)
