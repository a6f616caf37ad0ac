import time

import pytest
from kafka import KafkaConsumer, KafkaProducer

from monitor.errors import BrokerError
from skewwatch.broker import EmbeddedBroker, ensure_topic

pytestmark = pytest.mark.broker


def test_broker_serves_a_produce_consume_round_trip_and_stops_cleanly(tmp_path):
    log = tmp_path / "tansu.log"
    with EmbeddedBroker(log_path=log) as broker:
        assert broker.running
        ensure_topic(broker.bootstrap_servers, "t", partitions=2)
        ensure_topic(broker.bootstrap_servers, "t", partitions=2)  # idempotent
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers)
        for i in range(20):
            producer.send("t", key=b"k", value=b"v%d" % i)
        producer.flush()
        producer.close()
        consumer = KafkaConsumer(
            "t",
            bootstrap_servers=broker.bootstrap_servers,
            group_id="g",
            auto_offset_reset="earliest",
            max_poll_interval_ms=6000,
            session_timeout_ms=6000,
        )
        got = []
        deadline = time.monotonic() + 30
        while len(got) < 20 and time.monotonic() < deadline:
            for msgs in consumer.poll(500).values():
                got.extend(m.value for m in msgs)
        consumer.close()
        assert got == [b"v%d" % i for i in range(20)]  # one key -> one partition -> in order
    assert not broker.running
    assert log.exists() and "listening on" in log.read_text()


def test_broker_on_a_taken_port_fails_with_a_clear_error(tmp_path):
    with EmbeddedBroker(log_path=tmp_path / "a.log") as first:
        with pytest.raises(BrokerError, match="already in use"):
            EmbeddedBroker(port=first.port, log_path=tmp_path / "b.log", ready_timeout=5).start()
