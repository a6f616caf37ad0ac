"""Read latency of the monitor API, and of a metrics scrape, against the size of the history.

Goal (issue 12): with 20k windows x 50 features stored, every read route and a feature's history
answer under 50 ms p99, a /metrics scrape under 100 ms, flat in the size of the history.

For each size (default 2,000 and 20,000 windows) the script builds a SQLite store of one model with
50 features (25 numeric, 25 categorical), every test enabled, skew and drift findings for every
window (about 790 findings a window: 15.9 million at 20k): real findings from ``evaluate`` on real
profiles, replicated with jitter, written straight into the tables for speed; the newest window goes
through ``Store.decide_window`` with the alert engine, so latest scores and alerts are real.
Windows are 5 minutes apart in wall time; as the default retention keeps profiles 14 days, the
newest 4,032 windows have real profiles (500-row windows), the older ones none.

It then runs ``skewwatch monitor`` on that store (a separate process, uvicorn, as deployed) and
times each route over HTTP from this process (keep-alive, one request at a time), after a warm-up.
Client and server share the machine: figures include the client's own time.

    .venv/bin/python bench/bench_monitor_api.py                       # 2k and 20k windows (~15 min: the 20k store takes ~12 to build)
    .venv/bin/python bench/bench_monitor_api.py --sizes 20000 --requests 300
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from alerts.engine import AlertEngine  # noqa: E402
from monitor.bundle import PREDICTION_SPEC  # noqa: E402
from monitor.config import MonitorConfig  # noqa: E402
from monitor.evaluate import evaluate  # noqa: E402
from monitor.keys import WindowKey  # noqa: E402
from monitor.schema import FeatureSpec  # noqa: E402
from monitor.stats import Profile  # noqa: E402
from monitor.timeutil import format_instant  # noqa: E402
from monitor.storage import DeadLetterExample, FindingIn, Store, WindowCounts, WindowDecision  # noqa: E402
from monitor.storage.windows import FINDING_COLUMNS  # noqa: E402

MODEL, VERSION = "bench", "20260101T000000Z"
STEP_MS = 300_000
START_MS = 1_767_225_600_000  # 2026-01-01
PROFILE_WINDOWS = 14 * 24 * 12  # 14 days of 5-minute windows
SPECS = [FeatureSpec(f"n{i:02d}", "numeric", "float") for i in range(25)] + [
    FeatureSpec(f"c{i:02d}", "categorical", "string") for i in range(25)]


def frame(rng: np.random.Generator, rows: int, shift: float) -> pd.DataFrame:
    cols = {s.name: rng.normal(shift * (i % 5 == 0), 1.0, size=rows) for i, s in enumerate(SPECS[:25])}
    for j, s in enumerate(SPECS[25:]):
        k = 3 + 4 * j
        w = 1.0 / np.arange(1, k + 1)
        cols[s.name] = rng.choice(np.arange(k).astype(str).astype(object), p=w / w.sum(), size=rows)
    return pd.DataFrame(cols)


def profiles(rng: np.random.Generator) -> tuple[Profile, Profile, list[tuple[Profile, Profile]]]:
    def pair(rows: int, shift: float) -> tuple[Profile, Profile]:
        f = Profile(SPECS)
        f.update_frame(frame(rng, rows, shift))
        o = Profile((PREDICTION_SPEC,))
        o.update_frame(pd.DataFrame({"prediction": rng.normal(100 + 20 * shift, 30, size=rows)}))
        return f, o

    ref_f, ref_o = pair(5000, 0.0)
    return ref_f, ref_o, [pair(500, s) for s in (0.0, 0.05, 0.4, 0.0)]


def templates(ref_f: Profile, ref_o: Profile, windows: list[tuple[Profile, Profile]]) -> list[list[tuple]]:
    """(mode, family, finding) lists for each window profile, from evaluate()."""
    config = MonitorConfig()
    out = []
    for i, (f, o) in enumerate(windows):
        prev_f, prev_o = windows[i - 1]
        found = []
        for mode, family, ref, cur in (("skew", "features", ref_f, f), ("skew", "output", ref_o, o),
                                       ("drift", "features", prev_f, f), ("drift", "output", prev_o, o)):
            found += [(mode, family, x) for x in evaluate(reference=ref, current=cur, model=MODEL, config=config,
                                                          mode=mode).findings]
        out.append(found)
    return out


def build(path: Path, n: int, rng: np.random.Generator) -> None:
    ref_f, ref_o, pairs = profiles(rng)
    tmpl = templates(ref_f, ref_o, pairs)
    blobs = [(f.to_bytes(), o.to_bytes()) for f, o in pairs]
    now = int(time.time() * 1000)
    with Store(f"sqlite:///{path}"):
        pass  # migrations
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=OFF")
    start0 = START_MS
    jitter = random.Random(7)
    batch_w, batch_f, batch_p = [], [], []
    fid = 0

    columns: list[str] = []

    def flush() -> None:
        con.executemany("INSERT INTO windows (id, model, model_version, segment, start_ms, end_ms, status, error, rows,"
                        " records, invalid_instances, late_records, duplicate_records, partials, findings, alerting,"
                        " decided_at_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", batch_w)
        if batch_f:
            con.executemany(f"INSERT INTO findings ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                            batch_f)
        con.executemany("INSERT INTO window_profiles (window_id, features, outputs) VALUES (?,?,?)", batch_p)
        con.commit()
        batch_w.clear(), batch_f.clear(), batch_p.clear()

    for wid in range(1, n):  # the last window goes through decide_window
        start = start0 + (wid - 1) * STEP_MS
        key = WindowKey(MODEL, VERSION, "", start)
        found = tmpl[wid % len(tmpl)]
        alerting = sum(1 for _, _, f in found if f.alerting)
        batch_w.append((wid, MODEL, VERSION, "", start, start + STEP_MS, "decided", None, 500, 10, 0, 0, 0, 1,
                        len(found), alerting, now - (n - wid) * STEP_MS))
        for mode, family, f in found:
            fid += 1
            # the store's own mapping of a finding to its row, so the benchmark follows the schema
            row = dict(zip(FINDING_COLUMNS, Store._finding_values(wid, key, start + STEP_MS, FindingIn(
                f, family=family, reference_window_id=wid - 1 if mode == "drift" and wid > 1 else None))))
            row["effect"] = row["effect"] * (1 + jitter.uniform(-0.1, 0.1)) if row["effect"] is not None else None
            if not columns:
                columns.extend(["id", *row])
            batch_f.append((fid, *(int(v) if isinstance(v, bool) else v for v in row.values())))
        if wid > n - PROFILE_WINDOWS:
            batch_p.append((wid, *blobs[wid % len(blobs)]))
        if len(batch_f) > 200_000:
            flush()
    flush()
    con.execute("ANALYZE")
    con.commit()
    con.close()
    with Store(f"sqlite:///{path}") as store:
        key = WindowKey(MODEL, VERSION, "", start0 + (n - 1) * STEP_MS)
        f, o = pairs[2]
        found = [FindingIn(x, family=fam, reference_window_id=n - 1 if mode == "drift" else None)
                 for mode, fam, x in tmpl[2]]
        d = WindowDecision(key=key, end_ms=key.start_ms + STEP_MS, counts=WindowCounts(rows=500, records=10, partials=1),
                           findings=found, features=f.to_bytes(), outputs=o.to_bytes())
        store.decide_window(d, react=AlertEngine().hook(d))
        store.count_dead_letters([DeadLetterExample(r, "" if r == "not_json" else MODEL, "skewwatch.predictions", 0,
                                                    i, "bad record", now) for i, r in enumerate(["not_json", "schema"] * 20)])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def routes(n: int) -> list[tuple[str, str]]:
    middle = n // 2
    return [
        ("GET /healthz", "/healthz"),
        ("GET /models", "/models"),
        ("GET /windows (newest 100)", "/windows?limit=100"),
        ("GET /windows mode=drift", f"/windows?model={MODEL}&mode=drift&limit=100"),
        ("GET /windows until=middle", f"/windows?until={format_instant(START_MS + middle * STEP_MS)}&limit=100"),
        ("GET /windows/{id}", f"/windows/{middle}"),
        ("GET /findings (newest 200, the default page)", "/findings"),
        ("GET /findings window_id (200)", f"/findings?window_id={middle}"),
        ("GET /findings verdict=critical", "/findings?verdict=critical&limit=100"),
        ("GET /findings test=no_such (a page of nothing)", "/findings?test=no_such&limit=100"),
        ("GET /findings model+feature (200)", f"/findings?model={MODEL}&feature=n00"),
        ("GET feature history (500 points, the default page)", f"/models/{MODEL}/features/n00/history"),
        ("GET feature history one test (500 points)", f"/models/{MODEL}/features/n00/history?mode=skew&test=ks"),
        ("GET /findings, largest page (2,000)", "/findings?limit=2000"),
        ("GET feature history, largest page (5,000 points)", f"/models/{MODEL}/features/n00/history?limit=5000"),
        ("GET /scores", f"/scores?model={MODEL}"),
        ("GET /windows/{id}/distribution", f"/windows/{n}/distribution?feature=n00&reference=window"),
        ("GET /dead-letters", "/dead-letters"),
        ("GET /alerts", "/alerts"),
        ("GET /silences", "/silences"),
        ("GET /models/{m}/config", f"/models/{MODEL}/config"),
        ("GET /metrics (a scrape)", "/metrics"),
    ]


def measure(url: str, n: int, requests: int) -> list[dict]:
    import httpx

    out = []
    with httpx.Client(base_url=url, timeout=60) as client:
        for name, path in routes(n):
            for _ in range(5):
                r = client.get(path)
                assert r.status_code == 200, (path, r.status_code, r.text[:300])
            times = []
            for _ in range(requests):
                t = time.perf_counter()
                r = client.get(path)
                times.append((time.perf_counter() - t) * 1000)
            times.sort()
            out.append({"route": name, "p50_ms": statistics.median(times),
                        "p99_ms": times[min(len(times) - 1, int(0.99 * len(times)))], "max_ms": times[-1],
                        "bytes": len(r.content)})
    return out


def run(n: int, requests: int, keep: Path | None) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix=f"skewwatch-bench-{n}-"))
    state = tmp / "state"
    state.mkdir()
    t = time.time()
    build(state / "skewwatch.sqlite3", n, np.random.default_rng(2026))
    built = time.time() - t
    con = sqlite3.connect(state / "skewwatch.sqlite3")
    findings = con.execute("SELECT count(*) FROM findings").fetchone()[0]
    con.close()
    size = sum(p.stat().st_size for p in state.glob("skewwatch.sqlite3*")) / 1e9
    (tmp / "models").mkdir()
    port = free_port()
    env = {**os.environ, "SKEWWATCH_API_TOKEN": "bench"}
    server = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "skewwatch"), "monitor", "--state-dir", str(state), "--models-dir", str(tmp / "models"),
         "--monitor-port", str(port), "--monitor-check-kafka", "false", "--retention-interval-seconds", "0",
         "--log-level", "WARNING"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        import httpx

        deadline = time.time() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.time() > deadline or server.poll() is not None:
                raise RuntimeError("the monitor did not start")
            time.sleep(0.2)
        load_before = os.getloadavg()
        results = measure(url, n, requests)
        load_after = os.getloadavg()
    finally:
        server.terminate()
        server.wait(timeout=30)
    if keep is None:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return {"windows": n, "findings": findings, "store_gb": round(size, 2), "build_s": round(built, 1),
            "load_before": load_before, "load_after": load_after, "routes": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--keep", action="store_true", help="keep the stores (printed)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    runs = [run(n, args.requests, Path(".") if args.keep else None) for n in args.sizes]
    print(f"\n{os.cpu_count()} cores; load average before/after each run: "
          + "; ".join(f"{r['windows']}: {r['load_before'][0]:.2f}/{r['load_after'][0]:.2f}" for r in runs))
    for r in runs:
        print(f"{r['windows']} windows, {r['findings']:,} findings, store {r['store_gb']} GB (built in {r['build_s']} s)")
    head = "| route | " + " | ".join(f"{r['windows']:,} windows p50 / p99 ms" for r in runs) + " | bytes |"
    print("\n" + head + "\n|" + "---|" * (len(runs) + 2))
    for i, route in enumerate(runs[0]["routes"]):
        cells = " | ".join(f"{r['routes'][i]['p50_ms']:.1f} / {r['routes'][i]['p99_ms']:.1f}" for r in runs)
        print(f"| {route['route']} | {cells} | {runs[-1]['routes'][i]['bytes']:,} |")
    if args.json:
        args.json.write_text(json.dumps(runs, indent=2))


if __name__ == "__main__":
    main()
