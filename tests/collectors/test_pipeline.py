"""Deciding windows: references that know the calendar, earlier windows, versions side by side,
segments with their own baseline slices, and windows that cannot be processed."""

from datetime import datetime, timedelta, timezone

import pytest

from collectors.baselines import BaselineCache
from collectors.partition import PartitionProcessor, Publish, Timing
from collectors.pipeline import WindowDecider
from monitor.bundle import resolve_bundle
from monitor.config import MonitorConfig, parse_monitor_config
from monitor.evaluate import evaluate
from monitor.record import PredictionRecord, encode_record
from monitor.stats import Profile
from monitor.storage import PartialIn, Store
from monitor.timeutil import DEFAULT_MIN_EVENT_MS, from_datetime, now_ms

DAY = 86_400_000


class InProcess:
    """The partial stage of one partition feeding the merge stage's store and decider, without Kafka."""

    def __init__(self, store, models_dir, config, window_ms):
        self.store, self.config = store, config
        self.cache = BaselineCache(models_dir, segments_for=config.segments_for)
        timing = Timing(window_ms=window_ms, lateness_ms=0, max_jump_ms=10 * window_ms, idle_ms=1000,
                        min_event_ms=DEFAULT_MIN_EVENT_MS, max_future_ms=300_000)
        self.partition = PartitionProcessor("skewwatch.predictions", 0, timing, self.cache.resolve)
        self.decider = WindowDecider(store=store, baselines=self.cache, config=config)
        self.offset = 0
        self.outcomes = []

    def _publish(self, events):
        for e in events:
            if isinstance(e, Publish):
                p = e.partial
                self.store.add_partial(PartialIn(p.key, p.end_ms, p.source_topic, p.source_partition, p.first_offset,
                                                 p.last_offset, p.counts, p.features, p.outputs, p.sample))
        for key, _end in self.store.pending_windows():
            self.outcomes.append(self.decider.decide(key))

    def feed(self, records):
        for r in records:
            self._publish(self.partition.add(encode_record(r), self.offset, now_ms()))
            self.offset += 1

    def finish(self):
        self._publish([self.partition._publish(k) for k in sorted(self.partition._open)])


def _records(frame, version, *, start, days, window_days=7, per_request=24, rid="r", model="bikeshare", shift=None):
    """Hourly bike rows of ``days`` days from ``start`` (their own timestamps as event times)."""
    from trainer.data import BIKESHARE_FEATURES

    names = [s.name for s in BIKESHARE_FEATURES]
    rows = frame[(frame["event_time"] >= start) & (frame["event_time"] < start + timedelta(days=days))]
    out = []
    for i in range(0, len(rows), per_request):
        chunk = rows.iloc[i: i + per_request]
        inst = [{k: (None if v != v else v) for k, v in r.items()} for r in chunk[names].to_dict(orient="records")]
        if shift is not None:
            inst = [shift(x) for x in inst]
        at = chunk["event_time"].iloc[0].to_pydatetime().replace(tzinfo=timezone.utc)
        out.append(PredictionRecord(model, version, at, f"{rid}{i}", tuple(inst), tuple(100.0 for _ in inst)))
    return out


@pytest.fixture(scope="module")
def frame(data_path):
    from trainer.data import load_bikeshare

    return load_bikeshare(data_path)


def test_skew_against_the_same_calendar_slot_of_the_training_rows(trained_models_dir, frame, tmp_path):
    bundle = resolve_bundle(trained_models_dir, "bikeshare")
    config = parse_monitor_config({"models": {"bikeshare": {"references": {"skew": {"slots": "month_of_year"},
                                                                           "drift": False, "version": False}}}})
    with Store(f"sqlite:///{tmp_path / 's.sqlite3'}") as store:
        run = InProcess(store, trained_models_dir, config, 7 * DAY)
        run.feed(_records(frame, bundle.model_version, start=datetime(2012, 7, 5, tzinfo=timezone.utc), days=7))
        run.finish()
        (window,) = store.list_windows()
        features = Profile.from_bytes(store.load_profiles(window.id)[0])
        stored = {(f.feature, f.test): f.effect for f in store.list_findings(window_id=window.id, mode="skew")
                  if f.family == "features"}
    july = bundle.slot_baseline("month_of_year", 7)[0]
    expected = evaluate(reference=july, current=features, model="bikeshare", config=config, mode="skew")
    assert stored == {(f.feature, f.test): f.effect for f in expected.findings}
    whole = evaluate(reference=bundle.baseline(), current=features, model="bikeshare", config=config, mode="skew")
    shift = {f.feature: f.effect for f in whole.findings if f.test == "mean_shift"}
    assert stored[("temp", "mean_shift")] < shift["temp"]  # July against July is closer than July against the year


