"""A/B routing: split proportions, stickiness across processes, pins, start-up validation."""

import json
import math
import os
import shutil
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient

from monitor.bundle import resolve_bundle
from monitor.errors import ConfigError
from monitor.record import decode_record
from monitor.settings import Settings
from serving.app import create_app
from serving.models import ModelRegistry, ModelNotFoundError
from serving.publisher import PredictionLogger, keep_in_sample
from serving.routing import Router, RouteReason, build_router, parse_weights, route_point

UNREACHABLE = "127.0.0.1:1"
NEWER = "20990101T000000Z"
KEYS = [f"user-{i}" for i in range(4000)]


def _within_binomial(count: int, n: int, p: float, sigmas: float = 5.0) -> bool:
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p))


def _shares(router: Router, model: str, keys) -> dict[str, int]:
    counts: dict[str, int] = {}
    for key in keys:
        version = router.route(model=model, pinned=None, key=key).version
        counts[version] = counts.get(version, 0) + 1
    return counts


# -- the pure router ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "weights",
    [{"v1": 0.9, "v2": 0.1}, {"a": 5, "b": 3, "c": 2}, {"v1": 0.5, "v2": 0.5, "v3": 0.0}],
)
def test_split_proportions_follow_the_weights_within_binomial_tolerance(weights):
    router = Router(parse_weights({"m": weights}))
    counts = _shares(router, "m", KEYS)
    total = sum(weights.values())
    assert sum(counts.values()) == len(KEYS)
    for version, weight in weights.items():
        if weight == 0:
            assert version not in counts  # a zero weight gets no split traffic at all
        else:
            assert _within_binomial(counts.get(version, 0), len(KEYS), weight / total), (version, counts)


def test_the_split_stays_proportional_within_the_sampled_log():
    """Routing and log sampling hash differently: a sampled log still sees every version."""
    router = Router(parse_weights({"m": {"v1": 0.9, "v2": 0.1}}))
    sampled = [k for k in KEYS if keep_in_sample(k, 0.25)]
    counts = _shares(router, "m", sampled)
    assert _within_binomial(counts.get("v2", 0), len(sampled), 0.1), counts


def test_a_key_always_reaches_the_same_version_and_models_split_independently():
    router = Router(parse_weights({"a": {"v1": 0.5, "v2": 0.5}, "b": {"v1": 0.5, "v2": 0.5}}))
    first = [router.route(model="a", pinned=None, key=k).version for k in KEYS[:500]]
    again = [router.route(model="a", pinned=None, key=k).version for k in KEYS[:500]]
    assert first == again
    other = [router.route(model="b", pinned=None, key=k).version for k in KEYS[:500]]
    agree = sum(x == y for x, y in zip(first, other))
    assert _within_binomial(agree, 500, 0.5)  # the model salts the hash


def test_routing_is_the_same_in_another_process_with_another_hash_seed():
    weights = {"m": {"v1": 0.7, "v2": 0.2, "v3": 0.1}}
    here = [Router(parse_weights(weights)).route(model="m", pinned=None, key=k).version for k in KEYS[:300]]
    code = (
        "import json, sys; from serving.routing import Router, parse_weights; "
        "w, keys = json.loads(sys.stdin.read()); r = Router(parse_weights(w)); "
        "print(json.dumps([r.route(model='m', pinned=None, key=k).version for k in keys]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], input=json.dumps([weights, KEYS[:300]]), capture_output=True, text=True,
        env={**os.environ, "PYTHONHASHSEED": "12345"}, check=True,
    )
    assert json.loads(done.stdout) == here


def test_points_are_uniform_in_the_unit_interval():
    points = [route_point(model="m", key=k) for k in KEYS]
    assert all(0.0 <= p < 1.0 for p in points)
    for lo in (0.0, 0.25, 0.5, 0.75):  # each quarter holds about a quarter of the keys
        assert _within_binomial(sum(lo <= p < lo + 0.25 for p in points), len(points), 0.25)


def test_a_pin_wins_and_unsplit_models_get_the_latest():
    router = Router(parse_weights({"m": {"v1": 1.0, "v2": 0.0}}))
    assert router.route(model="m", pinned="v2", key="k").version == "v2"
    assert router.route(model="m", pinned="v2", key="k").reason is RouteReason.PINNED
    assert router.route(model="m", pinned=None, key="k").version == "v1"
    assert router.route(model="other", pinned=None, key="k") == router.route(model="other", pinned=None, key="j")
    assert router.route(model="other", pinned=None, key="k").version is None
    assert router.route(model="other", pinned=None, key="k").reason is RouteReason.LATEST


