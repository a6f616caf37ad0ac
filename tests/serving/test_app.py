"""The REST app against a real bundle trained by the trainer, and against an empty registry."""

import math
import re
import uuid
from datetime import datetime, timezone

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from monitor.bundle import resolve_bundle
from monitor.record import decode_record
from monitor.settings import Settings
from monitor.timeutil import from_datetime, parse_instant
from serving.app import create_app
from serving.models import ModelRegistry
from serving.publisher import PredictionLogger, keep_in_sample

UNREACHABLE = "127.0.0.1:1"


def _logger(**settings) -> PredictionLogger:
    s = Settings(**{"kafka_bootstrap_servers": UNREACHABLE, **settings})
    return PredictionLogger(s, connect_timeout_s=0.3, backoff_initial_s=0.05, backoff_max_s=0.3).start()


def _client(models_dir, logger: PredictionLogger) -> TestClient:
    registry = ModelRegistry(models_dir, rescan_seconds=0)
    return TestClient(create_app(Settings(kafka_bootstrap_servers=UNREACHABLE), registry, logger))


@pytest.fixture(scope="module")
def bundle(models_dir):
    return resolve_bundle(models_dir, "bikeshare")


@pytest.fixture(scope="module")
def client(models_dir):
    logger = _logger(log_queue_size=100_000)
    with _client(models_dir, logger) as c:
        yield c
    logger.close(timeout=0)


@pytest.fixture(scope="module")
def expected(bundle, raw_rows):
    """The trainer's own predictions on the raw rows, from an independently loaded model."""
    import keras

    from trainer.inputs import columns_from_instances
    from trainer.model import predict

    model = keras.saving.load_model(bundle.file("model"))
    return predict(model, columns_from_instances(raw_rows, bundle.specs), bundle.specs)


# -- predictions --------------------------------------------------------------------------


def test_predict_latest_equals_the_trainers_predict(client, bundle, raw_rows, expected):
    r = client.post("/v1/models/bikeshare:predict", json={"instances": raw_rows})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model_version"] == bundle.model_version
    assert len(body["predictions"]) == len(raw_rows)
    np.testing.assert_allclose(body["predictions"], expected, rtol=0, atol=1e-6)
    assert all(math.isfinite(p) for p in body["predictions"])
    assert len(set(body["predictions"])) > 10  # the rows differ, so must the predictions


def test_predict_pinned_version_and_an_encoded_colon_give_the_same_answer(client, bundle, raw_rows, expected):
    rows = raw_rows[:7]
    for path in (
        f"/v1/models/bikeshare/versions/{bundle.model_version}:predict",
        "/v1/models/bikeshare%3Apredict",
    ):
        r = client.post(path, json={"instances": rows})
        assert r.status_code == 200, (path, r.text)
        assert r.json()["model_version"] == bundle.model_version
        np.testing.assert_allclose(r.json()["predictions"], expected[:7], rtol=0, atol=1e-6)


def test_request_id_is_echoed_or_generated(client, raw_rows):
    r = client.post("/v1/models/bikeshare:predict", json={"instances": raw_rows[:1]}, headers={"X-Request-Id": "abc-1"})
    assert r.headers["x-request-id"] == "abc-1"
    r = client.post("/v1/models/bikeshare:predict", json={"instances": raw_rows[:1]})
    assert uuid.UUID(r.headers["x-request-id"]).version == 4


# -- client mistakes ----------------------------------------------------------------------


def _with(rows, index, **changes):
    rows = [dict(r) for r in rows]
    for key, value in changes.items():
        if value is _DROP:
            del rows[index][key]
        else:
            rows[index][key] = value
    return rows


_DROP = object()


