"""Shared fixtures: one small real bundle trained once per test session, raw request rows."""

import csv
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from monitor.settings import Settings
from serving.publisher import PredictionLogger

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data" / "bike_sharing_hourly.csv"
NUMERIC = ("temp", "atemp", "hum", "windspeed")
CATEGORICAL = ("season", "hr", "holiday", "weekday", "workingday", "weathersit")
UNREACHABLE = "127.0.0.1:1"


@pytest.fixture(scope="session")
def raw_rows() -> list[dict]:
    """200 CSV rows spread over two years, as a client sends them: numbers as numbers, empty
    cells as null; at least one row misses weekday and one misses weathersit."""
    with DATA.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    picked = rows[::87][:200]
    picked += [next(r for r in rows if not r["weekday"]), next(r for r in rows if not r["weathersit"])]
    out = []
    for row in picked:
        inst = {k: float(row[k]) for k in NUMERIC}
        inst.update({k: (row[k] or None) for k in CATEGORICAL})
        out.append(inst)
    return out


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory):
    """A models directory holding one real bundle trained by the trainer (small: 2 epochs)."""
    from trainer.train import train

    root = tmp_path_factory.mktemp("models")
    train(data_path=DATA, models_dir=root, epochs=2)
    return root


@pytest.fixture
def unreachable_logger():
    """A started logger pointed at a port where no broker listens."""
    settings = Settings(kafka_bootstrap_servers=UNREACHABLE, log_queue_size=1000)
    logger = PredictionLogger(settings, connect_timeout_s=0.3, backoff_initial_s=0.05, backoff_max_s=0.3).start()
    yield logger
    logger.close(timeout=0)


@contextmanager
def serve_in_thread(app, **config):
    """Run ``app`` under a real uvicorn server on a free loopback port; yield its base URL."""
    import uvicorn

    from skewwatch.broker import free_port

    port = free_port()
    options = {"log_level": "warning", "lifespan": "on", "access_log": False, **config}
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, **options))
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("uvicorn exited before it started")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError("uvicorn did not start in time")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def wait_for(condition, timeout: float, what: str) -> None:
    """Poll ``condition`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


@pytest.fixture(scope="session")
def serve():
    """``with serve(app) as base_url:`` runs ``app`` under uvicorn in a thread."""
    return serve_in_thread


@pytest.fixture(scope="session")
def wait_until():
    return wait_for


def consume_parts_of_one_record(bootstrap: str, topic: str, timeout: float = 60.0) -> list:
    """Consume ``topic`` from the start until it holds every part of the one record logged to it."""
    import uuid

    from kafka import KafkaConsumer

    from monitor.record import decode_record

    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"t-{uuid.uuid4()}",
                             auto_offset_reset="earliest", max_poll_interval_ms=6000, session_timeout_ms=6000)
    got: list = []
    deadline = time.monotonic() + timeout
    try:
        while not (got and len(got) == decode_record(got[0].value).parts):
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout}s with {len(got)} parts of the record on {topic}")
            for messages in consumer.poll(500).values():
                got.extend(messages)
    finally:
        consumer.close()
    return got


@pytest.fixture(scope="session")
def consume_parts():
    return consume_parts_of_one_record
