"""The sidecar proxy in front of real upstreams over real sockets (uvicorn in threads)."""

import gzip
import re
import socket
import subprocess
import sys

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient

from monitor.bundle import resolve_bundle
from monitor.errors import ConfigError
from monitor.record import decode_record
from monitor.settings import Settings
from serving.app import create_app
from serving.models import ModelRegistry
from serving.publisher import PredictionLogger
from serving.sidecar import create_sidecar_app

UNREACHABLE = "127.0.0.1:1"
PLAIN = {"server_header": False, "date_header": False}  # how build_sidecar_server configures uvicorn


def _logger(**settings) -> PredictionLogger:
    return PredictionLogger(Settings(**{"kafka_bootstrap_servers": UNREACHABLE, **settings}))


def _metric(text: str, name: str, **labels) -> float:
    for line in text.splitlines():
        m = re.fullmatch(rf"{re.escape(name)}(?:\{{(.*)\}})? (\S+)", line)
        if m and all(dict(re.findall(r'(\w+)="([^"]*)"', m.group(1) or "")).get(k) == v for k, v in labels.items()):
            return float(m.group(2))
    return 0.0


def _headers(response: httpx.Response, *skip: str) -> list[tuple[str, str]]:
    return [(k, v) for k, v in response.headers.multi_items() if k not in ("date", *skip)]


@pytest.fixture(scope="module")
def bundle(models_dir):
    return resolve_bundle(models_dir, "bikeshare")


@pytest.fixture(scope="module")
def upstream(models_dir, serve):
    """Our serving app on a real socket (its own log goes nowhere: an unreachable broker)."""
    logger = _logger()
    with serve(create_app(Settings(), ModelRegistry(models_dir), logger)) as base:
        yield base
    logger.close(timeout=0)


def _columns(rows):
    return {k: [r[k] for r in rows] for k in rows[0]}


# -- transparent, and the same records as the service itself ----------------------------------


