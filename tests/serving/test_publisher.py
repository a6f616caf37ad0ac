"""PredictionLogger: sampling, bounded queue, unreachable broker, real broker delivery."""

import math
import time
import uuid
from datetime import datetime, timezone

import pytest

from monitor.errors import RecordError
from monitor.record import PredictionRecord, decode_record, encode_record
from monitor.settings import Settings
from serving.publisher import PredictionLogger, keep_in_sample

UNREACHABLE = "127.0.0.1:1"


def _record(i: int, *, model: str = "bikeshare") -> PredictionRecord:
    return PredictionRecord(
        model_name=model,
        model_version="20240101T000000Z",
        event_time=datetime(2012, 3, 1, 8, 0, i % 60, tzinfo=timezone.utc),
        request_id=str(uuid.UUID(int=i)),
        instances=({"temp": float(i), "season": "spring"},),
        predictions=(float(i) * 2.0,),
    )


def _within_binomial(count: int, n: int, p: float, sigmas: float = 5.0) -> bool:
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p))


def test_sampling_is_deterministic_nested_and_close_to_the_rate():
    ids = [f"req-{i}" for i in range(20_000)]
    at_quarter = {i for i in ids if keep_in_sample(i, 0.25)}
    at_tenth = {i for i in ids if keep_in_sample(i, 0.1)}
    assert at_quarter == {i for i in ids if keep_in_sample(i, 0.25)}  # same id, same answer
    assert at_tenth <= at_quarter  # a lower rate keeps a subset
    assert _within_binomial(len(at_quarter), len(ids), 0.25)
    assert _within_binomial(len(at_tenth), len(ids), 0.1)
    assert all(keep_in_sample(i, 1.0) for i in ids[:100])
    assert not any(keep_in_sample(i, 0.0) for i in ids[:100])


def test_logger_with_sample_rate_a_quarter_queues_about_a_quarter():
    settings = Settings(kafka_bootstrap_servers=UNREACHABLE, log_sample_rate=0.25, log_queue_size=10_000)
    logger = PredictionLogger(settings)  # not started: nothing leaves the queue
    n = 4000
    queued = [logger.log(_record(i)) for i in range(n)]
    stats = logger.stats()
    assert stats.enqueued == sum(queued) == sum(keep_in_sample(str(uuid.UUID(int=i)), 0.25) for i in range(n))
    assert stats.enqueued + stats.dropped_sampling == n
    assert _within_binomial(stats.enqueued, n, 0.25)
    assert stats.queue_depth == stats.enqueued
    final = logger.close(timeout=0)
    assert final.dropped_on_close == stats.enqueued and final.queue_depth == 0


@pytest.mark.parametrize("options", [{"linger_ms": -1}, {"drain_interval_ms": 0}, {"message_timeout_s": 0.01}])
def test_settings_librdkafka_would_reject_fail_at_construction_not_as_retries(options):
    with pytest.raises(ValueError, match="linger_ms"):
        PredictionLogger(Settings(kafka_bootstrap_servers=UNREACHABLE), **options)


def test_unreachable_broker_keeps_retrying_while_log_still_answers_and_a_full_queue_drops(wait_until):
    settings = Settings(kafka_bootstrap_servers=UNREACHABLE, log_queue_size=5)
    logger = PredictionLogger(settings, connect_timeout_s=0.3, backoff_initial_s=0.05, backoff_max_s=0.2).start()
    try:
        wait_until(lambda: logger.stats().connect_failures >= 2, 30, "two failed connection attempts")
        results = [logger.log(_record(i)) for i in range(8)]
        assert results == [True] * 5 + [False] * 3
        stats = logger.stats()
        assert (stats.enqueued, stats.dropped_queue_full, stats.queue_depth) == (5, 3, 5)
        assert stats.sent == 0 and stats.send_errors == 0 and not stats.connected
    finally:
        final = logger.close(timeout=0.5)
    assert final.dropped_on_close == 5 and final.queue_depth == 0
    assert logger.log(_record(99)) is False  # after close: counted, not queued
    assert logger.stats().dropped_on_close == 6


