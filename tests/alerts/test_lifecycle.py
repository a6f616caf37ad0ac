"""AlertManager transitions: fire, repeat, escalate, resolve, silence, inhibit, restart."""

from datetime import timedelta
from types import SimpleNamespace

import pytest

from alerts.alert import Alert, fingerprint
from alerts.lifecycle import AlertManager
from alerts.silences import Silence
from monitor.errors import ConfigError, StatisticsError
from monitor.storage import Store

HOUR_WINDOWS = 12  # 5-minute windows per hour


def test_first_alerting_window_fires_once_with_labels_and_window(finding, window):
    am = AlertManager()
    w = window(0)
    notes = am.observe(w, [finding("temp", "ks", "warning"), finding("temp", "psi", "ok"), finding("hum", "ks", "ok")])
    assert len(notes) == 1
    n = notes[0]
    assert n.status == "firing"
    assert n.fingerprint == fingerprint("bikeshare", "temp", "drift")
    assert n.labels == {"model": "bikeshare", "feature": "temp", "mode": "drift", "severity": "warning"}
    assert n.severity == "warning"
    assert [f["test"] for f in n.findings] == ["ks"]  # only alerting tests are carried
    assert (n.window_start, n.window_end, n.starts_at, n.ends_at) == (w["window_start"], w["window_end"], w["window_start"], None)
    assert n.model_version == "v1"
    assert n.summary == "[WARNING] drift on bikeshare/temp: ks effect 0.2 >= floor 0.1 (q=1e-06)"
    assert [a.fingerprint for a in am.alerts(state="firing")] == [n.fingerprint]


def test_fingerprint_is_stable_and_distinguishes_model_feature_mode():
    a = fingerprint("bikeshare", "temp", "drift")
    assert a == fingerprint("bikeshare", "temp", "drift")
    assert len({a, fingerprint("bikeshare", "temp", "skew"), fingerprint("bikeshare", "hum", "drift"),
                fingerprint("other", "temp", "drift")}) == 4
    assert len(a) == 16 and int(a, 16) >= 0


def test_still_firing_is_not_renotified_until_repeat_interval(finding, window):
    am = AlertManager(repeat_interval=timedelta(hours=1))
    assert len(am.observe(window(0), [finding(verdict="warning")])) == 1
    # notified at the end of window 0; the next notification is due one hour of event time later
    for i in range(1, HOUR_WINDOWS):
        assert am.observe(window(i), [finding(verdict="warning")]) == [], i
    again = am.observe(window(HOUR_WINDOWS), [finding(verdict="warning")])
    assert [n.status for n in again] == ["firing"]
    assert again[0].starts_at == window(0)["window_start"]  # the same firing, still
    assert am.observe(window(HOUR_WINDOWS + 1), [finding(verdict="warning")]) == []


def test_severity_rise_renotifies_but_a_drop_does_not(finding, window):
    am = AlertManager()
    assert [n.severity for n in am.observe(window(0), [finding(verdict="warning")])] == ["warning"]
    up = am.observe(window(1), [finding(verdict="critical")])
    assert [(n.status, n.severity) for n in up] == [("firing", "critical")]
    assert am.observe(window(2), [finding(verdict="warning")]) == []
    assert am.get(up[0].fingerprint).severity == "warning"
    # back to critical: receivers already heard "critical" for this firing
    assert am.observe(window(3), [finding(verdict="critical")]) == []


def test_resolves_on_first_healthy_window_and_fires_anew_later(finding, window):
    am = AlertManager()
    fired = am.observe(window(0), [finding(verdict="critical")])
    resolved = am.observe(window(1), [finding(verdict="ok", effect=0.03)])
    assert [n.status for n in resolved] == ["resolved"]
    r = resolved[0]
    assert r.fingerprint == fired[0].fingerprint
    assert (r.starts_at, r.ends_at) == (window(0)["window_start"], window(1)["window_end"])
    assert r.findings[0]["effect"] == 0.03 and r.findings[0]["alerting"] is False
    assert r.summary == "[RESOLVED] drift on bikeshare/temp: no alerting test for 1 consecutive window(s)"
    assert am.observe(window(2), [finding(verdict="ok")]) == []
    assert am.alerts(state="firing") == []
    again = am.observe(window(3), [finding(verdict="warning")])
    assert [(n.status, n.starts_at) for n in again] == [("firing", window(3)["window_start"])]


