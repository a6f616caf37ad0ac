"""collectors.kafka: where a model's partials go, checked against Kafka's own vectors and librdkafka."""

import pytest

from collectors.kafka import murmur2, partials_partition
from collectors.kafka import producer_config
from monitor.settings import Settings
from skewwatch.broker import EmbeddedBroker, ensure_topic


@pytest.mark.parametrize("data, java", [  # org.apache.kafka.common.utils.UtilsTest#testMurmur2
    (b"21", -973932308), (b"foobar", -790332482), (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829), (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    (b"abc", 479470107),
])
def test_murmur2_is_kafkas(data, java):
    assert murmur2(data) == java & 0xFFFFFFFF


@pytest.mark.broker
def test_a_models_partition_is_the_one_the_collectors_producer_picks_for_its_name():
    from confluent_kafka import Producer

    names = ["bikeshare", "alpha", "beta", "gamma", "é-model", "x" * 200] + [f"model-{i}" for i in range(60)]
    with EmbeddedBroker() as broker:
        ensure_topic(broker.bootstrap_servers, "where", 6)
        conf = producer_config(Settings(kafka_bootstrap_servers=broker.bootstrap_servers), client_id="test")
        conf.pop("error_cb")
        producer = Producer(conf)
        landed = {}

        def done(err, msg):
            assert err is None
            landed[msg.key().decode()] = msg.partition()

        for name in names:
            producer.produce("where", key=name.encode(), value=b"v", on_delivery=done)
        assert producer.flush(30) == 0
    assert landed == {name: partials_partition(name, 6) for name in names}
    assert len(set(landed.values())) == 6
