"""Window close -> compare with the bundle's baseline -> store -> alert, with real parts throughout."""

from monitor.config import load_monitor_config, parse_monitor_config


def test_skew_is_stored_and_alerted_and_drift_compares_consecutive_windows(run_pipeline, tmp_path):
    outcomes, windows, findings, delivered = run_pipeline(load_monitor_config(None), tmp_path, [(1500, False), (1500, True)])
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


def test_persistence_holds_the_first_alert_back_and_confirms_the_second(run_pipeline, tmp_path):
    config = parse_monitor_config({"defaults": {"persistence": {"k": 2, "n": 2}}})
    outcomes, _, _, delivered = run_pipeline(config, tmp_path, [(1500, False), (1500, True), (1500, True)])
    _, first_bug, second_bug = outcomes
    assert not [f for f in first_bug.skew if f.feature == "temp" and f.alerting]
    assert any("needs 2" in f.message for f in first_bug.skew if f.feature == "temp")
    assert {f.feature for f in second_bug.skew if f.verdict == "critical"} >= {"temp"}
    assert any(p["status"] == "firing" and p["labels"]["feature"] == "temp" for p in delivered)
