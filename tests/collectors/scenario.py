"""Harness of the collection scenario tests: real collector processes on the embedded broker.

A scenario produces prediction records keyed by request id (so every model spreads over every
partition), runs collectors as ``python -m skewwatch collect`` child processes it can SIGKILL and
restart, and compares the windows they store with those of one uninterrupted collector reading the
same records into a store of its own.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from monitor.record import PredictionRecord, encode_record
from monitor.stats import Profile
from monitor.storage import Store

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2012, 1, 2, tzinfo=timezone.utc)


def clone_models(source: Path, target: Path, names: Iterable[str]) -> Path:
    """The trained bundle under several model names (the collector only reads its baselines)."""
    (bundle_dir,) = [p for p in (source / "bikeshare").iterdir() if p.is_dir() and not p.name.startswith(".")]
    for name in names:
        dst = target / name / bundle_dir.name
        shutil.copytree(bundle_dir, dst)
        meta = json.loads((dst / "metadata.json").read_text())
        meta["model_name"] = name
        (dst / "metadata.json").write_text(json.dumps(meta))
    return target


def version_of(models_dir: Path, name: str) -> str:
    return next(p.name for p in (models_dir / name).iterdir() if p.is_dir())


def records(rows: list[dict[str, Any]], *, model: str, version: str, windows: int, per_window: int,
            window_seconds: int, batch: int = 5, start: datetime = T0, tag: str = "", seed: int = 0,
            ) -> list[PredictionRecord]:
    """``windows`` windows of ``per_window`` instances, requests of ``batch`` instances, in event-time order."""
    rng = np.random.default_rng(seed)
    out = []
    step = window_seconds / per_window
    for w in range(windows):
        for j in range(0, per_window, batch):
            picks = rng.integers(0, len(rows), size=batch)
            at = start + timedelta(seconds=w * window_seconds + j * step)
            inst = tuple(rows[i] for i in picks)
            out.append(PredictionRecord(model, version, at, f"{tag}{model}-{w}-{j}", inst,
                                        tuple(float(k) for k in range(batch))))
    return out


def produce(bootstrap: str, topic: str, values: Iterable[tuple]) -> int:
    """(key, value) messages to ``topic`` with Kafka's default partitioner, or (partition, key, value) to a
    given partition; returns how many Kafka acknowledged."""
    from confluent_kafka import Producer

    acked = [0]

    def done(err, _msg) -> None:  # noqa: ANN001
        if err is None:
            acked[0] += 1

    p = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "linger.ms": 10,
                  "log_level": 3, "message.max.bytes": 32 << 20})
    n = 0
    for item in values:
        kwargs = {"key": item[-2], "value": item[-1], "on_delivery": done}
        if len(item) == 3:
            kwargs["partition"] = item[0]
        while True:
            try:
                p.produce(topic, **kwargs)
                break
            except BufferError:
                p.poll(0.05)
        n += 1
        if n % 1000 == 0:
            p.poll(0)
    p.flush(60)
    return acked[0]


class SteadyProducer:
    """Produces ``values`` at a steady rate over ``seconds`` on its own thread, as live traffic would
    keep flowing while collectors die and join (a pause longer than the idle timeout would look like
    the end of the traffic)."""

    def __init__(self, bootstrap: str, topic: str, values: list[tuple[bytes, bytes]], seconds: float) -> None:
        import threading

        self.bootstrap, self.topic, self.values, self.seconds = bootstrap, topic, values, seconds
        self.acked = 0
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from confluent_kafka import Producer

        def done(err, _msg) -> None:  # noqa: ANN001
            if err is None:
                self.acked += 1

        try:
            p = Producer({"bootstrap.servers": self.bootstrap, "partitioner": "murmur2_random", "linger.ms": 5,
                          "log_level": 3})
            start = time.monotonic()
            n = len(self.values)
            for i, (key, value) in enumerate(self.values):
                due = start + self.seconds * i / n
                wait = due - time.monotonic()
                if wait > 0:
                    p.poll(wait)
                while True:
                    try:
                        p.produce(self.topic, key=key, value=value, on_delivery=done)
                        break
                    except BufferError:
                        p.poll(0.05)
                p.poll(0)
            p.flush(60)
        except BaseException as exc:  # noqa: BLE001 - reported by join()
            self.error = exc

    def start(self) -> "SteadyProducer":
        self._thread.start()
        return self

    def join(self, timeout: float = 300) -> int:
        self._thread.join(timeout)
        if self.error is not None:
            raise self.error
        return self.acked


def encoded(recs: Iterable[PredictionRecord]) -> list[tuple[bytes, bytes]]:
    return [(r.request_id.encode(), encode_record(r)) for r in recs]


@dataclass
class CollectorProcess:
    """``python -m skewwatch collect`` with its own environment and log."""

    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen | None = None
    starts: int = 0

    def start(self) -> "CollectorProcess":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"--- start {self.starts}\n".encode())
            self.proc = subprocess.Popen([sys.executable, "-m", "skewwatch", "collect"], cwd=ROOT,
                                         env={**os.environ, **self.env}, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        self.starts += 1
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        return self.proc.returncode

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


_LIVE: list["Deployment"] = []  # every deployment of the running test, stopped at its teardown


def stop_live() -> None:
    while _LIVE:
        _LIVE.pop().stop_all()


@dataclass
class Deployment:
    """The collectors of one scenario: shared settings, one store, several processes (all stopped when the
    test ends, pass or fail: see ``stop_live``)."""

    bootstrap: str
    models_dir: Path
    state_dir: Path
    group: str
    extra: dict[str, str] = field(default_factory=dict)
    processes: list[CollectorProcess] = field(default_factory=list)

    def __post_init__(self) -> None:
        _LIVE.append(self)

    def env(self, **more: str) -> dict[str, str]:
        base = {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "SKEWWATCH_MODELS_DIR": str(self.models_dir),
            "SKEWWATCH_STATE_DIR": str(self.state_dir),
            "SKEWWATCH_CONSUMER_GROUP": self.group,
            "SKEWWATCH_WINDOW_SECONDS": "60",
            "SKEWWATCH_ALLOWED_LATENESS_SECONDS": "0",
            "SKEWWATCH_IDLE_CLOSE_SECONDS": "2",
            "SKEWWATCH_MAX_POLL_INTERVAL_MS": "3000",
            "SKEWWATCH_LOG_LEVEL": "INFO",
            "TF_CPP_MIN_LOG_LEVEL": "3",
        }
        return {**base, **self.extra, **more}

    def add(self, name: str, **more: str) -> CollectorProcess:
        p = CollectorProcess(self.env(**more), self.state_dir.parent / f"{name}.log")
        self.processes.append(p)
        return p

    def stop_all(self) -> None:
        for p in self.processes:
            p.stop()

    def logs(self) -> str:
        return "\n".join(f"== {p.log_path.name}\n{p.tail()}" for p in self.processes)

    def store(self) -> Store:
        return Store(f"sqlite:///{self.state_dir / 'skewwatch.sqlite3'}")


def wait_windows(store_path: Path, expected: int, *, timeout: float, deployment: Deployment | None = None) -> None:
    deadline = time.monotonic() + timeout
    last = -1
    while time.monotonic() < deadline:
        if (store_path / "skewwatch.sqlite3").exists():
            with Store(f"sqlite:///{store_path / 'skewwatch.sqlite3'}") as store:
                last = len(store.list_windows(limit=100_000))
            if last >= expected:
                return
        time.sleep(0.5)
    logs = deployment.logs() if deployment is not None else ""
    raise AssertionError(f"{last} of {expected} windows stored after {timeout}s\n{logs}")


def window_table(store: Store) -> dict[tuple, dict[str, Any]]:
    """Everything a scenario compares, per window key: counts, and per feature the exact parts."""
    out = {}
    for w in store.list_windows(limit=100_000):
        stats = {}
        if w.status != "decided":
            out[(w.model, w.model_version, w.segment, w.start_ms)] = {"status": w.status, "error": w.error, "rows": w.rows,
                                                                      "records": w.records, "invalid": w.invalid_instances,
                                                                      "duplicates": w.duplicate_records, "stats": {}}
            continue
        features, outputs = store.load_profiles(w.id)
        for name, profile in (("features", Profile.from_bytes(features)), ("outputs", Profile.from_bytes(outputs))):
            for feature, s in profile.features.items():
                if hasattr(s, "mean"):
                    stats[(name, feature)] = (s.count, s.missing, s.nonfinite, round(s.mean, 9) if s.count else None,
                                              round(s.variance, 6) if s.count > 1 else None, s.min, s.max)
                else:
                    stats[(name, feature)] = (s.count, s.missing, tuple(sorted(s.counts().items())))
        out[(w.model, w.model_version, w.segment, w.start_ms)] = {
            "status": w.status, "rows": w.rows, "records": w.records, "invalid": w.invalid_instances,
            "duplicates": w.duplicate_records, "stats": stats, "features": features,
        }
    return out


def reference_table(bootstrap: str, topic: str, models_dir: Path, tmp: Path, *, window_seconds: int = 60,
                    lateness_seconds: int = 0) -> dict[tuple, dict[str, Any]]:
    """The windows of one uninterrupted single-process run over everything in ``topic``: every message read
    back with its partition and offset, each partition through its own partial stage, in offset order, and
    every partial merged and decided by the same decider; no consumer group, no restarts."""
    from confluent_kafka import Consumer, TopicPartition

    from collectors.baselines import BaselineCache
    from collectors.kafka import topic_partitions
    from collectors.partition import PartitionProcessor, Publish, Timing
    from collectors.pipeline import WindowDecider
    from monitor.config import MonitorConfig
    from monitor.storage import PartialIn
    from monitor.timeutil import DEFAULT_MIN_EVENT_MS

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"ref-{time.monotonic_ns()}", "enable.auto.commit": False,
                  "log_level": 0})
    n = topic_partitions(c, topic)
    per: dict[int, list] = {p: [] for p in range(n)}
    for p in range(n):
        _low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        c.assign([TopicPartition(topic, p, 0)])
        idle = 0
        while idle < 3:
            batch = c.consume(5000, 0.5)
            idle = 0 if batch else idle + 1
            per[p] += [(m.offset(), m.value(), m.timestamp()[1]) for m in batch if m.error() is None]
    c.close()
    window_ms = window_seconds * 1000
    timing = Timing(window_ms=window_ms, lateness_ms=lateness_seconds * 1000, max_jump_ms=max(30 * window_ms, 86_400_000),
                    idle_ms=2000, min_event_ms=DEFAULT_MIN_EVENT_MS, max_future_ms=300_000)
    cache = BaselineCache(models_dir)
    with Store(f"sqlite:///{tmp / 'reference.sqlite3'}") as store:
        decider = WindowDecider(store=store, baselines=cache, config=MonitorConfig())
        for p, messages in per.items():
            proc = PartitionProcessor(topic, p, timing, cache.resolve)
            events = []
            for offset, value, ts in sorted(messages, key=lambda m: m[0]):
                events += proc.add(value, offset, ts)
            events += [proc._publish(k) for k in sorted(proc._open)]  # the end of the traffic
            for e in events:
                if isinstance(e, Publish):
                    q = e.partial
                    store.add_partial(PartialIn(q.key, q.end_ms, q.source_topic, q.source_partition, q.first_offset,
                                                q.last_offset, q.counts, q.features, q.outputs, q.sample))
        for key, _end in store.pending_windows():
            decider.decide(key)
        return window_table(store)
