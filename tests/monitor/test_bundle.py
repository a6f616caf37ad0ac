"""monitor.bundle: reading, listing and resolving bundles, and the errors for broken ones.

These bundles are written by hand (real metadata and real skewwatch profiles; the Keras and
TFDV files are placeholders because this pure reader only checks that they exist). The
bundle the trainer really writes is read back in tests/trainer/test_train.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from monitor.bundle import PREDICTION_SPEC, REQUIRED_FILES, Bundle, list_bundles, resolve_bundle
from monitor.errors import BundleError
from monitor.schema import FeatureSpec, specs_to_dicts
from monitor.stats import Profile

SPECS = (FeatureSpec("temp", "numeric", "float"), FeatureSpec("season", "categorical", "string"))
FILES = {
    "model": "model.keras",
    "baseline": "baseline.swstats",
    "prediction_baseline": "prediction_baseline.swstats",
    "tfdv_statistics": "tfdv/statistics.pb",
    "tfdv_schema": "tfdv/schema.pbtxt",
    "sample": "sample.csv",
}


def _profiles(seed: int) -> tuple[Profile, Profile]:
    rng = np.random.default_rng(seed)
    features = Profile.empty(SPECS)
    features.update_frame(pd.DataFrame({"temp": rng.normal(15, 8, 500), "season": rng.choice(["fall", "spring"], 500)}))
    preds = Profile.empty((PREDICTION_SPEC,))
    preds.update_frame(pd.DataFrame({"prediction": rng.gamma(2.0, 80.0, 500)}))
    return features, preds


WRITTEN: dict[Path, tuple[Profile, Profile]] = {}


def make_bundle(models_dir: Path, name: str, version: str, *, seed: int = 0, **meta_overrides) -> Path:
    root = models_dir / name / version
    (root / "tfdv").mkdir(parents=True)
    features, preds = _profiles(seed)
    WRITTEN[root] = (features, preds)
    (root / FILES["baseline"]).write_bytes(features.to_bytes())
    (root / FILES["prediction_baseline"]).write_bytes(preds.to_bytes())
    for key in ("model", "tfdv_statistics", "tfdv_schema", "sample"):
        (root / FILES[key]).write_bytes(b"placeholder")
    meta = {
        "bundle_format": 1,
        "model_name": name,
        "model_version": version,
        "created_at": "2026-01-01T00:00:00Z",
        "features": specs_to_dicts(SPECS),
        "label": "cnt",
        "prediction": specs_to_dicts([PREDICTION_SPEC])[0],
        "metrics": {"validation": {"mae": 1.0}},
        "hyperparameters": {},
        "data": {"path": "d.csv", "train_start": "a", "train_end": "b", "rows": 500},
        "files": dict(FILES),
    }
    meta.update(meta_overrides)
    (root / "metadata.json").write_text(json.dumps(meta))
    return root


def test_load_reads_metadata_and_profiles(tmp_path: Path) -> None:
    path = make_bundle(tmp_path, "bike", "20260101T000000Z", seed=3)
    bundle = Bundle.load(path)
    assert (bundle.path, bundle.model_name, bundle.model_version, bundle.specs) == (path, "bike", "20260101T000000Z", SPECS)
    assert bundle.label == "cnt" and bundle.metrics == {"validation": {"mae": 1.0}}
    assert bundle.file("model") == path / "model.keras"
    features, preds = WRITTEN[path]
    assert bundle.baseline() == features and bundle.baseline().rows == 500
    assert bundle.prediction_baseline() == preds
    assert bundle.prediction_baseline().specs == (PREDICTION_SPEC,)
    assert bundle.baseline()["season"].counts() == features["season"].counts()
    assert bundle.baseline() != _profiles(4)[0]


def test_list_sorts_by_name_then_version_and_ignores_non_bundles(tmp_path: Path) -> None:
    for name, version in [("zeta", "20260101T000000Z"), ("alpha", "20260301T000000Z"), ("alpha", "20251231T235959Z")]:
        make_bundle(tmp_path, name, version)
    (tmp_path / "alpha" / ".tmp-abc").mkdir()  # a bundle being written
    (tmp_path / "alpha" / "notes").mkdir()
    (tmp_path / ".hidden").mkdir()
    found = [(b.model_name, b.model_version) for b in list_bundles(tmp_path, strict=True)]
    assert found == [("alpha", "20251231T235959Z"), ("alpha", "20260301T000000Z"), ("zeta", "20260101T000000Z")]


def test_resolve_latest_and_explicit(tmp_path: Path) -> None:
    make_bundle(tmp_path, "bike", "20260101T000000Z")
    make_bundle(tmp_path, "bike", "20260102T000000Z")
    assert resolve_bundle(tmp_path, "bike").model_version == "20260102T000000Z"
    assert resolve_bundle(tmp_path, "bike", "20260101T000000Z").model_version == "20260101T000000Z"
    with pytest.raises(BundleError) as err:
        resolve_bundle(tmp_path, "bike", "20270101T000000Z")
    assert err.value.path == str(tmp_path / "bike" / "20270101T000000Z")
    with pytest.raises(BundleError) as err:
        resolve_bundle(tmp_path, "car")
    assert err.value.path == str(tmp_path / "car")
    for bad in ("latest", "../bike/20260101T000000Z"):
        with pytest.raises(BundleError):
            resolve_bundle(tmp_path, "bike", bad)
    with pytest.raises(BundleError):
        resolve_bundle(tmp_path, "../bike")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BundleError) as err:
        resolve_bundle(tmp_path, "empty")
    assert "no versions" in str(err.value)


def test_missing_directories_and_metadata(tmp_path: Path) -> None:
    with pytest.raises(BundleError) as err:
        Bundle.load(tmp_path / "nope")
    assert err.value.path == str(tmp_path / "nope")
    with pytest.raises(BundleError) as err:
        list_bundles(tmp_path / "nope")
    assert err.value.path == str(tmp_path / "nope")
    path = make_bundle(tmp_path, "bike", "20260101T000000Z")
    (path / "metadata.json").unlink()
    with pytest.raises(BundleError) as err:
        Bundle.load(path)
    assert err.value.path == str(path / "metadata.json")


@pytest.mark.parametrize("key", REQUIRED_FILES)
def test_missing_file_is_named(tmp_path: Path, key: str) -> None:
    path = make_bundle(tmp_path, "bike", "20260101T000000Z")
    (path / FILES[key]).unlink()
    with pytest.raises(BundleError) as err:
        Bundle.load(path)
    assert err.value.path == str(path / FILES[key])


@pytest.mark.parametrize(
    "overrides",
    [
        {"bundle_format": 2},
        {"bundle_format": "1"},
        {"bundle_format": True},
        {"bundle_format": None},
        {"model_name": 7},
        {"model_version": "v1"},
        {"features": [{"name": "temp", "kind": "text", "dtype": "float"}]},
        {"features": [{"name": "temp"}]},
        {"features": []},
        {"features": "temp"},
        {"files": {"model": "model.keras"}},
    ],
)
def test_bad_metadata_is_a_bundle_error(tmp_path: Path, overrides: dict) -> None:
    path = make_bundle(tmp_path, "bike", "20260101T000000Z", **overrides)
    with pytest.raises(BundleError) as err:
        Bundle.load(path)
    assert err.value.path == str(path / "metadata.json")


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", ""])
def test_unparseable_metadata(tmp_path: Path, text: str) -> None:
    path = make_bundle(tmp_path, "bike", "20260101T000000Z")
    (path / "metadata.json").write_text(text)
    with pytest.raises(BundleError) as err:
        Bundle.load(path)
    assert err.value.path == str(path / "metadata.json")


def test_broken_bundles_are_skipped_or_raised(tmp_path: Path) -> None:
    good = make_bundle(tmp_path, "bike", "20260101T000000Z")
    make_bundle(tmp_path, "bike", "20260102T000000Z", bundle_format=99)
    make_bundle(tmp_path, "bike", "20260103T000000Z", model_name="other")  # metadata disagrees with its path
    assert [b.path for b in list_bundles(tmp_path)] == [good]
    with pytest.raises(BundleError):
        list_bundles(tmp_path, strict=True)
    with pytest.raises(BundleError) as err:
        resolve_bundle(tmp_path, "bike")  # the latest is broken: no silent fallback
    assert err.value.path == str(tmp_path / "bike" / "20260103T000000Z")


def test_corrupt_baseline_bytes(tmp_path: Path) -> None:
    path = make_bundle(tmp_path, "bike", "20260101T000000Z")
    data = (path / FILES["baseline"]).read_bytes()
    (path / FILES["baseline"]).write_bytes(data[: len(data) // 2])
    (path / FILES["prediction_baseline"]).write_bytes(b"garbage")
    bundle = Bundle.load(path)
    for read, key in ((bundle.baseline, "baseline"), (bundle.prediction_baseline, "prediction_baseline")):
        with pytest.raises(BundleError) as err:
            read()
        assert err.value.path == str(path / FILES[key])


def test_bundle_reader_imports_no_tensorflow() -> None:
    code = (
        "import sys, monitor.bundle; "
        "sys.exit(1 if {'tensorflow', 'keras', 'tensorflow_data_validation'} & set(sys.modules) else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0
