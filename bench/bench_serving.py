"""What do prediction logging and the sidecar cost a predict request? (wrk, real sockets)

Goals: logging adds < 1 ms at p99 and < 5 % throughput; the sidecar adds < 2 ms at p99.

Every server is a subprocess (this script re-run with ``--role``): the prediction service
(:func:`serving.server.build_server`) with logging OFF (sample rate 0), ON (to the
embedded broker) and ON with its broker stopped after start-up (records queue, then drop),
and the sidecar (:func:`serving.sidecar.run`) in front of the logging-OFF service, with
its own logging OFF and ON. wrk (Debian's; installed with apt-get when missing) POSTs a
realistic one-instance body over 2 connections from 1 thread, in two modes:

- ``paced``: each connection waits ``--delay-ms`` between requests (wrk's ``delay()``
  hook), a roughly fixed request rate well below saturation: the latency to compare;
- ``max``: no delay: the throughput to compare (and latency at saturation).

Each (target, mode) runs ``--rounds`` times for ``--duration`` seconds, rounds
interleaved across targets so drifting background load hits all alike; the table shows
the median round. The machine has 2 cores shared by wrk, the service, the sidecar, the
broker and anything else running: absolute numbers are modest, the differences are what
matter, and noise of a few percent is normal.

    .venv/bin/python bench/bench_serving.py                # trains a small bundle first
    .venv/bin/python bench/bench_serving.py --models-dir artifacts/models --duration 15
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from wrkload import DATA, ROOT, add_load_arguments, ensure_wrk, predict_body, rss_mb, run_wrk, stop, wait_up, write_lua

# -- the servers (subprocess roles) ---------------------------------------------------------------


def _role_main(args: argparse.Namespace) -> None:
    from monitor.settings import Settings

    settings = Settings(
        models_dir=args.models_dir, serve_host="127.0.0.1", serve_port=args.port,
        kafka_bootstrap_servers=args.bootstrap, topic="bench", log_sample_rate=args.sample_rate,
        log_level="WARNING",
    )
    if args.role == "serve":
        from serving.server import build_server

        server, logger = build_server(settings)
        try:
            server.run()
        finally:
            logger.close(timeout=2)
    else:
        from serving.sidecar import run

        run(settings, args.upstream)


@dataclass
class Target:
    name: str
    url: str
    metrics_path: str
    procs: list[subprocess.Popen] = field(default_factory=list)


def _spawn(role: str, port: int, *, models_dir: Path, bootstrap: str, rate: float, upstream: str = "",
           log: Path) -> subprocess.Popen:
    cmd = [sys.executable, __file__, "--role", role, "--port", str(port), "--models-dir", str(models_dir),
           "--bootstrap", bootstrap, "--sample-rate", str(rate), "--upstream", upstream]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    with log.open("ab") as fh:
        return subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=ROOT)


def _logged(target: Target) -> float:
    """Records the target's logger has handed to Kafka and queued so far (from its /metrics)."""
    import httpx

    text = httpx.get(target.url + target.metrics_path, timeout=5).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("skewwatch_prediction_log_enqueued_total "):
            total += float(line.split()[1])
    return total