def test_earlier_windows_as_references_drift_seasonal_pinned_median(trained_models_dir, frame, tmp_path):
    bundle = resolve_bundle(trained_models_dir, "bikeshare")
    config = parse_monitor_config({"models": {"bikeshare": {"references": {
        "seasonal": {"period": "week"}, "median": {"windows": 3}, "pinned": {"start": "2012-03-01T00:00:00Z"},
        "version": False}}}})
    with Store(f"sqlite:///{tmp_path / 's.sqlite3'}") as store:
        run = InProcess(store, trained_models_dir, config, DAY)
        run.feed(_records(frame, bundle.model_version, start=datetime(2012, 3, 1, tzinfo=timezone.utc), days=10))
        run.finish()
        windows = sorted(store.list_windows(limit=100), key=lambda w: w.start_ms)
        by_start = {w.start_ms: w.id for w in windows}
        modes = {}
        for w in windows:
            for f in store.list_findings(window_id=w.id):
                modes.setdefault(w.start_ms, {})[f.mode] = f.reference_window_id
    first, day8 = windows[0].start_ms, windows[8].start_ms
    assert modes[first].keys() == {"skew"}  # nothing earlier to compare with
    assert modes[day8]["drift"] == by_start[day8 - DAY]
    assert modes[day8]["seasonal"] == by_start[day8 - 7 * DAY]
    assert modes[day8]["pinned"] == by_start[from_datetime(datetime(2012, 3, 1, tzinfo=timezone.utc))]
    assert modes[day8]["median"] in {by_start[day8 - k * DAY] for k in (1, 2, 3)}
    assert "seasonal" not in modes[first + 6 * DAY]  # a week back is before the traffic


def test_versions_side_by_side_flag_a_canary_seeing_other_inputs(trained_models_dir, frame, tmp_path):
    import shutil

    from monitor.bundle import Bundle

    bundle = resolve_bundle(trained_models_dir, "bikeshare")
    models = tmp_path / "models"
    shutil.copytree(trained_models_dir, models)
    canary_version = "29990101T000000Z"
    canary = models / "bikeshare" / canary_version
    shutil.copytree(bundle.path, canary)
    import json

    meta = json.loads((canary / "metadata.json").read_text())
    meta["model_version"] = canary_version
    (canary / "metadata.json").write_text(json.dumps(meta))
    assert Bundle.load(canary).model_version == canary_version
    start = datetime(2012, 5, 1, tzinfo=timezone.utc)
    with Store(f"sqlite:///{tmp_path / 's.sqlite3'}") as store:
        run = InProcess(store, models, MonitorConfig(), DAY)
        stable = _records(frame, bundle.model_version, start=start, days=3, rid="a")
        hot = _records(frame, canary_version, start=start, days=3, rid="b",
                       shift=lambda x: {**x, "temp": None if x["temp"] is None else x["temp"] + 8})
        run.feed(sorted(stable + hot, key=lambda r: r.event_time))
        run.finish()
        versus = [f for f in store.list_findings(mode="version", limit=1000)]
    assert versus, "each window of the later-decided version is compared with the other's"
    alerting = {(f.model_version, f.feature) for f in versus if f.alerting}
    assert {f for _v, f in alerting} >= {"temp"}
    assert not {f for _v, f in alerting} & {"hum", "windspeed", "weathersit"}


