"""Helpers of the alert tests: an injected clock, real findings, windows decided through the real
``Store.decide_window`` with the engine's hook, real HTTP receivers on loopback, a polling wait."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from alerts import AlertEngine, Receivers, build_receivers
from monitor.alerting_config import AlertingConfig
from monitor.decide import Finding
from monitor.keys import WindowKey
from monitor.settings import Settings
from monitor.storage import FindingIn, Store, WindowCounts, WindowDecision

MIN = 60_000
WINDOW = 5 * MIN
T0 = 1_330_588_800_000  # 2012-03-01T08:00:00Z: event time of window 0
WALL0 = 1_800_000_000_000  # the injected wall clock starts here (2027)


class Clock:
    """Wall time in epoch ms that moves only when a test says so."""

    def __init__(self, start: int = WALL0) -> None:
        self.ms = start
        self._lock = threading.Lock()

    def __call__(self) -> int:
        with self._lock:
            return self.ms

    def advance(self, ms: int) -> int:
        with self._lock:
            self.ms += ms
            return self.ms


def finding(feature: str = "temp", test: str = "mean_shift", verdict: str = "ok", *, effect: float | None = None,
            floor: float = 0.2, mode: str = "skew", model: str = "bikeshare", significant: bool | None = None) -> Finding:
    """A real decision: ``verdict`` says whether it alerts; ``effect`` defaults to match it."""
    if effect is None:
        effect = {"ok": 0.02, "warning": 1.2 * floor, "critical": 3 * floor}[verdict]
    sig = verdict != "ok" if significant is None else significant
    return Finding(model=model, feature=feature, test=test, mode=mode, statistic=effect, p_value=1e-9 if sig else 0.5,
                   q_value=1e-8 if sig else 0.6, effect=effect, floor=floor, significant=sig, verdict=verdict,
                   message=f"{feature}: {test} effect {effect:.3g} (floor {floor:g})")


def healthy(*features: str, mode: str = "skew") -> list[Finding]:
    return [finding(f, mode=mode) for f in features]


def decide(store: Store, engine: AlertEngine, i: int, findings: list[Finding] | list[tuple[Finding, str]], *,
           version: str = "v1", segment: str = "", model: str = "bikeshare") -> int | None:
    """Decide window ``i`` (event time T0 + i windows) through the real store, with the engine's hook."""
    key = WindowKey(model, version, segment, T0 + i * WINDOW)
    ins = [FindingIn(x[0], x[1]) if isinstance(x, tuple) else FindingIn(x) for x in findings]
    decision = WindowDecision(key=key, end_ms=key.start_ms + WINDOW, counts=WindowCounts(rows=1000, records=10),
                              findings=ins, features=b"f", outputs=b"o")
    return store.decide_window(decision, react=engine.hook(decision))


def config(data: dict | None = None) -> AlertingConfig:
    return AlertingConfig.model_validate(data or {})


def wait_for(condition: Callable[[], Any], *, timeout: float = 30.0, what: str = "the condition") -> Any:
    """Poll until ``condition()`` is truthy (its value is returned); fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: Any
    at: float


@dataclass
class HttpReceiver:
    """A real HTTP server on loopback that records every POST and answers as the test scripts it.

    ``respond(request) -> (status, headers)`` decides each answer (default 200); ``hang`` makes
    requests wait (after being recorded) until released. ``unique()`` dedups by Idempotency-Key,
    as a careful receiver would."""

    respond: Callable[[Request], tuple[int, dict[str, str]]] | None = None
    requests: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self.release = threading.Event()
        self.release.set()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's API
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                req = Request(self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.monotonic())
                with owner._lock:
                    owner.requests.append(req)
                    respond = owner.respond
                owner.release.wait()
                status, headers = respond(req) if respond is not None else (200, {})
                payload = b"ok" if status < 300 else b"error"
                if status == 202:
                    payload = b'{"status":"success","message":"Event processed"}'
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # the client gave up (a timeout): fine

            def log_message(self, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def received(self) -> list[Request]:
        with self._lock:
            return list(self.requests)

    def unique(self) -> dict[str, Request]:
        """Requests by Idempotency-Key, first copy kept."""
        out: dict[str, Request] = {}
        for r in self.received():
            out.setdefault(r.headers.get("idempotency-key", ""), r)
        return out

    def close(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()


def receivers_for(cfg: AlertingConfig, *, environ: dict[str, str] | None = None, timeout: float = 5.0,
                  **settings: Any) -> Receivers:
    return build_receivers(Settings(alert_request_timeout_seconds=timeout, **settings), cfg, environ=environ or {})


SETTLE = 5 * MIN  # the default group_interval: after it every changed group has flushed


class Harness:
    """A real store, the engine, the sender and a webhook receiver on loopback, on an injected clock.

    ``window(i, findings)`` decides window ``i``; ``settle()`` lets group timers run out and sends
    what is due (synchronously); ``messages()`` are the webhook bodies received so far."""

    def __init__(self, store: Store, clock: Clock, receiver: HttpReceiver, alerting: dict | None = None,
                 **settings: Any) -> None:
        import itertools

        from alerts import RateLimiter, Sender

        self.store, self.clock, self.receiver = store, clock, receiver
        self.cfg = config(alerting)
        self.engine = AlertEngine(self.cfg)
        settings.setdefault("webhook_urls", [receiver.url + "/hook"])
        self.receivers = receivers_for(self.cfg, **settings)
        # rate limits are tested on their own; here each look at a bucket is a minute later, so none holds
        never_limited = RateLimiter(clock=itertools.count(0, 60).__next__)
        self.sender = Sender(store, self.receivers, engine=self.engine, limiter=never_limited)

    def window(self, i: int, findings: list, **kw: Any) -> int | None:
        return decide(self.store, self.engine, i, findings, **kw)

    def settle(self, ms: int = SETTLE) -> int:
        self.clock.advance(ms)
        return self.sender.run_once()

    def messages(self, path: str = "/hook") -> list[Any]:
        return [r.body for r in self.receiver.received() if r.path == path]

    def alert(self, feature: str, *, mode: str = "skew", version: str = "v1", kind: str = "feature",
              segment: str = "", model: str = "bikeshare"):
        from alerts import fingerprint

        return self.store.get_alert(fingerprint(model, version, segment, kind, feature, mode))

    def close(self) -> None:
        self.receivers.close()
