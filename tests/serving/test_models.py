"""ModelRegistry: discovery, latest version, new bundles picked up, broken bundles."""

import json
import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from monitor.bundle import resolve_bundle
from monitor.errors import BundleError
from monitor.settings import Settings
from serving.app import create_app
from serving.models import ModelNotFoundError, ModelRegistry
from serving.publisher import PredictionLogger

NEWER = "20990101T000000Z"


def _copy_version(models_dir, new_version: str, *, corrupt_model: bool = False):
    src = resolve_bundle(models_dir, "bikeshare")
    dst = src.path.parent / new_version
    shutil.copytree(src.path, dst)
    meta = json.loads((dst / "metadata.json").read_text())
    meta["model_version"] = new_version
    (dst / "metadata.json").write_text(json.dumps(meta))
    if corrupt_model:
        (dst / meta["files"]["model"]).write_bytes(b"not a keras archive")
    return src.model_version


@pytest.fixture
def own_models(models_dir, tmp_path):
    """A private copy of the session's models directory, free to modify."""
    root = tmp_path / "models"
    shutil.copytree(models_dir, root)
    return root


def test_latest_is_the_newest_version_and_a_new_bundle_is_picked_up(own_models, raw_rows):
    registry = ModelRegistry(own_models, rescan_seconds=0)
    old = registry.get("bikeshare")
    assert registry.names() == ["bikeshare"] and registry.versions("bikeshare") == [old.version]
    _copy_version(own_models, NEWER)
    new = registry.get("bikeshare")
    assert new.version == NEWER and registry.versions("bikeshare") == [old.version, NEWER]
    assert registry.get("bikeshare", old.version) is old  # loaded once, kept
    assert [s.version for s in registry.status("bikeshare") if s.loaded] == [old.version, NEWER]
    assert new.predict(raw_rows[:5]) == old.predict(raw_rows[:5])  # same weights, same answers


def test_unknown_names_and_versions_raise_model_not_found(own_models):
    registry = ModelRegistry(own_models, rescan_seconds=0)
    with pytest.raises(ModelNotFoundError, match="no model named 'other'"):
        registry.get("other")
    with pytest.raises(ModelNotFoundError, match="no version '20000101T000000Z'"):
        registry.get("bikeshare", "20000101T000000Z")
    with pytest.raises(ModelNotFoundError):
        registry.get("../bikeshare")
    assert ModelRegistry(own_models / "missing", rescan_seconds=0).names() == []


def test_concurrent_first_requests_load_the_model_once(own_models):
    registry = ModelRegistry(own_models, rescan_seconds=0)
    with ThreadPoolExecutor(max_workers=4) as pool:
        served = list(pool.map(lambda _: registry.get("bikeshare"), range(8)))
    assert all(s is served[0] for s in served)


def test_an_unloadable_model_answers_503_and_shows_in_the_status(own_models, raw_rows):
    old = _copy_version(own_models, NEWER, corrupt_model=True)
    registry = ModelRegistry(own_models, rescan_seconds=0)
    with pytest.raises(BundleError, match="cannot load Keras model"):
        registry.get("bikeshare")
    settings = Settings(kafka_bootstrap_servers="127.0.0.1:1")
    logger = PredictionLogger(settings)
    try:
        with TestClient(create_app(settings, registry, logger)) as c:
            r = c.post("/v1/models/bikeshare:predict", json={"instances": raw_rows[:2]})
            assert r.status_code == 503 and "unavailable" in r.json()["error"]
            assert str(own_models) not in r.json()["error"]
            r = c.post(f"/v1/models/bikeshare/versions/{old}:predict", json={"instances": raw_rows[:2]})
            assert r.status_code == 200  # the older, sound version still serves
            states = {s["version"]: s for s in c.get("/v1/models/bikeshare").json()["model_version_status"]}
            assert states[NEWER]["state"] == "END" and states[NEWER]["status"]["error_code"] == "UNKNOWN"
            assert states[old]["state"] == "AVAILABLE" and states[old]["loaded"] is True
    finally:
        logger.close(timeout=0)
    assert registry.preload() == []  # the latest cannot load: logged, not raised