@pytest.mark.broker
def test_responses_are_byte_identical_and_the_records_equal_the_services_own(models_dir, bundle, raw_rows, tmp_path,
                                                                           serve, wait_until):
    from kafka import KafkaConsumer

    from skewwatch.broker import EmbeddedBroker, ensure_topic

    v = bundle.model_version
    when = {"X-Event-Time": "2012-03-01T08:00:00.250+01:00"}
    exchanges = [  # (method, path, body, headers, logged by the sidecar)
        ("POST", "/v1/models/bikeshare:predict", {"instances": raw_rows[-3:]}, {**when, "X-Request-Id": "rows"}, True),
        ("POST", "/v1/models/bikeshare%3Apredict", {"inputs": _columns(raw_rows[:5])}, {**when, "X-Request-Id": "cols"}, True),
        ("POST", f"/v1/models/bikeshare/versions/{v}:predict", {"instances": raw_rows[5:6]}, {**when, "X-Request-Id": "pin"}, True),
        ("POST", "/v1/models/bikeshare:predict", {"instances": raw_rows[:1]}, {"X-Request-Id": "now"}, True),
        ("POST", "/v1/models/bikeshare:predict", {"instances": [{"temp": "warm"}]}, {"X-Request-Id": "bad"}, False),
        ("POST", "/v1/models/bikeshare:predict", {"instances": raw_rows[:1]}, {"X-Event-Time": "yesterday"}, False),
        ("POST", "/v1/models/nope:predict", {"instances": raw_rows[:1]}, {"X-Request-Id": "nope"}, False),
        ("POST", "/v1/models/bikeshare:classify", {"instances": raw_rows[:1]}, {}, False),
        ("GET", "/v1/models/bikeshare", None, {}, False),
        ("GET", f"/v1/models/bikeshare/versions/{v}?x=1", None, {}, False),
        ("GET", "/v1/models/bikeshare/metadata", None, {}, False),
        ("GET", "/v1/models", None, {}, False),
        ("DELETE", "/v1/models", None, {}, False),
    ]
    with EmbeddedBroker(log_path=tmp_path / "tansu.log") as broker:
        for topic in ("direct", "tee"):
            ensure_topic(broker.bootstrap_servers, topic, partitions=1)
        direct = Settings(kafka_bootstrap_servers=broker.bootstrap_servers, topic="direct")
        tee = Settings(kafka_bootstrap_servers=broker.bootstrap_servers, topic="tee")
        with PredictionLogger(direct) as service_log, PredictionLogger(tee) as sidecar_log:
            with serve(create_app(direct, ModelRegistry(models_dir), service_log)) as up:
                with serve(create_sidecar_app(up, sidecar_log), **PLAIN) as side:
                    for method, path, body, headers, _ in exchanges:
                        content = None if body is None else orjson.dumps(body)
                        a = httpx.request(method, up + path, content=content, headers=headers, timeout=30)
                        b = httpx.request(method, side + path, content=content, headers=headers, timeout=30)
                        assert (b.status_code, b.content) == (a.status_code, a.content), path
                        skip = () if "X-Request-Id" in headers else ("x-request-id",)  # generated per call
                        assert _headers(b, *skip) == _headers(a, *skip), path
                        assert b.headers.get("server") == "uvicorn"  # the upstream's, once
                    logged = sum(e[-1] for e in exchanges)
                    # every good predict reached the service twice (direct and through the sidecar)
                    wait_until(lambda: service_log.stats().sent == 2 * logged, 30, "the service's records")
                    wait_until(lambda: sidecar_log.stats().sent == logged, 30, "the sidecar's records")
                    metrics = httpx.get(side + "/_skewwatch/metrics").text
                    health = httpx.get(side + "/_skewwatch/healthz").json()
        records = {}
        for topic in ("direct", "tee"):
            consumer = KafkaConsumer(topic, bootstrap_servers=broker.bootstrap_servers, group_id=topic,
                                     auto_offset_reset="earliest", max_poll_interval_ms=6000, session_timeout_ms=6000)
            got = records[topic] = []
            want = 2 * logged if topic == "direct" else logged
            wait_until(lambda: got.extend(decode_record(m.value) for ms in consumer.poll(200).values() for m in ms)
                       or len(got) >= want, 30, f"{want} records on {topic}")
            consumer.close()
    assert health["status"] == "ok" and health["prediction_log"]["connected"] is True
    assert _metric(metrics, "skewwatch_sidecar_records_total", outcome="queued") == logged
    assert _metric(metrics, "skewwatch_sidecar_requests_total", kind="predict", code="400") == 2
    assert _metric(metrics, "skewwatch_sidecar_requests_total", kind="predict", code="404") == 1
    tee_records = {r.request_id: r for r in records["tee"]}
    assert set(tee_records) == {"rows", "cols", "pin", "now"}
    service = {}
    for r in records["direct"]:
        service.setdefault(r.request_id, []).append(r)
    for rid in ("rows", "cols", "pin"):
        assert service[rid] == [tee_records[rid]] * 2  # the sidecar's record is the service's own
    assert tee_records["rows"].instances() == raw_rows[-3:]  # raw: nulls stay null
    assert tee_records["cols"].instances() == raw_rows[:5]  # columns pivoted into rows
    assert tee_records["pin"].model_version == v
    now_direct, now_tee = service["now"][1], tee_records["now"]  # the second is the sidecar's call
    assert (now_tee.columns, now_tee.outputs, now_tee.model_version) == (
        now_direct.columns, now_direct.outputs, now_direct.model_version)
    assert abs(now_tee.event_time_ms - now_direct.event_time_ms) < 60_000


# -- forwarding fidelity ----------------------------------------------------------------------