def test_segments_split_the_traffic_and_meet_their_own_baseline_slice(trained_models_dir, frame, tmp_path):
    bundle = resolve_bundle(trained_models_dir, "bikeshare")
    config = parse_monitor_config({"models": {"bikeshare": {"segments": {"feature": "weathersit", "max": 2},
                                                            "references": {"drift": False, "version": False}}}})
    top2 = [v for v, _ in bundle.baseline()["weathersit"].top(2)]
    with Store(f"sqlite:///{tmp_path / 's.sqlite3'}") as store:
        run = InProcess(store, trained_models_dir, config, 7 * DAY)
        run.feed(_records(frame, bundle.model_version, start=datetime(2012, 4, 5, tzinfo=timezone.utc), days=7))
        run.finish()
        windows = {w.segment: w for w in store.list_windows()}
        assert set(windows) == {"", *top2, "other"}
        assert sum(windows[s].rows for s in (*top2, "other")) == windows[""].rows
        seg = windows[top2[0]]
        features = Profile.from_bytes(store.load_profiles(seg.id)[0])
        stored = {(f.feature, f.test): (f.effect, f.q_value, f.verdict)
                  for f in store.list_findings(window_id=seg.id, mode="skew") if f.family == "features"}
    assert set(features["weathersit"].counts()) == {top2[0]}
    slice_ = bundle.segment_baseline("weathersit", top2[0])[0]
    # one false-discovery budget for the span: 2 segments, "other" and all traffic are 4 families
    assert config.segments_for("bikeshare").families == 4
    expected = evaluate(reference=slice_, current=features, model="bikeshare", config=config, mode="skew",
                        families=4)
    assert stored == {(f.feature, f.test): (f.effect, f.q_value, f.verdict) for f in expected.findings}
    alone = evaluate(reference=slice_, current=features, model="bikeshare", config=config, mode="skew")
    pairs = [(a.q_value, b.q_value) for a, b in zip(alone.findings, expected.findings) if a.q_value is not None]
    assert pairs and all(q4 == pytest.approx(min(1.0, 4 * q1)) for q1, q4 in pairs)


def test_a_window_that_cannot_be_processed_is_kept_with_its_error_and_skipped(trained_models_dir, frame, tmp_path):
    bundle = resolve_bundle(trained_models_dir, "bikeshare")
    with Store(f"sqlite:///{tmp_path / 's.sqlite3'}") as store:
        run = InProcess(store, trained_models_dir, MonitorConfig(), DAY)
        records = _records(frame, bundle.model_version, start=datetime(2012, 6, 1, tzinfo=timezone.utc), days=2)
        run.feed(records[:2])  # two records anchor the stream
        key = next(iter(run.partition._open))
        partial = run.partition._publish(key).partial
        store.add_partial(PartialIn(partial.key, partial.end_ms, partial.source_topic, 0, partial.first_offset,
                                    partial.last_offset, partial.counts, b"not a profile", partial.outputs, partial.sample))
        outcome = run.decider.decide(key)
        run.feed(records[2:])
        run.finish()
        failed = store.window(outcome.window_id)
        later = [w for w in store.list_windows() if w.start_ms > key.start_ms]
    assert outcome.status == "failed" and failed.status == "failed" and "StatisticsError" in failed.error
    assert later and all(w.status == "decided" for w in later)  # the rest goes on


def test_a_window_meeting_a_defect_of_ours_is_kept_failed_with_its_error_and_the_stream_goes_on(
        trained_models_dir, frame, tmp_path, monkeypatch, caplog):
    """Defence in depth for errors no comparison should raise (an OverflowError and a ValueError did, on
    values at the ends of the float range): the window is kept as failed with the error, logged with its
    traceback, and the next windows are decided; the merge stage does not die on it again and again."""
    import collectors.pipeline as pipeline

    bundle = resolve_bundle(trained_models_dir, "bikeshare")
    real, calls = pipeline.evaluate, []

    def evaluate_failing_once(**kw):
        calls.append(kw["mode"])
        if len(calls) == 1:
            raise ZeroDivisionError("float division by zero")  # stands for a defect met on one window's data
        return real(**kw)

    monkeypatch.setattr(pipeline, "evaluate", evaluate_failing_once)
    with Store(f"sqlite:///{tmp_path / 's.sqlite3'}") as store:
        run = InProcess(store, trained_models_dir, MonitorConfig(), DAY)
        run.feed(_records(frame, bundle.model_version, start=datetime(2012, 6, 1, tzinfo=timezone.utc), days=3))
        run.finish()
        windows = sorted(store.list_windows(limit=100), key=lambda w: w.start_ms)
    assert [w.status for w in windows] == ["failed", "decided", "decided"]
    assert windows[0].error == "ZeroDivisionError: float division by zero"
    assert any(r.exc_info and "unexpected ZeroDivisionError" in r.getMessage() for r in caplog.records)


