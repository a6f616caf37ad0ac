"""How much CPU does the sidecar spend per proxied request? (logging OFF, real sockets)

Isolates the proxy hop: the upstream is a tiny raw-ASGI app on uvicorn (uvloop +
httptools, as uvicorn picks them) that answers every request with one fixed JSON predict
answer, so nothing but the sidecar does real work. Each sidecar is a subprocess (this
script re-run with ``--role``) built by its module's ``build_sidecar_server`` with
``Settings(log_sample_rate=0.0)`` and an unreachable broker: the hop alone, its logger idle.

wrk (``-t1``) POSTs a one-instance predict body to each sidecar; the sidecar's CPU time
(user + system, all threads, from ``/proc/<pid>/stat``) over the run, divided by the
requests wrk completed, is the CPU per proxied request. The idle CPU of the process (its
logger thread retrying the broker) is measured first and subtracted. Two modes: ``paced``
(each connection pauses ``--delay-ms`` between requests, the rate the latency goal is
measured at; every request wakes the event loop on its own) and ``max`` (no pause).

To compare two versions of ``serving/sidecar.py`` in the same run, ``--baseline REV``
also runs the file as it is at git revision ``REV`` (read with ``git show``, loaded under
another module name); rounds are interleaved across sidecars so background load on the
2 shared cores hits all alike. Nothing here asserts a timing.

    .venv/bin/python bench/bench_sidecar_cpu.py --baseline HEAD            # working tree vs HEAD
    .venv/bin/python bench/bench_sidecar_cpu.py --rounds 5 --duration 10
    .venv/bin/python bench/bench_sidecar_cpu.py --profile 30               # cProfile top 30 (max mode)
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from wrkload import ROOT, add_load_arguments, ensure_wrk, predict_body, run_wrk, stop, wait_up, write_lua

TICK = os.sysconf("SC_CLK_TCK")
ANSWER = json.dumps({"predictions": [187.25], "model_version": "20240101T000000Z"}).encode()


# -- the servers (subprocess roles) ---------------------------------------------------------------


async def _upstream_app(scope, receive, send) -> None:
    """Answers any request with a fixed predict answer (after reading the whole body)."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(ANSWER)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": ANSWER})


def _sidecar_module(impl: str):
    if impl == "-":
        import serving.sidecar

        return serving.sidecar
    spec = importlib.util.spec_from_file_location("sidecar_under_test", impl)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _role_main(args: argparse.Namespace) -> None:
    import uvicorn

    if args.role == "upstream":
        uvicorn.run(_upstream_app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)
        return
    from monitor.settings import Settings

    module = _sidecar_module(args.impl)
    settings = Settings(serve_host="127.0.0.1", serve_port=args.port, kafka_bootstrap_servers="127.0.0.1:1",
                        log_sample_rate=0.0, log_level="WARNING")
    server, logger = module.build_sidecar_server(settings, args.upstream)
    server.config.load()
    factory = server.config.get_loop_factory()
    print(f"sidecar {args.impl}: loop factory {factory.__module__}.{factory.__qualname__}, "
          f"http {server.config.http_protocol_class.__name__}", flush=True)
    profiler = None
    if args.profile_out:
        import cProfile

        profiler = cProfile.Profile()
        signal.signal(signal.SIGUSR1, lambda *_: profiler.enable())
        signal.signal(signal.SIGUSR2, lambda *_: (profiler.disable(), profiler.dump_stats(args.profile_out)))
    try:
        server.run()
    finally:
        logger.close(timeout=1)


# -- the driver -------------------------------------------------------------------------------------


@dataclass
class Sidecar:
    name: str
    impl: str
    url: str = ""
    proc: subprocess.Popen | None = None
    cpu_us: dict[str, list[float]] = field(default_factory=dict)
    p50_us: dict[str, list[float]] = field(default_factory=dict)
    rps: dict[str, list[float]] = field(default_factory=dict)


def _spawn(role: str, port: int, log: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, __file__, "--role", role, "--port", str(port), *extra]
    with log.open("ab") as fh:
        return subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, all its threads (``/proc/<pid>/stat``, clock ticks)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime (fields 14 and 15)


def measure(s: Sidecar, wrk: str, lua: Path, *, mode: str, delay_ms: int, args: argparse.Namespace,
            body: str, idle_per_s: float) -> dict:
    start_cpu, start = cpu_seconds(s.proc.pid), time.monotonic()
    r = run_wrk(wrk, lua, s.url, seconds=args.duration, connections=args.connections, delay_ms=delay_ms, body=body)
    used = cpu_seconds(s.proc.pid) - start_cpu - idle_per_s * (time.monotonic() - start)
    if r["non2xx"] or r["socket_errors"]:
        raise SystemExit(f"{s.name}: {r['non2xx']} non-2xx answers, {r['socket_errors']} socket errors")
    r["cpu_us"] = 1e6 * used / r["requests"]
    s.cpu_us.setdefault(mode, []).append(r["cpu_us"])
    s.p50_us.setdefault(mode, []).append(r["p50_us"])
    s.rps.setdefault(mode, []).append(r["rps"])
    return r


