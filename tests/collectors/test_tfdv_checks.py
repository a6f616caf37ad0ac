"""The collector's optional TFDV step, against TFDV itself and the bundle's own schema: TFDV's
anomalies are decided by the one decision rule; its distances are reported, never alerting."""

import pytest

from collectors.baselines import BaselineCache
from collectors.tfdv_checks import TfdvChecks
from monitor.bundle import resolve_bundle
from monitor.config import parse_monitor_config
from monitor.keys import WindowKey
from monitor.stats import Profile


def _window(models_dir, instances):
    cache = BaselineCache(models_dir)
    bundle = resolve_bundle(models_dir, "bikeshare")
    features = Profile.empty(bundle.specs)
    features.update_instances(instances)
    return cache, WindowKey("bikeshare", bundle.model_version, "", 0), features


def test_clean_traffic_has_no_schema_finding_but_reports_tfdv_values(trained_models_dir, serving_rows):
    cache, key, features = _window(trained_models_dir, serving_rows[:1000])
    findings = TfdvChecks(cache).findings(key, features)
    assert not [f for f in findings if f.test == "tfdv_schema"]
    linf = {f.feature: f for f in findings if f.test == "linf_tfdv"}
    jsd = {f.feature: f for f in findings if f.test == "jsd_tfdv"}
    assert {"season", "weathersit", "hr"} <= set(linf) and {"temp", "hum"} <= set(jsd)
    assert all(f.verdict == "ok" and 0 <= f.effect <= 1 for f in findings)  # interop values never alert


def test_new_category_is_a_schema_finding_decided_by_the_rule(trained_models_dir, serving_rows):
    rows = [dict(r) for r in serving_rows[:1000]]
    for r in rows[:100]:
        r["weathersit"] = "Snow"  # never seen in training
    cache, key, features = _window(trained_models_dir, rows)
    findings = TfdvChecks(cache).findings(key, features)
    schema = {f.feature: f for f in findings if f.test == "tfdv_schema"}
    assert set(schema) == {"weathersit"}
    assert schema["weathersit"].alerting and "ENUM_TYPE_UNEXPECTED_STRING_VALUES" in schema["weathersit"].message
    linf = next(f for f in findings if f.test == "linf_tfdv" and f.feature == "weathersit")
    assert linf.effect == pytest.approx(0.1, abs=0.03)  # a tenth of the window moved to "Snow"
    assert not linf.alerting


def test_a_config_floor_moves_the_schema_verdict_like_any_test(trained_models_dir, serving_rows):
    rows = [dict(r) for r in serving_rows[:1000]]
    for r in rows[:100]:
        r["weathersit"] = "Snow"
    cache, key, features = _window(trained_models_dir, rows)
    config = parse_monitor_config({"defaults": {"floors": {"tfdv_schema": 50}}})
    (finding,) = [f for f in TfdvChecks(cache, config).findings(key, features) if f.test == "tfdv_schema"]
    assert finding.verdict == "ok" and finding.floor == 50