def _consume(bootstrap: str, topic: str, n: int, timeout: float = 30.0):
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"test-{uuid.uuid4()}",
        auto_offset_reset="earliest",
        max_poll_interval_ms=6000,
        session_timeout_ms=6000,
    )
    got = []
    deadline = time.monotonic() + timeout
    try:
        while len(got) < n and time.monotonic() < deadline:
            for messages in consumer.poll(500).values():
                got.extend(messages)
    finally:
        consumer.close()
    return got


def _partition(key: bytes, partitions: int) -> int:
    from kafka.partitioner.default import murmur2

    return (murmur2(key) & 0x7FFFFFFF) % partitions  # where the Java client (and kafka-python) put a key


@pytest.mark.broker
@pytest.mark.parametrize("key_by", ["request_id", "model"])
def test_records_reach_kafka_keyed_by_request_id_or_by_model(tmp_path, wait_until, key_by):
    from skewwatch.broker import EmbeddedBroker, ensure_topic

    with EmbeddedBroker(log_path=tmp_path / "tansu.log") as broker:
        ensure_topic(broker.bootstrap_servers, "preds", partitions=3)
        settings = Settings(kafka_bootstrap_servers=broker.bootstrap_servers, topic="preds", log_partition_key=key_by)
        records = [_record(i, model="a" if i % 2 else "b") for i in range(40)]
        with PredictionLogger(settings) as logger:
            for r in records:
                assert logger.log(r)
            wait_until(lambda: logger.stats().sent == 40, 30, "40 acknowledged sends")
        assert logger.stats().send_errors == 0
        messages = _consume(broker.bootstrap_servers, "preds", 40)
    assert len(messages) == 40
    for m in messages:
        assert m.partition == _partition(m.key, 3)
    for model in ("a", "b"):
        mine = [m for m in messages if decode_record(m.value).model_name == model]
        if key_by == "model":
            assert {m.key for m in mine} == {model.encode()}
            assert {m.partition for m in mine} == {_partition(model.encode(), 3)}  # one key, one partition
            decoded = [decode_record(m.value) for m in sorted(mine, key=lambda m: m.offset)]
            assert decoded == [decode_record(encode_record(r)) for r in records if r.model_name == model]  # in order
        else:
            assert {m.key for m in mine} == {r.request_id.encode() for r in records if r.model_name == model}
            assert {m.partition for m in mine} == {0, 1, 2}  # one model spread over every partition


@pytest.mark.broker
def test_records_queued_while_the_broker_is_down_are_sent_once_it_comes_up(tmp_path, wait_until):
    from skewwatch.broker import EmbeddedBroker, free_port

    port = free_port()
    settings = Settings(kafka_bootstrap_servers=f"127.0.0.1:{port}", topic="late", log_partition_key="model")
    logger = PredictionLogger(settings, connect_timeout_s=0.3, backoff_initial_s=0.05, backoff_max_s=0.3).start()
    try:
        wait_until(lambda: logger.stats().connect_failures >= 1, 30, "a failed connection attempt")
        records = [_record(i) for i in range(10)]
        assert all(logger.log(r) for r in records)
        assert logger.stats().queue_depth == 10
        with EmbeddedBroker(port=port, log_path=tmp_path / "tansu.log") as broker:
            wait_until(lambda: logger.stats().sent == 10, 30, "the queued records to be sent")
            stats = logger.close(timeout=5)
            assert stats.send_errors == 0 and stats.dropped_on_close == 0 and stats.queue_depth == 0
            messages = _consume(broker.bootstrap_servers, "late", 10)
    finally:
        logger.close(timeout=0)
    assert len({m.partition for m in messages}) == 1  # one model, one key, one partition
    assert [decode_record(m.value) for m in sorted(messages, key=lambda m: m.offset)] == [
        decode_record(encode_record(r)) for r in records
    ]