@pytest.mark.parametrize(
    "weights, field",
    [
        ({"m": {"v1": -0.1, "v2": 1}}, "ab_weights.m.v1"),
        ({"m": {"v1": float("nan")}}, "ab_weights.m.v1"),
        ({"m": {"v1": float("inf")}}, "ab_weights.m.v1"),
        ({"m": {"v1": True}}, "ab_weights.m.v1"),
        ({"m": {"v1": "0.5"}}, "ab_weights.m.v1"),
        ({"m": {"v1": 0, "v2": 0}}, "ab_weights.m"),
        ({"m": {}}, "ab_weights.m"),
        ({"m": [0.5, 0.5]}, "ab_weights.m"),
        ({"m": {"": 1}}, "ab_weights.m"),
    ],
)
def test_bad_weights_are_config_errors_naming_the_entry(weights, field):
    with pytest.raises(ConfigError) as info:
        parse_weights(weights)
    assert info.value.field == field and field in str(info.value)


def test_build_router_checks_every_model_and_version_against_the_registry():
    def versions_of(model):
        if model != "m":
            raise ModelNotFoundError(f"no model named {model!r}")
        return ["v1", "v2"]

    assert build_router(None, versions_of).splits == {}
    assert set(build_router({"m": {"v1": 1, "v2": 3}}, versions_of).splits["m"].weights) == {"v1", "v2"}
    with pytest.raises(ConfigError, match="has no version 'v9'") as info:
        build_router({"m": {"v1": 1, "v9": 1}}, versions_of)
    assert info.value.field == "ab_weights.m.v9"
    with pytest.raises(ConfigError, match="no model named 'x'") as info:
        build_router({"x": {"v1": 1}}, versions_of)
    assert info.value.field == "ab_weights.x"


# -- the app with two real versions ---------------------------------------------------------


@pytest.fixture(scope="module")
def two_versions(models_dir, tmp_path_factory):
    """A private models directory with the session's bundle and a copy of it as a newer version."""
    root = tmp_path_factory.mktemp("ab") / "models"
    shutil.copytree(models_dir, root)
    src = resolve_bundle(root, "bikeshare")
    dst = src.path.parent / NEWER
    shutil.copytree(src.path, dst)
    meta = json.loads((dst / "metadata.json").read_text())
    meta["model_version"] = NEWER
    (dst / "metadata.json").write_text(json.dumps(meta))
    return root, src.model_version


def _logger(**settings) -> PredictionLogger:
    return PredictionLogger(Settings(kafka_bootstrap_servers=UNREACHABLE, **settings))


def test_the_app_answers_with_the_routed_version_and_names_it(two_versions, raw_rows):
    root, old = two_versions
    weights = {"bikeshare": {old: 0.7, NEWER: 0.3}}
    registry = ModelRegistry(root, rescan_seconds=60)
    logger = _logger()
    split = build_router(weights, registry.versions).splits["bikeshare"]
    try:
        with TestClient(create_app(Settings(), registry, logger, ab_weights=weights)) as c:
            seen = {}
            for i, key in enumerate(KEYS[:60]):
                r = c.post("/v1/models/bikeshare:predict", json={"instances": [raw_rows[i]]},
                           headers={"X-Skewwatch-Route-Key": key})
                assert r.status_code == 200, r.text
                assert r.json()["model_version"] == r.headers["x-model-version"] == split.pick(key)
                seen[key] = r.json()["model_version"]
            assert set(seen.values()) == {old, NEWER}
            # sticky: the same key, another request id and body, the same version
            for key in KEYS[:20]:
                r = c.post("/v1/models/bikeshare:predict", json={"inputs": {k: [v] for k, v in raw_rows[7].items()}},
                           headers={"X-Skewwatch-Route-Key": key, "X-Request-Id": f"again-{key}"})
                assert r.json()["model_version"] == seen[key]
            # a pin always wins, whatever the key says
            for key in KEYS[:20]:
                r = c.post(f"/v1/models/bikeshare/versions/{old}:predict", json={"instances": [raw_rows[0]]},
                           headers={"X-Skewwatch-Route-Key": key})
                assert r.json()["model_version"] == old
            # without a route key the request id routes (replays with one id stay on one version)
            r = c.post("/v1/models/bikeshare:predict", json={"instances": [raw_rows[0]]}, headers={"X-Request-Id": "rid-5"})
            assert r.json()["model_version"] == split.pick("rid-5")
    finally:
        logger.close(timeout=0)


