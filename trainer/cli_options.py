"""``skewwatch train`` options for training at scale, and the function that runs them.

``add_train_options(parser)`` adds ``--tune-trials``, ``--tune-timeout``, ``--beam-runner``,
``--beam-option`` (repeatable) and ``--distributed`` to the ``train`` verb's parser, which
already has ``--data``, ``--epochs``, ``--model-name`` and ``--seed``; ``run_train(args,
settings)`` trains accordingly. Importing this module imports no TensorFlow (the CLI
imports it at start-up); the trainer is imported when ``run_train`` runs.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Mapping

from monitor.bundle import Bundle
from monitor.errors import ConfigError
from monitor.settings import Settings

__all__ = ["add_train_options", "run_train"]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def add_train_options(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the scale options to ``parser`` (the ``train`` verb's); return it."""
    tune = parser.add_argument_group("hyperparameter search (Optuna TPE, seeded by --seed)")
    tune.add_argument("--tune-trials", type=_positive_int, default=None, metavar="N",
                      help="Search N configurations (model and preprocessing) on the validation months, "
                           "then train the best one. Default: no search.")
    tune.add_argument("--tune-timeout", type=_positive_seconds, default=None, metavar="SECONDS",
                      help="Stop the search after the trial that crosses SECONDS (alone or with --tune-trials).")
    beam = parser.add_argument_group("baseline statistics on Apache Beam (default: TFDV in memory)")
    beam.add_argument("--beam-runner", default=None, metavar="RUNNER",
                      help="Compute the TFDV baseline with a Beam pipeline on RUNNER "
                           "(DirectRunner, FlinkRunner, SparkRunner, DataflowRunner, ...).")
    beam.add_argument("--beam-option", action="append", default=[], metavar="FLAG",
                      help="A Beam pipeline flag passed through unchanged, e.g. --beam-option=--flink_master=host:8081 "
                           "(repeatable; needs --beam-runner).")
    parser.add_argument("--distributed", action="store_true",
                        help="Train with tf.distribute as the task TF_CONFIG names (MultiWorkerMirroredStrategy when "
                             "it lists more than one worker); only the chief writes the bundle.")
    return parser


def run_train(args: argparse.Namespace, settings: Settings, *, environ: Mapping[str, str] | None = None) -> Bundle | None:
    """Train as ``args`` say and write the bundle under ``settings.models_dir``; return it.

    ``--distributed`` reads ``TF_CONFIG`` from ``environ`` (default ``os.environ``, read
    now); on a worker that is not the chief this returns ``None`` (no bundle written).
    """
    data = Path(getattr(args, "data", None) or "data/bike_sharing_hourly.csv")
    epochs = getattr(args, "epochs", None)
    model_name = getattr(args, "model_name", None) or "bikeshare"
    seed = getattr(args, "seed", None) or 0
    trials, timeout = getattr(args, "tune_trials", None), getattr(args, "tune_timeout", None)
    runner, beam_options = getattr(args, "beam_runner", None), list(getattr(args, "beam_option", None) or [])
    distributed = bool(getattr(args, "distributed", False))
    if beam_options and runner is None:
        raise ConfigError("--beam-option needs --beam-runner", field="beam_option")
    if distributed and (trials is not None or timeout is not None):
        raise ConfigError("a search runs in one process; drop --distributed or --tune-*", field="distributed")

    if distributed:
        from trainer.distributed import tf_config_from_environ, train_distributed

        config = tf_config_from_environ(os.environ if environ is None else environ)
        done = train_distributed(
            data_path=data, models_dir=settings.models_dir, model_name=model_name, epochs=epochs, seed=seed,
            tf_config=config, beam_runner=runner, beam_options=beam_options,
        )
        return done.bundle

    from trainer.train import train

    return train(
        data_path=data, models_dir=settings.models_dir, model_name=model_name, epochs=epochs, seed=seed,
        tune_trials=trials, tune_timeout=timeout, beam_runner=runner, beam_options=beam_options,
    )
