"""A monitor populated by a short run over real data, for the API, dashboard and notebook tests.

Until the rewritten collector pipeline lands, windows reach the store the way the pipeline will
put them there: ``Store.decide_window(WindowDecision(...))`` with real profiles of 2012 bike-sharing
rows (``monitor.stats.Profile``), the trained bundle's real predictions, and real findings from
``monitor.evaluate.evaluate`` against the bundle's baselines (skew) and the previous window
(drift); alert transitions come from ``alerts.engine.AlertEngine``'s hook in the window's transaction. From ``bug_from`` on, the client sends the temperature in Fahrenheit.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import pandas as pd

from alerts.engine import AlertEngine
from monitor.bundle import PREDICTION_SPEC, Bundle
from monitor.config import MonitorConfig
from monitor.evaluate import evaluate
from monitor.keys import WindowKey
from monitor.stats import Profile
from monitor.storage import DeadLetterExample, FindingIn, WindowCounts, WindowDecision

T0_MS = 1_330_588_800_000  # 2012-03-01T08:00:00Z
STEP_MS = 300_000
SAMPLE_ROWS = 200


@dataclass(frozen=True)
class Populated:
    model: str
    version: str
    window_ids: list[int]
    buggy_ids: list[int]
    features: tuple[str, ...]


def _json_safe(values) -> list:  # noqa: ANN001
    out = []
    for v in values:
        if isinstance(v, float) and math.isnan(v):
            out.append(None)
        elif hasattr(v, "item"):
            out.append(v.item())
        else:
            out.append(v)
    return out


def _predict(bundle: Bundle, frame: pd.DataFrame):  # noqa: ANN202
    import keras

    from trainer.model import predict

    model = keras.saving.load_model(bundle.file("model"))
    return predict(model, {s.name: frame[s.name] for s in bundle.specs}, bundle.specs)


def populate(store, bundle: Bundle, data_path, *, windows: int = 6, rows: int = 400, bug_from: int = 3,  # noqa: ANN001
             config: MonitorConfig | None = None, segment: str = "") -> Populated:
    from trainer.data import load_bikeshare

    config = config or MonitorConfig()
    frame = load_bikeshare(data_path)
    picked = frame[frame["event_time"].dt.year == 2012].sample(n=windows * rows, random_state=3).reset_index(drop=True)
    names = [s.name for s in bundle.specs]
    picked = picked[names].copy()
    bug = picked.index >= bug_from * rows
    picked.loc[bug, "temp"] = picked.loc[bug, "temp"] * 9 / 5 + 32
    predictions = _predict(bundle, picked)
    baseline, prediction_baseline = bundle.baseline(), bundle.prediction_baseline()
    engine = AlertEngine()
    ids: list[int] = []
    previous: tuple[int, Profile, Profile] | None = None
    for i in range(windows):
        chunk = picked.iloc[i * rows:(i + 1) * rows]
        preds = predictions[i * rows:(i + 1) * rows]
        features = Profile(bundle.specs)
        features.update_frame(chunk)
        outputs = Profile((PREDICTION_SPEC,))
        outputs.update_frame(pd.DataFrame({PREDICTION_SPEC.name: preds}))
        key = WindowKey(bundle.model_name, bundle.model_version, segment, T0_MS + i * STEP_MS)
        found: list[FindingIn] = []
        pairs = [("skew", "features", baseline, features, None), ("skew", "output", prediction_baseline, outputs, None)]
        if previous is not None:
            pairs += [("drift", "features", previous[1], features, previous[0]),
                      ("drift", "output", previous[2], outputs, previous[0])]
        for mode, family, reference, current, ref_id in pairs:
            report = evaluate(reference=reference, current=current, model=bundle.model_name, config=config,
                              mode=mode)  # the default policy has no persistence rule: no history needed
            found += [FindingIn(f, family=family, reference_window_id=ref_id) for f in report.findings]
        sample = {"columns": {n: _json_safe(chunk[n].iloc[:SAMPLE_ROWS]) for n in names},
                  "outputs": {PREDICTION_SPEC.name: _json_safe(preds[:SAMPLE_ROWS])}}
        decision = WindowDecision(
            key=key, end_ms=key.start_ms + STEP_MS,
            counts=WindowCounts(rows=rows, records=rows // 50, invalid_instances=i % 2, late_records=0,
                                duplicate_records=0, partials=1),
            findings=found, features=features.to_bytes(), outputs=outputs.to_bytes(),
            sample=json.dumps(sample).encode(), sample_rows=min(rows, SAMPLE_ROWS))
        wid = store.decide_window(decision, react=engine.hook(decision))  # alert transitions in the same transaction
        assert wid is not None
        ids.append(wid)
        previous = (wid, features, outputs)
    store.count_dead_letters(
        [DeadLetterExample("not_json", "", "skewwatch.predictions", 0, 17 + i, "x" * 5000 if i == 0 else "{oops", T0_MS)
         for i in range(3)]
        + [DeadLetterExample("schema", bundle.model_name, "skewwatch.predictions", 1, 4 + i, "temp: expected a number",
                             T0_MS + STEP_MS) for i in range(2)])
    return Populated(model=bundle.model_name, version=bundle.model_version, window_ids=ids,
                     buggy_ids=ids[bug_from:], features=tuple(names))
