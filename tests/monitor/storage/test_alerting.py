"""The alert store on SQLite and PostgreSQL: the API's methods (alerts, acknowledgements, silences)
with their errors, and the outbox's lease (claims never overlap, a destination's oldest first,
retries, refusals, a lease that runs out)."""

from __future__ import annotations

import threading

import orjson
import pytest

from monitor.errors import ConfigError, NotFoundError
from monitor.storage import Store
from monitor.storage.alerting import (
    AlertRow,
    OutboxIn,
    add_members,
    enqueue,
    ensure_group,
    group_members,
    groups_of,
    write_alerts,
)

NOW = 1_800_000_000_000
MIN = 60_000


class Clock:
    def __init__(self):
        self.ms = NOW

    def __call__(self):
        return self.ms


@pytest.fixture
def clocked(store_url):
    clock = Clock()
    with Store(store_url, clock=clock) as s:
        yield s, clock


def alert(fp="a" * 16, state="firing", feature="temp", **kw) -> AlertRow:
    labels = {"alertname": "SkewwatchFeatureSkew", "model": "bikeshare", "version": "v1", "segment": "",
              "feature": feature, "mode": "skew", "kind": "feature", "severity": "critical"}
    values = dict(fingerprint=fp, state=state, kind="feature", model="bikeshare", model_version="v1", segment="",
                  feature=feature, mode="skew", severity="critical", labels=labels, annotations={"summary": "s"},
                  findings=({"test": "ks", "effect": 0.5, "floor": 0.1},), score=5.0, pending_since_ms=None,
                  starts_ms=1000, ends_ms=None, updated_ms=2000, window_id=None, firing_windows=1, healthy_windows=0,
                  incident=1, inhibited_by=None, acknowledged_by=None, acknowledged_until_ms=None,
                  acknowledged_comment=None, acknowledged_ms=None, resolved_by=None, changed_ms=NOW)
    values.update(kw)
    return AlertRow(**values)


def put(store, *alerts, group=True):
    with store.write() as conn:
        write_alerts(conn, list(alerts))
        if group:
            g = ensure_group(conn, route="root", receiver="team", key_hash="h" * 32, group_key="root:{}", group_labels={})
            add_members(conn, g.id, [a.fingerprint for a in alerts])
            return g.id


def message(key, target="webhook:t1", **kw):
    return OutboxIn(receiver="team", integration="team/webhook/0", target=target, kind="webhook", dedup_key=key,
                    payload={"n": key}, **kw)


def test_alerts_list_by_state_and_model_and_round_trip_as_json(clocked):
    store, clock = clocked
    put(store, alert("a" * 16), alert("b" * 16, state="resolved", ends_ms=3000), alert("c" * 16, state="pending",
                                                                                      model="taxi"))
    assert [a.fingerprint[0] for a in store.list_alerts()] == ["a", "c", "b"]  # firing, pending, resolved
    assert [a.fingerprint[0] for a in store.list_alerts(state="resolved")] == ["b"]
    assert [a.fingerprint[0] for a in store.list_alerts(model="taxi")] == ["c"]
    got = store.get_alert("a" * 16)
    assert got == alert("a" * 16)
    body = orjson.loads(orjson.dumps(got.to_dict()))
    assert body["starts"] == "1970-01-01T00:00:01.000Z" and body["labels"]["feature"] == "temp"
    assert store.get_alert("z" * 16) is None
    with pytest.raises(ConfigError, match="state"):
        store.list_alerts(state="burning")


def test_acknowledge_and_resolve_schedule_the_alerts_groups_now(clocked):
    store, clock = clocked
    gid = put(store, alert())
    acked = store.acknowledge_alert("a" * 16, by="ana", until_ms=NOW + 10 * MIN, comment="looking")
    assert (acked.acknowledged, acked.acknowledged_by, acked.acknowledged_until_ms) == (True, "ana", NOW + 10 * MIN)
    assert [g.next_flush_ms for g in store.list_groups()] == [NOW]
    assert [a.fingerprint for a in store.list_alerts(state="acknowledged")] == ["a" * 16]
    clock.ms += 11 * MIN
    assert store.get_alert("a" * 16).acknowledged is False  # ran out
    assert store.list_alerts(state="acknowledged") == []
    done = store.resolve_alert("a" * 16, by="ana")
    assert (done.state, done.resolved_by, done.ends_ms) == ("resolved", "ana", 2000)
    with store.read() as conn:
        assert groups_of(conn, "a" * 16) == [gid]
        assert [a.state for a in group_members(conn, gid)] == ["resolved"]


@pytest.mark.parametrize("call", ["acknowledge", "resolve"])
def test_unknown_alerts_are_not_found(clocked, call):
    store, _ = clocked
    with pytest.raises(NotFoundError) as exc:
        if call == "acknowledge":
            store.acknowledge_alert("f" * 16, by="ana", until_ms=NOW + MIN)
        else:
            store.resolve_alert("f" * 16, by="ana")
    assert (exc.value.what, exc.value.key) == ("alert", "f" * 16)


def test_acknowledgements_are_validated(clocked):
    store, _ = clocked
    put(store, alert())
    for kwargs, field in (({"by": "", "until_ms": NOW + MIN}, "by"), ({"by": "a", "until_ms": NOW}, "until_ms"),
                          ({"by": "a", "until_ms": -5}, "until_ms"), ({"by": "a" * 300, "until_ms": NOW + MIN}, "by")):
        with pytest.raises(ConfigError) as exc:
            store.acknowledge_alert("a" * 16, **kwargs)
        assert exc.value.field == field