def profile(s: Sidecar, wrk: str, lua: Path, args: argparse.Namespace, body: str, out: Path) -> None:
    import pstats

    s.proc.send_signal(signal.SIGUSR1)
    time.sleep(0.2)
    run_wrk(wrk, lua, s.url, seconds=args.duration, connections=args.connections, delay_ms=0, body=body)
    s.proc.send_signal(signal.SIGUSR2)
    deadline = time.monotonic() + 30
    while not out.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    for sort in ("tottime", "cumulative"):
        print(f"\n== {s.name}: top {args.profile} by {sort} ==")
        pstats.Stats(str(out)).sort_stats(sort).print_stats(args.profile)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--role", choices=("upstream", "sidecar"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--upstream", default="", help=argparse.SUPPRESS)
    parser.add_argument("--impl", default="-", help=argparse.SUPPRESS)
    parser.add_argument("--profile-out", default="", help=argparse.SUPPRESS)
    parser.add_argument("--baseline", metavar="REV", help="also run serving/sidecar.py as of this git revision")
    parser.add_argument("--also", action="append", default=[], metavar="FILE",
                        help="also run this file as the sidecar module (repeatable)")
    add_load_arguments(parser, duration=8)
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="instead of measuring, cProfile each sidecar over one max-mode run; print the top N")
    args = parser.parse_args()
    if args.role:
        _role_main(args)
        return

    from skewwatch.broker import free_port

    wrk = ensure_wrk()
    work = Path(tempfile.mkdtemp(prefix="bench-sidecar-cpu-"))
    lua = write_lua(work)
    log = work / "servers.log"
    body = predict_body()
    sidecars = [Sidecar("working tree", "-")]
    if args.baseline:
        old = work / "sidecar_baseline.py"
        old.write_text(subprocess.run(["git", "show", f"{args.baseline}:serving/sidecar.py"], cwd=ROOT, check=True,
                                      capture_output=True, text=True).stdout)
        sidecars.insert(0, Sidecar(f"baseline {args.baseline}", str(old)))
    sidecars += [Sidecar(Path(f).stem, str(Path(f).resolve())) for f in args.also]
    upstream_port = free_port()
    upstream = _spawn("upstream", upstream_port, log)
    upstream_url = f"http://127.0.0.1:{upstream_port}"
    try:
        wait_up(upstream_url, upstream, log)
        for i, s in enumerate(sidecars):
            port = free_port()
            s.url = f"http://127.0.0.1:{port}"
            extra = ["--upstream", upstream_url, "--impl", s.impl]
            if args.profile:
                extra += ["--profile-out", str(work / f"profile-{i}.pstats")]
            s.proc = _spawn("sidecar", port, log, *extra)
            wait_up(s.url + "/_skewwatch/healthz", s.proc, log)
        for s in sidecars:  # warm-up: connections, pools, caches
            run_wrk(wrk, lua, s.url, seconds=2, connections=args.connections, delay_ms=0, body=body)
        if args.profile:
            for i, s in enumerate(sidecars):
                profile(s, wrk, lua, args, body, work / f"profile-{i}.pstats")
            return
        idle = {}
        for s in sidecars:
            before = cpu_seconds(s.proc.pid)
            time.sleep(3)
            idle[s.name] = (cpu_seconds(s.proc.pid) - before) / 3
        for rnd in range(args.rounds):
            for mode, delay in (("paced", args.delay_ms), ("max", 0)):
                for s in sidecars:
                    r = measure(s, wrk, lua, mode=mode, delay_ms=delay, args=args, body=body, idle_per_s=idle[s.name])
                    print(f"round {rnd + 1} {mode:5s} {s.name:20s} {r['rps']:7.1f} req/s  p50 {r['p50_us'] / 1e3:5.2f} ms"
                          f"  sidecar CPU {r['cpu_us']:6.1f} µs/request", flush=True)
    finally:
        for s in sidecars:
            stop(s.proc)
        stop(upstream)
    print(f"\nwrk -t1 -c{args.connections}, {args.duration} s per run, median of {args.rounds} rounds; idle CPU "
          + ", ".join(f"{k} {v * 1e3:.1f} ms/s" for k, v in idle.items()) + " (subtracted)\n")
    print("| sidecar | mode | req/s | p50 ms | sidecar CPU µs/request (median) | min–max |")
    print("|---|---|---:|---:|---:|---:|")
    for mode in ("paced", "max"):
        for s in sidecars:
            cpu = s.cpu_us[mode]
            print(f"| {s.name} | {mode} | {statistics.median(s.rps[mode]):.0f} | "
                  f"{statistics.median(s.p50_us[mode]) / 1e3:.2f} | {statistics.median(cpu):.0f} | "
                  f"{min(cpu):.0f}–{max(cpu):.0f} |")
    print(f"\n(servers' log: {log})")


if __name__ == "__main__":
    main()
