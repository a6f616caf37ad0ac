"""Collection scenarios of issue 8 on the embedded broker: several models, partitions and collector
processes, SIGKILL and restarts, rebalances, hostile timestamps, a locked store, a broker restart.

Each compares the windows the scenario stores with those of one uninterrupted collector over the
same records: counts exactly, and per feature the exact parts of the statistics (count, missing,
mean, variance, min, max, category counts).
"""

from __future__ import annotations

import random
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from skewwatch.broker import EmbeddedBroker, ensure_topic
from tests.collectors.scenario import (
    Deployment,
    SteadyProducer,
    clone_models,
    encoded,
    produce,
    records,
    version_of,
    wait_windows,
    window_table,
)

pytestmark = [pytest.mark.slow, pytest.mark.broker]

TOPIC = "skewwatch.predictions"


@pytest.fixture(scope="module")
def models(trained_models_dir, tmp_path_factory):
    return clone_models(trained_models_dir, tmp_path_factory.mktemp("models"), ["alpha", "beta", "gamma"])


def _reference(bootstrap, models, tmp_path, expected):
    """One uninterrupted collector over the same topic, in a group and a store of its own."""
    ref = Deployment(bootstrap, models, tmp_path / "ref-state", "reference")
    ref.add("reference").start()
    try:
        wait_windows(ref.state_dir, expected, timeout=240, deployment=ref)
    finally:
        ref.stop_all()
    with ref.store() as store:
        return window_table(store)


def _assert_same(got, want):
    assert set(got) == set(want), (sorted(set(want) - set(got))[:5], sorted(set(got) - set(want))[:5])
    for key in want:
        g, w = got[key], want[key]
        assert (g["status"], g["rows"], g["records"], g["invalid"], g["duplicates"]) == \
               (w["status"], w["rows"], w["records"], w["invalid"], w["duplicates"]), key
        assert g["stats"] == w["stats"], key


def test_sigkill_at_five_random_points_of_a_200k_record_stream(models, serving_rows, tmp_path):
    """One collector killed five times mid-stream and restarted: every window as if it never died."""
    rng = random.Random(11)
    version = version_of(models, "alpha")
    recs = records(serving_rows, model="alpha", version=version, windows=40, per_window=5000, window_seconds=60,
                   batch=1, seed=1)
    assert len(recs) == 200_000
    with EmbeddedBroker() as broker:
        ensure_topic(broker.bootstrap_servers, TOPIC, 4)
        d = Deployment(broker.bootstrap_servers, models, tmp_path / "state", "kills",
                       extra={"SKEWWATCH_COLLECTOR_INSTANCE_ID": "kills-0"})
        proc = d.add("collector").start()
        traffic = SteadyProducer(broker.bootstrap_servers, TOPIC, encoded(recs), seconds=40).start()
        start = time.monotonic()
        for at in sorted(rng.uniform(3, 36) for _ in range(5)):
            time.sleep(max(0.0, start + at - time.monotonic()))
            proc.kill()
            proc.start()
        assert traffic.join() == len(recs)
        wait_windows(d.state_dir, 40, timeout=240, deployment=d)
        d.stop_all()
        with d.store() as store:
            got = window_table(store)
        want = _reference(broker.bootstrap_servers, models, tmp_path, 40)
    assert proc.starts == 6
    _assert_same(got, want)
    assert all(w["rows"] == 5000 and w["records"] == 5000 for w in got.values())


def test_three_collectors_six_partitions_three_models_a_kill_and_a_fourth_joining(models, serving_rows, tmp_path):
    names = ["alpha", "beta", "gamma"]
    recs = []
    for i, name in enumerate(names):
        recs += records(serving_rows, model=name, version=version_of(models, name), windows=6, per_window=2500,
                        window_seconds=60, batch=5, seed=10 + i)
    recs.sort(key=lambda r: r.event_time)  # the three models interleaved, as live traffic is
    with EmbeddedBroker() as broker:
        ensure_topic(broker.bootstrap_servers, TOPIC, 6)
        d = Deployment(broker.bootstrap_servers, models, tmp_path / "state", "trio")
        procs = [d.add(f"c{i}", SKEWWATCH_COLLECTOR_INSTANCE_ID=f"trio-{i}").start() for i in range(3)]
        time.sleep(4)  # the group forms
        traffic = SteadyProducer(broker.bootstrap_servers, TOPIC, encoded(recs), seconds=24).start()
        time.sleep(6)
        procs[1].kill()  # mid-window, mid-stream
        time.sleep(3)
        procs[1].start()
        time.sleep(4)
        d.add("c3", SKEWWATCH_COLLECTOR_INSTANCE_ID="trio-3").start()  # a fourth joins mid-window: a rebalance
        assert traffic.join() == len(recs)
        wait_windows(d.state_dir, 18, timeout=300, deployment=d)
        d.stop_all()
        with d.store() as store:
            got = window_table(store)
        want = _reference(broker.bootstrap_servers, models, tmp_path, 18)
    _assert_same(got, want)
    assert all(w["rows"] == 2500 for w in got.values())
