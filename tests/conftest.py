"""Shared fixtures: one small real training run per test session, reused by every test that needs a bundle."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(config, items):
    """Modules holding a ``slow`` test run first, each module's tests kept together: under ``make test``'s
    parallel workers the long tests then start early instead of one of them finishing alone at the end."""
    heavy = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in heavy)  # stable: the order within each group is kept


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
    """Feed windows of 2012 traffic (optionally with the Fahrenheit bug) through the real collection code,
    in process: the partial stage of one partition (collectors.partition), the merge stage's store of
    partials and its window decider with the alert engine, and the outbox sender delivering to a webhook
    over real HTTP. Only Kafka is left out (the scenario tests run it).

    ``plan`` is a list of ``(instances, buggy)``; returns ``(outcomes, windows, findings, delivered)``
    and leaves the store at ``tmp_path / "state" / "skewwatch.sqlite3"``.
    """
    from datetime import datetime, timedelta, timezone

    from alerts import AlertEngine, build_receivers, build_sender
    from collectors.baselines import BaselineCache
    from collectors.partition import PartitionProcessor, Publish, Timing
    from collectors.pipeline import WindowDecider
    from monitor.bundle import resolve_bundle
    from monitor.record import PredictionRecord, encode_record
    from monitor.settings import load_settings
    from monitor.storage import PartialIn, Store
    from monitor.timeutil import DEFAULT_MIN_EVENT_MS, now_ms
    from skewwatch.demo import fahrenheit_bug
    from skewwatch.processes import WebhookReceiver, wait_for

    t0 = datetime(2012, 1, 2, tzinfo=timezone.utc)

    def run(config, tmp_path, plan):
        cache = BaselineCache(trained_models_dir)
        version = resolve_bundle(trained_models_dir, "bikeshare").model_version
        timing = Timing(window_ms=60_000, lateness_ms=0, max_jump_ms=60_000, idle_ms=1000,
                        min_event_ms=DEFAULT_MIN_EVENT_MS, max_future_ms=300_000)
        with Store(f"sqlite:///{tmp_path / 'state' / 'skewwatch.sqlite3'}") as store, WebhookReceiver() as receiver:
            settings = load_settings(state_dir=tmp_path / "state", webhook_urls=receiver.url, alert_poll_seconds=0.1)
            engine = AlertEngine.from_settings(settings, config.alerting)
            receivers = build_receivers(settings, config.alerting)
            sender = build_sender(store, settings, engine, receivers).start()
            decider = WindowDecider(store=store, baselines=cache, config=config, alerts=engine.hook)
            partition = PartitionProcessor("skewwatch.predictions", 0, timing, cache.resolve)
            offset, i = 0, 0
            outcomes = []

            def publish(events):
                for e in events:
                    if isinstance(e, Publish):
                        p = e.partial
                        store.add_partial(PartialIn(p.key, p.end_ms, p.source_topic, p.source_partition, p.first_offset,
                                                    p.last_offset, p.counts, p.features, p.outputs, p.sample))
                        partition.delivered(e.token)
                        outcomes.append(decider.decide(p.key))

            for w, (size, buggy) in enumerate(plan):
                for j in range(0, size, 50):
                    batch = serving_rows[i + j : i + j + 50]
                    if buggy:
                        batch = [fahrenheit_bug(r) for r in batch]
                    at = t0 + timedelta(seconds=60 * w + j * 60 / size)
                    record = PredictionRecord("bikeshare", version, at, f"r{w}-{j}", tuple(batch),
                                              tuple(100.0 for _ in batch))
                    publish(partition.add(encode_record(record), offset, now_ms()))
                    offset += 1
                i += size
            for p in list(partition._open):  # the end of the traffic: close what is still open
                publish([partition._publish(p)])
            wait_for(lambda: store.outbox_counts().get("pending", 0) == 0, timeout=30, what="the outbox to drain")
            sender.stop()
            receivers.close()
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