@pytest.mark.parametrize(
    "make_body, field, instance",
    [
        (lambda rows: {"instances": _with(rows[:3], 1, temp=_DROP)}, "temp", 1),
        (lambda rows: {"instances": _with(rows[:3], 2, temp="warm")}, "temp", 2),
        (lambda rows: {"instances": _with(rows[:3], 0, hum=None)}, "hum", 0),
        (lambda rows: {"instances": _with(rows[:3], 0, hum=True)}, "hum", 0),
        (lambda rows: {"instances": _with(rows[:3], 1, season=2)}, "season", 1),
        (lambda rows: {"instances": _with(rows[:3], 2, cnt=12)}, "cnt", 2),  # the label is no feature
        (lambda rows: {"instances": _with(rows[:3], 0, casual=3)}, "casual", 0),
        (lambda rows: {"instances": []}, "instances", None),
        (lambda rows: {"instances": rows[0]}, "instances", None),
        (lambda rows: {"instances": [rows[0], "row"]}, None, 1),
        (lambda rows: {"rows": rows[:1]}, "rows", None),
        (lambda rows: [rows[0]], "body", None),
    ],
)
def test_bad_instances_are_400_naming_field_and_index(client, raw_rows, make_body, field, instance):
    before = client.app.state.logger.stats().enqueued
    r = client.post("/v1/models/bikeshare:predict", json=make_body(raw_rows))
    assert r.status_code == 400, r.text
    body = r.json()
    assert body.get("field") == field and body.get("instance") == instance
    if field is not None:
        assert repr(field) in body["error"] or field in body["error"]
    if instance is not None:
        assert f"instances[{instance}]" in body["error"]
    assert client.app.state.logger.stats().enqueued == before  # a rejected request logs nothing


