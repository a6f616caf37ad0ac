"""Hyperparameter search over model and preprocessing choices, on the time split.

Every trial builds the whole model (quantile buckets, vocabularies, normalisation adapted on
the training year), fits it on January-October and is scored on November-December
(``split.fit`` / ``split.validation``, see :func:`trainer.data.split_by_time`); the 2012
holdout is never looked at. The search uses Optuna's TPE sampler seeded with ``seed`` and
an in-memory study: the same budget in trials, seed and data give the same trials (the
first ``n_startup_trials`` = 10 are seeded random draws, later ones TPE). A ``timeout``
stops the search after the trial that crosses it, so a time budget is not reproducible
in its trial count.

Why Optuna rather than KerasTuner: the search space mixes preprocessing choices
(bucket features, crosses, vocabulary limits) with model ones, which are plain Python values
here rather than ``hp.Choice`` calls inside a Keras model function; Optuna's
define-by-run ``trial.suggest_*`` maps onto :class:`~trainer.hparams.HParams` directly,
keeps no on-disk oracle directory, is pure Python and imports no TensorFlow.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field, fields
from typing import Any, Literal, Mapping, get_args

from monitor.errors import ConfigError
from trainer.data import TimeSplit
from trainer.hparams import HParams

__all__ = ["Objective", "SearchSpace", "TrialRecord", "TrialState", "TuningResult", "check_budget", "tune"]

log = logging.getLogger(__name__)

Objective = Literal["validation_rmse", "validation_mae"]
TrialState = Literal["COMPLETE", "FAIL", "PRUNED", "RUNNING", "WAITING"]

_NONE = "none"


def _label(value: Any) -> str | int | float | None:
    """An Optuna categorical choice for ``value`` (Optuna stores scalars only)."""
    if isinstance(value, tuple):
        if not value:
            return _NONE
        if all(isinstance(v, tuple) for v in value):  # crosses: pairs of features
            return ",".join("*".join(pair) for pair in value)
        return "*".join(str(v) for v in value) if all(isinstance(v, str) for v in value) else "-".join(map(str, value))
    return value


@dataclass(frozen=True)
class SearchSpace:
    """The choices a search draws from; ``learning_rate`` is a log-uniform ``(low, high)`` range.

    Every other field lists the values to choose among (tuples for tuple-valued
    hyperparameters). A field's single choice pins it.
    """

    num_buckets: tuple[int, ...] = (4, 8, 12, 16)
    bucket_features: tuple[tuple[str, ...], ...] = (("temp", "hum"), ("temp", "hum", "windspeed"), ("atemp", "hum"))
    crosses: tuple[tuple[tuple[str, str], ...], ...] = (
        (),
        (("hr", "workingday"),),
        (("hr", "workingday"), ("season", "weathersit")),
    )
    max_tokens: tuple[int | None, ...] = (None, 16)
    embedding_dim: tuple[int, ...] = (4, 8, 16)
    hidden_units: tuple[tuple[int, ...], ...] = ((32,), (64, 32), (128, 64))
    dropout: tuple[float, ...] = (0.0, 0.1, 0.2)
    batch_size: tuple[int, ...] = (128, 256, 512)
    learning_rate: tuple[float, float] = (1e-3, 1e-2)

    def __post_init__(self) -> None:
        for f in fields(self):
            choices = getattr(self, f.name)
            if not isinstance(choices, tuple) or not choices:
                raise ConfigError("needs at least one choice (a tuple)", field=f"search_space.{f.name}")
            if f.name != "learning_rate":
                labels = [_label(c) for c in choices]
                if len(set(labels)) != len(labels):
                    raise ConfigError(f"duplicate choices {choices!r}", field=f"search_space.{f.name}")
        rate = self.learning_rate
        if len(rate) != 2 or not all(isinstance(r, (int, float)) for r in rate) or not 0 < rate[0] <= rate[1]:
            raise ConfigError(f"must be (low, high) with 0 < low <= high, got {self.learning_rate!r}",
                              field="search_space.learning_rate")
        for choice in self.hidden_units + self.bucket_features:  # validate every choice once, up front
            if not isinstance(choice, tuple):
                raise ConfigError(f"choices must be tuples, got {choice!r}", field="search_space")
        try:
            for name in ("num_buckets", "max_tokens", "embedding_dim", "dropout", "batch_size", "hidden_units",
                         "bucket_features", "crosses"):
                for choice in getattr(self, name):
                    HParams().replace(**{name: choice})
        except ConfigError as exc:
            raise ConfigError(str(exc), field=f"search_space.{(exc.field or 'hparams').split('.')[-1]}") from None

    def suggest(self, trial: Any, base: HParams) -> HParams:
        """Draw one configuration from ``trial`` (an ``optuna.Trial``); ``base`` gives the rest."""
        changes: dict[str, Any] = {}
        for f in fields(self):
            choices = getattr(self, f.name)
            if f.name == "learning_rate":
                low, high = choices
                changes[f.name] = low if low == high else trial.suggest_float(f.name, low, high, log=True)
                continue
            by_label = {_label(c): c for c in choices}
            picked = trial.suggest_categorical(f.name, list(by_label))
            changes[f.name] = by_label[picked]
        return base.replace(**changes)

    def params_of(self, hp: HParams) -> dict[str, Any] | None:
        """The trial params that reproduce ``hp``, or ``None`` when ``hp`` lies outside the space."""
        params: dict[str, Any] = {}
        for f in fields(self):
            value, choices = getattr(hp, f.name), getattr(self, f.name)
            if f.name == "learning_rate":
                if not choices[0] <= value <= choices[1]:
                    return None
                params[f.name] = value
            elif _label(value) in {_label(c) for c in choices}:
                params[f.name] = _label(value)
            else:
                return None
        return params

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the Optuna labels of every choice (what trial ``params`` hold)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            choices = getattr(self, f.name)
            if f.name == "learning_rate":
                out[f.name] = {"low": choices[0], "high": choices[1], "log": True}
            else:
                out[f.name] = [_label(c) for c in choices]
        return out


@dataclass(frozen=True)
class TrialRecord:
    """One finished trial: its Optuna params (labels), the full hyperparameters and its score."""

    number: int
    state: TrialState
    value: float | None
    params: Mapping[str, Any]
    hparams: Mapping[str, Any]
    validation: Mapping[str, float]
    epochs_run: int | None
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number, "state": self.state, "value": self.value, "params": dict(self.params),
            "hparams": dict(self.hparams), "validation": dict(self.validation), "epochs_run": self.epochs_run,
            "seconds": self.seconds,
        }


@dataclass(frozen=True)
class TuningResult:
    """The finished search: the best configuration and every trial, in trial order."""

    best_hparams: HParams
    best_trial: int
    best_value: float
    objective: Objective
    seed: int
    trials: tuple[TrialRecord, ...]
    budget: Mapping[str, Any]
    search_space: Mapping[str, Any]
    seconds: float
    base_trial: int | None = None
    library_version: str = field(default="")

    def to_metadata(self) -> dict[str, Any]:
        """JSON-ready, for the bundle's ``metadata["tuning"]``."""
        best = self.trials[[t.number for t in self.trials].index(self.best_trial)]
        return {
            "library": "optuna",
            "library_version": self.library_version,
            "sampler": "TPESampler",
            "seed": self.seed,
            "objective": self.objective,
            "direction": "minimize",
            "split": {"fit": "split.fit (training year minus its last 2 months)", "score": "split.validation"},
            "budget": dict(self.budget),
            "search_space": dict(self.search_space),
            "best_trial": self.best_trial,
            "best_value": self.best_value,
            "best_params": dict(best.params),
            "base_trial": self.base_trial,
            "completed_trials": sum(t.state == "COMPLETE" for t in self.trials),
            "seconds": self.seconds,
            "trials": [t.to_dict() for t in self.trials],
        }


