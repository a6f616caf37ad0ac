"""The lifecycle, driven by windows decided through a real store (SQLite) with the engine's hook,
observed as alert rows and as the messages a real webhook receives.

Each test reproduces a defect of issue 11 or pins a rule of the lifecycle."""

from __future__ import annotations

import pytest

from alerts import fingerprint
from alerts.lifecycle import WindowInfo
from monitor.storage.windows import DecisionTx
from tests.alerts.helpers import MIN, T0, WINDOW, Harness, finding, healthy

FEATURES = ["temp", "atemp", "hum", "windspeed", "season", "hr", "holiday", "weekday", "workingday", "weathersit"]


@pytest.fixture
def h(sqlite_store, clock, receiver):
    harness = Harness(sqlite_store, clock, receiver)
    yield harness
    harness.close()


def others(*, but: str, mode: str = "skew") -> list:
    return healthy(*[f for f in FEATURES if f != but], mode=mode)


def test_a_critical_finding_pages_from_its_first_window(h):
    h.window(0, [finding("temp", verdict="critical")] + others(but="temp"))
    assert h.alert("temp").state == "firing"
    h.settle()
    [msg] = h.messages()
    assert msg["status"] == "firing"
    assert [a["labels"]["feature"] for a in msg["alerts"]] == ["temp"]


def test_a_warning_needs_two_consecutive_alerting_windows_and_a_break_resets_it(h):
    h.window(0, [finding("hum", verdict="warning")] + others(but="hum"))
    assert h.alert("hum").state == "pending"
    h.window(1, healthy(*FEATURES))  # the streak breaks: the pending alert goes away, never paged
    assert h.alert("hum") is None
    h.window(2, [finding("hum", verdict="warning")] + others(but="hum"))
    h.settle()
    assert h.messages() == []
    h.window(3, [finding("hum", verdict="warning")] + others(but="hum"))
    assert h.alert("hum").state == "firing" and h.alert("hum").firing_windows == 2
    h.settle()
    assert [m["status"] for m in h.messages()] == ["firing"]


def test_a_feature_hovering_at_its_floor_pages_once_and_does_not_flap(h):
    """The demo fired and resolved a humidity warning within two windows: near its floor a feature
    alternates between just above (warning) and just below (ok). Hysteresis holds it firing."""
    near = finding("hum", effect=0.19, floor=0.2, significant=True)  # 0.95 x floor: not alerting, not healthy
    for i in range(12):
        h.window(i, [finding("hum", verdict="warning") if i % 2 == 0 or i == 1 else near] + others(but="hum"))
        h.settle()
    alert = h.alert("hum")
    assert alert.state == "firing" and alert.incident == 1
    assert [m["status"] for m in h.messages()] == ["firing"]  # one page, no resolve, no re-page
    for i in range(12, 14):  # clearly below 0.8 x floor: healthy; resolves after resolve_after = 2
        h.window(i, healthy(*FEATURES))
    h.settle()
    assert h.alert("hum").state == "resolved"
    assert [m["status"] for m in h.messages()] == ["firing", "resolved"]


def test_without_hysteresis_the_same_feature_would_flap(sqlite_store, clock, receiver):
    """The control for the test above: resolve_below 1.0 (no band) and resolve_after 1 resolve at once."""
    h = Harness(sqlite_store, clock, receiver, {"route": {"for_windows": 1, "resolve_after": 1, "resolve_below": 1.0}})
    near = finding("hum", effect=0.19, floor=0.2, significant=True)
    for i in range(4):
        h.window(i, [finding("hum", verdict="warning") if i % 2 == 0 else near] + others(but="hum"))
        h.settle()
    assert [m["status"] for m in h.messages()] == ["firing", "resolved", "firing", "resolved"]
    h.close()


def test_the_model_version_is_part_of_the_identity(h):
    """With A/B traffic, version A's healthy window resolved the alert of version B."""
    h.window(0, [finding("temp", verdict="critical")] + others(but="temp"), version="B")
    for i in range(1, 5):
        h.window(i, healthy(*FEATURES), version="A")
    assert h.alert("temp", version="B").state == "firing"
    assert h.alert("temp", version="A") is None
    assert fingerprint("bikeshare", "A", "", "feature", "temp", "skew") != fingerprint(
        "bikeshare", "B", "", "feature", "temp", "skew")
    h.settle()
    [msg] = h.messages()
    assert msg["alerts"][0]["labels"]["version"] == "B"


def test_segments_and_modes_are_separate_alerts(h):
    h.window(0, [finding("temp", verdict="critical", mode="drift")] + others(but="temp", mode="drift"), segment="eu")
    assert h.alert("temp", mode="drift", segment="eu").state == "firing"
    assert h.alert("temp", mode="skew", segment="eu") is None
    assert h.alert("temp", mode="drift") is None


