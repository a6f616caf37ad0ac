"""Both notebooks run headless (nbclient, a real ipykernel) against a store populated by a short run;
any cell that raises fails the test. Each notebook's last cell prints a JSON line the test reads."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[2]


def _run(name: str, env: dict[str, str], monkeypatch) -> tuple[dict, nbformat.NotebookNode]:  # noqa: ANN001
    for key in ("SKEWWATCH_STORE_URL", "SKEWWATCH_STATE_DIR", "ALERT_FINGERPRINT", "MODEL_VERSION"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    nb = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    NotebookClient(nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    last = [o for o in nb.cells[-1].outputs if o.get("name") == "stdout"]
    return json.loads(last[-1]["text"].strip().splitlines()[-1]), nb


def _store_env(populated) -> dict[str, str]:  # noqa: ANN001
    store, _ = populated
    return {"SKEWWATCH_STORE_URL": store.url}


def test_drilldown_lands_on_the_feature_that_moved(populated, trained_models_dir, monkeypatch):
    store, info = populated
    out, nb = _run("drilldown.ipynb", {**_store_env(populated), "SKEWWATCH_MODELS_DIR": str(trained_models_dir)},
                   monkeypatch)
    newest = store.list_alerts(state="firing")[0]
    assert (out["fingerprint"], out["feature"], out["mode"]) == (newest.fingerprint, newest.feature, newest.mode)
    assert out["window_id"] == newest.window_id and out["verdict"] == "critical"
    assert out["windows_in_history"] == len(info.window_ids)
    assert all(o.get("output_type") != "error" for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def test_drilldown_follows_the_alert_it_is_given(populated, trained_models_dir, monkeypatch):
    store, info = populated
    temp_skew = next(a for a in store.list_alerts() if (a.feature, a.mode) == ("temp", "skew"))
    out, nb = _run("drilldown.ipynb", {**_store_env(populated), "SKEWWATCH_MODELS_DIR": str(trained_models_dir),
                                       "ALERT_FINGERPRINT": temp_skew.fingerprint}, monkeypatch)
    assert (out["feature"], out["mode"]) == ("temp", "skew") and out["reference"].startswith("training baseline")
    # the table cell: the window's mean temperature is the Fahrenheit one, far above the baseline's Celsius
    table = next(c for c in nb.cells if c.cell_type == "code" and "compare_feature(reference, current" in c.source)
    html = next(o["data"]["text/html"] for o in table.outputs if "data" in o and "text/html" in o["data"])
    assert "change (reference sd)" in html


def test_drilldown_fails_loudly_on_an_unknown_alert(populated, trained_models_dir, monkeypatch):
    with pytest.raises(CellExecutionError, match="no alert"):
        _run("drilldown.ipynb", {**_store_env(populated), "SKEWWATCH_MODELS_DIR": str(trained_models_dir),
                                 "ALERT_FINGERPRINT": "0000000000000000"}, monkeypatch)


def test_baseline_notebook_explores_the_bundle_and_its_sample(trained_bundle, trained_models_dir, monkeypatch):
    out, _ = _run("baseline.ipynb", {"SKEWWATCH_MODELS_DIR": str(trained_models_dir)}, monkeypatch)
    assert (out["model"], out["version"]) == (trained_bundle.model_name, trained_bundle.model_version)
    assert out["features"] == len(trained_bundle.specs) and out["rows"] == trained_bundle.baseline().rows
    assert out["tfdv_examples"] == out["rows"]
    assert 0 < out["sample_rows"] <= out["rows"]
    # a random sample of the training rows: close to the baseline, not identical to it
    assert 0 < out["worst_numeric_move_sd"] < 0.1 and 0 < out["worst_share_change_points"] < 5