def check_budget(trials: int | None, timeout: float | None) -> None:
    """A search needs ``trials`` > 0 and/or ``timeout`` > 0 seconds."""
    if trials is None and timeout is None:
        raise ConfigError("a search needs a budget: a number of trials and/or a timeout", field="tune_trials")
    if trials is not None and (isinstance(trials, bool) or not isinstance(trials, int) or trials <= 0):
        raise ConfigError(f"must be a positive integer, got {trials!r}", field="tune_trials")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not math.isfinite(timeout) or timeout <= 0
    ):
        raise ConfigError(f"must be a positive number of seconds, got {timeout!r}", field="tune_timeout")


def tune(
    split: TimeSplit,
    *,
    base: HParams | None = None,
    space: SearchSpace | None = None,
    trials: int | None = None,
    timeout: float | None = None,
    seed: int = 0,
    objective: Objective = "validation_rmse",
    include_base: bool = True,
) -> TuningResult:
    """Search ``space`` (defaults: :class:`SearchSpace`) around ``base`` on ``split``.

    Each trial trains with ``seed`` (so trials differ by their hyperparameters only) up to
    ``base.epochs`` epochs with early stopping, and is scored by ``objective`` on the
    validation months (count scale). ``trials`` and/or ``timeout`` (seconds) bound the search.
    With ``include_base`` (and ``base`` inside ``space``), trial 0 is ``base`` itself, so the
    search never returns a configuration that scores worse than the one it started from.
    """
    import keras
    import optuna

    from trainer.train import fit_split

    check_budget(trials, timeout)
    if objective not in get_args(Objective):
        raise ConfigError(f"must be one of {get_args(Objective)}, got {objective!r}", field="objective")
    base = base or HParams()
    space = space or SearchSpace()
    metric = objective.removeprefix("validation_")
    records: dict[int, dict[str, Any]] = {}

    def run_trial(trial: optuna.Trial) -> float:
        hp = space.suggest(trial, base)
        started = time.perf_counter()
        try:
            run = fit_split(split, hparams=hp, seed=seed)
            validation, epochs_run = run.metrics["validation"], run.fit.epochs_run
            del run
        finally:
            keras.backend.clear_session()  # drop this trial's model and graph state before the next one
        records[trial.number] = {
            "hparams": hp.to_dict(), "validation": validation, "epochs_run": epochs_run,
            "seconds": round(time.perf_counter() - started, 3),
        }
        value = float(validation[metric])
        log.info("trial %d: %s=%.4f in %.1fs %s", trial.number, objective, value, records[trial.number]["seconds"],
                 trial.params)
        return value if math.isfinite(value) else math.nan  # NaN marks the trial FAIL

    started = time.perf_counter()
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
    base_params = space.params_of(base) if include_base else None
    if base_params is not None:
        study.enqueue_trial(base_params)
    elif include_base:
        log.info("the base configuration lies outside the search space; it is not tried")
    study.optimize(run_trial, n_trials=trials, timeout=timeout, gc_after_trial=True)
    seconds = round(time.perf_counter() - started, 3)

    out: list[TrialRecord] = []
    for t in study.trials:
        rec = records.get(t.number, {})
        out.append(TrialRecord(
            number=t.number, state=t.state.name, value=t.value, params=dict(t.params),
            hparams=rec.get("hparams", {}), validation=rec.get("validation", {}), epochs_run=rec.get("epochs_run"),
            seconds=rec.get("seconds", t.duration.total_seconds() if t.duration else 0.0),
        ))
    complete = [t for t in out if t.state == "COMPLETE"]
    if not complete:
        raise ConfigError(f"no trial of {len(out)} completed; widen the budget", field="tune_trials")
    best = min(complete, key=lambda t: (t.value, t.number))
    log.info("search: %d trials in %.1fs, best trial %d %s=%.4f", len(out), seconds, best.number, objective, best.value)
    return TuningResult(
        best_hparams=HParams.from_dict(best.hparams),
        best_trial=best.number,
        best_value=float(best.value),
        objective=objective,
        seed=seed,
        trials=tuple(out),
        budget={"trials": trials, "timeout_seconds": timeout, "epochs_per_trial": base.epochs},
        base_trial=0 if base_params is not None else None,
        search_space=space.to_dict(),
        seconds=seconds,
        library_version=optuna.__version__,
    )
