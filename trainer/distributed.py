"""Data-parallel training with ``tf.distribute``, configured by ``TF_CONFIG``.

Every worker runs the same command (``skewwatch train --distributed``) with its own
``TF_CONFIG``, the JSON TensorFlow uses to describe a cluster::

    TF_CONFIG='{"cluster": {"worker": ["10.0.0.1:12345", "10.0.0.2:12345"]},
                "task": {"type": "worker", "index": 0}}'

(``"chief": [...]`` may name the first worker separately.) With more than one worker in
the cluster, training runs under ``MultiWorkerMirroredStrategy``: every worker holds a copy
of the model, reads every ``n``-th example of each global batch, and gradients are summed
across workers with collective all-reduce over gRPC after each step, so all copies stay
identical. Preprocessing (vocabularies, buckets, normalisation) is adapted on the whole
training year on every worker, so it is identical too. Early stopping decides on the
validation loss averaged across workers, so every worker stops after the same epoch. Only
the chief (``task.type == "chief"``, or worker 0 when the cluster has no chief) writes the
bundle; the others return ``None``. Without ``TF_CONFIG``, or with one worker, the ordinary
single-process path trains.

The strategy must be created before TensorFlow runs any op in the process (collective ops
are configured at start-up), so :func:`train_distributed` creates it first.

Keras 3.15 ``Model.fit`` cannot train this model under ``MultiWorkerMirroredStrategy``: its
``_maybe_symbolic_build`` MEAN-reduces the first distributed input batch, which fails for a
dict of (string) inputs; :func:`fit_distributed` is a plain custom loop (``strategy.run``,
the Keras optimizer's all-reduced ``apply_gradients``) instead.

ParameterServerStrategy (asynchronous training, for models whose variables do not fit one
machine) is not run by this module; a cluster would be configured like this: ``TF_CONFIG``
names ``"chief"`` (the coordinator, one task), ``"worker"`` and ``"ps"`` tasks, e.g.
``{"cluster": {"chief": ["c0:2222"], "worker": ["w0:2222", "w1:2222"], "ps": ["p0:2222"]},
"task": {"type": "ps", "index": 0}}``. Worker and ps tasks only start a server,
``tf.distribute.Server(resolver.cluster_spec(), job_name=task_type, task_index=index,
protocol="grpc").join()``. The chief creates
``tf.distribute.ParameterServerStrategy(TFConfigClusterResolver())``, builds the model and
optimizer inside ``strategy.scope()`` (lookup tables included, so they are placed for the
workers), wraps it in ``tf.distribute.coordinator.ClusterCoordinator(strategy)``, builds
inputs with ``coordinator.create_per_worker_dataset(dataset_fn)`` and drives training with
``coordinator.schedule(train_step, args=(iter(per_worker_dataset),))`` and
``coordinator.join()``; it alone evaluates and writes the bundle. A ``TF_CONFIG`` with
``"ps"`` tasks raises :class:`ConfigError` here.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, Any, Literal, Mapping, Sequence, get_args

import numpy as np

from monitor.bundle import Bundle
from monitor.errors import ConfigError
from monitor.schema import FeatureSpec
from trainer.hparams import HParams

if TYPE_CHECKING:
    from trainer.model import FitResult
    from trainer.train import TrainingRun

__all__ = [
    "ClusterConfig",
    "DistributedRun",
    "TaskType",
    "fit_distributed",
    "make_strategy",
    "parse_tf_config",
    "tf_config_from_environ",
    "train_distributed",
    "weights_digest",
]

log = logging.getLogger(__name__)

TaskType = Literal["chief", "worker", "ps", "evaluator"]


@dataclass(frozen=True)
class ClusterConfig:
    """A parsed ``TF_CONFIG``: the cluster's task addresses and this process's task."""

    cluster: Mapping[str, tuple[str, ...]]
    task_type: TaskType
    task_index: int

    @property
    def workers(self) -> tuple[str, ...]:
        """Addresses of the training tasks, chief first."""
        return tuple(self.cluster.get("chief", ())) + tuple(self.cluster.get("worker", ()))

    @property
    def num_workers(self) -> int:
        return len(self.workers)

    @property
    def is_chief(self) -> bool:
        if "chief" in self.cluster:
            return self.task_type == "chief"
        return self.task_type == "worker" and self.task_index == 0

    def to_dict(self) -> dict[str, Any]:
        return {"cluster": {k: list(v) for k, v in self.cluster.items()},
                "task": {"type": self.task_type, "index": self.task_index}}


def parse_tf_config(value: str | Mapping[str, Any] | None) -> ClusterConfig | None:
    """Validate a ``TF_CONFIG`` (JSON text or parsed); ``None``/empty means no cluster."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"not JSON ({exc})", field="TF_CONFIG") from None
    if not isinstance(value, Mapping):
        raise ConfigError("must be a JSON object with 'cluster' and 'task'", field="TF_CONFIG")
    cluster_raw, task = value.get("cluster"), value.get("task")
    if not isinstance(cluster_raw, Mapping) or not cluster_raw:
        raise ConfigError("must map task types to address lists", field="TF_CONFIG.cluster")
    cluster: dict[str, tuple[str, ...]] = {}
    for kind, addresses in cluster_raw.items():
        if kind not in get_args(TaskType):
            raise ConfigError(f"unknown task type {kind!r}; known: {get_args(TaskType)}", field="TF_CONFIG.cluster")
        if isinstance(addresses, str) or not isinstance(addresses, Sequence) or not addresses or not all(
            isinstance(a, str) and a.rpartition(":")[2].isdigit() for a in addresses
        ):
            raise ConfigError(f"must be a list of 'host:port', got {addresses!r}", field=f"TF_CONFIG.cluster.{kind}")
        cluster[kind] = tuple(addresses)
    if len(cluster.get("chief", ())) > 1:
        raise ConfigError("a cluster has at most one chief", field="TF_CONFIG.cluster.chief")
    if not isinstance(task, Mapping):
        raise ConfigError("must be {'type': ..., 'index': ...}", field="TF_CONFIG.task")
    kind, index = task.get("type"), task.get("index", 0)
    if kind not in cluster:
        raise ConfigError(f"task type {kind!r} is not in the cluster {sorted(cluster)}", field="TF_CONFIG.task.type")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(cluster[kind]):
        raise ConfigError(f"must be 0..{len(cluster[kind]) - 1}, got {index!r}", field="TF_CONFIG.task.index")
    config = ClusterConfig(cluster=cluster, task_type=kind, task_index=index)
    if config.num_workers == 0:
        raise ConfigError("the cluster names no chief or worker task", field="TF_CONFIG.cluster")
    return config


