"""Run the real path ten times: same windows, same bytes, same findings? And what does an in-order
replay of a real seasonal year raise?

Each run is ``skewwatch demo`` in a fresh process (its own hash seed, its own embedded broker,
serving, collector and monitor processes): 2012 of the bike-sharing data replayed **in time
order**, one request per day, ``--weeks`` healthy weeks and then ``--bug-weeks`` weeks from a client
sending temperature in Fahrenheit; weekly windows, each compared with the training rows of the same
month of 2011 (skew, ``skewwatch/demo.yaml``) and with the previous window (drift). Kafka assigns partitions, batches
and interleaves differently every run; the collector's windows are merged from per-partition
partials in whatever order they close.

Per run the stored windows are read back: the bytes of every window's profiles (inputs and
outputs) and every finding (feature, test, reference, verdict, q-value, effect). Goals (issue 10):
every run gives the same bytes and the same findings; healthy traffic raises no critical finding.
One more run (``--no-contrast`` skips it) uses the same config with the whole of 2011 as the skew
reference instead of the same month, to show what the calendar-aware reference saves.

    .venv/bin/python bench/bench_reproducibility.py                      # 10 runs, 49 + 3 weeks
    .venv/bin/python bench/bench_reproducibility.py --runs 3 --weeks 20  # quicker
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "bike_sharing_hourly.csv"


def _role_run(args: argparse.Namespace) -> None:
    """One demo run in this process; prints one JSON line: windows, profile digests, findings."""
    sys.path.insert(0, str(ROOT))
    from skewwatch.cli import _quiet_libraries

    _quiet_libraries()
    from monitor.settings import Settings
    from monitor.storage import Store
    from skewwatch.demo import demo

    settings = Settings(models_dir=args.models_dir, state_dir=args.run_dir / "state",
                        **({"monitor_config": args.monitor_config} if args.monitor_config else {}))
    result = demo(settings, data_path=DATA, weeks=args.weeks, bug_weeks=args.bug_weeks, run_dir=args.run_dir,
                  out=lambda line: print(line, file=sys.stderr, flush=True))
    windows = {}
    with Store(f"sqlite:///{args.run_dir / 'state' / 'skewwatch.sqlite3'}") as store:
        for w in store.list_windows(limit=100_000):
            key = f"{w.model}|{w.model_version}|{w.segment}|{w.start_ms}"
            profiles = store.load_profiles(w.id)
            digest = hashlib.sha256(b"".join(profiles)).hexdigest() if profiles is not None else None
            findings = sorted(
                [f.mode, f.family, f.feature, f.test, f.verdict, f.raw_verdict,
                 None if f.q_value is None else float(f.q_value).hex(), None if f.effect is None else float(f.effect).hex()]
                for f in store.list_findings(window_id=w.id, limit=100_000))
            windows[key] = {"status": w.status, "counts": [w.rows, w.records, w.late_records, w.duplicate_records],
                            "profiles": digest, "findings": findings}
    print(json.dumps({"ok": result.ok, "checks": result.checks, "windows": windows,
                      "bug_start": result.bug_start.isoformat() if result.bug_start else None}), flush=True)


def _train(models_dir: Path) -> None:
    sys.path.insert(0, str(ROOT))
    from skewwatch.cli import _quiet_libraries

    _quiet_libraries()
    from trainer.train import train

    train(data_path=DATA, models_dir=models_dir, model_name="bikeshare", epochs=30, seed=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--role", choices=("run",), help=argparse.SUPPRESS)
    parser.add_argument("--run-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--weeks", type=int, default=49, help="healthy weeks of 2012, in time order (default 49)")
    parser.add_argument("--bug-weeks", type=int, default=3)
    parser.add_argument("--models-dir", type=Path, help="a bundle registry (default: train once, first)")
    parser.add_argument("--monitor-config", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--no-contrast", action="store_true", help="skip the run against the whole-year baseline")
    args = parser.parse_args()
    if args.role == "run":
        _role_run(args)
        return

    work = Path(tempfile.mkdtemp(prefix="bench-repro-"))
    if args.models_dir is None:
        args.models_dir = work / "models"
        print("training the demo bundle once ...", flush=True)
        _train(args.models_dir)
    runs = []
    for i in range(args.runs):
        started = time.monotonic()
        run = _run(args, work, f"run-{i}", seed=1000 + i)
        runs.append(run)
        print(f"run {i + 1}/{args.runs}: {time.monotonic() - started:.0f} s, {len(run['windows'])} windows, "
              f"demo checks {'PASS' if run['ok'] else 'FAIL'}", flush=True)
    contrast = None
    if not args.no_contrast:
        from skewwatch.demo import DEMO_CONFIG

        text = DEMO_CONFIG.read_text()
        line = "  skew: {slots: month_of_year}"
        if line not in text:
            raise SystemExit(f"{DEMO_CONFIG} no longer has the line {line!r}: update the contrast run")
        whole_year = work / "whole-year.yaml"
        whole_year.write_text(text.replace(line, "  skew: true"))
        print("contrast run: skew against the whole of 2011 ...", flush=True)
        contrast = _run(args, work, "whole-year", seed=999, monitor_config=whole_year)
    report(runs, args, work, contrast)


def _run(args: argparse.Namespace, work: Path, name: str, *, seed: int, monitor_config: Path | None = None) -> dict:
    run_dir = work / name
    command = [sys.executable, __file__, "--role", "run", "--run-dir", str(run_dir), "--models-dir",
               str(args.models_dir), "--weeks", str(args.weeks), "--bug-weeks", str(args.bug_weeks)]
    if monitor_config is not None:
        command += ["--monitor-config", str(monitor_config)]
    proc = subprocess.run(command, env={**os.environ, "PYTHONHASHSEED": str(seed)}, capture_output=True, text=True,
                          cwd=ROOT)
    (work / f"{name}.log").write_text(proc.stderr)
    if proc.returncode != 0 or not proc.stdout.strip():
        raise SystemExit(f"{name} failed (exit {proc.returncode}); see {work / f'{name}.log'}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def report(runs: list[dict], args: argparse.Namespace, work: Path, contrast: dict | None) -> None:
    first = runs[0]
    keys = sorted(set().union(*(r["windows"] for r in runs)))
    same_windows = all(set(r["windows"]) == set(keys) for r in runs)
    profile_variants = {k: len({json.dumps([r["windows"].get(k, {}).get(f) for f in ("status", "counts", "profiles")])
                                for r in runs}) for k in keys}
    finding_variants = {k: len({json.dumps(r["windows"].get(k, {}).get("findings")) for r in runs}) for k in keys}
    alert_sets = []
    for r in runs:
        alert_sets.append({(k, f[0], f[1], f[2], f[3], f[4]) for k, w in r["windows"].items()
                           for f in w["findings"] if f[4] in ("warning", "critical")})
    union = set().union(*alert_sets)
    in_some = {a for a in union if not all(a in s for s in alert_sets)}
    print(f"\n{args.runs} runs of `skewwatch demo --weeks {args.weeks} --bug-weeks {args.bug_weeks}` "
          f"(fresh processes, PYTHONHASHSEED 1000..{999 + args.runs}); work dir {work}\n")
    print("| check | result | goal |")
    print("|---|---|---|")
    print(f"| the same windows in every run | {'yes' if same_windows else 'NO'} ({len(keys)} windows) | yes |")
    print(f"| windows whose status, row/record/late counts or profile bytes differ between runs | {sum(v > 1 for v in profile_variants.values())} | 0 |")
    print(f"| windows whose findings differ between runs (verdict, q, effect, bit for bit) | "
          f"{sum(v > 1 for v in finding_variants.values())} | 0 |")
    print(f"| alerts (warning or critical) in only some runs | {len(in_some)} of {len(union)} | 0 |")
    print(f"| demo checks passed | {sum(r['ok'] for r in runs)} of {len(runs)} | all |")

    print(f"\nIn-order replay of 2012: findings of the healthy weekly windows per reference\n")
    print("| skew reference | compared with | windows | findings | insufficient_data | warning | critical | "
          "features warned or critical (windows) |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    _reference_rows("same month of 2011 (demo.yaml), run 1", first)
    if contrast is not None:
        _reference_rows("whole of 2011", contrast)


def _reference_rows(label: str, run: dict) -> None:
    from datetime import datetime

    bug_start = run["bug_start"]
    bug_ms = int(datetime.fromisoformat(bug_start).timestamp() * 1000) if bug_start else None
    healthy = {k: w for k, w in run["windows"].items() if bug_ms is None or int(k.split("|")[3]) < bug_ms}
    for mode in sorted({f[0] for w in healthy.values() for f in w["findings"]}):
        rows = [(k, f) for k, w in healthy.items() for f in w["findings"] if f[0] == mode]
        verdicts = collections.Counter(f[4] for _, f in rows)
        windows_per_feature = collections.Counter(
            feat for feat, _ in {(f[2], k) for k, f in rows if f[4] in ("warning", "critical")})
        top = ", ".join(f"{feat} ({n})" for feat, n in windows_per_feature.most_common(6)) or "none"
        print(f"| {label} | {mode} | {len(healthy)} | {len(rows)} | {verdicts['insufficient_data']} | "
              f"{verdicts['warning']} | {verdicts['critical']} | {top} |")


if __name__ == "__main__":
    main()