async def _echo(scope, receive, send):
    """An upstream that answers 201 with what it received, two cookies and a header of its own."""
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    payload = {
        "method": scope["method"],
        "raw_path": scope["raw_path"].decode(),
        "query": scope["query_string"].decode(),
        "headers": [[k.decode(), v.decode()] for k, v in scope["headers"]],
        "body": body.hex(),
    }
    headers = [(b"content-type", b"application/json"), (b"set-cookie", b"a=1"), (b"set-cookie", b"b=2"),
               (b"x-upstream", b"echo")]
    await send({"type": "http.response.start", "status": 201, "headers": headers})
    await send({"type": "http.response.body", "body": orjson.dumps(payload)})


def test_method_raw_path_query_headers_and_body_are_forwarded_unchanged(serve):
    logger = _logger()
    try:
        with serve(_echo, lifespan="off", **PLAIN) as up, serve(create_sidecar_app(up + "/base/", logger), **PLAIN) as side:
            port = up.rsplit(":", 1)[1]
            with httpx.Client(timeout=30) as client:
                r = client.request(
                    "PATCH", side + "/v1/a%2Fb%3Ax/c?q=1%2F2&q=3", content=b"\x00binary\xff",
                    headers={"X-Custom": "one", "Connection": "keep-alive, X-Hop", "X-Hop": "secret",
                             "User-Agent": "skewwatch-test/1"},
                )
                echoed = client.post(side + "/v1/models/echo:predict", json={"instances": [{"a": 1}]}).json()
                metrics = client.get(side + "/_skewwatch/metrics").text
    finally:
        logger.close(timeout=0)
    assert r.status_code == 201
    assert r.headers.get_list("set-cookie") == ["a=1", "b=2"] and r.headers["x-upstream"] == "echo"
    assert "server" not in r.headers and "date" not in r.headers  # the sidecar adds none of its own
    got = r.json()
    assert (got["method"], got["raw_path"], got["query"]) == ("PATCH", "/base/v1/a%2Fb%3Ax/c", "q=1%2F2&q=3")
    assert bytes.fromhex(got["body"]) == b"\x00binary\xff"
    headers = dict(got["headers"])
    assert headers["x-custom"] == "one" and headers["user-agent"] == "skewwatch-test/1"
    assert headers["host"] == f"127.0.0.1:{port}"
    assert "x-hop" not in headers  # named by Connection: hop-by-hop, not forwarded
    assert echoed["raw_path"] == "/base/v1/models/echo:predict"
    assert "cookie" not in dict(echoed["headers"])  # the upstream's cookies are not kept by the proxy
    # a 2xx predict whose answer has no predictions is proxied, counted, and not logged
    assert _metric(metrics, "skewwatch_sidecar_records_total", outcome="not_loggable") == 1
    assert _metric(metrics, "skewwatch_sidecar_not_loggable_total", field="response_body") == 1
    assert logger.stats().enqueued == 0


# -- failures -----------------------------------------------------------------------------------


def test_an_upstream_that_is_down_answers_502_and_a_silent_one_504(raw_rows):
    from skewwatch.broker import free_port

    logger = _logger()
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts connections (backlog) and never answers
    try:
        down = create_sidecar_app(f"http://127.0.0.1:{free_port()}", logger)
        with TestClient(down) as c:
            r = c.post("/v1/models/bikeshare:predict", json={"instances": raw_rows[:1]})
            assert r.status_code == 502 and "unreachable" in r.json()["error"]
            assert c.get("/v1/models").status_code == 502
            assert c.get("/_skewwatch/healthz").status_code == 200
        slow = create_sidecar_app(f"http://127.0.0.1:{silent.getsockname()[1]}", logger, timeout_s=0.5)
        with TestClient(slow) as c:
            r = c.post("/v1/models/bikeshare:predict", json={"instances": raw_rows[:1]})
            assert r.status_code == 504 and "timed out" in r.json()["error"]
    finally:
        silent.close()
        logger.close(timeout=0)
    assert logger.stats().enqueued == 0


