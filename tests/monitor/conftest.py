"""Real ``monitor.decide.Finding`` objects and window arguments for the store and API tests."""

from datetime import datetime, timedelta, timezone

import pytest

from monitor.decide import Finding

T0 = datetime(2012, 3, 1, 8, 0, tzinfo=timezone.utc)
STEP = timedelta(minutes=5)


def make_finding(feature="temp", test="ks", verdict="ok", *, model="bikeshare", mode="drift", effect=0.05,
                 floor=0.1, q_value=0.5, p_value=0.05, statistic=1.5, message="m"):
    return Finding(model=model, feature=feature, test=test, mode=mode, statistic=statistic, p_value=p_value,
                        q_value=q_value, effect=effect, floor=floor, significant=verdict != "ok", verdict=verdict,
                        message=message)


@pytest.fixture
def finding():
    return make_finding


@pytest.fixture
def window_kw():
    def make(i=0, *, model="bikeshare", model_version="v1", mode="drift", rows=100, late=0, invalid=0):
        return dict(model=model, model_version=model_version, mode=mode, window_start=T0 + i * STEP,
                    window_end=T0 + (i + 1) * STEP, rows=rows, late_records=late, invalid_records=invalid)

    return make