def _lingering_logger(broker, topic: str, queue_size: int, wait_until) -> PredictionLogger:
    """A connected logger whose handed-over records stay unacknowledged (a one-minute linger)."""
    from skewwatch.broker import ensure_topic

    ensure_topic(broker.bootstrap_servers, topic, partitions=1)
    settings = Settings(kafka_bootstrap_servers=broker.bootstrap_servers, topic=topic, log_queue_size=queue_size)
    logger = PredictionLogger(settings, linger_ms=60_000).start()
    wait_until(lambda: logger.stats().connected, 30, "the logger to reach Kafka")
    return logger


@pytest.mark.broker
def test_records_handed_to_kafka_are_capped_and_a_dead_broker_aborts_them_at_close(tmp_path, wait_until):
    from skewwatch.broker import EmbeddedBroker

    broker = EmbeddedBroker(log_path=tmp_path / "tansu.log").start()
    try:
        logger = _lingering_logger(broker, "capped", 5, wait_until)
        assert all(logger.log(_record(i)) for i in range(5))
        wait_until(lambda: logger.stats().in_flight == 5, 30, "five records handed to Kafka, unacknowledged")
        assert logger.stats().queue_depth == 0
        results = [logger.log(_record(i)) for i in range(5, 15)]  # Kafka holds its cap: the queue fills
        assert results == [True] * 5 + [False] * 5
        time.sleep(0.1)  # a few drain ticks: nothing more may leave the queue
        stats = logger.stats()
        assert (stats.sent, stats.in_flight, stats.queue_depth, stats.dropped_queue_full) == (0, 5, 5, 5)
    finally:
        broker.stop()
    final = logger.close(timeout=1)
    # close gives up on the dead broker: what Kafka still held is aborted and counted as errors
    assert (final.sent, final.in_flight, final.queue_depth) == (0, 0, 0)
    assert (final.send_errors, final.dropped_on_close, final.dropped_queue_full) == (5, 5, 5)


@pytest.mark.broker
def test_a_broker_lost_after_start_up_stops_the_drain_and_records_wait_until_it_is_back(tmp_path, wait_until):
    from skewwatch.broker import EmbeddedBroker

    broker = EmbeddedBroker(log_path=tmp_path / "tansu.log").start()
    port = int(broker.bootstrap_servers.rsplit(":", 1)[1])
    settings = Settings(kafka_bootstrap_servers=broker.bootstrap_servers, topic="back", log_queue_size=8,
                        log_partition_key="model")  # one partition: offsets give the order
    logger = PredictionLogger(settings, backoff_initial_s=0.05, backoff_max_s=0.3).start()
    try:
        try:
            assert all(logger.log(_record(i)) for i in range(3))
            wait_until(lambda: logger.stats().sent == 3, 30, "the first records to be acknowledged")
        finally:
            broker.stop()
        wait_until(lambda: not logger.stats().connected, 30, "the logger to notice the broker is gone")
        results = [logger.log(_record(i)) for i in range(3, 13)]
        assert results == [True] * 8 + [False] * 2  # bounded: the queue holds 8, the rest is counted
        stats = logger.stats()
        assert (stats.queue_depth, stats.in_flight, stats.dropped_queue_full) == (8, 0, 2)
        with EmbeddedBroker(port=port, log_path=tmp_path / "tansu2.log") as again:
            wait_until(lambda: logger.stats().sent == 11, 60, "the queued records to be sent to the new broker")
            final = logger.close(timeout=5)
            messages = _consume(again.bootstrap_servers, "back", 8)
    finally:
        logger.close(timeout=0)
    assert (final.send_errors, final.dropped_on_close, final.queue_depth) == (0, 0, 0)
    assert [decode_record(m.value) for m in sorted(messages, key=lambda m: m.offset)] == [
        decode_record(encode_record(_record(i))) for i in range(3, 11)
    ]