# -- the benchmark ----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--role", choices=("serve", "sidecar"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--bootstrap", default="127.0.0.1:1", help=argparse.SUPPRESS)
    parser.add_argument("--sample-rate", type=float, default=1.0, help=argparse.SUPPRESS)
    parser.add_argument("--upstream", default="", help=argparse.SUPPRESS)
    parser.add_argument("--models-dir", type=Path, help="bundles to serve (default: train a small one first)")
    add_load_arguments(parser, duration=12)
    args = parser.parse_args()
    if args.role:
        _role_main(args)
        return

    from skewwatch.broker import EmbeddedBroker, ensure_topic, free_port

    wrk = ensure_wrk()
    work = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    models_dir = args.models_dir
    if models_dir is None:
        from trainer.train import train

        models_dir = work / "models"
        print("training a small bundle (2 epochs) ...", flush=True)
        train(data_path=DATA, models_dir=models_dir, epochs=2)
    lua = write_lua(work)
    body = predict_body()
    log = work / "servers.log"

    broker = EmbeddedBroker(log_path=work / "tansu.log").start()
    lost = EmbeddedBroker(log_path=work / "tansu-lost.log").start()  # stopped once its service is up
    for b in (broker, lost):
        ensure_topic(b.bootstrap_servers, "bench", partitions=3)
    targets: list[Target] = []
    try:
        def serve(name: str, bootstrap: str, rate: float) -> Target:
            port = free_port()
            t = Target(name, f"http://127.0.0.1:{port}", "/metrics")
            t.procs.append(_spawn("serve", port, models_dir=models_dir, bootstrap=bootstrap, rate=rate, log=log))
            return t

        def sidecar(name: str, upstream: Target, rate: float) -> Target:
            port = free_port()
            t = Target(name, f"http://127.0.0.1:{port}", "/_skewwatch/metrics")
            t.procs.append(_spawn("sidecar", port, models_dir=models_dir, bootstrap=broker.bootstrap_servers,
                                  rate=rate, upstream=upstream.url, log=log))
            return t

        off = serve("direct, logging OFF", broker.bootstrap_servers, 0.0)
        on = serve("direct, logging ON", broker.bootstrap_servers, 1.0)
        stopped = serve("direct, logging ON, broker stopped", lost.bootstrap_servers, 1.0)
        targets += [off, on, stopped]
        for t in targets:
            wait_up(t.url + "/healthz", t.procs[0], log)
        side_off = sidecar("sidecar (logging OFF) -> direct OFF", off, 0.0)
        side_on = sidecar("sidecar (logging ON) -> direct OFF", off, 1.0)
        targets += [side_off, side_on]
        for t in (side_off, side_on):
            wait_up(t.url + "/_skewwatch/healthz", t.procs[0], log)
        lost.stop()

        for t in targets:  # warm-up: first predict traces the model; connections, pools
            run_wrk(wrk, lua, t.url, seconds=2, connections=args.connections, delay_ms=0, body=body)
        rest = {t.name: rss_mb(t.procs[0].pid) for t in targets}

        results: dict[tuple[str, str], list[dict]] = {}
        modes = (("paced", args.delay_ms), ("max", 0))
        for rnd in range(args.rounds):
            for mode, delay in modes:
                for t in targets:
                    before = _logged(t)
                    r = run_wrk(wrk, lua, t.url, seconds=args.duration, connections=args.connections,
                                delay_ms=delay, body=body)
                    r["logged"] = _logged(t) - before
                    results.setdefault((t.name, mode), []).append(r)
                    print(f"round {rnd + 1} {mode:5s} {t.name:40s} {r['rps']:8.1f} req/s  p50 {r['p50_us'] / 1e3:6.2f} ms"
                          f"  p99 {r['p99_us'] / 1e3:6.2f} ms  non-2xx {r['non2xx']}  logged {r['logged']:.0f}",
                          flush=True)
        memory = {t.name: (rest[t.name], rss_mb(t.procs[0].pid)) for t in targets}
    finally:
        for t in reversed(targets):
            for p in t.procs:
                stop(p)
        broker.stop()
        lost.stop()

    print_table(results, targets, args)
    print_memory(results, targets, memory, args)
    print(f"\n(servers' log: {log})")


def print_memory(results: dict, targets: list[Target], memory: dict, args: argparse.Namespace) -> None:
    """RSS after the warm-up and after every round: a leak shows as growth per request."""
    print("\n| target | requests served | RSS after warm-up MB | RSS at the end MB | growth per 1,000 requests kB |")
    print("|---|---:|---:|---:|---:|")
    for t in targets:
        served = sum(r["rps"] * args.duration for mode in ("paced", "max") for r in results[(t.name, mode)])
        rest, end = memory[t.name]
        print(f"| {t.name} | {served:,.0f} | {rest:.0f} | {end:.0f} | {(end - rest) * 1024 / max(served / 1000, 1e-9):.1f} |")


def _median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def print_table(results: dict, targets: list[Target], args: argparse.Namespace) -> None:
    print(f"\nwrk -t1 -c{args.connections}, {args.duration} s per run, median of {args.rounds} rounds; "
          f"paced = {args.delay_ms} ms pause per connection between requests; 2 shared cores (wrk competes)\n")
    print("| target | mode | req/s | p50 ms | p99 ms | p99.9 ms | non-2xx | queued/s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for mode in ("paced", "max"):
        for t in targets:
            runs = results[(t.name, mode)]
            dur = args.duration
            print(f"| {t.name} | {mode} | {_median(runs, 'rps'):.0f} | {_median(runs, 'p50_us') / 1e3:.2f} | "
                  f"{_median(runs, 'p99_us') / 1e3:.2f} | {_median(runs, 'p999_us') / 1e3:.2f} | "
                  f"{sum(r['non2xx'] + r['socket_errors'] for r in runs)} | {_median(runs, 'logged') / dur:.0f} |")
    names = [t.name for t in targets]
    off, on, stopped, side_off, side_on = names

    def delta(a: str, b: str, mode: str, key: str) -> float:
        return (_median(results[(a, mode)], key) - _median(results[(b, mode)], key)) / 1e3

    def tput(a: str, b: str) -> float:
        return 100 * (_median(results[(a, "max")], "rps") / _median(results[(b, "max")], "rps") - 1)

    print("\n| comparison | Δ p99 paced (ms) | Δ p99 max (ms) | Δ throughput (max) | goal |")
    print("|---|---:|---:|---:|---|")
    for label, a, b, goal in (
        ("logging ON vs OFF", on, off, "< 1 ms p99, < 5 % throughput"),
        ("logging ON, broker stopped vs OFF", stopped, off, "< 1 ms p99, < 5 % throughput"),
        ("sidecar (logging OFF) vs direct", side_off, off, "< 2 ms p99"),
        ("sidecar (logging ON) vs direct", side_on, off, "< 2 ms p99"),
    ):
        print(f"| {label} | {delta(a, b, 'paced', 'p99_us'):+.2f} | {delta(a, b, 'max', 'p99_us'):+.2f} | "
              f"{tput(a, b):+.1f} % | {goal} |")


if __name__ == "__main__":
    main()
