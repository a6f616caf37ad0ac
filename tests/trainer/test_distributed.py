"""trainer.distributed and trainer.cli_options: TF_CONFIG parsing, the CLI options, two real workers."""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from monitor.errors import ConfigError
from monitor.settings import load_settings
from trainer.cli_options import add_train_options, run_train
from trainer.distributed import make_strategy, parse_tf_config, tf_config_from_environ

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data" / "bike_sharing_hourly.csv"


def _parser() -> argparse.ArgumentParser:
    """The options skewwatch's ``train`` verb already has, plus ours."""
    parser = argparse.ArgumentParser(prog="skewwatch train")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--model-name", default="bikeshare")
    parser.add_argument("--seed", type=int, default=0)
    return add_train_options(parser)


# ---------------------------------------------------------------- TF_CONFIG


def test_workers_only_cluster_worker_zero_is_chief() -> None:
    raw = {"cluster": {"worker": ["127.0.0.1:2001", "127.0.0.1:2002"]}, "task": {"type": "worker", "index": 1}}
    config = parse_tf_config(json.dumps(raw))
    assert config.num_workers == 2 and config.workers == ("127.0.0.1:2001", "127.0.0.1:2002")
    assert not config.is_chief and config.to_dict() == raw
    assert parse_tf_config({**raw, "task": {"type": "worker", "index": 0}}).is_chief
    assert tf_config_from_environ({"TF_CONFIG": json.dumps(raw)}) == config
    assert tf_config_from_environ({}) is None and parse_tf_config("  ") is None