def test_resolve_after_needs_consecutive_healthy_windows(finding, window):
    am = AlertManager(resolve_after=3)
    am.observe(window(0), [finding(verdict="warning")])
    assert am.observe(window(1), [finding()]) == []
    assert am.observe(window(2), [finding()]) == []
    assert am.observe(window(3), [finding(verdict="warning")]) == []  # streak broken, still firing
    assert am.observe(window(4), [finding()]) == []
    assert am.observe(window(5), [finding()]) == []
    assert [n.status for n in am.observe(window(6), [finding()])] == ["resolved"]


def test_a_feature_missing_from_a_window_is_not_healthy(finding, window):
    am = AlertManager()
    am.observe(window(0), [finding("temp", verdict="warning")])
    assert am.observe(window(1), [finding("hum")]) == []  # temp not evaluated
    assert am.alerts(state="firing")[0].labels["feature"] == "temp"
    assert [n.status for n in am.observe(window(2), [finding("temp")])] == ["resolved"]


def test_one_alert_per_feature_and_mode_carrying_all_alerting_tests(finding, window):
    am = AlertManager()
    notes = am.observe(window(0), [finding("temp", "ks", "warning"), finding("temp", "psi", "critical"),
                                   finding("temp", "wasserstein", "ok"), finding("hum", "ks", "warning")])
    by_feature = {n.labels["feature"]: n for n in notes}
    assert set(by_feature) == {"temp", "hum"}
    assert by_feature["temp"].severity == "critical"
    assert [f["test"] for f in by_feature["temp"].findings] == ["psi", "ks"]  # most severe first
    skew = am.observe(window(0, mode="skew"), [finding("temp", "ks", "warning", mode="skew")])
    assert skew[0].fingerprint != by_feature["temp"].fingerprint


def test_replayed_window_changes_nothing(finding, window):
    am = AlertManager(resolve_after=2)
    assert len(am.observe(window(0), [finding(verdict="warning")])) == 1
    assert am.observe(window(0), [finding(verdict="critical")]) == []  # replay of an observed window
    assert am.observe(window(1), [finding()]) == []
    assert am.observe(window(1), [finding()]) == []  # replay: must not count as a second healthy window
    assert am.get(fingerprint("bikeshare", "temp", "drift")).healthy_windows == 1
    assert [n.status for n in am.observe(window(2), [finding()])] == ["resolved"]


def test_silence_mutes_notifications_but_state_changes(finding, window):
    am = AlertManager()
    s = am.silence({"feature": "temp", "mode": "drift"}, until=window(2)["window_end"], comment="known issue")
    assert isinstance(s, Silence) and am.silences == (s,)
    notes = am.observe(window(0), [finding("temp", verdict="warning"), finding("hum", verdict="warning")])
    assert [n.labels["feature"] for n in notes] == ["hum"]
    assert am.get(fingerprint("bikeshare", "temp", "drift")).state == "firing"
    assert am.observe(window(1), [finding("temp", verdict="critical")]) == []  # escalation muted too
    # silence over (event time): receivers never heard of this firing, so they hear now, once
    late = am.observe(window(2), [finding("temp", verdict="critical")])
    assert [(n.status, n.severity, n.starts_at) for n in late] == [("firing", "critical", window(0)["window_start"])]
    assert am.observe(window(3), [finding("temp", verdict="critical")]) == []


