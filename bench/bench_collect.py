"""Collection throughput, scale-out, merge latency and memory, on the embedded broker (issue 8 goals).

Records are produced into the topic first; then each contender reads them all. Measured beside
each other in the same run (interleaved rounds), on the same records:

* bare kafka-python loop: ``KafkaConsumer.poll`` + ``orjson.loads`` of every message (the goal's yardstick);
* bare librdkafka loop: ``confluent_kafka.Consumer.consume`` + ``orjson.loads`` (what the collector reads with);
  with ``--processes 1,2`` also that loop in two processes, each on half the partitions: what the broker
  delivers to two readers on this machine, the ceiling of two collectors;
* the collector: ``skewwatch collect`` (both stages) as a child process, from its first consumed
  record to the last window stored (two sentinel records per partition close the last window by
  watermark, so the idle timeout is not counted); with ``--processes 2`` two collectors share the
  partitions.

Also: the merge stage deciding one window from 100 partials (median and p90 over windows), and the
collector's RSS over a long stream (``--rss``: 10M instances in 500 windows; growth from the 10%
mark to the end).

Run::

    .venv/bin/python bench/bench_collect.py --instances 100 --records 40000 --rounds 3
    .venv/bin/python bench/bench_collect.py --instances 1 --records 300000 --rounds 3
    .venv/bin/python bench/bench_collect.py --instances 100 --records 40000 --processes 1,2 --rounds 3
    .venv/bin/python bench/bench_collect.py --merge-only
    .venv/bin/python bench/bench_collect.py --rss
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from monitor.record import PredictionRecord, encode_record  # noqa: E402
from monitor.storage import Store  # noqa: E402
from skewwatch.broker import EmbeddedBroker, ensure_topic  # noqa: E402

T0 = datetime(2012, 1, 2, tzinfo=timezone.utc)
WINDOW_S = 60
TOPIC = "skewwatch.predictions"


def bundle(models_dir: Path) -> tuple[Path, str]:
    """A trained bundle (trained once into ``models_dir`` if none is there)."""
    from monitor.bundle import list_bundles

    found = [b for b in list_bundles(models_dir) if b.model_name == "bikeshare"] if models_dir.exists() else []
    if not found:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        from trainer.train import train

        train(data_path=ROOT / "data" / "bike_sharing_hourly.csv", models_dir=models_dir, model_name="bikeshare",
              epochs=2, seed=0)
        found = [b for b in list_bundles(models_dir) if b.model_name == "bikeshare"]
    return models_dir, found[-1].model_version


def rows() -> list[dict]:
    from trainer.data import BIKESHARE_FEATURES, load_bikeshare

    frame = load_bikeshare(ROOT / "data" / "bike_sharing_hourly.csv")
    names = [s.name for s in BIKESHARE_FEATURES]
    picked = frame[frame["event_time"].dt.year == 2012][names]
    return [{k: (None if v != v else v) for k, v in r.items()} for r in picked.to_dict(orient="records")]


def make_messages(version: str, n: int, instances: int, windows: int, pool: list[dict]) -> list[tuple[bytes, bytes]]:
    out = []
    per_window = max(1, n // windows)
    for i in range(n):
        w, j = divmod(i, per_window)
        at = T0 + timedelta(seconds=w * WINDOW_S + WINDOW_S * j / per_window)
        inst = tuple(pool[(i * instances + k) % len(pool)] for k in range(instances))
        rec = PredictionRecord("bikeshare", version, at, f"b{i}", inst, tuple(float(k) for k in range(instances)))
        out.append((rec.request_id.encode(), encode_record(rec)))
    return out


def produce(bootstrap: str, messages, partitions: int, last_event: datetime) -> int:
    from confluent_kafka import Producer

    acked = [0]

    def done(err, _m) -> None:  # noqa: ANN001
        if err is None:
            acked[0] += 1

    p = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "linger.ms": 20,
                  "batch.num.messages": 10000, "log_level": 3, "message.max.bytes": 32 << 20})
    for i, (key, value) in enumerate(messages):
        while True:
            try:
                p.produce(TOPIC, key=key, value=value, on_delivery=done)
                break
            except BufferError:
                p.poll(0.05)
        if i % 2000 == 0:
            p.poll(0)
    # two sentinels per partition, just past the last window: they close it by watermark
    version = json.loads(messages[0][1])["model_version"]
    for part in range(partitions):
        for k in range(2):
            rec = PredictionRecord("bikeshare", version, last_event + timedelta(seconds=1 + k), f"s{part}-{k}",
                                   (), ())
            p.produce(TOPIC, key=rec.request_id.encode(), value=encode_record(rec), partition=part, on_delivery=done)
    p.flush(120)
    return acked[0]


def bare_kafka_python(bootstrap: str, total: int) -> float:
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_bytes=64 << 20,
                      max_partition_fetch_bytes=16 << 20)
    parts = [TopicPartition(TOPIC, p) for p in c.partitions_for_topic(TOPIC)]
    c.assign(parts)
    c.seek_to_beginning()
    n, t0 = 0, None
    while n < total:
        batch = c.poll(timeout_ms=1000, max_records=5000)
        for msgs in batch.values():
            if t0 is None:
                t0 = time.perf_counter()
            for m in msgs:
                orjson.loads(m.value)
                n += 1
    dt = time.perf_counter() - t0
    c.close()
    return n / dt


def bare_confluent(bootstrap: str, total: int) -> float:
    from confluent_kafka import Consumer, TopicPartition

    from collectors.kafka import FETCH  # the collector's fetch settings

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bare-{time.time_ns()}", "enable.auto.commit": False,
                  **FETCH, "log_level": 3})
    meta = c.list_topics(TOPIC, timeout=10)
    c.assign([TopicPartition(TOPIC, p, 0) for p in meta.topics[TOPIC].partitions])
    n, t0 = 0, None
    while n < total:
        for m in c.consume(2000, 1.0):
            if m.error() is None:
                if t0 is None:
                    t0 = time.perf_counter()
                orjson.loads(m.value())
                n += 1
    dt = time.perf_counter() - t0
    c.close()
    return n / dt


def bare_confluent_part(bootstrap: str, partitions: list[int], idle_s: float = 3.0) -> dict:
    """One process's share of the bare librdkafka loop: read ``partitions`` from the start until nothing
    arrives for ``idle_s``; the wall-clock times of its first and last record (the idle wait not counted)."""
    from confluent_kafka import Consumer, TopicPartition

    from collectors.kafka import FETCH

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bare-{time.time_ns()}", "enable.auto.commit": False,
                  **FETCH, "log_level": 3})
    c.assign([TopicPartition(TOPIC, p, 0) for p in partitions])
    n, first, last = 0, None, None
    while last is None or time.time() - last < idle_s:
        for m in c.consume(2000, 0.5):
            if m.error() is None:
                orjson.loads(m.value())
                n += 1
                last = time.time()
                if first is None:
                    first = last
    c.close()
    return {"records": n, "first": first, "last": last}


def bare_confluent_processes(bootstrap: str, total: int, processes: int, partitions: int) -> float:
    """The bare librdkafka loop in ``processes`` processes, each on its own share of the partitions: the rate
    at which the broker delivers to that many readers (total records over first record to last record)."""
    shares = [[p for p in range(partitions) if p % processes == i] for i in range(processes)]
    procs = [subprocess.Popen([sys.executable, __file__, "--bare-reader", ",".join(map(str, share)),
                               "--bootstrap", bootstrap], stdout=subprocess.PIPE, cwd=ROOT) for share in shares]
    outs = [json.loads(p.communicate(timeout=900)[0].decode().strip().splitlines()[-1]) for p in procs]
    n = sum(o["records"] for o in outs)
    assert n == total, (n, total)
    return n / (max(o["last"] for o in outs) - min(o["first"] for o in outs))


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def run_collectors(bootstrap: str, models_dir: Path, windows: int, processes: int, *, watch_rss: bool = False,
                   timeout: float = 900, split: bool = False, native: bool = True) -> dict:
    """``processes`` collectors running both stages, or with ``split`` that many partial-stage processes and
    one merge-stage process (``SKEWWATCH_COLLECTOR_STAGES``)."""
    state = Path(tempfile.mkdtemp(prefix="bench-collect-"))
    run = time.time_ns()
    # every run its own group and its own partials and dead-letter topics: a new merge group reads its
    # topic from the start, and another run's partials (same identities) would decide its windows early
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "SKEWWATCH_MODELS_DIR": str(models_dir),
           "SKEWWATCH_STATE_DIR": str(state / "state"), "SKEWWATCH_CONSUMER_GROUP": f"bench-{run}",
           "SKEWWATCH_PARTIALS_TOPIC": f"bench.partials.{run}", "SKEWWATCH_DEAD_LETTER_TOPIC": f"bench.dead-letters.{run}",
           "SKEWWATCH_WINDOW_SECONDS": str(WINDOW_S), "SKEWWATCH_ALLOWED_LATENESS_SECONDS": "0",
           "SKEWWATCH_IDLE_CLOSE_SECONDS": "30", "SKEWWATCH_MAX_POLL_INTERVAL_MS": "3000",
           "SKEWWATCH_LOG_LEVEL": "INFO", "TF_CPP_MIN_LOG_LEVEL": "3",
           "SKEWWATCH_NATIVE_SCAN": "true" if native else "false"}
    procs, logs = [], []
    stages = ["partials"] * processes + ["merge"] if split else ["both"] * processes
    for i, stage in enumerate(stages):
        log = open(state / f"c{i}.log", "wb")
        logs.append(log)
        procs.append(subprocess.Popen([sys.executable, "-m", "skewwatch", "collect"], cwd=ROOT,
                                      env={**env, "SKEWWATCH_COLLECTOR_STAGES": stage}, stdout=log,
                                      stderr=subprocess.STDOUT))
    db = state / "state" / "skewwatch.sqlite3"
    deadline = time.monotonic() + timeout
    rss = []
    decided = 0
    try:
        while time.monotonic() < deadline:
            time.sleep(0.5)
            if db.exists():
                with Store(f"sqlite:///{db}") as store:
                    decided = len(store.list_windows(limit=100_000))
            if watch_rss:
                rss.append((decided, sum(rss_kb(p.pid) for p in procs)))
            if decided >= windows:
                break
            if any(p.poll() is not None for p in procs):
                raise RuntimeError("a collector exited:\n" + (state / "c0.log").read_text()[-3000:])
        with Store(f"sqlite:///{db}") as store:
            ws = store.list_windows(limit=100_000)
        end_ms = max(w.decided_at_ms for w in ws)
        rows_total = sum(w.rows for w in ws)
        firsts = []
        for i in range(len(stages)):
            for line in (state / f"c{i}.log").read_text().splitlines():
                if "first record consumed at" in line:
                    firsts.append(int(line.rsplit("at ", 1)[1].split()[0]))
        seconds = (end_ms - min(firsts)) / 1000
        return {"seconds": seconds, "windows": len(ws), "rows": rows_total, "rss": rss}
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        for log in logs:
            log.close()
        shutil.rmtree(state, ignore_errors=True)


def throughput(args: argparse.Namespace) -> None:
    models_dir, version = bundle(Path(args.models_dir))
    pool = rows()
    windows = args.windows
    messages = make_messages(version, args.records, args.instances, windows, pool)
    last_event = T0 + timedelta(seconds=windows * WINDOW_S - 0.001)
    counts = [int(x) for x in args.processes.split(",")]
    results: dict[str, list[float]] = {}
    with EmbeddedBroker() as broker:
        ensure_topic(broker.bootstrap_servers, TOPIC, args.partitions)
        total = produce(broker.bootstrap_servers, messages, args.partitions, last_event)
        print(f"{total} messages in the topic ({args.records} records of {args.instances} instances, "
              f"{len(messages[0][1])} bytes each), {args.partitions} partitions, {windows} windows", flush=True)
        for r in range(args.rounds):
            results.setdefault("bare kafka-python read+decode", []).append(bare_kafka_python(broker.bootstrap_servers, total))
            results.setdefault("bare librdkafka read+decode", []).append(bare_confluent(broker.bootstrap_servers, total))
            if len(counts) > 1:  # what the broker delivers to two readers: the ceiling of two collectors
                results.setdefault("bare librdkafka read+decode, 2 processes", []).append(
                    bare_confluent_processes(broker.bootstrap_servers, total, 2, args.partitions))
            for n in counts:
                out = run_collectors(broker.bootstrap_servers, models_dir, windows, n)
                assert out["rows"] == args.records * args.instances, out
                results.setdefault(f"skewwatch collect x{n}", []).append(args.records / out["seconds"])
            if args.general_path:
                out = run_collectors(broker.bootstrap_servers, models_dir, windows, 1, native=False)
                assert out["rows"] == args.records * args.instances, out
                results.setdefault("skewwatch collect x1, general path only (native_scan off)", []).append(
                    args.records / out["seconds"])
            if args.split_stages:
                out = run_collectors(broker.bootstrap_servers, models_dir, windows, 1, split=True)
                assert out["rows"] == args.records * args.instances, out
                results.setdefault("skewwatch collect, partial stage + merge stage processes", []).append(
                    args.records / out["seconds"])
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:,.0f} rec/s" for k, v in results.items()), flush=True)
    yard = statistics.median(results["bare kafka-python read+decode"])
    print(f"\n| reader ({args.instances}-instance records) | records/s (median of {args.rounds}) | instances/s | "
          "vs kafka-python loop |\n|---|---|---|---|")
    for name, values in results.items():
        med = statistics.median(values)
        print(f"| {name} | {med:,.0f} | {med * args.instances:,.0f} | {med / yard:.0%} |")
    if len(counts) > 1:
        one, two = (statistics.median(results[f"skewwatch collect x{n}"]) for n in counts[:2])
        print(f"\ntwo collectors / one: {two / one:.2f}x")
        bare1, bare2 = (statistics.median(results[k]) for k in ("bare librdkafka read+decode",
                                                               "bare librdkafka read+decode, 2 processes"))
        print(f"two bare librdkafka loops / one: {bare2 / bare1:.2f}x (what the broker delivers to two readers "
              f"on this machine: the ceiling of two collectors, {bare2 / one:.2f}x one collector)")


def merge_latency(args: argparse.Namespace) -> None:
    from collectors.baselines import BaselineCache
    from collectors.partition import PartitionProcessor, Publish, Timing
    from collectors.pipeline import WindowDecider
    from monitor.config import MonitorConfig
    from monitor.storage import PartialIn
    from monitor.timeutil import DEFAULT_MIN_EVENT_MS, now_ms

    models_dir, version = bundle(Path(args.models_dir))
    pool = rows()
    cache = BaselineCache(models_dir)
    timing = Timing(window_ms=WINDOW_S * 1000, lateness_ms=0, max_jump_ms=10**12, idle_ms=1000,
                    min_event_ms=DEFAULT_MIN_EVENT_MS, max_future_ms=10**12)
    tmp = Path(tempfile.mkdtemp(prefix="bench-merge-"))
    times, cold, folds, cpu = [], [], [], []
    with Store(f"sqlite:///{tmp / 's.sqlite3'}") as store:
        decider = WindowDecider(store=store, baselines=cache, config=MonitorConfig())
        for w in range(args.merge_windows):
            # odd windows: as the merge stage runs (each partial folded into its window as it is stored);
            # even windows: decided from the partials read back from the store (a restarted merge stage)
            running = w % 2 == 1
            keys = set()
            for part in range(100):  # 100 source partitions, 100 rows each, one partial per partition
                proc = PartitionProcessor(TOPIC, part, timing, cache.resolve)
                for j in range(0, 100, 10):
                    at = T0 + timedelta(seconds=w * WINDOW_S + (part * 100 + j) * WINDOW_S / 10_000)
                    inst = tuple(pool[(w * 10_000 + part * 100 + j + k) % len(pool)] for k in range(10))
                    rec = PredictionRecord("bikeshare", version, at, f"m{w}-{part}-{j}", inst, (1.0,) * 10)
                    proc.add(encode_record(rec), j, now_ms())
                for key in list(proc._open):
                    e = proc._publish(key)
                    p = e.partial
                    stored = PartialIn(p.key, p.end_ms, p.source_topic, p.source_partition, p.first_offset,
                                       p.last_offset, p.counts, p.features, p.outputs, p.sample)
                    store.add_partial(stored)
                    if running:
                        t = time.perf_counter()
                        decider.fold(stored)
                        folds.append(time.perf_counter() - t)
                    keys.add(p.key)
            (key,) = keys
            t, c = time.perf_counter(), time.thread_time()
            outcome = decider.decide(key)
            (times if running else cold).append(time.perf_counter() - t)
            if running:
                cpu.append(time.thread_time() - c)
            assert outcome.status == "decided", outcome
    shutil.rmtree(tmp, ignore_errors=True)

    def line(xs: list[float]) -> str:
        xs = sorted(xs)
        return f"median {statistics.median(xs) * 1000:.1f} ms, p90 {xs[int(0.9 * (len(xs) - 1))] * 1000:.1f} ms"

    print(f"merge stage, one window from 100 partials (10,000 rows, 11 features + output, skew and drift), "
          f"{len(times) + len(cold)} windows:\n"
          f"  decided as the merge stage runs (partials folded in as they arrive): {line(times)} (goal < 20 ms); "
          f"CPU time of the deciding thread {line(cpu)}, fastest {min(times) * 1000:.1f} ms\n"
          f"  folding in one partial as it is stored: {line(folds)} ({statistics.median(folds) * 100_000:.0f} ms "
          f"per 100 partials, spread over the window)\n"
          f"  decided from the partials read back from the store (after a restart): {line(cold)}")


def memory(args: argparse.Namespace) -> None:
    models_dir, version = bundle(Path(args.models_dir))
    pool = rows()
    n, inst, windows = 100_000, 100, 500
    messages = make_messages(version, n, inst, windows, pool)
    last_event = T0 + timedelta(seconds=windows * WINDOW_S - 0.001)
    with EmbeddedBroker() as broker:
        ensure_topic(broker.bootstrap_servers, TOPIC, args.partitions)
        produce(broker.bootstrap_servers, messages, args.partitions, last_event)
        del messages
        out = run_collectors(broker.bootstrap_servers, models_dir, windows, 1, watch_rss=True, timeout=1800)
    rss = out["rss"]
    early = next(kb for d, kb in rss if d >= windows // 10)
    late = rss[-1][1]
    peak = max(kb for _d, kb in rss)
    print(f"collector RSS over {n * inst:,} instances in {windows} windows: {early / 1024:.0f} MB at window "
          f"{windows // 10}, {late / 1024:.0f} MB at the end, peak {peak / 1024:.0f} MB: growth "
          f"{(late - early) / early:+.1%} (goal < 10%)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=40_000)
    ap.add_argument("--instances", type=int, default=100)
    ap.add_argument("--windows", type=int, default=20)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--processes", default="1")
    ap.add_argument("--models-dir", default=str(Path(tempfile.gettempdir()) / "skewwatch-bench-models"))
    ap.add_argument("--merge-only", action="store_true")
    ap.add_argument("--split-stages", action="store_true",
                    help="also run one partial-stage process beside one merge-stage process")
    ap.add_argument("--merge-windows", type=int, default=40)
    ap.add_argument("--general-path", action="store_true",
                    help="also run one collector with the C fast path off (SKEWWATCH_NATIVE_SCAN=false)")
    ap.add_argument("--rss", action="store_true")
    ap.add_argument("--bare-reader", help=argparse.SUPPRESS)  # internal: one process of the 2-process bare loop
    ap.add_argument("--bootstrap", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.bare_reader is not None:
        print(json.dumps(bare_confluent_part(args.bootstrap, [int(p) for p in args.bare_reader.split(",")])))
    elif args.merge_only:
        merge_latency(args)
    elif args.rss:
        memory(args)
    else:
        throughput(args)


if __name__ == "__main__":
    main()
