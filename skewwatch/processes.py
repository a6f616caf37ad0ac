"""Child processes for the demo and the end-to-end test: start, wait until healthy, stop."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

import httpx

from monitor.errors import SkewwatchError

__all__ = ["Service", "WebhookReceiver", "wait_for"]


def wait_for(predicate: Callable[[], Any], *, timeout: float, interval: float = 0.2, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; raise after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SkewwatchError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


class Service:
    """``python -m skewwatch VERB`` as a child process with its own log file."""

    def __init__(self, verb: str, *, env: dict[str, str], log_path: Path, health_url: str | None = None) -> None:
        self.verb = verb
        self.env = env
        self.log_path = log_path
        self.health_url = health_url
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *, timeout: float = 120.0, wait: bool = True) -> "Service":
        """Spawn the process; with ``wait``, return once it answers its health URL (else at once,
        and call :meth:`wait_healthy` later: services then start side by side)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "skewwatch", self.verb],
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        if wait:
            self.wait_healthy(timeout=timeout)
        return self

    def wait_healthy(self, *, timeout: float = 120.0) -> "Service":
        if self.health_url:
            wait_for(self._healthy, timeout=timeout, what=f"{self.verb} to answer {self.health_url} (log: {self.log_path})")
        elif self.proc is not None and self.proc.poll() is not None:
            raise SkewwatchError(f"{self.verb} exited early; see {self.log_path}:\n{self.tail()}")
        return self

    def _healthy(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise SkewwatchError(f"{self.verb} exited early; see {self.log_path}:\n{self.tail()}")
        try:
            return httpx.get(self.health_url, timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 30.0) -> int | None:
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)
        return proc.returncode


class WebhookReceiver:
    """A local HTTP endpoint that records every JSON body POSTed to it (stands in for Slack, a pager, ...)."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        received: list[dict[str, Any]] = []
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server API)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    payload = json.loads(body)
                except ValueError:
                    self.send_response(400)
                    self.end_headers()
                    return
                with lock:
                    received.append(payload)
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer((host, 0), Handler)
        self._lock = lock
        self._received = received
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/alerts"

    @property
    def received(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._received)

    def __enter__(self) -> "WebhookReceiver":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()
