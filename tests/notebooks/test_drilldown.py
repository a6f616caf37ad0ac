"""The drill-down notebook runs top to bottom against a real store and lands on the feature that moved."""

import json
from pathlib import Path

import pytest

from monitor.config import load_monitor_config

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "drilldown.ipynb"


def _run_notebook(env, monkeypatch):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    namespace: dict = {}
    for cell in cells:
        if cell["cell_type"] == "code":
            exec(compile("".join(cell["source"]), str(NOTEBOOK), "exec"), namespace)
    return namespace


@pytest.mark.slow
def test_notebook_drills_from_the_alert_to_the_moved_feature(run_pipeline, trained_models_dir, tmp_path, monkeypatch):
    run_pipeline(load_monitor_config(None), tmp_path, [(1500, False), (1500, True)])
    monkeypatch.setenv("ALERT_FINGERPRINT", "")
    ns = _run_notebook({"SKEWWATCH_STATE_DIR": str(tmp_path / "state"), "SKEWWATCH_MODELS_DIR": str(trained_models_dir)},
                       monkeypatch)
    # the most recently updated firing alert; its window's scores and the feature table come out
    firing = ns["store"].list_alerts(state="firing")
    assert ns["alert"] == max(firing, key=lambda a: a.updated_at)
    assert ns["feature"] in {"temp", "prediction"}  # the only features that go critical in this traffic
    assert ns["scores"]["verdict"].iloc[0] == "critical"
    # both are numeric: the move is stated in reference sd, and the CDFs are drawn
    assert abs(ns["table"].loc["p50", "change (reference sd)"]) > 1
    assert list(ns["cdfs"].columns) == ["value", "reference", "window"]


@pytest.mark.slow
def test_notebook_picks_the_alert_it_is_given(run_pipeline, trained_models_dir, tmp_path, monkeypatch):
    from alerts.lifecycle import fingerprint

    run_pipeline(load_monitor_config(None), tmp_path, [(1500, False), (1500, True)])
    ns = _run_notebook({"SKEWWATCH_STATE_DIR": str(tmp_path / "state"), "SKEWWATCH_MODELS_DIR": str(trained_models_dir),
                        "ALERT_FINGERPRINT": fingerprint("bikeshare", "temp", "skew")}, monkeypatch)
    assert (ns["feature"], ns["mode"]) == ("temp", "skew")
    assert ns["table"].loc["mean", "window"] > ns["table"].loc["mean", "reference"] + 20  # ~15 C -> ~59 F