@pytest.mark.parametrize("upstream", ["127.0.0.1:8500", "ftp://host/", "http://", "http://h:1/?q=1", ""])
def test_a_bad_upstream_url_is_a_config_error(upstream):
    with pytest.raises(ConfigError) as info:
        create_sidecar_app(upstream, _logger())
    assert info.value.field == "upstream"


def test_no_broker_and_a_full_queue_never_fail_a_proxied_request(upstream, raw_rows, serve):
    logger = _logger(log_queue_size=2).start()
    try:
        with serve(create_sidecar_app(upstream, logger), **PLAIN) as side, httpx.Client(base_url=side, timeout=30) as c:
            codes = [c.post("/v1/models/bikeshare:predict", json={"instances": raw_rows[i:i + 2]}).status_code
                     for i in range(5)]
            assert c.post("/v1/models/bikeshare:predict", json={"inputs": {"temp": [1.0]}}).status_code == 400
            metrics = c.get("/_skewwatch/metrics").text
    finally:
        logger.close(timeout=0)
    assert codes == [200] * 5
    assert _metric(metrics, "skewwatch_sidecar_records_total", outcome="queued") == 2
    assert _metric(metrics, "skewwatch_sidecar_records_total", outcome="dropped") == 3
    assert _metric(metrics, "skewwatch_sidecar_requests_total", kind="predict", code="400") == 1
    assert _metric(metrics, "skewwatch_prediction_log_dropped_queue_full_total") == 3
    assert _metric(metrics, "skewwatch_prediction_log_connected") == 0


def test_sampling_happens_before_parsing_and_follows_the_request_id(upstream, raw_rows, serve):
    from serving.publisher import keep_in_sample

    logger = _logger(log_sample_rate=0.5, log_queue_size=1000)
    ids = [f"s-{i}" for i in range(40)]
    try:
        with serve(create_sidecar_app(upstream, logger), **PLAIN) as side, httpx.Client(base_url=side, timeout=30) as c:
            for i, rid in enumerate(ids):
                c.post("/v1/models/bikeshare:predict", json={"instances": [raw_rows[i]]}, headers={"X-Request-Id": rid})
            metrics = c.get("/_skewwatch/metrics").text
    finally:
        logger.close(timeout=0)
    kept = sum(keep_in_sample(rid, 0.5) for rid in ids)
    assert 0 < kept < len(ids)
    assert _metric(metrics, "skewwatch_sidecar_records_total", outcome="queued") == kept
    assert _metric(metrics, "skewwatch_sidecar_records_total", outcome="sampled_out") == len(ids) - kept