def test_re_firing_within_one_incident_does_not_page_again(h):
    h.window(0, [finding("temp", verdict="critical")] + others(but="temp"))
    h.settle()
    h.window(1, healthy(*FEATURES))  # one healthy window: resolve_after is 2, still firing
    h.window(2, [finding("temp", verdict="critical")] + others(but="temp"))
    h.settle()
    h.settle(4 * 60 * MIN)  # even the repeat is one message, not a new page
    alert = h.alert("temp")
    assert alert.state == "firing" and alert.incident == 1
    statuses = [m["status"] for m in h.messages()]
    assert statuses == ["firing", "firing"]  # the first page and the 4-hour repeat


def test_after_a_resolve_a_new_incident_pages_again(h):
    h.window(0, [finding("temp", verdict="critical")] + others(but="temp"))
    h.settle()
    h.window(1, healthy(*FEATURES))
    h.window(2, healthy(*FEATURES))
    h.settle()
    assert h.alert("temp").state == "resolved"
    h.window(3, [finding("temp", verdict="critical")] + others(but="temp"))
    h.settle()
    assert h.alert("temp").incident == 2
    assert [m["status"] for m in h.messages()] == ["firing", "resolved", "firing"]


def test_an_escalation_updates_the_group_without_a_new_incident(h):
    h.window(0, [finding("temp", verdict="warning")] + others(but="temp"))
    h.window(1, [finding("temp", verdict="warning")] + others(but="temp"))
    h.settle()
    h.window(2, [finding("temp", verdict="critical")] + others(but="temp"))
    h.settle()
    alert = h.alert("temp")
    assert alert.severity == "critical" and alert.incident == 1
    assert [m["alerts"][0]["labels"]["severity"] for m in h.messages()] == ["warning", "critical"]


def test_a_window_decided_twice_or_replayed_out_of_order_changes_nothing(h, sqlite_store, clock):
    h.window(0, [finding("temp", verdict="critical")] + others(but="temp"))
    h.window(1, healthy(*FEATURES))
    before = h.alert("temp")
    assert h.window(1, healthy(*FEATURES)) is None  # the store refuses the key: the hook never runs
    # an older window handed to the engine again (a replay) is ignored by the lifecycle
    with sqlite_store.write() as conn:
        ev = h.engine.react(DecisionTx(conn, 99, clock()), WindowInfo("bikeshare", "v1", "", T0, T0 + WINDOW),
                            [(finding("temp"), "features")])
    assert ev.rows == () and ev.notable == ()
    assert h.alert("temp") == before


def test_root_causes_come_first_and_set_the_severity(h):
    h.window(0, [finding("weathersit", "missing_rate", "warning", floor=0.05),
                 finding("weathersit", "ks", "critical", floor=0.1)] + others(but="weathersit"))
    h.window(1, [finding("weathersit", "missing_rate", "warning", floor=0.05),
                 finding("weathersit", "ks", "critical", floor=0.1)] + others(but="weathersit"))
    alert = h.alert("weathersit")
    assert alert.severity == "warning"  # from the root cause, not the KS it explains
    assert [(f["test"], f["inhibited"]) for f in alert.findings] == [("missing_rate", False), ("ks", True)]


def test_a_crash_in_the_window_transaction_leaves_no_alert_and_no_group(h, sqlite_store):
    from monitor.keys import WindowKey
    from monitor.storage import FindingIn, WindowCounts, WindowDecision

    key = WindowKey("bikeshare", "v1", "", T0)
    d = WindowDecision(key=key, end_ms=T0 + WINDOW, counts=WindowCounts(rows=10), findings=[
        FindingIn(finding("temp", verdict="critical"))], features=b"f", outputs=b"o")
    hook = h.engine.hook(d)

    def crashing(tx):
        hook(tx)  # alerts written and groups scheduled ... then the process "dies" before commit
        raise RuntimeError("crash")

    with pytest.raises(RuntimeError):
        sqlite_store.decide_window(d, react=crashing)
    assert sqlite_store.window_at(key) is None
    assert sqlite_store.list_alerts() == [] and sqlite_store.list_groups() == []
    assert sqlite_store.decide_window(d, react=hook) is not None  # decided again: the same result as never crashed
    assert h.alert("temp").state == "firing"


def test_output_drift_is_its_own_kind(h):
    h.window(0, [(finding("prediction", verdict="critical", mode="drift"), "output")] + healthy(*FEATURES, mode="drift"))
    alert = h.alert("prediction", mode="drift", kind="output")
    assert alert.state == "firing" and alert.labels["alertname"] == "SkewwatchOutputDrift"