def test_silenced_resolution_sends_nothing_and_unnotified_firing_never_resolves_loudly(finding, window):
    am = AlertManager()
    am.observe(window(0), [finding(verdict="warning")])  # notified
    am.silence({"model": "bikeshare"}, until=window(10)["window_end"])
    assert am.observe(window(1), [finding()]) == []
    assert am.get(fingerprint("bikeshare", "temp", "drift")).state == "resolved"
    fp = fingerprint("bikeshare", "temp", "drift")
    # a firing that was muted from start to end is never announced as resolved either
    am.observe(window(2), [finding(verdict="warning")])
    am.expire_silence(am.silences[0].id)
    assert am.get(fp).notified_status is None
    assert am.observe(window(3), [finding()]) == []


def test_silence_on_severity_label_and_bad_matchers(finding, window):
    am = AlertManager()
    am.silence({"severity": "warning"}, until=window(5)["window_end"])
    assert am.observe(window(0), [finding(verdict="warning")]) == []
    assert [n.severity for n in am.observe(window(1), [finding(verdict="critical")])] == ["critical"]
    with pytest.raises(ConfigError, match="matcher.team"):
        am.silence({"team": "x"}, until=window(5)["window_end"])
    with pytest.raises(ConfigError, match="matcher"):
        am.silence({}, until=window(5)["window_end"])
    with pytest.raises(ConfigError, match="until"):
        am.silence({"model": "m"}, until=window(5)["window_end"].replace(tzinfo=None))
    with pytest.raises(ConfigError, match="silence_id"):
        am.expire_silence("nope")


def test_schema_finding_inhibits_distribution_tests_root_cause_first(finding, window):
    am = AlertManager()
    notes = am.observe(window(0), [
        finding("weathersit", "chi2", "critical", q_value=1e-12),
        finding("weathersit", "psi", "critical", q_value=None),
        finding("weathersit", "missing_rate", "warning", effect=0.31, floor=0.05),
        finding("temp", "ks", "critical"),
    ])
    weather = next(n for n in notes if n.labels["feature"] == "weathersit")
    assert [(f["test"], f["inhibited"]) for f in weather.findings] == [
        ("missing_rate", False), ("chi2", True), ("psi", True)]
    assert weather.severity == "warning"  # from the root cause; inhibited tests do not raise it
    assert weather.summary == ("[WARNING] drift on bikeshare/weathersit: missing_rate effect 0.31 >= floor 0.05"
                               " (q=1e-06) (root cause); inhibited: chi2, psi")
    temp = next(n for n in notes if n.labels["feature"] == "temp")
    assert temp.severity == "critical" and all(not f["inhibited"] for f in temp.findings)
    # the root cause clears, the distribution tests keep alerting: no longer inhibited, severity rises
    later = am.observe(window(1), [finding("weathersit", "chi2", "critical"), finding("weathersit", "missing_rate")])
    assert [(n.severity, [f["inhibited"] for f in n.findings]) for n in later] == [("critical", [False])]


def test_unseen_share_is_a_root_cause_too(finding, window):
    notes = AlertManager().observe(window(0), [finding("season", "chi2", "critical"),
                                               finding("season", "unseen_share", "critical")])
    assert [f["test"] for f in notes[0].findings] == ["unseen_share", "chi2"]
    assert "inhibited: chi2" in notes[0].summary


def test_restart_with_a_real_store_does_not_renotify(tmp_path, finding, window):
    path = tmp_path / "state" / "skewwatch.sqlite3"
    with Store(path) as store:
        am = AlertManager(store=store, resolve_after=2)
        assert len(am.observe(window(0), [finding("temp", verdict="warning"), finding("hum", verdict="critical")])) == 2
        am.observe(window(1), [finding("hum")])  # hum: one healthy window of two
    with Store(path) as store:  # a new process
        am = AlertManager(store=store, resolve_after=2)
        assert {a.labels["feature"]: a.healthy_windows for a in am.alerts(state="firing")} == {"temp": 0, "hum": 1}
        assert am.observe(window(0), [finding("temp", verdict="warning")]) == []  # replay after the crash
        notes = am.observe(window(2), [finding("temp", verdict="warning"), finding("hum")])
        assert [(n.status, n.labels["feature"]) for n in notes] == [("resolved", "hum")]
    with Store(path) as store:
        am = AlertManager(store=store, resolve_after=2)
        assert am.get(fingerprint("bikeshare", "hum", "drift")).state == "resolved"
        assert am.observe(window(3), [finding("temp", verdict="warning")]) == []
        notes = am.observe(window(4), [finding("temp", verdict="critical")])
        assert [(n.status, n.severity, n.starts_at) for n in notes] == [("firing", "critical", window(0)["window_start"])]
        rows = {r.labels["feature"]: r for r in store.list_alerts()}
        assert rows["temp"].notified_severity == "critical" and rows["hum"].state == "resolved"