def test_without_weights_the_latest_version_gets_everything(two_versions, raw_rows):
    root, _ = two_versions
    logger = _logger()
    try:
        with TestClient(create_app(Settings(), ModelRegistry(root), logger)) as c:
            versions = {c.post("/v1/models/bikeshare:predict", json={"instances": [raw_rows[0]]},
                               headers={"X-Skewwatch-Route-Key": k}).json()["model_version"] for k in KEYS[:30]}
    finally:
        logger.close(timeout=0)
    assert versions == {NEWER}


def test_unknown_versions_in_the_weights_fail_at_start_up(two_versions, models_dir):
    root, old = two_versions
    with pytest.raises(ConfigError) as info:
        create_app(Settings(), ModelRegistry(root), _logger(), ab_weights={"bikeshare": {old: 0.5, "20000101T000000Z": 0.5}})
    assert info.value.field == "ab_weights.bikeshare.20000101T000000Z"
    with pytest.raises(ConfigError) as info:
        create_app(Settings(), ModelRegistry(root), _logger(), ab_weights={"nope": {old: 1}})
    assert info.value.field == "ab_weights.nope"
    from serving.server import build_server

    with pytest.raises(ConfigError, match="20000101T000000Z"):
        build_server(Settings(models_dir=models_dir, kafka_bootstrap_servers=UNREACHABLE),
                     ab_weights={"bikeshare": {"20000101T000000Z": 1}})


def test_the_server_preloads_every_version_with_traffic(two_versions):
    from serving.server import build_server

    root, old = two_versions
    settings = Settings(models_dir=root, kafka_bootstrap_servers=UNREACHABLE, serve_port=0)
    server, logger = build_server(settings, ab_weights={"bikeshare": {old: 0.5, NEWER: 0.5}})
    try:
        statuses = server.config.app.state.registry.status("bikeshare")
    finally:
        logger.close(timeout=0)
    assert {s.version: s.loaded for s in statuses} == {old: True, NEWER: True}


def test_a_weighted_version_removed_after_start_up_falls_back_to_the_latest(two_versions, tmp_path, raw_rows):
    root, old = two_versions
    own = tmp_path / "models"
    shutil.copytree(root, own)
    registry = ModelRegistry(own, rescan_seconds=0)
    logger = _logger()
    try:
        with TestClient(create_app(Settings(), registry, logger, ab_weights={"bikeshare": {old: 1.0, NEWER: 0.0}})) as c:
            assert c.post("/v1/models/bikeshare:predict", json={"instances": [raw_rows[0]]}).json()["model_version"] == old
            shutil.rmtree(own / "bikeshare" / old)
            r = c.post("/v1/models/bikeshare:predict", json={"instances": [raw_rows[0]]})
            assert r.status_code == 200 and r.json()["model_version"] == NEWER
    finally:
        logger.close(timeout=0)


@pytest.mark.broker
def test_every_logged_record_names_the_version_that_answered(two_versions, raw_rows, tmp_path, wait_until):
    from kafka import KafkaConsumer

    from skewwatch.broker import EmbeddedBroker, ensure_topic

    root, old = two_versions
    weights = {"bikeshare": {old: 0.5, NEWER: 0.5}}
    answered = {}
    with EmbeddedBroker(log_path=tmp_path / "tansu.log") as broker:
        ensure_topic(broker.bootstrap_servers, "ab", partitions=1)
        settings = Settings(kafka_bootstrap_servers=broker.bootstrap_servers, topic="ab")
        with PredictionLogger(settings) as logger:
            with TestClient(create_app(settings, ModelRegistry(root), logger, ab_weights=weights)) as c:
                for i in range(30):
                    r = c.post("/v1/models/bikeshare:predict", json={"instances": [raw_rows[i]]},
                               headers={"X-Request-Id": f"ab-{i}"})
                    answered[f"ab-{i}"] = r.json()["model_version"]
            wait_until(lambda: logger.stats().sent == 30, 30, "30 acknowledged records")
        consumer = KafkaConsumer("ab", bootstrap_servers=broker.bootstrap_servers, group_id="ab",
                                 auto_offset_reset="earliest", max_poll_interval_ms=6000, session_timeout_ms=6000)
        records = []
        wait_until(lambda: records.extend(decode_record(m.value) for ms in consumer.poll(200).values() for m in ms)
                   or len(records) >= 30, 30, "30 records on the topic")
        consumer.close()
    assert set(answered.values()) == {old, NEWER}
    assert {r.request_id: r.model_version for r in records} == answered
