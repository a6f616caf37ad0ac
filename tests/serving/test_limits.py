"""Limits enforced while reading: the bytes themselves (pure), then over real sockets under uvicorn."""

import os
import re
import socket
import subprocess
import sys
import threading
import time
import zlib

import httpx
import orjson
import pytest

from monitor.errors import ConfigError, RecordError
from monitor.settings import Settings
from serving.app import create_app
from serving.exchange import decode_body
from serving.limits import LimitExceeded, LimitsMiddleware, RejectionCounts, RequestLimits, check_json
from serving.models import ModelRegistry
from serving.protocol import bounded_protocol
from serving.publisher import PredictionLogger
from serving.validation import attribute_header_names, header_attributes

UNREACHABLE = "127.0.0.1:1"
PREDICT = "/v1/models/bikeshare:predict"


def _limit(body: bytes, depth: int = 32, instances: int = 10_000) -> str | None:
    try:
        check_json(body, max_depth=depth, max_instances=instances)
    except LimitExceeded as exc:
        assert exc.status == 413
        return exc.limit
    return None


def _array(n: int, item: bytes = b"1") -> bytes:
    return b"[" + b",".join([item] * n) + b"]"


# -- JSON shape from the bytes --------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, expected",
    [
        (b'{"instances": ' + _array(10_000, b'{"a": 1, "b": [1, 2]}') + b"}", None),
        (b'{"instances": ' + _array(10_001, b'{"a": 1}') + b"}", "max_instances"),
        (b'{"inputs": {"a": ' + _array(10_001) + b', "b": [1]}}', "max_instances"),  # a column
        (b'{"inputs": ' + _array(10_001, b"[1]") + b"}", "max_instances"),  # an unnamed columnar tensor
        (_array(10_001), "max_instances"),  # a top-level array: refused before it becomes 10,001 objects
        (b'{"instances": [{"image": ' + _array(50_000) + b"}]}", None),  # one instance, a wide tensor feature
        (b'{"inputs": {"a": {"b": ' + _array(10_001) + b"}}}", None),  # too deep to be a column
        (b'{"instances": [{"s": "' + b"[[,," * 50_000 + b'"}]}', None),  # brackets and commas in a string
        (b'{"instances": [{"s": "\\\\"}, ' + b",".join([b"1"] * 10_001) + b"]}", "max_instances"),  # \\ ends no string
        (b'{"instances": [{"s": "\\"' + b"[" * 40 + b'"}]}', None),  # \" does not end the string
        (b"[" * 32 + b"]" * 32, None),
        (b"[" * 33 + b"]" * 33, "max_json_depth"),
        (b'{"instances": [{"a": ' + b'{"b": ' * 40 + b"1" + b"}" * 40 + b"}]}", "max_json_depth"),
        (b"[" * 100_000, "max_json_depth"),  # not even JSON: measured as far as it goes
        (b"not json at all, " * 1000, None),  # the parser refuses it next, with its own 400
    ],
)
def test_depth_and_instances_are_measured_on_the_bytes(body, expected):
    assert _limit(body) == expected


def test_the_error_names_the_limit_and_its_value():
    with pytest.raises(LimitExceeded) as info:
        check_json(b"[[[[]]]]", max_depth=3, max_instances=10)
    assert orjson.loads(info.value.body()) == {
        "error": "JSON body nests 4 levels deep, more than the limit of 3", "limit": "max_json_depth", "max": 3}


# -- decompression ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    """About 1 MB of gzip that inflates to 1 GiB of zeros (made a MiB at a time)."""
    z = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(1 << 20)
    return b"".join(z.compress(zeros) for _ in range(1024)) + z.flush()


def test_a_gzip_bomb_stops_at_the_ratio_and_the_absolute_bound(gzip_bomb):
    assert len(gzip_bomb) < 2 << 20
    with pytest.raises(LimitExceeded) as ratio:
        decode_body(gzip_bomb, "gzip", field="request_body", max_bytes=8 << 20, max_ratio=200)
    assert (ratio.value.limit, ratio.value.status) == ("max_decompression_ratio", 413)
    with pytest.raises(LimitExceeded) as size:
        decode_body(gzip_bomb, "gzip", field="response_body", max_bytes=8 << 20, max_ratio=None,
                    size_limit="max_logged_bytes")
    assert size.value.limit == "max_logged_bytes"