@pytest.mark.parametrize("content", [b"", b"{", b"instances=1", b'{"instances": [{"temp": NaN}]}', b"\xff\xfe"])
def test_non_json_bodies_are_400_not_500(client, content):
    r = client.post("/v1/models/bikeshare:predict", content=content, headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.json()["field"] == "body"


@pytest.mark.parametrize(
    "header, value",
    [("X-Event-Time", "yesterday"), ("X-Event-Time", "2012-03-01T08:00:00"), ("X-Request-Id", "two words")],
)
def test_bad_headers_are_400_naming_the_header(client, raw_rows, header, value):
    r = client.post("/v1/models/bikeshare:predict", json={"instances": raw_rows[:1]}, headers={header: value})
    assert r.status_code == 400, r.text
    assert r.json()["field"] == header and header in r.json()["error"]


@pytest.mark.parametrize(
    "path",
    [
        "/v1/models/nope:predict",
        "/v1/models/bikeshare/versions/20000101T000000Z:predict",
        "/v1/models/bikeshare/versions/latest:predict",
        "/v1/models/bikeshare:classify",
        "/v1/models/bikeshare",
        "/v1/models/bikeshare/versions/20000101T000000Z",
    ],
)
def test_unknown_models_versions_and_verbs_are_404(client, raw_rows, path):
    r = client.post(path, json={"instances": raw_rows[:1]})
    assert r.status_code in (404, 405), r.text
    assert "error" in r.json()
    if path.endswith(":predict"):
        assert r.status_code == 404


# -- status, health, metrics --------------------------------------------------------------


def test_model_status_and_metadata(client, bundle):
    r = client.get("/v1/models/bikeshare")
    assert r.status_code == 200
    (status,) = r.json()["model_version_status"]
    assert status["version"] == bundle.model_version and status["state"] == "AVAILABLE"
    assert status["status"]["error_code"] == "OK"
    assert client.get(f"/v1/models/bikeshare/versions/{bundle.model_version}").status_code == 200
    assert client.get("/v1/models/bikeshare/versions/20000101T000000Z").status_code == 404
    assert client.get("/v1/models/nope").status_code == 404
    meta = client.get("/v1/models/bikeshare/metadata").json()
    assert [f["name"] for f in meta["metadata"]["features"]] == [s.name for s in bundle.specs]
    assert client.get("/v1/models").json() == {"models": [{"name": "bikeshare", "versions": [bundle.model_version]}]}


def test_healthz(client):
    body = client.get("/healthz").json()
    assert body["status"] == "ok" and body["models"] == ["bikeshare"]
    assert body["prediction_log"]["connected"] is False  # the broker is unreachable


def _metric(text: str, name: str, **labels) -> float:
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        m = re.fullmatch(rf"{re.escape(name)}(?:\{{(.*)\}})?", head)
        if m is None:
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            return float(value)
    raise AssertionError(f"no sample {name} {labels}")


def test_an_unreachable_broker_never_fails_a_request_and_a_full_queue_is_counted(models_dir, bundle, raw_rows):
    logger = _logger(log_queue_size=3)
    try:
        with _client(models_dir, logger) as c:
            codes = [c.post("/v1/models/bikeshare:predict", json={"instances": raw_rows[i : i + 2]}).status_code for i in range(5)]
            assert c.post("/v1/models/bikeshare:predict", json={"instances": []}).status_code == 400
            assert c.post("/v1/models/nope:predict", json={"instances": raw_rows[:1]}).status_code == 404
            text = c.get("/metrics").text
        assert codes == [200] * 5
        stats = logger.stats()
        assert (stats.enqueued, stats.dropped_queue_full, stats.sent, stats.queue_depth) == (3, 2, 0, 3)
        v = bundle.model_version
        assert _metric(text, "skewwatch_serving_requests_total", model="bikeshare", version=v, code="200") == 5
        assert _metric(text, "skewwatch_serving_requests_total", model="bikeshare", version=v, code="400") == 1
        assert _metric(text, "skewwatch_serving_requests_total", model="", version="", code="404") == 1
        assert _metric(text, "skewwatch_serving_instances_total", model="bikeshare", version=v) == 10
        assert _metric(text, "skewwatch_serving_request_seconds_count", model="bikeshare", version=v) == 6
        assert _metric(text, "skewwatch_prediction_log_enqueued_total") == 3
        assert _metric(text, "skewwatch_prediction_log_dropped_queue_full_total") == 2
        assert _metric(text, "skewwatch_prediction_log_queue_depth") == 3
        assert _metric(text, "skewwatch_prediction_log_connected") == 0
    finally:
        logger.close(timeout=0)


def test_sample_rate_a_quarter_logs_about_a_quarter_of_requests(models_dir, raw_rows):
    logger = _logger(log_sample_rate=0.25, log_queue_size=10_000)
    n = 200
    ids = [f"sampled-{i}" for i in range(n)]
    try:
        with _client(models_dir, logger) as c:
            for i, rid in enumerate(ids):
                r = c.post("/v1/models/bikeshare:predict", json={"instances": [raw_rows[i]]}, headers={"X-Request-Id": rid})
                assert r.status_code == 200
        stats = logger.stats()
    finally:
        logger.close(timeout=0)
    assert stats.enqueued == sum(keep_in_sample(rid, 0.25) for rid in ids)
    assert stats.enqueued + stats.dropped_sampling == n
    assert abs(stats.enqueued - n * 0.25) <= 5 * math.sqrt(n * 0.25 * 0.75)


def test_an_empty_registry_answers_404_and_stays_healthy(tmp_path):
    logger = _logger()
    try:
        with _client(tmp_path / "does-not-exist", logger) as c:
            r = c.post("/v1/models/bikeshare:predict", json={"instances": [{}]})
            assert r.status_code == 404 and "no model named 'bikeshare'" in r.json()["error"]
            assert str(tmp_path) not in r.json()["error"]  # no server paths leak to clients
            assert c.get("/healthz").json()["models"] == []
            assert c.get("/nowhere").status_code == 404 and "error" in c.get("/nowhere").json()
            assert c.put("/healthz").status_code == 405
    finally:
        logger.close(timeout=0)


# -- the record on Kafka ------------------------------------------------------------------


@pytest.mark.broker
def test_the_logged_record_carries_event_time_request_id_raw_instances_and_predictions(models_dir, bundle, raw_rows, tmp_path):
    import time

    from kafka import KafkaConsumer

    from skewwatch.broker import EmbeddedBroker, ensure_topic

    with EmbeddedBroker(log_path=tmp_path / "tansu.log") as broker:
        ensure_topic(broker.bootstrap_servers, "preds", partitions=2)
        settings = Settings(kafka_bootstrap_servers=broker.bootstrap_servers, topic="preds")
        with PredictionLogger(settings) as logger:
            with TestClient(create_app(settings, ModelRegistry(models_dir), logger)) as c:
                rows = raw_rows[-3:]  # include the rows with a missing weekday / weathersit
                r1 = c.post(
                    "/v1/models/bikeshare:predict",
                    json={"instances": rows},
                    headers={"X-Event-Time": "2012-03-01T08:00:00.250+01:00", "X-Request-Id": "replay-1"},
                )
                before = datetime.now(timezone.utc)
                r2 = c.post("/v1/models/bikeshare:predict", json={"instances": rows[:1]})
                after = datetime.now(timezone.utc)
            assert r1.status_code == r2.status_code == 200
            deadline = time.monotonic() + 30
            while logger.stats().sent < 2 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert logger.stats().sent == 2
        consumer = KafkaConsumer(
            "preds",
            bootstrap_servers=broker.bootstrap_servers,
            group_id="t",
            auto_offset_reset="earliest",
            max_poll_interval_ms=6000,
            session_timeout_ms=6000,
        )
        got = []
        deadline = time.monotonic() + 30
        while len(got) < 2 and time.monotonic() < deadline:
            for messages in consumer.poll(500).values():
                got.extend(messages)
        consumer.close()
    records = {rec.request_id: rec for rec in (decode_record(m.value) for m in got)}
    assert {m.key for m in got} == {rid.encode() for rid in records}  # keyed by request id (the default)
    first = records["replay-1"]
    assert first.event_time_ms == parse_instant("2012-03-01T07:00:00.250Z")
    assert (first.model_name, first.model_version, first.parts) == ("bikeshare", bundle.model_version, 1)
    assert first.instances() == rows  # raw, as sent: nulls stay null
    assert any(v is None for inst in first.instances() for v in inst.values())
    assert first.outputs["prediction"] == r1.json()["predictions"]
    second = records[r2.headers["x-request-id"]]
    assert from_datetime(before) // 1000 * 1000 <= second.event_time_ms <= from_datetime(after)
    assert second.outputs["prediction"] == r2.json()["predictions"]


# -- event time bounds, attributes, records that always fit Kafka ----------------------------------------


@pytest.mark.parametrize(
    "value, bound",
    [
        ("9999-12-31T23:59:59Z", "max_event_time_future_seconds"),
        ("2100-01-01T00:00:00Z", "max_event_time_future_seconds"),
        ("1970-01-01T00:00:00Z", "min_event_time"),
        ("0001-01-01T00:00:00+01:00", None),  # year 0 in UTC: not an instant skewwatch represents
    ],
)
def test_an_implausible_event_time_is_400_naming_the_header_and_the_bound(client, raw_rows, value, bound):
    before = client.app.state.logger.stats().enqueued
    r = client.post("/v1/models/bikeshare:predict", json={"instances": raw_rows[:1]}, headers={"X-Event-Time": value})
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["field"] == "X-Event-Time" and body.get("limit") == bound
    if bound is not None:
        assert bound in body["error"]
    assert client.app.state.logger.stats().enqueued == before


def test_replayed_past_and_slightly_future_event_times_are_accepted(client, raw_rows):
    soon = datetime.now(timezone.utc).timestamp() + 120
    for value in ("2000-01-01T00:00:00Z", "2012-03-01T08:00:00Z",
                  datetime.fromtimestamp(soon, timezone.utc).isoformat()):
        r = client.post("/v1/models/bikeshare:predict", json={"instances": raw_rows[:1]}, headers={"X-Event-Time": value})
        assert r.status_code == 200, (value, r.text)


def _big_instances(raw_rows, n: int) -> list[dict]:
    """``n`` valid instances whose categories are long unseen strings: 10,000 take about 3 MB as a record."""
    return [{**raw_rows[i % len(raw_rows)], "weekday": f"day-{i:05d}-" + "w" * 200} for i in range(n)]


@pytest.mark.broker
def test_a_10000_instance_request_reaches_kafka_whole_in_parts(models_dir, raw_rows, tmp_path, serve, wait_until,
                                                              consume_parts):
    from serving.limits import RequestLimits
    from serving.protocol import bounded_protocol
    from skewwatch.broker import EmbeddedBroker, ensure_topic

    instances = _big_instances(raw_rows, 10_000)
    with EmbeddedBroker(log_path=tmp_path / "tansu.log") as broker:
        ensure_topic(broker.bootstrap_servers, "preds", partitions=3)
        settings = Settings(kafka_bootstrap_servers=broker.bootstrap_servers, topic="preds",
                            log_attribute_headers="X-Client")
        with PredictionLogger(settings) as logger:
            app = create_app(settings, ModelRegistry(models_dir), logger)
            protocol = bounded_protocol(RequestLimits.from_settings(settings), app.state.metrics.rejections)
            with serve(app, http=protocol) as base:
                r = httpx.post(base + "/v1/models/bikeshare:predict", json={"instances": instances}, timeout=120,
                               headers={"X-Request-Id": "ten-thousand", "X-Client": "batch-job"})
            assert r.status_code == 200, r.text[:500]
            wait_until(lambda: logger.stats().sent == 1, 60, "the record's parts to be acknowledged")
            stats = logger.stats()
        assert (stats.split, stats.send_errors) == (1, 0)
        got = consume_parts(broker.bootstrap_servers, "preds")
    parts = sorted((decode_record(m.value) for m in got), key=lambda p: p.part)
    assert len(parts) >= 3 and [p.part for p in parts] == list(range(len(parts)))
    assert all(len(m.value) <= settings.log_message_max_bytes - 1024 for m in got)
    assert {m.key for m in got} == {b"ten-thousand"} and len({m.partition for m in got}) == 1  # one key, one partition
    assert {p.request_id for p in parts} == {"ten-thousand"}
    assert {tuple(p.attributes.items()) for p in parts} == {(("x-client", "batch-job"),)}
    assert sum(p.rows for p in parts) == 10_000
    assert [row for p in parts for row in p.instances()] == instances  # every row once, in order, as sent
    assert [y for p in parts for y in p.outputs["prediction"]] == r.json()["predictions"]


def test_an_instance_larger_than_a_kafka_message_is_refused_before_inference(models_dir, raw_rows):
    logger = _logger(log_message_max_bytes=50_000)
    try:
        with _client(models_dir, logger) as c:
            huge = {**raw_rows[0], "season": "s" * 60_000}  # a valid categorical value, but no message holds it
            r = c.post("/v1/models/bikeshare:predict", json={"instances": [raw_rows[1], huge]})
            assert r.status_code == 413, r.text[:300]
            assert (r.json()["limit"], r.json()["max"], r.json()["field"]) == ("log_message_max_bytes", 50_000, "instances")
            assert c.post("/v1/models/bikeshare:predict", json={"instances": raw_rows[:50]}).status_code == 200
            wide = [{**row, "season": "s" * 40_000} for row in raw_rows[:5]]  # each fits alone: split, accepted
            assert c.post("/v1/models/bikeshare:predict", json={"instances": wide}).status_code == 200
        assert logger.stats().enqueued == 2
    finally:
        logger.close(timeout=0)