def test_several_outputs_are_an_output_family_of_their_own_types(trained_models_dir, serving_rows, tmp_path):
    """A model answering a class label and its probability: the label is monitored categorically, the
    probability numerically; a shift of the label's mix alerts in the output family."""
    import json
    import shutil

    import numpy as np

    from monitor.schema import FeatureSpec

    bundle = resolve_bundle(trained_models_dir, "bikeshare")
    models = tmp_path / "models"
    target = models / "classifier" / bundle.model_version
    shutil.copytree(bundle.path, target)
    meta = json.loads((target / "metadata.json").read_text())
    outputs = (FeatureSpec("class", "categorical", "string"), FeatureSpec("probability", "numeric", "float"))
    meta.update(model_name="classifier", outputs=[{"name": s.name, "kind": s.kind, "dtype": s.dtype} for s in outputs])
    meta["files"].pop("baseline_slots", None)
    meta["files"].pop("baseline_segments", None)
    (target / "metadata.json").write_text(json.dumps(meta))
    rng = np.random.default_rng(0)
    training = Profile.empty(outputs)
    training.update_columns({"class": rng.choice(["busy", "quiet"], size=5000, p=[0.3, 0.7]).astype(object),
                             "probability": rng.beta(5, 2, size=5000)})
    (target / "prediction_baseline.swstats").write_bytes(training.to_bytes())

    def answers(n, p_busy, seed):
        r = np.random.default_rng(seed)
        return [{"class": str(c), "probability": float(q)} for c, q in
                zip(r.choice(["busy", "quiet"], size=n, p=[p_busy, 1 - p_busy]), r.beta(5, 2, size=n))]

    start = datetime(2012, 1, 2, tzinfo=timezone.utc)
    recs = []
    for w, p_busy in enumerate((0.3, 0.3, 0.8)):
        preds = answers(2000, p_busy, seed=w)
        for j in range(0, 2000, 20):
            recs.append(PredictionRecord("classifier", bundle.model_version, start + timedelta(days=w, seconds=j),
                                         f"c{w}-{j}", tuple(serving_rows[(w * 2000 + j + k) % 6000] for k in range(20)),
                                         tuple(preds[j: j + 20])))
    with Store(f"sqlite:///{tmp_path / 's.sqlite3'}") as store:
        run = InProcess(store, models, MonitorConfig(), DAY)
        run.feed(recs)
        run.finish()
        windows = sorted(store.list_windows(), key=lambda w: w.start_ms)
        out = Profile.from_bytes(store.load_profiles(windows[0].id)[1])
        tests = {(f.feature, f.test) for f in store.list_findings(window_id=windows[0].id, mode="skew")
                 if f.family == "output"}
        shifted = {(f.feature, f.test, f.verdict) for f in store.list_findings(window_id=windows[2].id, mode="skew")
                   if f.family == "output" and f.alerting}
    assert [s.name for s in out.specs] == ["class", "probability"] and out.rows == 2000
    assert out["class"].counts().keys() == {"busy", "quiet"}
    assert {("class", "chi_squared"), ("class", "linf"), ("probability", "ks"), ("probability", "mean_shift")} <= tests
    assert not {t for t in tests if t[0] == "class" and t[1] in ("ks", "mean_shift")}  # a label is not a number
    assert {f for f, _t, _v in shifted} == {"class"}  # the mix moved from 30% to 80% busy; the probability did not


def test_a_model_config_set_through_the_api_is_what_the_collector_decides_with(trained_models_dir, frame, tmp_path):
    from collectors.live_config import LiveConfig

    bundle = resolve_bundle(trained_models_dir, "bikeshare")
    with Store(f"sqlite:///{tmp_path / 's.sqlite3'}") as store:
        live = LiveConfig(MonitorConfig(), store, refresh_seconds=0)
        run = InProcess(store, trained_models_dir, MonitorConfig(), DAY)
        run.decider = WindowDecider(store=store, baselines=run.cache, config=live)
        recs = _records(frame, bundle.model_version, start=datetime(2012, 6, 1, tzinfo=timezone.utc), days=4)
        run.feed(recs[:2])
        store.put_monitor_config("bikeshare", {"tests": {"ks": False}, "floors": {"mean_shift": 0.9}}, by="test")
        run.feed(recs[2:])
        run.finish()
        findings = store.list_findings(limit=10_000)
    assert findings and not [f for f in findings if f.test == "ks"]
    assert {f.floor for f in findings if f.test == "mean_shift"} == {0.9}