def test_ordinary_bodies_inflate_within_the_bounds():
    body = orjson.dumps({"instances": [{"temp": i / 7, "season": f"s{i % 4}"} for i in range(50_000)]})
    packed = zlib.compress(body)
    assert len(body) > 1 << 20 and len(body) / len(packed) < 200
    assert decode_body(packed, "deflate", field="request_body", max_bytes=8 << 20, max_ratio=200) == body
    with pytest.raises(RecordError, match="truncated"):
        decode_body(packed[: len(packed) // 2], "deflate", field="request_body", max_bytes=8 << 20)


# -- settings ---------------------------------------------------------------------------------------


def test_attribute_headers_are_checked_names_and_copied_cut():
    assert attribute_header_names(" X-Client, x-region,,X-Client ") == ("x-client", "x-region")
    for bad in ("x client", "x:y", ",".join(f"h{i}" for i in range(33))):
        with pytest.raises(ConfigError) as info:
            attribute_header_names(bad)
        assert info.value.field == "log_attribute_headers"
    pairs = [("x-client", "ios"), ("X-Region", "r" * 300), ("x-client", "web"), ("other", "x")]
    assert header_attributes(pairs, ("x-client", "x-region", "x-absent")) == {"x-client": "ios, web", "x-region": "r" * 256}


def test_bad_settings_fail_when_the_app_is_built(models_dir):
    logger = PredictionLogger(Settings(kafka_bootstrap_servers=UNREACHABLE))
    for settings, field in (({"min_event_time": "2000-01-01"}, "min_event_time"),
                            ({"log_attribute_headers": "a b"}, "log_attribute_headers")):
        with pytest.raises(ConfigError) as info:
            create_app(Settings(**settings), ModelRegistry(models_dir), logger)
        assert info.value.field == field
    with pytest.raises(ValueError):
        RequestLimits(max_body_bytes=0)


# -- over real sockets -------------------------------------------------------------------------------


def _exchange(base: str, data: bytes, *, then_wait: float = 30.0) -> tuple[int | None, dict, bytes]:
    """Write ``data`` on a fresh connection (stopping when the server closes it), read the answer."""
    host, port = base.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port))) as sock:
        sock.settimeout(then_wait)
        try:
            view = memoryview(data)
            while view:
                sent = sock.send(view[:1 << 20])
                view = view[sent:]
        except OSError:  # the server stopped reading and closed: what it answered is still readable
            pass
        answer = b""
        try:
            while chunk := sock.recv(1 << 16):
                answer += chunk
        except ConnectionResetError:
            pass
    if not answer:
        return None, {}, b""
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


async def _count_body(scope, receive, send):
    """An app that reads the whole body and answers its length."""
    if scope["type"] != "http":
        return
    size, more = 0, True
    while more:
        message = await receive()
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    body = str(size).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
def bounded(serve):
    """An app behind the bounded protocol and the middleware, with small limits; yields (base, counts)."""
    limits = RequestLimits(max_body_bytes=100_000, header_timeout_s=1.0, body_timeout_s=1.0)
    counts = RejectionCounts()
    with serve(LimitsMiddleware(_count_body, limits, counts), lifespan="off", http=bounded_protocol(limits, counts)) as base:
        yield base, counts