def test_a_named_chief_is_the_chief_and_counts_as_a_worker() -> None:
    cluster = {"chief": ["c:1"], "worker": ["w:1", "w:2"]}
    chief = parse_tf_config({"cluster": cluster, "task": {"type": "chief", "index": 0}})
    worker0 = parse_tf_config({"cluster": cluster, "task": {"type": "worker", "index": 0}})
    assert chief.is_chief and not worker0.is_chief
    assert chief.num_workers == 3 and chief.workers == ("c:1", "w:1", "w:2")


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ("{not json", "TF_CONFIG"),
        ("[1, 2]", "TF_CONFIG"),
        ({"cluster": {}, "task": {"type": "worker", "index": 0}}, "TF_CONFIG.cluster"),
        ({"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}, "TF_CONFIG.task.type"),
        ({"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1}}, "TF_CONFIG.task.index"),
        ({"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": True}}, "TF_CONFIG.task.index"),
        ({"cluster": {"worker": ["no-port"]}, "task": {"type": "worker", "index": 0}}, "TF_CONFIG.cluster.worker"),
        ({"cluster": {"worker": "a:1"}, "task": {"type": "worker", "index": 0}}, "TF_CONFIG.cluster.worker"),
        ({"cluster": {"trainer": ["a:1"]}, "task": {"type": "trainer", "index": 0}}, "TF_CONFIG.cluster"),
        ({"cluster": {"chief": ["a:1", "b:1"]}, "task": {"type": "chief", "index": 0}}, "TF_CONFIG.cluster.chief"),
        ({"cluster": {"ps": ["a:1"]}, "task": {"type": "ps", "index": 0}}, "TF_CONFIG.cluster"),
        ({"cluster": {"worker": ["a:1"]}}, "TF_CONFIG.task"),
    ],
)
def test_bad_tf_config_names_the_field(value, field) -> None:
    with pytest.raises(ConfigError) as err:
        parse_tf_config(value)
    assert err.value.field == field


def test_parameter_servers_are_refused_before_any_tensorflow_op() -> None:
    config = parse_tf_config({"cluster": {"chief": ["c:1"], "worker": ["w:1"], "ps": ["p:1"]},
                              "task": {"type": "chief", "index": 0}})
    with pytest.raises(ConfigError, match="ParameterServerStrategy") as err:
        make_strategy(config)
    assert err.value.field == "TF_CONFIG.cluster"


# ---------------------------------------------------------------- CLI options


def test_cli_options_parse() -> None:
    args = _parser().parse_args([
        "--tune-trials", "20", "--tune-timeout", "600", "--beam-runner", "FlinkRunner",
        "--beam-option=--flink_master=localhost:8081", "--beam-option=--parallelism=2",
    ])
    assert (args.tune_trials, args.tune_timeout, args.beam_runner) == (20, 600.0, "FlinkRunner")
    assert args.beam_option == ["--flink_master=localhost:8081", "--parallelism=2"] and not args.distributed
    defaults = _parser().parse_args([])
    assert (defaults.tune_trials, defaults.tune_timeout, defaults.beam_runner, defaults.beam_option,
            defaults.distributed) == (None, None, None, [], False)
    assert _parser().parse_args(["--distributed"]).distributed
    for bad in (["--tune-trials", "0"], ["--tune-trials", "x"], ["--tune-timeout", "-1"], ["--tune-timeout", "inf"]):
        with pytest.raises(SystemExit):
            _parser().parse_args(bad)


@pytest.mark.parametrize(
    ("argv", "field"),
    [(["--beam-option=--parallelism=2"], "beam_option"), (["--distributed", "--tune-trials", "3"], "distributed")],
)
def test_inconsistent_options_are_refused(argv, field, tmp_path) -> None:
    with pytest.raises(ConfigError) as err:
        run_train(_parser().parse_args(argv), load_settings(models_dir=tmp_path))
    assert err.value.field == field
    assert not list(tmp_path.iterdir())


def test_importing_the_cli_options_imports_no_tensorflow() -> None:
    code = ("import sys, trainer.cli_options; "
            "heavy = sorted(m for m in ('tensorflow', 'keras', 'tensorflow_data_validation', 'apache_beam', 'optuna') "
            "if m in sys.modules); print(heavy); sys.exit(1 if heavy else 0)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


# ---------------------------------------------------------------- two real workers

WORKER = """
import argparse, logging, sys
from pathlib import Path
logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
from monitor.settings import load_settings
from trainer.cli_options import add_train_options, run_train
parser = argparse.ArgumentParser()
parser.add_argument("--data", type=Path); parser.add_argument("--epochs", type=int)
parser.add_argument("--model-name"); parser.add_argument("--seed", type=int); parser.add_argument("--models-dir")
add_train_options(parser)
args = parser.parse_args()
bundle = run_train(args, load_settings(models_dir=args.models_dir))
print("BUNDLE", bundle.path if bundle else None, flush=True)
"""


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@pytest.mark.slow
def test_two_workers_train_one_model_and_only_the_chief_writes_it(tmp_path) -> None:
    import keras

    from monitor.bundle import Bundle
    from trainer.data import BIKESHARE_FEATURES, load_bikeshare, split_by_time
    from trainer.hparams import HParams
    from trainer.model import build_model, describe_preprocessing, predict

    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    procs = []
    for index in range(2):
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2",
               "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        argv = [sys.executable, "-c", WORKER, "--data", str(DATA), "--epochs", "2", "--model-name", "bikeshare",
                "--seed", "0", "--models-dir", str(tmp_path / f"models-{index}"), "--distributed"]
        procs.append(subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True))
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=240))  # a deadline, not a speed assertion
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, err[-3000:]
    (chief_out, chief_err), (worker_out, worker_err) = outputs
    assert "BUNDLE None" in worker_out
    assert not (tmp_path / "models-1").exists() or not any((tmp_path / "models-1").rglob("metadata.json"))
    path = Path(re.search(r"^BUNDLE (\S+)$", chief_out, re.M).group(1))
    bundle = Bundle.load(path)
    assert path.parent.parent == tmp_path / "models-0"

    # both workers ended with identical weights: synchronous data-parallel training
    digests = [re.search(r"weights digest ([0-9a-f]{64})", err).group(1) for err in (chief_err, worker_err)]
    assert digests[0] == digests[1]
    assert bundle.metadata["metrics"]["distribution"] == {
        "strategy": "MultiWorkerMirroredStrategy", "workers": 2, "replicas_in_sync": 2}
    losses = [float(v) for v in re.findall(r"epoch \d+: loss=\S+ val_loss=(\S+)", chief_err)]
    assert len(losses) == 2 and losses[1] < losses[0]

    # the exported model takes and returns what a single-process model does
    split = split_by_time(load_bikeshare(DATA), 2011)
    single = build_model(split.train, BIKESHARE_FEATURES, HParams(), label_mean=4.5, seed=0)
    exported = keras.saving.load_model(bundle.file("model"))

    def signature(model):
        return sorted((t.name, str(t.dtype), tuple(t.shape)) for t in model.inputs), tuple(model.outputs[0].shape)

    assert signature(exported) == signature(single)
    assert describe_preprocessing(exported, BIKESHARE_FEATURES) == describe_preprocessing(single, BIKESHARE_FEATURES)
    rows = split.serving.sample(500, random_state=0)
    out = predict(exported, {s.name: rows[s.name] for s in BIKESHARE_FEATURES}, BIKESHARE_FEATURES)
    assert out.shape == (500,) and np.isfinite(out).all()
    err = out - rows["cnt"].to_numpy(dtype=float)
    assert np.sqrt(np.mean(err**2)) < rows["cnt"].std()  # it learned something in two epochs