def test_restart_resolution_is_notified_once(tmp_path, finding, window):
    path = tmp_path / "s.sqlite3"
    with Store(path) as store:
        AlertManager(store=store).observe(window(0), [finding(verdict="warning")])
    with Store(path) as store:
        am = AlertManager(store=store)
        assert [n.status for n in am.observe(window(1), [finding()])] == ["resolved"]
    with Store(path) as store:
        assert AlertManager(store=store).observe(window(1), [finding()]) == []
        assert AlertManager(store=store).observe(window(2), [finding()]) == []


def test_window_may_be_an_object_with_iso_strings(finding):
    am = AlertManager()
    w = SimpleNamespace(model="bikeshare", mode="drift", window_start="2012-03-01T08:00:00Z",
                        window_end="2012-03-01T08:05:00+00:00")
    notes = am.observe(w, [finding(verdict="warning")])
    assert notes[0].window_end.isoformat() == "2012-03-01T08:05:00+00:00" and notes[0].model_version is None


def test_bad_windows_and_foreign_findings_are_refused(finding, window):
    am = AlertManager()
    w = window(0)
    with pytest.raises(StatisticsError, match="window.window_end"):
        am.observe({k: v for k, v in w.items() if k != "window_end"}, [])
    with pytest.raises(StatisticsError, match="window.window_start: must carry a UTC offset"):
        am.observe({**w, "window_start": w["window_start"].replace(tzinfo=None)}, [])
    with pytest.raises(StatisticsError, match=r"findings\[1\]"):
        am.observe(w, [finding(verdict="warning"), finding(verdict="warning", mode="skew")])
    assert am.alerts() == []  # nothing applied from a refused window


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="resolve_after"):
        AlertManager(resolve_after=0)
    with pytest.raises(ConfigError, match="repeat_interval"):
        AlertManager(repeat_interval=timedelta(0))


def test_alert_state_round_trips_through_store_rows(tmp_path, finding, window):
    with Store(tmp_path / "s.sqlite3") as store:
        am = AlertManager(store=store)
        am.observe(window(0), [finding(verdict="warning")])
        (row,) = store.list_alerts()
        restored = Alert.from_row(row)
        assert restored == am.get(row.fingerprint)


def test_manager_sends_through_its_notifier_and_survives_a_failing_one(tmp_path, finding, window):
    import httpx

    from alerts.notifiers import Dispatcher, WebhookNotifier

    received = []

    def ok(request):
        received.append(request)
        return httpx.Response(200)

    with Dispatcher([WebhookNotifier("https://ok.example/h", httpx.Client(transport=httpx.MockTransport(ok)))]) as d:
        am = AlertManager(notifier=d)
        notes = am.observe(window(0), [finding(verdict="warning")])
        assert len(received) == 1 and d.deliveries == {"webhook:ok.example": 1}
    rejecting = WebhookNotifier("https://no.example/h",
                                httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(400))))
    with Store(tmp_path / "s.sqlite3") as store:
        am = AlertManager(notifier=rejecting, store=store)  # raises DeliveryError inside: logged, not propagated
        assert [n.status for n in am.observe(window(0), [finding(verdict="warning")])] == ["firing"]
        assert [r.state for r in store.list_alerts()] == ["firing"]
    assert notes[0].fingerprint == fingerprint("bikeshare", "temp", "drift")
