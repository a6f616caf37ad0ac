"""Does hostile traffic hurt normal traffic? Serving and the sidecar under attack (wrk, real sockets).

Goals (issue 9): while another client sends oversized bodies, compression bombs, huge headers
and slow-loris connections, the normal traffic's p99 stays within 2x of its value without the
attack, and the attacked process's RSS within 20 % of its value at rest.

Two targets, each a real process built as ``skewwatch serve`` / ``skewwatch sidecar`` build
theirs (``serving.server.build_server``, ``serving.sidecar.run``, default settings, logging
every request to an embedded Tansu broker):

- ``serving``: the prediction service itself;
- ``sidecar``: a sidecar in front of that service (the attack hits the sidecar).

For each target the normal traffic is wrk at a steady rate (one-instance predict bodies, the
paced mode of ``bench_serving.py``), run alternately without and with the attack, ``--rounds``
times each. The attack is a separate process (this script with ``--role attack``), an asyncio
client holding ``--slowloris`` connections that trickle a header byte a second, and sending
per second ``--rate`` of each of: a body declared as 155 MB, a chunked body streamed until the
server stops it, a 1 MiB header, and a 1 MB gzip body that inflates to 1 GiB. It prints what
it was answered. RSS is read from ``/proc`` every 100 ms: at rest (after a warm-up, before any
attack), the peak during each attack, and 2 s after it.

    .venv/bin/python bench/bench_hostile.py                          # trains a small bundle first
    .venv/bin/python bench/bench_hostile.py --models-dir artifacts/models --duration 15 --rounds 2
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from wrkload import DATA, PATH, ROOT, add_load_arguments, ensure_wrk, predict_body, rss_mb, run_wrk, stop, wait_up, write_lua

HUGE = 155 * 1000 * 1000  # the body
CHUNK = 1 << 20

# -- the servers (subprocess roles) --------------------------------------------------------------------


def _role_server(args: argparse.Namespace) -> None:
    from monitor.settings import Settings

    settings = Settings(models_dir=args.models_dir, serve_host="127.0.0.1", serve_port=args.port,
                        kafka_bootstrap_servers=args.bootstrap, topic="bench", log_level="WARNING")
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


def _spawn(role: str, port: int, *, models_dir: Path, bootstrap: str, log: Path, upstream: str = "") -> subprocess.Popen:
    cmd = [sys.executable, __file__, "--role", role, "--port", str(port), "--models-dir", str(models_dir),
           "--bootstrap", bootstrap, "--upstream", upstream]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    with log.open("ab") as fh:
        return subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=ROOT)


# -- the attacker (a subprocess role) -------------------------------------------------------------------


def _bomb() -> bytes:
    z = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(CHUNK)
    return b"".join(z.compress(zeros) for _ in range(1024)) + z.flush()


_KINDS = {"declared 155 MB": "declared", "chunked 155 MB": "chunked", "1 MiB header": "header", "gzip bomb": "bomb"}
ALL_KINDS = ("loris", "declared", "chunked", "header", "bomb")


def _status(answer: bytes) -> str:
    head = answer.split(b"\r\n", 1)[0].split()
    return head[1].decode() if len(head) > 1 and answer.startswith(b"HTTP/") else "closed"


async def _exchange(host: str, port: int, head: bytes, body_chunks, timeout: float = 30.0) -> str:
    """Send ``head`` then ``body_chunks`` until the server answers or closes; the status it answered."""
    reader, writer = await asyncio.open_connection(host, port)
    answer = asyncio.ensure_future(reader.read(1 << 16))
    try:
        writer.write(head)
        for chunk in body_chunks:
            if answer.done():
                break
            writer.write(chunk)
            await writer.drain()
        return _status(await asyncio.wait_for(answer, timeout))
    except (ConnectionError, asyncio.TimeoutError):
        if answer.done() and not answer.cancelled() and answer.exception() is None:
            return _status(answer.result())
        return "reset"
    finally:
        answer.cancel()
        writer.close()


async def _attack(args: argparse.Namespace) -> dict[str, int]:
    host, port = args.target.removeprefix("http://").rsplit(":", 1)
    port_n = int(port)
    outcomes: collections.Counter[str] = collections.Counter()
    bomb = Path(args.bomb).read_bytes() if args.bomb else _bomb()  # made once by the main process: seconds of CPU
    deadline = asyncio.get_running_loop().time() + args.duration
    head = f"POST {PATH} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n".encode()

    def body(total: int, chunked: bool):
        sent = 0
        piece = b" " * CHUNK
        while sent < total:
            yield b"%x\r\n%s\r\n" % (CHUNK, piece) if chunked else piece
            sent += CHUNK

    floods = {
        "declared 155 MB": lambda: _exchange(host, port_n, head + f"Content-Length: {HUGE}\r\n\r\n".encode(),
                                             body(HUGE, False)),
        "chunked 155 MB": lambda: _exchange(host, port_n, head + b"Transfer-Encoding: chunked\r\n\r\n", body(HUGE, True)),
        "1 MiB header": lambda: _exchange(host, port_n, head + b"X-Big: " + b"a" * CHUNK + b"\r\n\r\n", ()),
        "gzip bomb": lambda: _exchange(host, port_n, head + f"Content-Encoding: gzip\r\nContent-Length: {len(bomb)}"
                                       f"\r\n\r\n".encode(), (bomb,)),
    }

    async def repeat(kind: str) -> None:
        make = kinds[kind]
        while asyncio.get_running_loop().time() < deadline:
            started = asyncio.get_running_loop().time()
            try:
                outcomes[f"{kind}: {await make()}"] += 1
            except OSError as exc:
                outcomes[f"{kind}: {type(exc).__name__}"] += 1
            await asyncio.sleep(max(0.0, 1.0 / args.rate - (asyncio.get_running_loop().time() - started)))

    async def loris() -> None:
        while asyncio.get_running_loop().time() < deadline:
            try:
                reader, writer = await asyncio.open_connection(host, port_n)
            except OSError:
                outcomes["slow loris: connect failed"] += 1
                await asyncio.sleep(1)
                continue
            answer = asyncio.ensure_future(reader.read(1 << 16))
            try:
                writer.write(head)
                while not answer.done() and asyncio.get_running_loop().time() < deadline:
                    writer.write(b"X")  # a header name that never ends, a byte a second
                    await writer.drain()
                    await asyncio.wait({answer}, timeout=1.0)
                if answer.done():
                    outcomes[f"slow loris: {_status(answer.result())}"] += 1
            except (ConnectionError, OSError):
                outcomes["slow loris: reset"] += 1
            finally:
                answer.cancel()
                writer.close()

    kinds = {k: v for k, v in floods.items() if _KINDS[k] in args.kinds}
    tasks = [asyncio.create_task(repeat(kind)) for kind in kinds]
    if "loris" in args.kinds:
        tasks += [asyncio.create_task(loris()) for _ in range(args.slowloris)]
    await asyncio.gather(*tasks)
    return dict(sorted(outcomes.items()))


def _role_attack(args: argparse.Namespace) -> None:
    import resource

    outcomes = asyncio.run(_attack(args))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    outcomes["attacker CPU seconds"] = round(usage.ru_utime + usage.ru_stime, 1)
    print("ATTACK " + json.dumps(outcomes), flush=True)


# -- measuring ---------------------------------------------------------------------------------------------


@dataclass
class Target:
    name: str
    url: str
    attacked: subprocess.Popen  # the process the attack reaches first
    others: list[subprocess.Popen] = field(default_factory=list)


class RssSampler:
    """The peak RSS of ``pid`` while running (sampled every 100 ms)."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, rss_mb(pid), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.peak = max(self.peak, rss_mb(self.pid))

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _attack_process(target: Target, args: argparse.Namespace, log: Path, bomb: Path) -> subprocess.Popen:
    cmd = [sys.executable, __file__, "--role", "attack", "--target", target.url, "--duration", str(args.duration + 2),
           "--rate", str(args.rate), "--slowloris", str(args.slowloris), "--bomb", str(bomb), "--kinds", ",".join(args.kinds)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log.open("ab"), text=True, cwd=ROOT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--role", choices=("serve", "sidecar", "attack"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--bootstrap", default="127.0.0.1:1", help=argparse.SUPPRESS)
    parser.add_argument("--upstream", default="", help=argparse.SUPPRESS)
    parser.add_argument("--target", default="", help=argparse.SUPPRESS)
    parser.add_argument("--bomb", default="", help=argparse.SUPPRESS)
    parser.add_argument("--models-dir", type=Path, help="bundles to serve (default: train a small one first)")
    parser.add_argument("--rate", type=float, default=4.0, help="attack requests per second of each kind (default 4)")
    parser.add_argument("--slowloris", type=int, default=200, help="slow-loris connections held open (default 200)")
    parser.add_argument("--kinds", type=lambda text: tuple(text.split(",")), default=ALL_KINDS,
                        help=f"attacks to run, comma-separated (default all: {','.join(ALL_KINDS)})")
    parser.add_argument("--targets", type=lambda text: tuple(text.split(",")), default=("serving", "sidecar"),
                        help="targets to measure (default serving,sidecar)")
    add_load_arguments(parser, duration=15)
    parser.set_defaults(rounds=2)
    args = parser.parse_args()
    if args.role == "attack":
        _role_attack(args)
        return
    if args.role:
        _role_server(args)
        return

    from skewwatch.broker import EmbeddedBroker, ensure_topic, free_port

    args.load_at_start = os.getloadavg()
    wrk = ensure_wrk()
    work = Path(tempfile.mkdtemp(prefix="bench-hostile-"))
    models_dir = args.models_dir
    if models_dir is None:
        from trainer.train import train

        models_dir = work / "models"
        print("training a small bundle (2 epochs) ...", flush=True)
        train(data_path=DATA, models_dir=models_dir, epochs=2)
    lua, body, log = write_lua(work), predict_body(), work / "servers.log"
    bomb = work / "bomb.gz"
    bomb.write_bytes(_bomb())
    broker = EmbeddedBroker(log_path=work / "tansu.log").start()
    ensure_topic(broker.bootstrap_servers, "bench", partitions=3)
    procs: list[subprocess.Popen] = []
    results: dict[tuple[str, str], list[dict]] = collections.defaultdict(list)
    memory: dict[str, dict[str, float]] = {}
    attacks: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    try:
        port = free_port()
        serving = _spawn("serve", port, models_dir=models_dir, bootstrap=broker.bootstrap_servers, log=log)
        procs.append(serving)
        wait_up(f"http://127.0.0.1:{port}/healthz", serving, log)
        side_port = free_port()
        sidecar = _spawn("sidecar", side_port, models_dir=models_dir, bootstrap=broker.bootstrap_servers, log=log,
                         upstream=f"http://127.0.0.1:{port}")
        procs.append(sidecar)
        wait_up(f"http://127.0.0.1:{side_port}/_skewwatch/healthz", sidecar, log)
        targets = [Target("serving", f"http://127.0.0.1:{port}", serving),
                   Target("sidecar -> serving", f"http://127.0.0.1:{side_port}", sidecar, [serving])]
        targets = [t for t in targets if t.name.split()[0] in args.targets]
        for t in targets:  # warm-up: the first predicts trace the model, connections, pools
            run_wrk(wrk, lua, t.url, seconds=3, connections=args.connections, delay_ms=args.delay_ms, body=body)
        time.sleep(2)
        for t in targets:
            memory[t.name] = {"rest": rss_mb(t.attacked.pid), "peak": 0.0, "after": 0.0}
        for rnd in range(args.rounds):
            for t in targets:
                for phase in ("quiet", "attack"):
                    attacker = _attack_process(t, args, log, bomb) if phase == "attack" else None
                    if attacker is not None:
                        time.sleep(1.0)  # the slow-loris connections are open, the floods running
                    with RssSampler(t.attacked.pid) as rss:
                        r = run_wrk(wrk, lua, t.url, seconds=args.duration, connections=args.connections,
                                    delay_ms=args.delay_ms, body=body)
                    results[(t.name, phase)].append(r)
                    if attacker is not None:
                        out, _ = attacker.communicate(timeout=120)
                        line = next((ln for ln in out.splitlines() if ln.startswith("ATTACK ")), "ATTACK {}")
                        attacks[t.name].update(json.loads(line[len("ATTACK "):]))
                        memory[t.name]["peak"] = max(memory[t.name]["peak"], rss.peak)
                        time.sleep(2.0)
                        memory[t.name]["after"] = rss_mb(t.attacked.pid)
                    print(f"round {rnd + 1} {t.name:20s} {phase:6s} {r['rps']:7.1f} req/s  p50 {r['p50_us'] / 1e3:6.2f} ms"
                          f"  p99 {r['p99_us'] / 1e3:6.2f} ms  non-2xx {r['non2xx']}  errors {r['socket_errors']}"
                          f"  RSS peak {rss.peak:.0f} MB", flush=True)
    finally:
        for p in reversed(procs):
            stop(p)
        broker.stop()
    _report(results, memory, attacks, args)
    print(f"\n(servers' log: {log})")


