"""Writes deploy/grafana/dashboards/skewwatch.json (run it after changing a panel; the JSON is committed)."""

from __future__ import annotations

import json
from pathlib import Path

DS = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'model=~"$model", model_version=~"$model_version", segment=~"$segment"'
BANDS = {"mode": "absolute", "steps": [{"color": "green", "value": None}, {"color": "#f3eeb4", "value": 0.5},
                                         {"color": "orange", "value": 1}, {"color": "red", "value": 2}]}


def target(expr: str, legend: str = "", *, instant: bool = False, fmt: str = "time_series", ref: str = "A") -> dict:
    return {"datasource": DS, "expr": expr, "legendFormat": legend, "instant": instant, "range": not instant,
            "format": fmt, "refId": ref}


def panel(pid: int, title: str, kind: str, grid: tuple[int, int, int, int], targets: list[dict], **extra) -> dict:
    x, y, w, h = grid
    out = {"id": pid, "title": title, "type": kind, "datasource": DS, "gridPos": {"x": x, "y": y, "w": w, "h": h},
           "targets": targets}
    out.update(extra)
    return out


def matrix(pid: int, mode: str, grid: tuple[int, int, int, int]) -> dict:
    return panel(
        pid, f"Latest {mode}: effect / floor, features x tests", "table", grid,
        [target(f'skewwatch:finding_effect_over_floor:ratio{{{SEL}, mode="{mode}"}}', instant=True, fmt="table")],
        description="Each latest score relative to its practical floor: 1 reaches it, 2 is critical (default).",
        transformations=[{"id": "groupingToMatrix", "options": {"rowField": "feature", "columnField": "test",
                                                                 "valueField": "Value"}}],
        fieldConfig={"defaults": {"thresholds": BANDS, "decimals": 2, "custom": {"cellOptions": {"type": "color-background"}}},
                     "overrides": []})


def dashboard() -> dict:
    panels = [
        panel(1, "Store answering", "stat", (0, 0, 4, 4), [target("min(skewwatch_store_up)", instant=True)],
              fieldConfig={"defaults": {"mappings": [{"type": "value", "options": {"0": {"text": "down", "color": "red"},
                                                                                   "1": {"text": "up", "color": "green"}}}]},
                           "overrides": []}),
        panel(2, "Alerts firing", "stat", (4, 0, 5, 4),
              [target('sum by (severity) (skewwatch_alerts_firing{model=~"$model"})', "{{severity}}", instant=True)]),
        panel(3, "Features at or over a floor", "stat", (9, 0, 5, 4),
              [target(f"sum by (mode) (skewwatch:features_over_floor:count{{{SEL}}})", "{{mode}}", instant=True)]),
        panel(4, "Since the last decided window", "stat", (14, 0, 5, 4),
              [target(f"max(skewwatch:window_decided_age:seconds{{{SEL}}})", instant=True)],
              fieldConfig={"defaults": {"unit": "s"}, "overrides": []}),
        panel(5, "Rows in the latest window", "stat", (19, 0, 5, 4),
              [target(f"sum(skewwatch_window_rows{{{SEL}}})", instant=True)]),
        matrix(6, "skew", (0, 4, 12, 10)),
        matrix(7, "drift", (12, 4, 12, 10)),
        panel(8, "Worst score of each feature over time (effect / floor)", "timeseries", (0, 14, 24, 9),
              [target(f"skewwatch:feature_effect_over_floor:max{{{SEL}}}", "{{feature}} {{mode}}")],
              fieldConfig={"defaults": {"thresholds": BANDS,
                                        "custom": {"thresholdsStyle": {"mode": "line+area"}}}, "overrides": []}),
        panel(9, "Invalid instances (share of the latest window)", "timeseries", (0, 23, 8, 7),
              [target(f"skewwatch:window_invalid_instances:ratio{{{SEL}}}", "{{model}} {{model_version}} {{segment}}")],
              fieldConfig={"defaults": {"unit": "percentunit"}, "overrides": []}),
        panel(10, "Dead letters by reason", "timeseries", (8, 23, 8, 7),
              [target('skewwatch:dead_letters:rate5m{model=~"$model|"}', "{{reason}} {{model}}")],
              fieldConfig={"defaults": {"unit": "reqps"}, "overrides": []}),
        panel(11, "Late and duplicate records in the latest window", "timeseries", (16, 23, 8, 7),
              [target(f"skewwatch_window_late_records{{{SEL}}}", "late {{model_version}}"),
               target(f"skewwatch_window_duplicate_records{{{SEL}}}", "duplicate {{model_version}}", ref="B")]),
        panel(12, "Collector records by outcome", "timeseries", (0, 30, 12, 7),
              [target("skewwatch:collector_records:rate5m", "{{outcome}}")],
              fieldConfig={"defaults": {"unit": "reqps"}, "overrides": []}),
        panel(13, "Collector lag", "timeseries", (12, 30, 12, 7),
              [target("skewwatch:collector_lag_records:sum", "{{topic}}")]),
    ]

    def variable(name: str, query: str) -> dict:
        return {"name": name, "label": name.replace("_", " "), "type": "query", "datasource": DS,
                "query": {"query": query, "refId": name}, "definition": query, "refresh": 2, "includeAll": True,
                "allValue": ".*", "multi": True, "current": {"text": "All", "value": "$__all"}, "sort": 1}

    return {
        "uid": "skewwatch", "title": "skewwatch: training-serving skew and drift", "tags": ["skewwatch", "ml"],
        "schemaVersion": 39, "version": 1, "editable": True, "timezone": "utc", "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "links": [{"title": "skewwatch dashboard", "type": "link", "url": "/ui/", "targetBlank": True}],
        "templating": {"list": [
            {"name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus",
             "current": {"text": "Prometheus", "value": "prometheus"}},
            variable("model", "label_values(skewwatch_finding_effect, model)"),
            variable("model_version", 'label_values(skewwatch_finding_effect{model=~"$model"}, model_version)'),
            variable("segment", 'label_values(skewwatch_finding_effect{model=~"$model"}, segment)'),
        ]},
        "annotations": {"list": []},
        "panels": panels,
    }


if __name__ == "__main__":
    out = Path(__file__).resolve().parent / "dashboards" / "skewwatch.json"
    out.write_text(json.dumps(dashboard(), indent=2) + "\n")
    print(out)
