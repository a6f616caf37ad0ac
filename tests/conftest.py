"""Shared fixtures: one small real training run per test session, reused by every test that needs a bundle."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_path() -> Path:
    return ROOT / "data" / "bike_sharing_hourly.csv"


@pytest.fixture(scope="session")
def trained_models_dir(tmp_path_factory, data_path) -> Path:
    """A models directory holding one real bundle, trained briefly (a few epochs) on 2011."""
    from trainer.train import train

    models_dir = tmp_path_factory.mktemp("models")
    train(data_path=data_path, models_dir=models_dir, model_name="bikeshare", epochs=8, seed=0)
    return models_dir


@pytest.fixture(scope="session")
def trained_bundle(trained_models_dir):
    from monitor.bundle import resolve_bundle

    return resolve_bundle(trained_models_dir, "bikeshare")


@pytest.fixture(scope="session")
def serving_rows(data_path):
    """6,000 raw 2012 instances as a client would send them (None for missing)."""
    from trainer.data import BIKESHARE_FEATURES, load_bikeshare

    frame = load_bikeshare(data_path)
    rows = frame[frame["event_time"].dt.year == 2012].sample(n=6000, random_state=3)
    names = [s.name for s in BIKESHARE_FEATURES]
    return [{k: (None if v != v else v) for k, v in r.items()} for r in rows[names].to_dict(orient="records")]


@pytest.fixture
def run_pipeline(trained_models_dir, serving_rows):
    """Feed windows of 2012 traffic (optionally with the Fahrenheit bug) through the real collector
    pipeline: windower -> evaluate -> SQLite store -> alert lifecycle -> webhook over real HTTP.

    ``plan`` is a list of ``(instances, buggy)``; returns ``(outcomes, windows, findings, delivered)``
    and leaves the store at ``tmp_path / "state" / "skewwatch.sqlite3"``.
    """
    from datetime import datetime, timedelta, timezone

    import httpx

    from alerts.lifecycle import AlertManager
    from alerts.notifiers import Dispatcher, WebhookNotifier
    from collectors.baselines import BaselineCache
    from collectors.pipeline import WindowProcessor
    from collectors.windows import Windower
    from monitor.bundle import resolve_bundle
    from monitor.record import PredictionRecord
    from monitor.storage import Store
    from skewwatch.demo import fahrenheit_bug
    from skewwatch.processes import WebhookReceiver

    t0 = datetime(2012, 1, 2, tzinfo=timezone.utc)

    def run(config, tmp_path, plan):
        cache = BaselineCache(trained_models_dir)
        version = resolve_bundle(trained_models_dir, "bikeshare").model_version
        with Store(tmp_path / "state" / "skewwatch.sqlite3") as store, WebhookReceiver() as receiver, httpx.Client() as client:
            dispatcher = Dispatcher([WebhookNotifier(receiver.url, client)])
            processor = WindowProcessor(baselines=cache, config=config, store=store,
                                        alert_manager=AlertManager(store=store), dispatcher=dispatcher)
            windower = Windower(window_seconds=60, allowed_lateness_seconds=0, specs_for=cache.specs_for)
            outcomes, i = [], 0
            for w, (size, buggy) in enumerate(plan):
                for j in range(0, size, 50):
                    batch = serving_rows[i + j : i + j + 50]
                    if buggy:
                        batch = [fahrenheit_bug(r) for r in batch]
                    at = t0 + timedelta(seconds=60 * w + j * 60 / size)
                    windower.add(PredictionRecord("bikeshare", version, at, f"r{w}-{j}", tuple(batch),
                                                  tuple(100.0 for _ in batch)))
                i += size
                outcomes += processor.process_all(windower.pop_ready())
            outcomes += processor.process_all(windower.pop_all())
            dispatcher.close()
            for o in outcomes:  # each window's statistics are kept for drill-down, byte for byte
                start = datetime.fromtimestamp(o.window.key.start_ms / 1000, timezone.utc)
                assert store.load_profiles("bikeshare", version, start) == (o.window.features.to_bytes(),
                                                                             o.window.predictions.to_bytes())
            return outcomes, store.list_windows(limit=100), store.list_findings(limit=10_000), receiver.received

    return run


@pytest.fixture(scope="session")
def postgres_server():
    """One private PostgreSQL server for the whole test session (Debian's binaries, a free port)."""
    from tests.support.postgres import PostgresServer

    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """A fresh, empty database URL: a SQLite file, or a new database on the session's PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.sqlite3'}"
    import uuid

    server = request.getfixturevalue("postgres_server")
    return server.create_database(f"t_{uuid.uuid4().hex[:16]}")


@pytest.fixture
def store(store_url):
    from monitor.storage import Store

    with Store(store_url) as s:
        yield s