def _report(results: dict, memory: dict, attacks: dict, args: argparse.Namespace) -> None:
    def med(name: str, phase: str, key: str) -> float:
        return statistics.median(r[key] for r in results[(name, phase)])

    print(f"\nwrk -t1 -c{args.connections}, {args.delay_ms} ms pause per connection (paced), {args.duration} s per run, "
          f"median of {args.rounds} runs per phase, phases alternating; attack: {','.join(args.kinds)} "
          f"({args.slowloris} slow-loris connections, {args.rate:g}/s of each flood); "
          f"load average (1/5/15 min) at the start {' '.join(f'{x:.2f}' for x in args.load_at_start)}, at the end "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} (2 cores)\n")
    print("| target | phase | req/s | p50 ms | p99 ms | non-2xx + errors |")
    print("|---|---|---:|---:|---:|---:|")
    for name in memory:
        for phase in ("quiet", "attack"):
            runs = results[(name, phase)]
            print(f"| {name} | {phase} | {med(name, phase, 'rps'):.0f} | {med(name, phase, 'p50_us') / 1e3:.2f} | "
                  f"{med(name, phase, 'p99_us') / 1e3:.2f} | {sum(r['non2xx'] + r['socket_errors'] for r in runs)} |")
    print("\n| target | p99 attack / quiet | goal | RSS at rest MB | peak under attack MB | 2 s after MB | peak / rest | goal |")
    print("|---|---:|---|---:|---:|---:|---:|---|")
    for name, m in memory.items():
        ratio = med(name, "attack", "p99_us") / med(name, "quiet", "p99_us")
        grow = m["peak"] / m["rest"]
        print(f"| {name} | {ratio:.2f}x | <= 2x: {'yes' if ratio <= 2 else 'NO'} | {m['rest']:.0f} | {m['peak']:.0f} | "
              f"{m['after']:.0f} | {grow:.2f} | <= 1.20: {'yes' if grow <= 1.2 else 'NO'} |")
    print("\nwhat the attacker was answered (all rounds):")
    for name, counts in attacks.items():
        cpu = counts.pop("attacker CPU seconds", 0)
        wall = args.rounds * (args.duration + 2)
        print(f"- {name}: " + ", ".join(f"{k} x{v}" for k, v in sorted(counts.items()))
              + f"; the attacker itself used {cpu:.0f} s of CPU in {wall} s ({100 * cpu / wall:.0f} % of a core)")


if __name__ == "__main__":
    main()