def tf_config_from_environ(environ: Mapping[str, str]) -> ClusterConfig | None:
    """:func:`parse_tf_config` of ``environ["TF_CONFIG"]`` (pass ``os.environ`` at start-up)."""
    return parse_tf_config(environ.get("TF_CONFIG"))


def make_strategy(config: ClusterConfig | None, *, timeout_seconds: float | None = None) -> Any:
    """``MultiWorkerMirroredStrategy`` for a multi-worker cluster, else the default strategy.

    ``timeout_seconds`` bounds each collective operation (a dead peer then fails the step
    instead of hanging it). ``ps`` and ``evaluator`` tasks are not supported (module doc).
    """
    import tensorflow as tf

    if config is None or config.num_workers <= 1:
        return tf.distribute.get_strategy()
    for kind in ("ps", "evaluator"):
        if kind in config.cluster:
            raise ConfigError(
                f"{kind!r} tasks need ParameterServerStrategy or a side-car evaluator, which this trainer does not run "
                "(see trainer.distributed's docstring); list only chief/worker tasks",
                field="TF_CONFIG.cluster",
            )
    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
        tf.train.ClusterSpec({k: list(v) for k, v in config.cluster.items()}),
        task_type=config.task_type, task_id=config.task_index, rpc_layer="grpc",
    )
    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=timeout_seconds)
    strategy = tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver, communication_options=options)
    log.info("MultiWorkerMirroredStrategy: task %s/%d of %d workers, %d replicas in sync",
             config.task_type, config.task_index, config.num_workers, strategy.num_replicas_in_sync)
    return strategy