def test_silences_are_created_listed_muting_and_expired(clocked):
    store, clock = clocked
    put(store, alert(), alert("b" * 16, feature="hum"))
    later = store.create_silence(["feature=hum"], starts_ms=NOW + 5 * MIN, ends_ms=NOW + 10 * MIN, created_by="ana",
                                 comment="later")
    now = store.create_silence([{"name": "feature", "op": "=~", "value": "te.*"}], ends_ms=NOW + 60 * MIN,
                               created_by="bo", comment="")
    assert {s.id for s in store.list_silences()} == {now.id, later.id}
    assert [s.id for s in store.list_silences(active_at_ms=NOW)] == [now.id]
    assert store.get_alert("a" * 16).silenced_by == (now.id,) and store.get_alert("b" * 16).silenced_by == ()
    assert later.state_at(NOW) == "pending" and now.state_at(NOW) == "active"
    assert store.get_alert("b" * 16).silenced_by == ()  # not yet: it starts in 5 minutes
    clock.ms += 5 * MIN
    assert store.get_alert("b" * 16).silenced_by == (later.id,)
    clock.ms -= 5 * MIN
    gone = store.expire_silence(now.id, now_ms=NOW + MIN)
    assert gone.ends_ms == NOW + MIN and gone.expired_ms == NOW + MIN and gone.state_at(NOW + MIN) == "expired"
    assert store.expire_silence(now.id, now_ms=NOW + 2 * MIN) == gone  # twice: unchanged
    assert orjson.loads(orjson.dumps(gone.to_dict()))["matchers"] == [{"name": "feature", "op": "=~", "value": "te.*"}]
    with pytest.raises(NotFoundError):
        store.expire_silence("0" * 32, now_ms=NOW)


def test_a_claim_takes_each_destinations_oldest_message_only_and_leases_it(clocked):
    store, clock = clocked
    with store.write() as conn:
        assert enqueue(conn, [message("a1"), message("a2"), message("b1", target="slack:t2"),
                              message("c1", target="pagerduty:t3", not_before_ms=NOW + MIN)], now_ms=NOW) == 4
        assert enqueue(conn, [message("a1")], now_ms=NOW) == 0  # a dedup key is enqueued once
    claimed = store.claim_outbox("s1", lease_ms=30_000, limit=10)
    assert sorted(r.dedup_key for r in claimed) == ["a1", "b1"]  # a2 waits for a1; c1 is not due
    assert {r.attempts for r in claimed} == {1} and {r.lease_owner for r in claimed} == {"s1"}
    assert store.claim_outbox("s2", lease_ms=30_000, limit=10) == []  # leased heads block their destinations
    assert store.complete_outbox(claimed[0].id, status_code=200)
    nxt = store.claim_outbox("s2", lease_ms=30_000, limit=10)
    assert [r.dedup_key for r in nxt] == ["a2"]
    clock.ms += 61_000  # s1's lease on b1 ran out (s1 died): anyone may take it; c1 is due
    again = store.claim_outbox("s3", lease_ms=30_000, limit=10, exclude_targets=["webhook:t1"])
    assert sorted(r.dedup_key for r in again) == ["b1", "c1"] and {r.attempts for r in again} == {2, 1}
    assert not store.retry_outbox(again[0].id, "s1", next_attempt_ms=NOW, error="x")  # s1 lost its lease


def test_retry_and_failure_are_recorded_and_a_failure_unblocks_the_destination(clocked):
    store, clock = clocked
    with store.write() as conn:
        enqueue(conn, [message("a1"), message("a2")], now_ms=NOW)
    [first] = store.claim_outbox("s", lease_ms=1000)
    assert store.retry_outbox(first.id, "s", next_attempt_ms=NOW + 5000, error="HTTP 503", status_code=503)
    assert store.claim_outbox("s", lease_ms=1000) == []  # not yet due, and a2 waits behind it
    clock.ms += 5000
    [first] = store.claim_outbox("s", lease_ms=1000)
    assert first.attempts == 2 and first.last_error == "HTTP 503"
    assert store.fail_outbox(first.id, "s", error="HTTP 400", status_code=400)
    [second] = store.claim_outbox("s", lease_ms=1000)
    assert second.dedup_key == "a2"
    assert store.outbox_counts() == {"pending": 1, "delivered": 0, "failed": 1}
    assert [r.status for r in store.list_outbox()] == ["failed", "pending"]
    clock.ms += 10 * MIN
    store.complete_outbox(second.id)
    assert store.prune_outbox(before_ms=NOW + 1) == 2 and store.list_outbox() == []


def test_two_stores_claiming_at_once_never_get_the_same_message(store_url):
    with Store(store_url) as a, Store(store_url) as b:
        with a.write() as conn:
            enqueue(conn, [message(f"m{i}", target=f"webhook:t{i}") for i in range(60)], now_ms=a.now())
        got: dict[str, list[int]] = {"a": [], "b": []}

        def claim(name, store):
            while True:
                rows = store.claim_outbox(name, lease_ms=60_000, limit=3)
                if not rows:
                    return
                got[name] += [r.id for r in rows]

        threads = [threading.Thread(target=claim, args=(n, s)) for n, s in (("a", a), ("b", b))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not set(got["a"]) & set(got["b"])
    assert len(got["a"]) + len(got["b"]) == 60
