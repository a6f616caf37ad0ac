"""The merge stage without Kafka: messages handed to its worker as the poll thread would, then its
decisions. Which member of the merge group decides a model's windows."""

from datetime import datetime, timedelta, timezone

from collectors.baselines import BaselineCache
from collectors.kafka import partials_partition
from collectors.merge import MergeStage
from collectors.messages import PartitionMessage, StreamMessage, encode_partial, encode_partition, encode_stream
from collectors.partition import PartitionProcessor, Publish, Timing
from collectors.pipeline import WindowDecider
from monitor.bundle import resolve_bundle
from monitor.config import MonitorConfig
from monitor.record import PredictionRecord, encode_record
from monitor.settings import Settings
from monitor.timeutil import DEFAULT_MIN_EVENT_MS, now_ms

WEEK_MS = 7 * 86_400_000


def _stage_with_a_closed_window(trained_models_dir, store, partials_partition_=None):
    """A merge stage that has stored every message of one closed window of bikeshare (one source partition)."""
    settings = Settings(models_dir=trained_models_dir)
    cache = BaselineCache(trained_models_dir)
    version = resolve_bundle(trained_models_dir, "bikeshare").model_version
    timing = Timing(window_ms=WEEK_MS, lateness_ms=0, max_jump_ms=10 * WEEK_MS, idle_ms=1000,
                    min_event_ms=DEFAULT_MIN_EVENT_MS, max_future_ms=300_000)
    proc = PartitionProcessor(settings.topic, 0, timing, cache.resolve)
    t0 = datetime(2012, 3, 5, tzinfo=timezone.utc)
    instance = {"temp": 14.0, "season": "spring"}
    events = []
    for i in range(40):
        rec = PredictionRecord("bikeshare", version, t0 + timedelta(hours=i), f"r{i}", (instance,) * 3, (1.0,) * 3)
        events += proc.add(encode_record(rec), i, now_ms())
    events += [proc._publish(k) for k in sorted(proc._open)]
    partials = [e.partial for e in events if isinstance(e, Publish)]
    assert partials
    wall = now_ms()
    end = max(p.end_ms for p in partials)
    messages = [encode_partial(p) for p in partials]
    messages.append(encode_stream(StreamMessage(settings.topic, 0, "bikeshare", end, False, (), {}, wall)))
    messages.append(encode_partition(PartitionMessage(settings.topic, 0, True, 40, wall)))
    stage = MergeStage(settings, store=store,
                       decider=WindowDecider(store=store, baselines=cache, config=MonitorConfig()), wall=lambda: wall)
    stage._input_partitions = 1
    at = partials_partition("bikeshare", 3) if partials_partition_ is None else partials_partition_
    stage._handle([(settings.partials_topic, at, offset, raw, None) for offset, raw in enumerate(messages)])
    return stage, partials[0].key


def test_a_member_decides_only_the_models_its_partials_partitions_carry(trained_models_dir, store):
    stage, key = _stage_with_a_closed_window(trained_models_dir, store)
    mine = partials_partition("bikeshare", 3)
    stage._owned = (frozenset({0, 1, 2} - {mine}), 3)  # another member carries bikeshare
    stage._decide_ready()
    assert stage.decided == 0 and store.pending_windows() != []
    stage._owned = (frozenset({mine}), 3)
    stage._decide_ready()
    assert stage.decided == 1 and store.window_at(key).status == "decided"


def test_outside_a_group_every_pending_window_is_decided(trained_models_dir, store):
    stage, key = _stage_with_a_closed_window(trained_models_dir, store)
    assert stage._owned is None
    stage._decide_ready()
    assert stage.decided == 1 and store.window_at(key).status == "decided"


def test_partials_partition_spreads_names_and_is_stable():
    names = [f"model-{i}" for i in range(300)]
    assert [partials_partition(n, 6) for n in names] == [partials_partition(n, 6) for n in names]
    assert {partials_partition(n, 6) for n in names} == set(range(6))
    assert partials_partition("bikeshare", 1) == 0


def test_a_model_is_decided_where_its_messages_arrive(trained_models_dir, store):
    """A collector that has not seen the partials topic grow still writes a model to its old partition:
    the member reading that partition decides it, not the one partials_partition names now."""
    elsewhere = (partials_partition("bikeshare", 3) + 1) % 3
    stage, key = _stage_with_a_closed_window(trained_models_dir, store, elsewhere)
    stage._owned = (frozenset({partials_partition("bikeshare", 3)}), 3)
    stage._decide_ready()
    assert stage.decided == 0
    stage._owned = (frozenset({elsewhere}), 3)
    stage._decide_ready()
    assert stage.decided == 1 and store.window_at(key).status == "decided"


def test_the_rebalance_callbacks_call_nothing_on_the_consumer_but_assign(trained_models_dir, store):
    """confluent-kafka aborts the process when a client call such as list_topics is made inside a
    rebalance callback and another callback follows in the same consume() (it happened: the
    three-collector scenario lost a collector to `CallState_get: Assertion cs != NULL`)."""
    from confluent_kafka import TopicPartition

    stage, _key = _stage_with_a_closed_window(trained_models_dir, store)
    stage._partials_count = 3

    class OnlyAssign:
        assigned = None

        def assign(self, partitions):
            self.assigned = partitions

    consumer = OnlyAssign()
    partitions = [TopicPartition(stage.settings.partials_topic, 1), TopicPartition(stage.settings.dead_letter_topic, 0)]
    stage._on_assign(consumer, partitions)  # any other attribute of the consumer would raise here
    assert consumer.assigned == partitions and stage._owned == (frozenset({1}), 3)
    stage._on_revoke(consumer, partitions)
    assert stage._owned == (frozenset(), 1)
