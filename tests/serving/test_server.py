"""`serving.server.run` end to end: a real uvicorn process, concurrent clients, SIGTERM."""

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from skewwatch.broker import free_port

SCRIPT = (
    "import logging; logging.basicConfig(level=logging.INFO); "
    "from monitor.settings import load_settings; from serving.server import run; run(load_settings())"
)


@pytest.fixture
def server(models_dir, tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "SKEWWATCH_MODELS_DIR": str(models_dir),
        "SKEWWATCH_SERVE_PORT": str(port),
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",  # no broker: serving must not care
        "SKEWWATCH_LOG_QUEUE_SIZE": "7",
    }
    err = tmp_path / "stderr.log"
    with err.open("wb") as fh:
        proc = subprocess.Popen([sys.executable, "-c", SCRIPT], env=env, stdout=fh, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode}: {err.read_text()[-3000:]}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"server not up in time: {err.read_text()[-3000:]}")
        time.sleep(0.1)
    yield proc, base, err
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)


def test_server_answers_concurrent_clients_and_shuts_down_gracefully(server, raw_rows):
    proc, base, err = server
    with httpx.Client(base_url=base, timeout=30) as c:
        # latest version preloaded at start-up, so it shows as loaded before any request
        (status,) = c.get("/v1/models/bikeshare").json()["model_version_status"]
        assert status["loaded"] is True
        single = [c.post("/v1/models/bikeshare:predict", json={"instances": [row]}).json()["predictions"][0] for row in raw_rows[:20]]

    def call(i: int):
        with httpx.Client(base_url=base, timeout=30) as c:
            r = c.post("/v1/models/bikeshare:predict", json={"instances": [raw_rows[i]]}, headers={"X-Request-Id": f"c{i}"})
            return r.status_code, r.json()["predictions"][0], r.headers["x-request-id"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(call, range(20)))
    assert [code for code, _, _ in results] == [200] * 20
    assert [rid for _, _, rid in results] == [f"c{i}" for i in range(20)]
    np.testing.assert_allclose([p for _, p, _ in results], single, rtol=1e-6)

    proc.send_signal(signal.SIGTERM)
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the process ends by the signal
    assert proc.wait(timeout=60) in (0, -signal.SIGTERM)
    log = err.read_text()
    assert "Finished server process" in log
    # 40 logged requests, a queue of 7 and no broker: 7 queued (then unsent at close), 33 dropped
    assert "prediction log closed: 0 sent, 0 send errors, 33 dropped (queue full), 7 unsent at close" in log
