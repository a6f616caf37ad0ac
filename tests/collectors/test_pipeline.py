"""Window close -> compare with the bundle's baseline -> store -> alert, with real parts throughout."""

from datetime import datetime, timedelta, timezone

import httpx
import pytest

from alerts.lifecycle import AlertManager
from alerts.notifiers import Dispatcher, WebhookNotifier
from collectors.baselines import BaselineCache
from collectors.pipeline import WindowProcessor
from collectors.windows import Windower
from monitor.config import load_monitor_config, parse_monitor_config
from monitor.record import PredictionRecord
from monitor.storage import Store
from skewwatch.demo import fahrenheit_bug
from skewwatch.processes import WebhookReceiver

T0 = datetime(2012, 1, 2, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def serving_rows(data_path):
    from trainer.data import BIKESHARE_FEATURES, load_bikeshare

    frame = load_bikeshare(data_path)
    rows = frame[frame["event_time"].dt.year == 2012].sample(n=6000, random_state=3)
    names = [s.name for s in BIKESHARE_FEATURES]
    return [{k: (None if v != v else v) for k, v in r.items()} for r in rows[names].to_dict(orient="records")]


def _run(models_dir, rows, config, tmp_path, windows_plan):
    cache = BaselineCache(models_dir)
    from monitor.bundle import resolve_bundle

    version = resolve_bundle(models_dir, "bikeshare").model_version
    with Store(tmp_path / "s.sqlite3") as store, WebhookReceiver() as receiver, httpx.Client() as client:
        dispatcher = Dispatcher([WebhookNotifier(receiver.url, client)])
        processor = WindowProcessor(baselines=cache, config=config, store=store,
                                    alert_manager=AlertManager(store=store), dispatcher=dispatcher)
        windower = Windower(window_seconds=60, allowed_lateness_seconds=0, specs_for=cache.specs_for)
        outcomes = []
        i = 0
        for w, (size, buggy) in enumerate(windows_plan):
            for j in range(0, size, 50):
                batch = rows[i + j : i + j + 50]
                if buggy:
                    batch = [fahrenheit_bug(r) for r in batch]
                windower.add(PredictionRecord("bikeshare", version, T0 + timedelta(seconds=60 * w + j * 60 / size),
                                              f"r{w}-{j}", tuple(batch), tuple(100.0 for _ in batch)))
            i += size
            outcomes += processor.process_all(windower.pop_ready())
        outcomes += processor.process_all(windower.pop_all())
        dispatcher.close()
        return outcomes, store.list_windows(limit=100), store.list_findings(limit=10_000), receiver.received


def test_skew_is_stored_and_alerted_and_drift_compares_consecutive_windows(trained_models_dir, serving_rows, tmp_path):
    outcomes, windows, findings, delivered = _run(
        trained_models_dir, serving_rows, load_monitor_config(None), tmp_path, [(1500, False), (1500, True)]
    )
    assert [o.window.instances for o in outcomes] == [1500, 1500]
    assert {(w.mode) for w in windows} == {"skew", "drift"} and len(windows) == 3  # no drift for the first
    healthy, buggy = outcomes
    # the records carry a constant prediction (100.0), far from what the model predicted on 2011:
    # output skew is (rightly) critical; every input feature of the healthy window is not
    assert {f.feature for f in healthy.skew if f.verdict == "critical"} == {"prediction"}
    assert {f.feature for f in buggy.skew if f.verdict == "critical"} == {"temp", "prediction"}
    assert {f.feature for f in buggy.drift if f.verdict == "critical"} >= {"temp"}
    assert len(findings) == len(healthy.skew) + len(buggy.skew) + len(buggy.drift)
    firing = [p for p in delivered if p["status"] == "firing" and p["labels"]["feature"] == "temp"]
    assert {p["labels"]["mode"] for p in firing} == {"skew", "drift"}


def test_persistence_holds_the_first_alert_back_and_confirms_the_second(trained_models_dir, serving_rows, tmp_path):
    config = parse_monitor_config({"defaults": {"persistence": {"k": 2, "n": 2}}})
    outcomes, _, _, delivered = _run(trained_models_dir, serving_rows, config, tmp_path,
                                     [(1500, False), (1500, True), (1500, True)])
    _, first_bug, second_bug = outcomes
    assert not [f for f in first_bug.skew if f.feature == "temp" and f.alerting]
    assert any("needs 2" in f.message for f in first_bug.skew if f.feature == "temp")
    assert {f.feature for f in second_bug.skew if f.verdict == "critical"} >= {"temp"}
    assert any(p["status"] == "firing" and p["labels"]["feature"] == "temp" for p in delivered)
