from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from collectors.windows import Admission, Windower, WindowKey
from monitor.record import PredictionRecord
from monitor.schema import FeatureSpec
from monitor.stats import Profile

SPECS = (FeatureSpec("x", "numeric", "float"), FeatureSpec("c", "categorical", "string"))
T0 = datetime(2012, 1, 1, tzinfo=timezone.utc)


def rec(seconds, instances, model="m", version="1", preds=None):
    return PredictionRecord(
        model_name=model,
        model_version=version,
        event_time=T0 + timedelta(seconds=seconds),
        request_id=f"r{seconds}",
        instances=tuple(instances),
        predictions=tuple(preds if preds is not None else [float(i) for i in range(len(instances))]),
    )


def windower(**kw):
    args = dict(window_seconds=60, allowed_lateness_seconds=10, specs_for=lambda m, v: SPECS if m == "m" else None)
    args.update(kw)
    return Windower(**args)


def test_windows_hold_exactly_the_statistics_of_their_records():
    rng = np.random.default_rng(0)
    w = windower(batch_size=7)
    by_window = {0: [], 60_000: []}
    for i in range(300):
        t = float(rng.uniform(0, 119.9))
        inst = {"x": float(rng.normal()), "c": str(rng.integers(0, 4))}
        by_window[int(t * 1000) // 60_000 * 60_000].append(inst)
        assert w.add(rec(t, [inst])) is Admission.ACCEPTED
    closed = w.pop_all()
    assert [c.key.start_ms for c in closed] == [T0.timestamp() * 1000 + s for s in (0, 60_000)]
    for c in closed:
        expected = Profile.empty(SPECS)
        expected.update_instances(by_window[c.key.start_ms - int(T0.timestamp() * 1000)])
        assert c.features.rows == expected.rows == c.instances
        assert c.features["x"].mean == pytest.approx(expected["x"].mean, rel=1e-12)
        assert c.features["x"].variance == pytest.approx(expected["x"].variance, rel=1e-9)
        assert c.features["c"].counts() == expected["c"].counts()
        assert c.predictions["prediction"].count == c.instances


def test_a_window_closes_when_the_watermark_passes_its_end_plus_lateness():
    w = windower()
    w.add(rec(5, [{"x": 1.0, "c": "a"}]))
    w.add(rec(65, [{"x": 1.0, "c": "a"}]))
    assert w.pop_ready() == []  # watermark 65 s < 60 + 10
    w.add(rec(69.9, [{"x": 1.0, "c": "a"}]))
    assert w.pop_ready() == []
    w.add(rec(70, [{"x": 1.0, "c": "a"}]))
    ready = w.pop_ready()
    assert len(ready) == 1 and ready[0].records == 1
    assert w.open_windows == 1


def test_late_records_inside_the_lateness_are_kept_and_counted_after_it_dropped():
    w = windower()
    w.add(rec(61, [{"x": 1.0, "c": "a"}]))
    assert w.add(rec(30, [{"x": 2.0, "c": "a"}])) is Admission.ACCEPTED  # late but within 10 s
    w.add(rec(75, [{"x": 1.0, "c": "a"}]))
    first = w.pop_ready()[0]
    assert first.records == 1 and first.late_records == 1
    assert w.add(rec(31, [{"x": 3.0, "c": "a"}])) is Admission.LATE_DROPPED
    assert w.counts["late_dropped"] == 1


def test_unknown_models_are_counted_not_windowed():
    w = windower()
    assert w.add(rec(1, [{"x": 1.0}], model="other")) is Admission.UNKNOWN_MODEL
    assert w.open_windows == 0 and w.counts["unknown_model"] == 1


def test_invalid_instances_are_skipped_and_named_valid_ones_kept():
    w = windower()
    w.add(rec(1, [{"x": 1.0, "c": "a"}, {"x": "warm", "c": "b"}, {"c": "c"}], preds=[1.0, 2.0, 3.0]))
    (c,) = w.pop_all()
    assert c.instances == 3 and c.invalid_instances == 1
    assert c.features.rows == 2
    assert c.features["x"].count == 1 and c.features["x"].missing == 1
    assert "'x'" in c.errors[0] and "instances[1]" in c.errors[0]
    assert c.predictions["prediction"].count == 2 and c.predictions["prediction"].mean == pytest.approx(2.0)


def test_unknown_feature_names_are_counted():
    w = windower()
    w.add(rec(1, [{"x": 1.0, "c": "a", "surprise": 1}]))
    (c,) = w.pop_all()
    assert c.features.unknown_features == {"surprise": 1}


def test_safe_offsets_point_at_the_first_record_of_any_open_window():
    w = windower()
    w.add(rec(1, [{"x": 1.0}]), partition=0, offset=10)
    w.add(rec(2, [{"x": 1.0}]), partition=0, offset=11)
    w.add(rec(61, [{"x": 1.0}]), partition=0, offset=12)
    w.add(rec(62, [{"x": 1.0}]), partition=1, offset=5)
    assert w.safe_offsets() == {0: 10, 1: 5}
    w.add(rec(75, [{"x": 1.0}]), partition=1, offset=6)
    assert len(w.pop_ready()) == 1
    assert w.safe_offsets() == {0: 12, 1: 5}
    w.pop_all()
    assert w.safe_offsets() == {}


def test_windows_already_saved_before_a_restart_are_skipped():
    saved = {WindowKey("m", "1", int(T0.timestamp() * 1000))}
    w = windower(is_closed=lambda key: key in saved)
    assert w.add(rec(1, [{"x": 1.0}])) is Admission.LATE_DROPPED
    assert w.add(rec(61, [{"x": 1.0}])) is Admission.ACCEPTED


def test_non_numeric_predictions_count_as_missing_not_a_crash():
    w = windower()
    w.add(rec(1, [{"x": 1.0}, {"x": 2.0}, {"x": 3.0}], preds=[[5.0], "oops", True]))
    (c,) = w.pop_all()
    assert c.predictions["prediction"].count == 1 and c.predictions["prediction"].missing == 2
