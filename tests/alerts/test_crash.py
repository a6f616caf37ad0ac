"""The sender killed with SIGKILL in the middle of a delivery, then restarted: nothing is lost, and
what was in flight is delivered again under the same key (at least once, deduplicated downstream)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from alerts import AlertEngine
from monitor.storage import Store
from tests.alerts.helpers import config, decide, finding, wait_for

ROOT = Path(__file__).resolve().parents[2]
LEASE_S = 2.0


def start_sender(url: str, document: dict) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "tests.alerts.sender_process", url, json.dumps(document), str(LEASE_S)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_sigkill_mid_delivery_then_restart_delivers_every_notification(tmp_path, receiver):
    hang = threading.Event()
    seen: list[str] = []

    def respond(req):
        key = req.headers["idempotency-key"]
        first_time = key not in seen
        seen.append(key)
        if len(set(seen)) == 3 and first_time:
            hang.wait(30)  # the third message is in flight when the process dies
        return 200, {}

    receiver.respond = respond
    document = {"route": {"receiver": "team", "group_wait": "0s", "for_windows": 1},
                "receivers": [{"name": "team", "webhook_configs": [{"url": receiver.url + "/hook"}]}]}
    url = f"sqlite:///{tmp_path / 'crash.sqlite3'}"
    with Store(url) as store:
        engine = AlertEngine(config(document))
        for m in range(4):
            decide(store, engine, 0, [finding("temp", verdict="critical", model=f"m{m}")], model=f"m{m}")

        proc = start_sender(url, document)
        wait_for(lambda: len(seen) == 3, what="the third delivery in flight")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        hang.set()
        counts = store.outbox_counts()
        assert counts["delivered"] == 2 and counts["pending"] == 2  # the one in flight is still leased, not lost
        # a window decided while no sender runs: its group waits in the store
        decide(store, engine, 0, [finding("temp", verdict="critical", model="m4")], model="m4")

        proc = start_sender(url, document)
        try:
            wait_for(lambda: store.outbox_counts() == {"pending": 0, "delivered": 5, "failed": 0},
                     what="every message delivered after the restart")
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        expected = [r.dedup_key.split("|", 1)[1] for r in store.list_outbox()]
    assert sorted(set(seen)) == sorted(expected) and len(expected) == 5  # none lost
    assert {k: seen.count(k) for k in expected} == {k: 2 if k == expected[2] else 1 for k in expected}