def test_the_sidecar_process_never_imports_tensorflow():
    code = ("import sys, serving.sidecar; "
            "heavy = sorted(m for m in ('tensorflow', 'keras', 'tensorflow_data_validation') if m in sys.modules); "
            "print(heavy); sys.exit(1 if heavy else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_run_serves_until_sigterm_and_closes_the_logger(upstream, raw_rows, tmp_path, wait_until):
    import os
    import signal

    from skewwatch.broker import free_port

    port = free_port()
    script = ("import logging, sys; logging.basicConfig(level=logging.INFO); from monitor.settings import load_settings; "
              "from serving.sidecar import run; run(load_settings(), sys.argv[1])")
    env = {**os.environ, "SKEWWATCH_SERVE_PORT": str(port), "KAFKA_BOOTSTRAP_SERVERS": UNREACHABLE}
    err = tmp_path / "sidecar.log"
    with err.open("wb") as fh:
        proc = subprocess.Popen([sys.executable, "-c", script, upstream], env=env, stdout=fh, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert proc.poll() is None, err.read_text()[-3000:]
        try:
            return httpx.get(base + "/_skewwatch/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(up, 60, "the sidecar to listen")
        r = httpx.post(base + "/v1/models/bikeshare:predict", json={"instances": raw_rows[:2]}, timeout=30)
        assert r.status_code == 200 and len(r.json()["predictions"]) == 2
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    log = err.read_text()
    assert "prediction log closed: 0 sent, 0 send errors, 0 dropped (queue full), 1 unsent at close" in log


# -- big and streamed bodies, routing around the fast path --------------------------------------

BIG = 30_000  # predictions: a response body of a few hundred KiB, well above what is read in one go


async def _big_predict(scope, receive, send):
    """A predict upstream answering BIG predictions, chunked (no length) under /chunked/, else with a length."""
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    body = orjson.dumps({"predictions": [i + 0.5 for i in range(BIG)], "model_version": "7"})
    if scope["path"].startswith("/chunked/"):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        for i in range(0, len(body), 10_000):
            await send({"type": "http.response.body", "body": body[i:i + 10_000], "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    else:
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


@pytest.mark.parametrize("base", ["", "/chunked"])
def test_a_big_response_is_streamed_back_intact_and_teed_once(serve, wait_until, base):
    logger = _logger(log_queue_size=100)  # not started: a kept record waits in the queue
    request = {"instances": [{"x": i} for i in range(BIG)]}
    settings = Settings(max_instances=BIG)  # over the default of 10,000
    try:
        with serve(_big_predict, lifespan="off", **PLAIN) as up, \
                serve(create_sidecar_app(up + base, logger, settings=settings), **PLAIN) as side:
            with httpx.Client(timeout=30) as client:
                direct = client.post(up + base + "/v1/models/big:predict", json=request)
                proxied = client.post(side + "/v1/models/big:predict", json=request, headers={"X-Request-Id": "big"})
                # the record is built after the last byte went out (in the thread pool: a big exchange)
                wait_until(lambda: logger.stats().enqueued >= 1, 30, "the big exchange's record")
                metrics = client.get(side + "/_skewwatch/metrics").text
    finally:
        logger.close(timeout=0)
    assert proxied.status_code == 200 and len(direct.content) > 200_000
    assert proxied.content == direct.content
    assert proxied.headers.get("content-length") == direct.headers.get("content-length")  # None when chunked
    assert _metric(metrics, "skewwatch_sidecar_records_total", outcome="queued") == 1
    assert _metric(metrics, "skewwatch_sidecar_records_total", outcome="not_loggable") == 0
    assert logger.stats().enqueued == 1


def test_other_methods_get_405_and_only_get_reaches_the_admin_endpoints(serve):
    logger = _logger()
    try:
        with serve(_echo, lifespan="off", **PLAIN) as up, serve(create_sidecar_app(up, logger), **PLAIN) as side:
            with httpx.Client(timeout=30) as client:
                trace = client.request("TRACE", side + "/v1/models")
                posted = client.post(side + "/_skewwatch/healthz", content=b"x")
                head = client.head(side + "/v1/models")
                health = client.get(side + "/_skewwatch/healthz")
    finally:
        logger.close(timeout=0)
    assert trace.status_code == 405 and "GET" in trace.headers["allow"]
    assert posted.status_code == 201 and posted.json()["raw_path"] == "/_skewwatch/healthz"  # proxied upstream
    assert head.status_code == 201 and head.content == b""
    assert health.json()["status"] == "ok"


async def _empty_chunked_predict(scope, receive, send):
    """A predict upstream that reads the request and answers 200 with an empty chunked body."""
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b""})


def test_a_request_body_over_the_logging_limit_is_too_large_even_when_the_response_streams_no_bytes(serve):
    logger = _logger()
    request = {"instances": [{"x": i} for i in range(2000)]}  # ~20 KB, over the 1 KB limit on its own
    try:
        with serve(_empty_chunked_predict, lifespan="off", **PLAIN) as up, \
                serve(create_sidecar_app(up, logger, max_logged_bytes=1024), **PLAIN) as side:
            with httpx.Client(timeout=30) as client:
                r = client.post(side + "/v1/models/m:predict", json=request, headers={"X-Request-Id": "big"})
                metrics = client.get(side + "/_skewwatch/metrics").text
    finally:
        logger.close(timeout=0)
    assert r.status_code == 200 and r.content == b""
    assert _metric(metrics, "skewwatch_sidecar_records_total", outcome="too_large") == 1
    assert _metric(metrics, "skewwatch_sidecar_records_total", outcome="not_loggable") == 0


# -- hostile input: limits, bombs, records that always fit, disconnects ------------------------------------


class _Upstream:
    """A predict upstream: one prediction per request instance (``width`` floats each), requests counted.

    Under ``/bomb/`` (a sidecar whose upstream URL ends in ``/bomb``) it answers ``bomb``, gzip-encoded.
    """

    def __init__(self, *, width: int = 1, bomb: bytes = b"") -> None:
        self.width, self.bomb, self.requests = width, bomb, 0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return
        self.requests += 1
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        if scope["path"].startswith("/bomb/"):
            headers = [(b"content-type", b"application/json"), (b"content-encoding", b"gzip"),
                       (b"content-length", str(len(self.bomb)).encode())]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": self.bomb})
            return
        if (b"content-encoding", b"gzip") in scope["headers"]:  # forwarded as the client sent it
            body = gzip.decompress(body)
        n = len(orjson.loads(body)["instances"])
        one = (lambda i: [i + j / 8 for j in range(self.width)]) if self.width > 1 else (lambda i: i + 0.5)
        answer = orjson.dumps({"predictions": [one(i) for i in range(n)], "model_version": "7"})
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": answer})


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    """About 1 MB of gzip that inflates to 1 GiB of zeros."""
    import zlib

    z = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(1 << 20)
    return b"".join(z.compress(zeros) for _ in range(1024)) + z.flush()


def _bounded_sidecar(upstream_url: str, logger: PredictionLogger, settings: Settings | None = None):
    """The sidecar app and the uvicorn options build_sidecar_server gives it (protocol limits included)."""
    from serving.limits import RejectionCounts, RequestLimits
    from serving.protocol import bounded_protocol

    settings = settings or Settings(kafka_bootstrap_servers=UNREACHABLE)
    counts = RejectionCounts()
    app = create_sidecar_app(upstream_url, logger, settings=settings, rejections=counts)
    return app, {**PLAIN, "http": bounded_protocol(RequestLimits.from_settings(settings), counts), "log_config": None}


def test_a_request_bomb_is_413_and_never_reaches_the_upstream(serve, gzip_bomb):
    upstream = _Upstream()
    logger = _logger()
    try:
        with serve(upstream, lifespan="off", **PLAIN) as up:
            app, options = _bounded_sidecar(up, logger)
            with serve(app, **options) as side, httpx.Client(timeout=60) as client:
                headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
                bomb = client.post(side + "/v1/models/m:predict", content=gzip_bomb, headers=headers)
                plain = client.post(side + "/v1/models/m:predict", content=gzip.compress(b'{"instances": [{"a": 1}]}'),
                                    headers=headers)
                metrics = client.get(side + "/_skewwatch/metrics").text
    finally:
        logger.close(timeout=0)
    assert bomb.status_code == 413 and bomb.json()["limit"] == "max_decompression_ratio"
    assert plain.status_code == 200 and upstream.requests == 1  # only the ordinary compressed request went on
    assert _metric(metrics, "skewwatch_sidecar_rejected_total", limit="max_decompression_ratio") == 1
    assert _metric(metrics, "skewwatch_sidecar_requests_total", kind="predict", code="413") == 1
    assert _metric(metrics, "skewwatch_sidecar_records_total", outcome="queued") == 1


def _settled(client: httpx.Client, side: str, wait_until) -> str:
    """The sidecar's metrics once the tee decided what became of the last exchange (after its response)."""
    def text() -> str:
        return client.get(side + "/_skewwatch/metrics").text

    wait_until(lambda: sum(_metric(text(), "skewwatch_sidecar_records_total", outcome=o)
                           for o in ("queued", "dropped", "not_loggable", "too_large", "incomplete")) >= 1,
               30, "the tee to decide")
    return text()


def test_a_response_bomb_is_passed_through_unchanged_and_not_logged(serve, gzip_bomb, caplog, wait_until):
    upstream = _Upstream(bomb=gzip_bomb)
    logger = _logger()
    try:
        with serve(upstream, lifespan="off", **PLAIN) as up:
            app, options = _bounded_sidecar(up + "/bomb", logger)
            with serve(app, **options) as side, httpx.Client(timeout=60) as client, caplog.at_level("INFO"):
                with client.stream("POST", side + "/v1/models/m:predict", json={"instances": [{"a": 1}]}) as r:
                    raw = b"".join(r.iter_raw())  # as sent: not inflated here either
                metrics = _settled(client, side, wait_until)
    finally:
        logger.close(timeout=0)
    assert r.status_code == 200 and r.headers["content-encoding"] == "gzip" and raw == gzip_bomb
    assert _metric(metrics, "skewwatch_sidecar_records_total", outcome="too_large") == 1
    assert _metric(metrics, "skewwatch_sidecar_over_limit_total", limit="max_decompression_ratio") == 1
    assert logger.stats().enqueued == 0
    assert [rec.getMessage() for rec in caplog.records if rec.levelname == "ERROR"] == []


def test_headers_and_bodies_over_the_limits_are_refused_by_the_sidecar(serve):
    upstream = _Upstream()
    logger = _logger()
    try:
        with serve(upstream, lifespan="off", **PLAIN) as up:
            app, options = _bounded_sidecar(up, logger)
            with serve(app, **options) as side, httpx.Client(timeout=60) as client:
                big_header = client.get(side + "/v1/models", headers={"X-Big": "a" * (1 << 20)})
                big_body = client.post(side + "/v1/models/m:predict", content=b" " * (9 << 20))
                deep = client.post(side + "/v1/models/m:predict",
                                   content=b'{"instances": [{"a": ' + b"[" * 40 + b"]" * 40 + b"}]}")
                metrics = client.get(side + "/_skewwatch/metrics").text
    finally:
        logger.close(timeout=0)
    assert big_header.status_code == 431 and big_header.json()["limit"] == "max_header_bytes"
    assert big_body.status_code == 413 and big_body.json()["limit"] == "max_body_bytes"
    assert deep.status_code == 413 and deep.json()["limit"] == "max_json_depth"
    assert upstream.requests == 0
    for limit in ("max_header_bytes", "max_body_bytes", "max_json_depth"):
        assert _metric(metrics, "skewwatch_sidecar_rejected_total", limit=limit) == 1


def test_a_client_that_leaves_mid_body_is_499_without_an_error_traceback(serve, caplog, wait_until):
    upstream = _Upstream()
    logger = _logger()
    try:
        with serve(upstream, lifespan="off", **PLAIN) as up:
            app, options = _bounded_sidecar(up, logger)
            with serve(app, **options) as side, caplog.at_level("INFO"):
                host, port = side.removeprefix("http://").rsplit(":", 1)
                with socket.create_connection((host, int(port))) as sock:
                    sock.sendall(b"POST /v1/models/m:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"inst")
                wait_until(lambda: _metric(httpx.get(side + "/_skewwatch/metrics").text, "skewwatch_sidecar_requests_total",
                                           kind="predict", code="499") == 1, 30, "the disconnect to be counted as 499")
    finally:
        logger.close(timeout=0)
    assert upstream.requests == 0
    assert [rec.getMessage() for rec in caplog.records if rec.levelname in ("ERROR", "CRITICAL")] == []


@pytest.mark.parametrize(
    "request_body, headers, path, counter, label",
    [
        ({"instances": [{"a": 1}]}, {"X-Event-Time": "9999-12-31T23:59:59Z"}, "", "skewwatch_sidecar_not_loggable_total",
         {"field": "X-Event-Time"}),
        ({"instances": [{"a": 1}]}, {"X-Event-Time": "1970-01-01T00:00:00Z"}, "", "skewwatch_sidecar_not_loggable_total",
         {"field": "X-Event-Time"}),
        ({"instances": [{f"f{i}": 1} for i in range(3000)]}, {}, "", "skewwatch_sidecar_not_loggable_total",
         {"field": "instances"}),  # 3,000 rows x 3,000 names: 9 million cells from 3,000 values
        ({"instances": [{"a": 1}]}, {}, "/bomb", "skewwatch_sidecar_over_limit_total", {"limit": "max_json_depth"}),
    ],
)
def test_exchanges_that_cannot_be_bounded_are_proxied_untouched_and_counted(serve, wait_until, request_body, headers,
                                                                           path, counter, label):
    deep = b'{"predictions": [' + b"[" * 300 + b"1" + b"]" * 300 + b"]}"  # deeper than orjson writes
    upstream = _Upstream(bomb=gzip.compress(deep))
    logger = _logger()
    try:
        with serve(upstream, lifespan="off", **PLAIN) as up:
            app, options = _bounded_sidecar(up + path, logger)
            with serve(app, **options) as side, httpx.Client(timeout=60) as client:
                direct = client.post(up + path + "/v1/models/m:predict", json=request_body, headers=headers)
                proxied = client.post(side + "/v1/models/m:predict", json=request_body, headers=headers)
                metrics = _settled(client, side, wait_until)
    finally:
        logger.close(timeout=0)
    assert proxied.status_code == 200 and proxied.content == direct.content
    assert _metric(metrics, counter, **label) == 1
    assert logger.stats().enqueued == 0


@pytest.mark.broker
def test_a_15_mb_exchange_reaches_kafka_whole_in_parts(serve, tmp_path, wait_until, consume_parts):
    from skewwatch.broker import EmbeddedBroker, ensure_topic

    instances = [{"id": i, "text": f"{i:06d} " + "t" * 480} for i in range(10_000)]  # 5 MB of request
    upstream = _Upstream(width=125)  # 10,000 x 125 floats: 10 MB of response
    with EmbeddedBroker(log_path=tmp_path / "tansu.log") as broker:
        ensure_topic(broker.bootstrap_servers, "tee", partitions=3)
        settings = Settings(kafka_bootstrap_servers=broker.bootstrap_servers, topic="tee", log_attribute_headers="X-Region")
        with PredictionLogger(settings) as logger, serve(upstream, lifespan="off", **PLAIN) as up:
            app, options = _bounded_sidecar(up, logger, settings)
            with serve(app, **options) as side:
                r = httpx.post(side + "/v1/models/wide:predict", json={"instances": instances}, timeout=120,
                               headers={"X-Request-Id": "fifteen", "X-Region": "eu-west"})
                assert r.status_code == 200
                assert 15_000_000 < len(orjson.dumps({"instances": instances})) + len(r.content) < 16 << 20
                wait_until(lambda: logger.stats().sent == 1, 120, "the exchange's parts to be acknowledged")
        assert logger.stats().send_errors == 0
        got = consume_parts(broker.bootstrap_servers, "tee")
    parts = sorted((decode_record(m.value) for m in got), key=lambda p: p.part)
    assert len(parts) >= 15 and [p.part for p in parts] == list(range(len(parts)))
    assert {p.request_id for p in parts} == {"fifteen"} and {m.key for m in got} == {b"fifteen"}
    assert {p.attributes["x-region"] for p in parts} == {"eu-west"}
    assert sum(p.rows for p in parts) == 10_000
    assert [row for p in parts for row in p.instances()] == instances
    predictions = r.json()["predictions"]
    assert [p.outputs["prediction[124]"] for p in parts] and \
        [y for p in parts for y in p.outputs["prediction[124]"]] == [row[124] for row in predictions]