@pytest.mark.broker
def test_a_lost_broker_failing_many_records_at_once_is_reported_once_not_per_record(tmp_path, caplog, wait_until):
    from skewwatch.broker import EmbeddedBroker

    broker = EmbeddedBroker(log_path=tmp_path / "tansu.log").start()
    try:
        logger = _lingering_logger(broker, "flood", 500, wait_until)
        assert all(logger.log(_record(i)) for i in range(300))
        wait_until(lambda: logger.stats().in_flight == 300, 30, "300 records handed to Kafka, unacknowledged")
    finally:
        broker.stop()
    with caplog.at_level("INFO", logger="serving.publisher"):
        final = logger.close(timeout=0.5)
    assert final.send_errors == 300
    messages = [r.getMessage() for r in caplog.records]
    assert len([m for m in messages if "failed delivery" in m]) == 1  # the first failure; the burst is counted
    assert any("300 send errors" in m for m in messages)  # ... and totalled when the logger closes


def _wide(i: int, rows: int, width: int) -> PredictionRecord:
    return PredictionRecord(
        model_name="bikeshare", model_version="20240101T000000Z", event_time=datetime(2012, 3, 1, tzinfo=timezone.utc),
        request_id=f"wide-{i}", instances=tuple({"i": r, "s": "x" * width} for r in range(rows)),
        predictions=tuple(float(r) for r in range(rows)),
    )


@pytest.mark.broker
def test_records_over_the_message_limit_arrive_in_parts_and_a_row_that_cannot_fit_is_counted(tmp_path, wait_until,
                                                                                             caplog):
    from skewwatch.broker import EmbeddedBroker, ensure_topic

    with EmbeddedBroker(log_path=tmp_path / "tansu.log") as broker:
        ensure_topic(broker.bootstrap_servers, "parts", partitions=3)
        settings = Settings(kafka_bootstrap_servers=broker.bootstrap_servers, topic="parts",
                            log_message_max_bytes=20_000)
        logger = PredictionLogger(settings)
        with pytest.raises(RecordError) as info:
            logger.encode(_wide(0, 1, 30_000))  # serving asks before it answers; this row fits no message
        assert info.value.reason == "too_large"
        with caplog.at_level("INFO", logger="serving.publisher"), logger:
            assert logger.log(_wide(1, 400, 100))  # about 50 KB: three parts or more
            assert logger.log(_wide(2, 1, 30_000))  # handed over anyway: counted, not sent, nothing stops
            assert logger.log(_wide(3, 2, 10), parts=logger.encode(_wide(3, 2, 10)))  # encoded by the caller
            wait_until(lambda: logger.stats().sent == 2, 30, "the two sendable records")
            stats = logger.stats()
            # Tansu answers DescribeConfigs with no entries: the configured limit stands
            assert logger.max_message_bytes == 20_000
        expected = len(logger.encode(_wide(1, 400, 100))) + 1
        messages = _consume(broker.bootstrap_servers, "parts", expected)
    assert (stats.split, stats.send_errors, stats.in_flight) == (1, 1, 0)  # the oversized row: counted, never sent
    assert len(messages) == expected
    assert any("reports no max.message.bytes" in r.getMessage() for r in caplog.records)
    by_request: dict[str, list] = {}
    for m in messages:
        assert len(m.value) <= 20_000 - 1024 and m.key == decode_record(m.value).request_id.encode()
        by_request.setdefault(decode_record(m.value).request_id, []).append(m)
    assert set(by_request) == {"wide-1", "wide-3"}
    parts = sorted((decode_record(m.value) for m in by_request["wide-1"]), key=lambda p: p.part)
    assert len(parts) >= 3 and {p.parts for p in parts} == {len(parts)}
    assert len({m.partition for m in by_request["wide-1"]}) == 1  # one key, one partition
    assert [i for p in parts for i in p.columns["i"]] == list(range(400))
