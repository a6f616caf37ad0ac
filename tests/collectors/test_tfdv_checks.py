"""The collector's optional TFDV step, against TFDV itself and the bundle's own schema."""

from datetime import datetime, timezone

import pytest

from collectors.baselines import BaselineCache
from collectors.tfdv_checks import TfdvChecks
from collectors.windows import Windower
from monitor.bundle import resolve_bundle
from monitor.record import PredictionRecord

T0 = datetime(2012, 1, 2, tzinfo=timezone.utc)


def _window(models_dir, instances):
    cache = BaselineCache(models_dir)
    version = resolve_bundle(models_dir, "bikeshare").model_version
    w = Windower(window_seconds=60, allowed_lateness_seconds=0, specs_for=cache.specs_for)
    w.add(PredictionRecord("bikeshare", version, T0, "r", tuple(instances), tuple(100.0 for _ in instances)))
    (closed,) = w.pop_all()
    return cache, closed


def test_clean_traffic_has_no_schema_finding_but_reports_tfdv_values(trained_models_dir, serving_rows):
    cache, window = _window(trained_models_dir, serving_rows[:1000])
    findings = TfdvChecks(cache).findings(window)
    assert not [f for f in findings if f.test == "tfdv_schema"]
    linf = {f.feature: f for f in findings if f.test == "linf_tfdv"}
    jsd = {f.feature: f for f in findings if f.test == "jsd_tfdv"}
    assert {"season", "weathersit", "hr"} <= set(linf) and {"temp", "hum"} <= set(jsd)
    assert all(f.verdict == "ok" and 0 <= f.effect <= 1 for f in findings)  # interop values never decide


def test_new_category_and_broken_types_are_schema_findings(trained_models_dir, serving_rows):
    rows = [dict(r) for r in serving_rows[:1000]]
    for r in rows[:100]:
        r["weathersit"] = "Snow"  # never seen in training
    cache, window = _window(trained_models_dir, rows)
    findings = TfdvChecks(cache).findings(window)
    schema = {f.feature: f for f in findings if f.test == "tfdv_schema"}
    assert set(schema) == {"weathersit"}
    assert schema["weathersit"].alerting and "ENUM_TYPE_UNEXPECTED_STRING_VALUES" in schema["weathersit"].message
    linf = next(f for f in findings if f.test == "linf_tfdv" and f.feature == "weathersit")
    assert linf.effect == pytest.approx(0.1, abs=0.03)  # a tenth of the window moved to "Snow"