def _window_partials(models_dir, frame, partitions):
    """One May 2012 week of bike rows spread over ``partitions`` source partitions: its records and the
    partials those partitions close (as the merge stage receives them), and the baseline cache."""
    bundle = resolve_bundle(models_dir, "bikeshare")
    cache = BaselineCache(models_dir)
    timing = Timing(window_ms=7 * DAY, lateness_ms=0, max_jump_ms=70 * DAY, idle_ms=1000,
                    min_event_ms=DEFAULT_MIN_EVENT_MS, max_future_ms=300_000)
    records = _records(frame, bundle.model_version, start=datetime(2012, 5, 3, tzinfo=timezone.utc), days=7,
                       per_request=6)
    ins = []
    for part in range(partitions):
        proc = PartitionProcessor("skewwatch.predictions", part, timing, cache.resolve)
        for i, r in enumerate(records[part::partitions]):
            proc.add(encode_record(r), i, now_ms())
        ins += [PartialIn(p.key, p.end_ms, p.source_topic, p.source_partition, p.first_offset, p.last_offset,
                          p.counts, p.features, p.outputs, p.sample)
                for p in (proc._publish(k).partial for k in sorted(proc._open))]
    return records, ins, cache


def test_the_running_merge_decides_exactly_what_the_stored_partials_give(trained_models_dir, frame, tmp_path):
    """The merge stage folds each partial it stores into its window as it arrives; the decision must be
    byte for byte the one made from the partials read back from the store, also when another process
    stored some of them (the running merge is then not used)."""
    config = parse_monitor_config({})
    records, ins, cache = _window_partials(trained_models_dir, frame, 7)  # seven source partitions

    def decided(fold):  # fold: which partials this decider saw arrive
        with Store(f"sqlite:///{tmp_path / f'{len(list(tmp_path.iterdir()))}.sqlite3'}") as store:
            decider = WindowDecider(store=store, baselines=cache, config=config, sample_records=5)
            for i, p in enumerate(ins):
                store.add_partial(p)
                if fold(i):
                    decider.fold(p)
            (key,) = {p.key for p in ins}
            assert decider.decide(key).status == "decided"
            (window,) = store.list_windows()
            return (store.load_profiles(window.id), store.load_sample(window.id), window.rows, window.partials,
                    sorted((f.mode, f.feature, f.test, f.verdict, f.q_value, f.effect)
                           for f in store.list_findings(window_id=window.id)))

    from_store = decided(lambda i: False)
    assert from_store[2] == len(records) * 6 and from_store[3] == 7
    assert decided(lambda i: True) == from_store  # every partial folded as it arrived
    assert decided(lambda i: i % 2 == 0) == from_store  # some stored by another process: read back


@pytest.mark.parametrize("folded", [True, False], ids=["running-merge", "from-the-store"])
def test_a_partial_stored_while_the_window_is_decided_is_not_lost(trained_models_dir, frame, tmp_path, folded):
    """Another merge stage stores a window's last partial after this one has merged the others (as they
    arrived, or read back from the store) and before it saves the decision: the save is refused inside
    its transaction and the window decided again with every partial (it used to be decided without
    it, and its partial deleted with the others)."""
    records, ins, cache = _window_partials(trained_models_dir, frame, 3)
    with Store(f"sqlite:///{tmp_path / 's.sqlite3'}") as store:
        decider = WindowDecider(store=store, baselines=cache, config=parse_monitor_config({}))
        for p in ins[:2]:
            store.add_partial(p)
            if folded:
                decider.fold(p)
        save = store.decide_window

        def racing(decision, **kw):  # the other merge stage stores the last partial just before this save
            if not racing.done:
                racing.done = True
                store.add_partial(ins[2])
            return save(decision, **kw)

        racing.done = False
        store.decide_window = racing
        assert decider.decide(ins[0].key).status == "decided"
        assert racing.done
        (window,) = store.list_windows()
        assert window.partials == 3 and window.rows == len(records) * 6
        assert store.partials_for(ins[0].key) == []  # every partial consumed by the decision


