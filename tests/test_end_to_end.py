"""The whole path on the embedded broker: real HTTP through serving, Kafka, both collection stages, the
monitor API and a webhook receiver, 2012 replayed in time order. The skewed feature must alert in its
first window and page once; healthy weeks must raise no critical finding and page nobody."""

from datetime import datetime

import pytest

from monitor.settings import load_settings
from skewwatch.demo import demo

pytestmark = [pytest.mark.slow, pytest.mark.broker]


def _ts(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def test_skew_bug_is_caught_and_paged_once_and_healthy_traffic_is_quiet(trained_models_dir, data_path, tmp_path):
    settings = load_settings(models_dir=trained_models_dir, state_dir=tmp_path / "state")
    lines = []
    result = demo(settings, data_path=data_path, weeks=10, bug_weeks=2, run_dir=tmp_path / "run", out=lines.append)
    text = "\n".join(lines)
    assert result.checks, text
    assert result.ok, text

    assert len(result.windows) == 12 and all(w["rows"] >= 160 for w in result.windows), text  # whole weeks
    by_id = {w["id"]: w for w in result.windows}
    bug = [f for f in result.findings if _ts(by_id[f["window_id"]]["start"]) >= result.bug_start]
    healthy = [f for f in result.findings if _ts(by_id[f["window_id"]]["start"]) < result.bug_start]
    assert {f["feature"] for f in bug if f["verdict"] == "critical"} == {"temp"}
    assert not [f for f in healthy if f["verdict"] == "critical"]
    # every score is stored, alerting or not, in both references, for every feature and the output
    assert {f["mode"] for f in healthy} == {"skew", "drift"}
    features = {f["feature"] for f in healthy if f["mode"] == "skew"}
    assert {"temp", "atemp", "hum", "windspeed", "season", "hr", "weekday", "weathersit", "prediction"} <= features
    (page,) = [p for p in result.delivered if p.get("status") == "firing"]
    assert page["version"] == "4" and page["commonLabels"]["model"] == "bikeshare"
    assert "dashboard:" in text and result.dashboard_url.endswith("/ui/")
