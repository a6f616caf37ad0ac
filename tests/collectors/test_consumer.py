"""The collector as a Kafka consumer-group member, on the embedded broker."""

import os
import signal
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from monitor.bundle import resolve_bundle
from monitor.record import PredictionRecord, encode_record
from monitor.settings import load_settings
from monitor.storage import Store
from skewwatch.broker import EmbeddedBroker, ensure_topic, free_port
from skewwatch.processes import wait_for
from skewwatch.wiring import build_collector

pytestmark = pytest.mark.broker
T0 = datetime(2012, 1, 2, tzinfo=timezone.utc)


@pytest.fixture
def broker(tmp_path):
    with EmbeddedBroker(log_path=tmp_path / "broker.log") as b:
        ensure_topic(b.bootstrap_servers, "preds", partitions=3)
        yield b


def _produce(bootstrap, records):
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    for value in records:
        producer.send("preds", key=b"bikeshare", value=value if isinstance(value, bytes) else encode_record(value))
    producer.flush()
    producer.close()


def _records(version, rows, start_s, span_s, per=25):
    out = []
    for i in range(0, len(rows), per):
        at = T0 + timedelta(seconds=start_s + span_s * i / len(rows))
        batch = rows[i : i + per]
        out.append(PredictionRecord("bikeshare", version, at, f"{start_s}-{i}", tuple(batch), tuple(100.0 for _ in batch)))
    return out


def _settings(broker, models_dir, tmp_path, **kw):
    return load_settings(kafka_bootstrap_servers=broker.bootstrap_servers, topic="preds", consumer_group="g",
                         models_dir=models_dir, state_dir=tmp_path / "state", window_seconds=60,
                         allowed_lateness_seconds=0, **kw)


def test_collector_windows_counts_bad_input_and_exports_metrics(broker, trained_models_dir, serving_rows, tmp_path):
    version = resolve_bundle(trained_models_dir, "bikeshare").model_version
    good = _records(version, serving_rows[:1000], 0, 60) + _records(version, serving_rows[1000:1500], 60, 30)
    unknown = PredictionRecord("nobody", "1", T0, "x", ({"a": 1},), (1.0,))
    _produce(broker.bootstrap_servers, [*good[:10], b"{not json", unknown, *good[10:]])
    port = free_port()
    collector, close = build_collector(_settings(broker, trained_models_dir, tmp_path, idle_close_seconds=1.0,
                                                 collector_metrics_port=port))
    stop = threading.Event()
    thread = threading.Thread(target=collector.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_for(lambda: collector.counts["windows_closed"] >= 2, timeout=60, what="two windows to close")
        text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    finally:
        stop.set()
        thread.join(30)
        close()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for fam in text_string_to_metric_families(text) for s in fam.samples}
    assert samples[("skewwatch_collector_records_total", (("outcome", "accepted"),))] == len(good)
    assert samples[("skewwatch_collector_records_total", (("outcome", "invalid"),))] == 1
    assert samples[("skewwatch_collector_records_total", (("outcome", "unknown_model"),))] == 1
    assert samples[("skewwatch_collector_windows_closed_total", ())] == 2
    with Store(tmp_path / "state" / "skewwatch.sqlite3") as store:
        rows = sorted((w.window_start, w.rows) for w in store.list_windows(mode="skew"))
    assert [r for _, r in rows] == [1000, 500]


def test_a_killed_collector_loses_nothing_and_counts_nothing_twice(broker, trained_models_dir, serving_rows, tmp_path):
    version = resolve_bundle(trained_models_dir, "bikeshare").model_version
    settings = _settings(broker, trained_models_dir, tmp_path, idle_close_seconds=600.0)
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers, "SKEWWATCH_TOPIC": "preds",
           "SKEWWATCH_CONSUMER_GROUP": "g", "SKEWWATCH_MODELS_DIR": str(trained_models_dir),
           "SKEWWATCH_STATE_DIR": str(settings.state_dir), "SKEWWATCH_WINDOW_SECONDS": "60",
           "SKEWWATCH_ALLOWED_LATENESS_SECONDS": "0", "SKEWWATCH_IDLE_CLOSE_SECONDS": "600"}
    store = Store(settings.db_path)

    def saved():
        return {w.window_start: w.rows for w in store.list_windows(mode="skew")}

    # window 1 complete, window 2 begun: window 1 closes and is saved, window 2 stays open
    _produce(broker.bootstrap_servers, _records(version, serving_rows[:800], 0, 60) + _records(version, serving_rows[800:1100], 60, 20))
    log = open(tmp_path / "collect1.log", "wb")
    first = subprocess.Popen([sys.executable, "-m", "skewwatch", "collect"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: len(saved()) == 1, timeout=90, what="window 1 to be saved")
    finally:
        first.send_signal(signal.SIGKILL)  # a crash: window 2's statistics die with the process
        first.wait(30)
    assert list(saved().values()) == [800]
    # the rest of window 2, then window 3 to push the watermark past it
    _produce(broker.bootstrap_servers, _records(version, serving_rows[1100:1500], 80, 40) + _records(version, serving_rows[1500:1600], 120, 10))
    second = subprocess.Popen([sys.executable, "-m", "skewwatch", "collect"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: len(saved()) == 2, timeout=90, what="window 2 to be saved after the restart")
    finally:
        second.terminate()
        second.wait(30)
        log.close()
    windows = saved()
    store.close()
    # window 2 has every record from before and after the crash, exactly once; window 1 was not
    # recounted; window 3 was still open at the (graceful) stop, so it is left for the next owner
    assert sorted(windows.values()) == [700, 800]
