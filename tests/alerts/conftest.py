"""Findings and windows for the alert tests.

Findings are real ``monitor.decide.Finding`` objects.
"""

from datetime import datetime, timedelta, timezone

import pytest

from monitor.decide import Finding

T0 = datetime(2012, 3, 1, 8, 0, tzinfo=timezone.utc)
STEP = timedelta(minutes=5)


def make_finding(feature="temp", test="ks", verdict="ok", *, model="bikeshare", mode="drift", effect=None,
                 floor=0.1, q_value=None, p_value=None, statistic=None, message=""):
    bad = verdict != "ok"
    effect = (0.35 if verdict == "critical" else 0.2 if bad else 0.02) if effect is None else effect
    q_value = (1e-6 if bad else 0.4) if q_value is None else q_value
    return Finding(model=model, feature=feature, test=test, mode=mode,
                        statistic=effect if statistic is None else statistic,
                        p_value=q_value / 10 if p_value is None else p_value, q_value=q_value, effect=effect,
                        floor=floor, significant=bad, verdict=verdict, message=message or f"{test} {verdict}")


def make_window(i, *, model="bikeshare", mode="drift", model_version="v1"):
    """The i-th 5-minute window after T0, as the collector passes it (a dict)."""
    return {"model": model, "model_version": model_version, "mode": mode, "window_start": T0 + i * STEP,
            "window_end": T0 + (i + 1) * STEP, "rows": 100, "late_records": 0, "invalid_records": 0}


@pytest.fixture
def finding():
    return make_finding


@pytest.fixture
def window():
    return make_window