def test_a_decider_keeping_its_caches_decides_every_window_as_a_restarted_one_would(trained_models_dir, frame,
                                                                                    tmp_path):
    """The decider keeps earlier windows' findings (history) and profiles (references) in memory; a
    decider made anew for every window reads everything from the store. Same decisions, also after
    the newest window's profiles are removed, and after every window is (SQLite then gives their
    ids to the next windows)."""
    from sqlalchemy import text

    bundle = resolve_bundle(trained_models_dir, "bikeshare")
    config = parse_monitor_config({"models": {"bikeshare": {"references": {
        "seasonal": {"period": "week"}, "median": {"windows": 3}, "pinned": {"start": "2012-04-02T00:00:00Z"},
        "version": False}}}})
    records = _records(frame, bundle.model_version, start=datetime(2012, 4, 2, tzinfo=timezone.utc), days=23)
    first, second = (next(i for i, r in enumerate(records) if r.event_time >= datetime(2012, 4, d, tzinfo=timezone.utc))
                     for d in (8, 12))
    halves = (records[:first], records[first:second], records[second:])  # then 13 days: trends again
    def snapshot(store):
        return {w.start_ms: sorted(
            (f.mode, f.family, f.feature, f.test, repr(f.statistic), repr(f.effect), repr(f.q_value), f.verdict,
             f.raw_verdict, f.alerting, f.message) for f in store.list_findings(window_id=w.id, limit=10_000))
            for w in store.list_windows(limit=100)}

    results = []
    for fresh in (False, True):
        seen = []
        with Store(f"sqlite:///{tmp_path / f'{fresh}.sqlite3'}") as store:
            run = InProcess(store, trained_models_dir, config, DAY)
            if fresh:
                make = lambda: WindowDecider(store=store, baselines=run.cache, config=config)  # noqa: E731
                decide = lambda key: make().decide(key)  # noqa: E731
                run.decider = type("Fresh", (), {"decide": staticmethod(decide)})()
            for i, part in enumerate(halves):
                run.feed(part)
                seen.append(snapshot(store))
                newest = max(store.list_windows(limit=100), key=lambda w: w.start_ms)
                with store.write() as conn:
                    if i == 0:
                        conn.execute(text("DELETE FROM window_profiles WHERE window_id = :i"), {"i": newest.id})
                    elif i == 1:  # every decided window gone (retention after a long pause): ids start over
                        conn.execute(text("DELETE FROM windows"))
            run.finish()
            seen.append(snapshot(store))
            assert len(seen[1]) >= 8 and len(seen[3]) >= 10
        results.append(seen)
    kept, restarted = results
    assert kept == restarted
    everything = [f for snap in kept for findings in snap.values() for f in findings]
    assert {"skew", "drift", "seasonal", "median", "pinned"} <= {f[0] for f in everything}
    assert any(f[3].startswith("trend_") and f[7] != "insufficient_data" for f in everything)


def test_the_deciders_memory_of_earlier_windows_is_bounded(trained_models_dir, frame, tmp_path, monkeypatch):
    import collectors.pipeline as pipeline

    monkeypatch.setattr(pipeline, "HISTORY_WINDOWS", 3)
    bundle = resolve_bundle(trained_models_dir, "bikeshare")
    with Store(f"sqlite:///{tmp_path / 's.sqlite3'}") as store:
        run = InProcess(store, trained_models_dir, MonitorConfig(), DAY)
        run.feed(_records(frame, bundle.model_version, start=datetime(2012, 5, 1, tzinfo=timezone.utc), days=9))
        run.finish()
        assert len(store.list_windows(limit=100)) == 9
    assert len(run.decider._history) <= 3 and len(run.decider._series) == 1
    assert len(run.decider._decoded) <= pipeline.PROFILE_CACHE_WINDOWS


@pytest.mark.parametrize("extreme", [1.7e308, 1e300, 1e-300])
def test_windows_of_extreme_finite_values_are_decided_and_so_is_the_next_one(trained_models_dir, frame, tmp_path,
                                                                             extreme):
    """Values a client may send (finite JSON numbers at the ends of the float range) in one window: that window
    and the next, which is compared with it, are decided. The variance of +-1.7e308 overflows a float: it
    raised OverflowError in NumericStats, and math.log(0) in variance_ratio against it (ValueError), which no
    part of the merge stage caught: it died, and died again on the same window after every restart."""
    bundle = resolve_bundle(trained_models_dir, "bikeshare")
    week = 7 * DAY
    with Store(f"sqlite:///{tmp_path / 's.sqlite3'}") as store:
        run = InProcess(store, trained_models_dir, MonitorConfig(), week)
        start = datetime(2012, 6, 4, tzinfo=timezone.utc)  # a Monday: 7-day windows from the epoch start Thursdays
        n = [0]

        def wild(row):  # every other row's temperature at the extremes, of both signs
            n[0] += 1
            return {**row, "temp": (extreme if n[0] % 4 == 0 else -extreme) if n[0] % 2 == 0 else row["temp"]}

        records = _records(frame, bundle.model_version, start=start, days=14)
        cut = len(records) // 2
        run.feed([*[PredictionRecord(r.model_name, r.model_version, r.event_time, r.request_id,
                                     tuple(wild(x) for x in r.instances), r.predictions) for r in records[:cut]],
                  *records[cut:]])
        run.finish()
        windows = store.list_windows(limit=100)
    assert len(windows) >= 2 and all(w.status == "decided" for w in windows), [(w.status, w.error) for w in windows]