def fit_distributed(
    model: Any,
    fit_df: Any,
    validation_df: Any,
    specs: Sequence[FeatureSpec],
    hparams: HParams,
    *,
    label: str = "cnt",
    seed: int = 0,
    strategy: Any,
) -> FitResult:
    """Train ``model`` (built in ``strategy.scope()``) in place, like ``fit_model``; same result type.

    ``hparams.batch_size`` is the global batch; each step minimises the mean squared error
    (training space) over the whole global batch. Early stopping on the cross-worker mean
    validation loss with ``patience``; the best epoch's weights are restored.
    """
    import keras
    import tensorflow as tf

    from trainer.model import FitResult, to_model_inputs, training_target

    view = keras.Model(inputs=model.inputs, outputs=model.get_layer("head").output, name="bikeshare_train")
    variables = view.trainable_variables
    with strategy.scope():
        optimizer = keras.optimizers.Adam(hparams.learning_rate)
        optimizer.build(variables)

    def tensors(df: Any) -> dict[str, tf.Tensor]:
        return {k: tf.constant(v) for k, v in to_model_inputs({s.name: df[s.name] for s in specs}, specs).items()}

    x_val, y_val = tensors(validation_df), tf.constant(training_target(validation_df, label, hparams))
    dataset = (
        tf.data.Dataset.from_tensor_slices((tensors(fit_df), training_target(fit_df, label, hparams)))
        .shuffle(len(fit_df), seed=seed, reshuffle_each_iteration=True)
        .batch(hparams.batch_size)
    )
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    batches = strategy.experimental_distribute_dataset(dataset.with_options(options))

    @tf.function
    def train_step(x: Any, y: Any) -> tuple[tf.Tensor, tf.Tensor]:
        def step(x: Any, y: Any) -> tuple[tf.Tensor, tf.Tensor]:
            ctx = tf.distribute.get_replica_context()
            rows = ctx.all_reduce(tf.distribute.ReduceOp.SUM, tf.cast(tf.shape(y)[0], tf.float32))
            with tf.GradientTape() as tape:
                squared = tf.reduce_sum(tf.square(view(x, training=True) - y))
                loss = squared / tf.maximum(rows, 1.0)  # this replica's share of the global mean
            optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))  # all-reduced (sum)
            return squared, rows

        squared, rows = strategy.run(step, args=(x, y))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, squared, axis=None), strategy.experimental_local_results(rows)[0]

    @tf.function
    def agreed_validation_loss() -> tf.Tensor:
        def mean() -> tf.Tensor:  # every worker scores the whole validation set; they agree on the mean
            local = tf.reduce_mean(tf.square(view(x_val, training=False) - y_val))
            return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.MEAN, local)

        return strategy.experimental_local_results(strategy.run(mean))[0]

    history: dict[str, list[float]] = {"loss": [], "val_loss": []}
    best_loss, best_epoch, best_weights, waited = math.inf, 0, view.get_weights(), 0
    for epoch in range(hparams.epochs):
        total, count = 0.0, 0.0
        for x, y in batches:
            squared, rows = train_step(x, y)
            total, count = total + float(squared), count + float(rows)
        val_loss = float(agreed_validation_loss())
        history["loss"].append(total / max(count, 1.0))
        history["val_loss"].append(val_loss)
        log.info("epoch %d: loss=%.4f val_loss=%.4f", epoch + 1, history["loss"][-1], val_loss)
        if val_loss < best_loss:
            best_loss, best_epoch, best_weights, waited = val_loss, epoch + 1, view.get_weights(), 0
        else:
            waited += 1
            if waited >= hparams.patience:  # as keras.callbacks.EarlyStopping counts
                break
    view.set_weights(best_weights)
    return FitResult(epochs_run=len(history["val_loss"]), best_epoch=best_epoch, best_val_loss=best_loss,
                     history=history)


def weights_digest(model: Any) -> str:
    """SHA-256 of the model's weights (float bytes in layer order): equal digests, equal models."""
    digest = hashlib.sha256()
    for w in model.get_weights():
        digest.update(np.ascontiguousarray(w).tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class DistributedRun:
    """What one worker did: its task, its trained run and (chief only) the bundle it wrote."""

    config: ClusterConfig | None
    run: TrainingRun
    bundle: Bundle | None
    digest: str


def train_distributed(
    *,
    data_path: str | os.PathLike[str],
    models_dir: str | os.PathLike[str],
    model_name: str = "bikeshare",
    epochs: int | None = None,
    seed: int = 0,
    hparams: HParams | Mapping[str, Any] | None = None,
    train_year: int = 2011,
    tf_config: ClusterConfig | None = None,
    beam_runner: str | None = None,
    beam_options: Sequence[str] = (),
    timeout_seconds: float | None = None,
) -> DistributedRun:
    """Train as this process's task of ``tf_config``; the chief writes the bundle.

    Call it at the start of the process (the strategy must be created before TensorFlow
    runs an op). Without a multi-worker ``tf_config`` it trains in this process alone and
    writes the bundle.
    """
    strategy = make_strategy(tf_config, timeout_seconds=timeout_seconds)  # first: collectives need a fresh runtime

    from trainer.train import export_run, fit_split, load_split, resolve_hparams

    hp = resolve_hparams(hparams, epochs)
    split = load_split(data_path, train_year)
    multi = tf_config is not None and tf_config.num_workers > 1
    if multi:
        with strategy.scope():
            run = fit_split(split, hparams=hp, seed=seed, data_path=data_path,
                            fit_fn=partial(fit_distributed, strategy=strategy))
        run = replace(run, metrics={**run.metrics, "distribution": {
            "strategy": "MultiWorkerMirroredStrategy", "workers": tf_config.num_workers,
            "replicas_in_sync": int(strategy.num_replicas_in_sync),
        }})
    else:
        run = fit_split(split, hparams=hp, seed=seed, data_path=data_path)
    digest = weights_digest(run.model)
    role = f"{tf_config.task_type}/{tf_config.task_index}" if tf_config else "single"
    log.info("task %s trained: weights digest %s", role, digest)
    if multi and not tf_config.is_chief:
        return DistributedRun(config=tf_config, run=run, bundle=None, digest=digest)
    path = export_run(run, models_dir=models_dir, model_name=model_name, beam_runner=beam_runner,
                      beam_options=beam_options)
    return DistributedRun(config=tf_config, run=run, bundle=Bundle.load(path), digest=digest)
