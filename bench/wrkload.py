"""What the HTTP benchmarks share: wrk, its Lua hook, one realistic predict body, processes.

``bench_serving.py``, ``bench_sidecar_cpu.py`` and ``bench_hostile.py`` import this module from
next to them.
wrk POSTs the same one-instance predict body on every request; with ``delay_ms`` > 0 each
connection pauses between requests (wrk's ``delay()`` hook), a roughly fixed request rate.
The Lua ``done`` hook prints one ``BENCH {json}`` line: requests, duration, p50/p99/p99.9
and mean latency in µs, non-2xx answers and socket errors.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "bike_sharing_hourly.csv"
PATH = "/v1/models/bikeshare:predict"
NUMERIC = ("temp", "atemp", "hum", "windspeed")
CATEGORICAL = ("season", "hr", "holiday", "weekday", "workingday", "weathersit")

LUA = r"""
wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY")
wrk.headers["Content-Type"] = "application/json"
local pace = tonumber(os.getenv("BENCH_DELAY_MS") or "0")
if pace > 0 then
  function delay() return pace end
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "p999_us": %d, "mean_us": %.1f, ' ..
    '"non2xx": %d, "socket_errors": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency:percentile(99.9),
    latency.mean, e.status, e.connect + e.read + e.write + e.timeout))
end
"""


def add_load_arguments(parser: argparse.ArgumentParser, *, duration: int) -> None:
    """The load options both benchmarks take: run length, rounds, connections, pacing."""
    parser.add_argument("--duration", type=int, default=duration, help=f"seconds per wrk run (default {duration})")
    parser.add_argument("--rounds", type=int, default=3, help="runs per target and mode; the median is shown")
    parser.add_argument("--connections", type=int, default=2, help="wrk connections (default 2)")
    parser.add_argument("--delay-ms", type=int, default=20, help="paced mode: pause per connection between requests")


def ensure_wrk() -> str:
    """wrk's path; installs Debian's package with apt-get when it is missing."""
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk not found: installing it with apt-get (Debian package 'wrk')", flush=True)
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("apt-get did not install wrk")
    return found


def write_lua(directory: Path) -> Path:
    lua = directory / "predict.lua"
    lua.write_text(LUA)
    return lua


def predict_body() -> str:
    """One real June 2012 row of the bike data as a one-instance TF Serving predict body."""
    with DATA.open(newline="") as fh:
        row = next(r for r in csv.DictReader(fh) if r["dteday"].startswith("2012-06"))
    inst: dict[str, object] = {k: float(row[k]) for k in NUMERIC}
    inst.update({k: (row[k] or None) for k in CATEGORICAL})
    return json.dumps({"instances": [inst]})


def run_wrk(wrk: str, lua: Path, url: str, *, seconds: int, connections: int, delay_ms: int, body: str) -> dict:
    """One wrk run (1 thread) against ``url`` + the predict path; the ``BENCH`` figures plus ``rps``."""
    env = {**os.environ, "BENCH_BODY": body, "BENCH_DELAY_MS": str(delay_ms)}
    cmd = [wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s", "-s", str(lua), url + PATH]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("BENCH "))
    out = json.loads(line[len("BENCH "):])
    out["rps"] = out["requests"] / (out["duration_us"] / 1e6)
    return out


def wait_up(url: str, proc: subprocess.Popen, log: Path, timeout: float = 180.0) -> None:
    """Wait until ``url`` answers 200, failing early (with the log's tail) if ``proc`` exits."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited ({proc.returncode}); see {log}:\n{log.read_text()[-2000:]}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"server at {url} not up after {timeout}s; see {log}")


def rss_mb(pid: int) -> float:
    """The resident set size of process ``pid`` in MiB (Linux ``/proc``); 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return 0.0


def stop(proc: subprocess.Popen | None) -> None:
    """SIGTERM, then SIGKILL after 20 s."""
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