def test_a_huge_header_is_431_before_it_is_read_whole(bounded):
    base, counts = bounded
    status, headers, body = _exchange(base, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (50 << 20) + b"\r\n\r\n")
    assert status == 431 and headers["connection"] == "close"
    assert orjson.loads(body) == {"error": "request line and headers are longer than the limit of 16384 bytes",
                                  "limit": "max_header_bytes", "max": 16384}
    many = b"".join(b"X-%d: 1\r\n" % i for i in range(101))
    status, _, body = _exchange(base, b"GET / HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
    assert status == 431 and orjson.loads(body)["limit"] == "max_headers"
    status, _, body = _exchange(base, b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 431 and orjson.loads(body)["limit"] == "max_header_bytes"
    status, _, body = _exchange(base, b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X: " + b"a" * 16_000 + b"\r\n\r\n")
    assert (status, body) == (200, b"0")  # just under the limit: served
    assert counts.snapshot() == {"max_header_bytes": 2, "max_headers": 1}


def test_a_body_over_the_limit_is_refused_before_or_while_it_is_read(bounded):
    base, counts = bounded
    # declared too large: answered at once, not one body byte read (none was sent)
    status, headers, body = _exchange(base, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 162529280\r\n\r\n")
    assert status == 413 and headers["connection"] == "close"
    assert orjson.loads(body) == {"error": "request body (162529280 bytes) is larger than the limit of 100000 bytes",
                                  "limit": "max_body_bytes", "max": 100_000}
    # chunked, no length: counted as it streams, refused once past the limit, the rest never read
    chunk = b"%x\r\n%s\r\n" % (64 << 10, b"a" * (64 << 10))
    status, _, body = _exchange(base, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk * 2400)
    assert status == 413 and orjson.loads(body)["limit"] == "max_body_bytes"
    status, _, body = _exchange(base, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"a" * 100_000)
    assert (status, body) == (200, b"100000")
    assert counts.snapshot() == {"max_body_bytes": 2}


def test_slow_headers_and_slow_bodies_time_out(bounded):
    base, counts = bounded
    # a slow loris: headers that never end get 408 once the header timeout passes (the read waits for it)
    status, _, body = _exchange(base, b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: a")
    assert status == 408 and orjson.loads(body) == {
        "error": "request line and headers did not arrive within 1 s", "limit": "header_timeout_seconds", "max": 1}
    status, _, body = _exchange(base, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
    assert status == 408 and orjson.loads(body)["limit"] == "body_timeout_seconds"
    status, _, _ = _exchange(base, b"")  # a connection that sends nothing is closed without an answer
    assert status is None
    assert counts.snapshot() == {"header_timeout_seconds": 1, "body_timeout_seconds": 1}


# -- the serving app -------------------------------------------------------------------------------


def _instance(row: dict, **changes) -> dict:
    return {**row, **changes}


@pytest.fixture
def serving(models_dir, serve):
    """Serving on a real socket as build_server runs it; yields (base, app, logger)."""
    settings = Settings(kafka_bootstrap_servers=UNREACHABLE)
    logger = PredictionLogger(settings)  # not started: queued records stay countable
    app = create_app(settings, ModelRegistry(models_dir), logger)
    protocol = bounded_protocol(RequestLimits.from_settings(settings), app.state.metrics.rejections)
    with serve(app, http=protocol, log_config=None) as base:  # uvicorn's own loggers propagate to caplog
        yield base, app, logger
    logger.close(timeout=0)


def _metric(base: str, name: str, **labels) -> float:
    """One sample of ``name`` with ``labels`` from ``base``'s /metrics (0 when absent)."""
    for line in httpx.get(base + "/metrics").text.splitlines():
        m = re.fullmatch(rf"{re.escape(name)}(?:\{{(.*)\}})? (\S+)", line)
        if m and all(dict(re.findall(r'(\w+)="([^"]*)"', m.group(1) or "")).get(k) == v for k, v in labels.items()):
            return float(m.group(2))
    return 0.0


def test_serving_answers_each_limit_with_413_naming_it_and_logs_nothing(serving, raw_rows):
    base, app, logger = serving
    row = raw_rows[0]
    cases = [
        (orjson.dumps({"instances": [row] * 10_001}), "max_instances", 10_000),
        (orjson.dumps({"inputs": {k: [v] * 10_001 for k, v in row.items()}}), "max_instances", 10_000),
        (b'{"instances": [{"temp": ' + b"[" * 40 + b"1" + b"]" * 40 + b"}]}", "max_json_depth", 32),
        (b'{"instances": [' + b" " * (9 << 20) + b"]}", "max_body_bytes", 8 << 20),
    ]
    with httpx.Client(timeout=60) as client:
        for body, limit, maximum in cases:
            r = client.post(base + PREDICT, content=body, headers={"Content-Type": "application/json"})
            assert r.status_code == 413, (limit, r.text)
            assert (r.json()["limit"], r.json()["max"]) == (limit, maximum)
        assert client.post(base + PREDICT, json={"instances": [row] * 3}).status_code == 200
    assert logger.stats().enqueued == 1  # only the good request
    v = app.state.registry.versions("bikeshare")[-1]
    # the declared length was refused before the request reached a model: counted by limit only
    assert _metric(base, "skewwatch_serving_requests_total", model="bikeshare", version=v, code="413") == 3
    assert _metric(base, "skewwatch_serving_rejected_total", limit="max_instances") == 2
    assert _metric(base, "skewwatch_serving_rejected_total", limit="max_json_depth") == 1
    assert _metric(base, "skewwatch_serving_rejected_total", limit="max_body_bytes") == 1


def test_a_client_that_leaves_is_499_without_an_error_traceback(serving, raw_rows, caplog, wait_until):
    base, app, _ = serving
    v = app.state.registry.versions("bikeshare")[-1]
    body = orjson.dumps({"instances": raw_rows[:20]})
    with caplog.at_level("INFO"):
        host, port = base.removeprefix("http://").rsplit(":", 1)
        with socket.create_connection((host, int(port))) as sock:  # half a body, then gone
            sock.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                         % (PREDICT.encode(), len(body), body[: len(body) // 2]))
        wait_until(lambda: _metric(base, "skewwatch_serving_requests_total", model="bikeshare", version=v,
                                   code="499") == 1, 30, "the disconnect to be counted as 499")
    assert _metric(base, "skewwatch_serving_requests_total", model="bikeshare", version=v, code="500") == 0
    assert [r.getMessage() for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")] == []


# -- memory: a serving process refusing huge bodies gives nothing lasting ------------------------------

SERVER = (
    "import logging; logging.basicConfig(level=logging.WARNING); "
    "from monitor.settings import load_settings; from serving.server import run; run(load_settings())"
)


def _rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_rejected_bodies_leave_no_memory_behind_in_a_serving_process(models_dir, raw_rows, tmp_path, wait_until):
    from skewwatch.broker import free_port

    port = free_port()
    env = {**os.environ, "SKEWWATCH_MODELS_DIR": str(models_dir), "SKEWWATCH_SERVE_PORT": str(port),
           "KAFKA_BOOTSTRAP_SERVERS": UNREACHABLE}
    log = tmp_path / "serve.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen([sys.executable, "-c", SERVER], env=env, stdout=fh, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    good = {"instances": raw_rows[:5]}

    def up() -> bool:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            return httpx.post(base + PREDICT, json=good, timeout=5).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(up, 180, "serving to answer")
        for _ in range(20):  # warm: the first requests allocate what every request reuses
            httpx.post(base + PREDICT, json=good, timeout=30)
        at_rest = _rss_mb(proc.pid)
        chunk = b" " * (1 << 20)

        def huge() -> int:  # 155 MB streamed without a length, as in the issue
            body = iter([b'{"instances": ['] + [chunk] * 155 + [b"]}"])
            return httpx.post(base + PREDICT, content=body, timeout=60).status_code

        results: list[int] = []
        threads = [threading.Thread(target=lambda: results.append(huge())) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        declared = httpx.post(base + PREDICT, content=b" " * (155 << 20), timeout=60)  # with a Content-Length
        after = _rss_mb(proc.pid)
        assert results == [413] * 3 and declared.status_code == 413
        assert httpx.post(base + PREDICT, json=good, timeout=30).status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    # the issue measured +990 MB for one such body and +3.8 GB for three; now at most what 3 x 8 MiB could take
    assert after - at_rest < 64, (at_rest, after)


def test_a_compressed_body_is_415_unread_and_a_bomb_costs_serving_nothing(serving, raw_rows):
    import gzip

    base, _, logger = serving
    z = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    bomb = b"".join(z.compress(bytes(1 << 20)) for _ in range(64)) + z.flush()  # 64 MiB of zeros
    for body in (bomb, gzip.compress(orjson.dumps({"instances": raw_rows[:2]}))):
        r = httpx.post(base + PREDICT, content=body, headers={"Content-Encoding": "gzip"}, timeout=30)
        assert r.status_code == 415 and r.json()["field"] == "Content-Encoding"
        assert r.headers["connection"] == "close"
    assert logger.stats().enqueued == 0
