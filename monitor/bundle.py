"""Model bundles on disk: the metadata and skewwatch baselines the monitor side reads.

A bundle lives at ``<models_dir>/<model_name>/<version>/`` (version = UTC
``YYYYMMDDTHHMMSSZ``, so versions sort lexically by time) and holds ``metadata.json``,
the Keras model, the skewwatch baselines (``*.swstats``), TFDV statistics and schema and
a sample of training rows. This module is pure: it reads JSON and the skewwatch
baselines only, never TensorFlow or TFDV, so collectors and the monitor can use it.
The trainer writes bundles (``trainer.bundle.write_bundle``).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any, Mapping

from monitor.errors import BundleError, SchemaError, StatisticsError
from monitor.profileset import decode_profiles
from monitor.schema import FeatureSpec, specs_from_dicts
from monitor.slots import slot_key
from monitor.stats import Profile

__all__ = [
    "BUNDLE_FORMAT",
    "METADATA_FILE",
    "PREDICTION_SPEC",
    "REQUIRED_FILES",
    "VERSION_PATTERN",
    "Bundle",
    "list_bundles",
    "resolve_bundle",
]

log = logging.getLogger(__name__)

BUNDLE_FORMAT = 1
METADATA_FILE = "metadata.json"
# The single output every bundle's prediction baseline describes.
PREDICTION_SPEC = FeatureSpec("prediction", "numeric", "float")
# Keys of metadata["files"] a bundle must list (and whose files must exist).
REQUIRED_FILES = ("model", "baseline", "prediction_baseline", "tfdv_statistics", "tfdv_schema", "sample")
VERSION_PATTERN = re.compile(r"^\d{8}T\d{6}Z$")


def _require(meta: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: Path) -> Any:
    value = meta.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        expected = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise BundleError(f"metadata field {key!r} must be {expected}, got {value!r}", path=str(where))
    return value


@dataclass(frozen=True)
class Bundle:
    """One trained model version: where it is, what it takes, and what it was trained on."""

    path: Path
    model_name: str
    model_version: str
    specs: tuple[FeatureSpec, ...]
    metadata: Mapping[str, Any] = field(compare=False, repr=False)

    @classmethod
    def load(cls, path: str | PathLike[str]) -> "Bundle":
        """Read and validate ``metadata.json``; every listed file must exist."""
        root = Path(path)
        if not root.is_dir():
            raise BundleError("bundle directory does not exist", path=str(root))
        meta_path = root / METADATA_FILE
        if not meta_path.is_file():
            raise BundleError(f"{METADATA_FILE} is missing", path=str(meta_path))
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BundleError(f"unreadable metadata ({exc})", path=str(meta_path)) from None
        if not isinstance(meta, dict):
            raise BundleError("metadata must be a JSON object", path=str(meta_path))
        fmt = meta.get("bundle_format")
        if fmt != BUNDLE_FORMAT or isinstance(fmt, bool):
            raise BundleError(f"unsupported bundle_format {fmt!r} (this reader knows {BUNDLE_FORMAT})", path=str(meta_path))
        name = _require(meta, "model_name", str, meta_path)
        version = _require(meta, "model_version", str, meta_path)
        if not name or not VERSION_PATTERN.match(version):
            raise BundleError(f"bad model_name/model_version {name!r}/{version!r}", path=str(meta_path))
        features = _require(meta, "features", list, meta_path)
        try:
            specs = specs_from_dicts(features)
        except (SchemaError, TypeError) as exc:
            raise BundleError(f"bad features ({exc})", path=str(meta_path)) from None
        if not specs:
            raise BundleError("bundle lists no features", path=str(meta_path))
        files = _require(meta, "files", dict, meta_path)
        for key in REQUIRED_FILES:
            rel = files.get(key)
            if not isinstance(rel, str) or not rel:
                raise BundleError(f"metadata 'files' lacks {key!r}", path=str(meta_path))
            target = root / rel
            if not target.exists():
                raise BundleError(f"{key} file is missing", path=str(target))
        return cls(path=root, model_name=name, model_version=version, specs=specs, metadata=meta)

    def file(self, key: str) -> Path:
        """Absolute path of the file listed under ``metadata["files"][key]``."""
        rel = self.metadata.get("files", {}).get(key)
        if not isinstance(rel, str):
            raise BundleError(f"bundle lists no {key!r} file", path=str(self.path / METADATA_FILE))
        return self.path / rel

    @property
    def label(self) -> str | None:
        return self.metadata.get("label")

    @property
    def created_at(self) -> str | None:
        return self.metadata.get("created_at")

    @property
    def metrics(self) -> Mapping[str, Any]:
        return self.metadata.get("metrics", {})

    def _profile(self, key: str) -> Profile:
        target = self.file(key)
        try:
            data = target.read_bytes()
        except OSError as exc:
            raise BundleError(f"cannot read {key} ({exc})", path=str(target)) from None
        try:
            return Profile.from_bytes(data)
        except StatisticsError as exc:
            raise BundleError(f"corrupt {key} ({exc})", path=str(target)) from None

    def baseline(self) -> Profile:
        """Skewwatch statistics of the training rows' features."""
        return self._profile("baseline")

    @property
    def output_specs(self) -> tuple[FeatureSpec, ...]:
        """The model's outputs as feature specs (``metadata["outputs"]``; default one numeric ``prediction``)."""
        raw = self.metadata.get("outputs")
        if raw is None:
            return (PREDICTION_SPEC,)
        try:
            specs = specs_from_dicts(raw)
        except (SchemaError, TypeError) as exc:
            raise BundleError(f"bad outputs ({exc})", path=str(self.path / METADATA_FILE)) from None
        if not specs:
            raise BundleError("bundle lists no outputs", path=str(self.path / METADATA_FILE))
        return specs

    def _profile_set(self, key: str) -> dict[str, Profile]:
        """An optional set of baselines (``metadata["files"][key]``); empty when the bundle has none."""
        cache = self.__dict__.setdefault("_sets", {})
        if key not in cache:
            rel = self.metadata.get("files", {}).get(key)
            if not isinstance(rel, str):
                cache[key] = {}
            else:
                target = self.path / rel
                try:
                    cache[key] = decode_profiles(target.read_bytes())
                except OSError as exc:
                    raise BundleError(f"cannot read {key} ({exc})", path=str(target)) from None
                except StatisticsError as exc:
                    raise BundleError(f"corrupt {key} ({exc})", path=str(target)) from None
        return cache[key]

    def slot_baseline(self, kind: str, slot: int) -> tuple[Profile, Profile] | None:
        """(features, outputs) of the training rows in one calendar slot (:mod:`monitor.slots`), if built."""
        found = self._profile_set("baseline_slots")
        name = slot_key(kind, slot)
        if f"features/{name}" not in found:
            return None
        return found[f"features/{name}"], found[f"output/{name}"]

    def segment_baseline(self, feature: str, value: str) -> tuple[Profile, Profile] | None:
        """(features, outputs) of the training rows whose ``feature`` is ``value``, if built."""
        found = self._profile_set("baseline_segments")
        name = f"{feature}={value}"
        if f"features/{name}" not in found:
            return None
        return found[f"features/{name}"], found[f"output/{name}"]

    def prediction_baseline(self) -> Profile:
        """Skewwatch statistics of the model's outputs on the training rows (the :attr:`output_specs`)."""
        return self._profile("prediction_baseline")


def list_bundles(models_dir: str | PathLike[str], *, strict: bool = False) -> list[Bundle]:
    """Every bundle under ``models_dir``, sorted by (model name, version).

    Directories that are not bundles (hidden or temporary ones, names that are not
    versions) are ignored. A broken bundle is logged and skipped, or raises
    :class:`BundleError` when ``strict``; so is one whose metadata disagrees with its path.
    """
    root = Path(models_dir)
    if not root.is_dir():
        raise BundleError("models directory does not exist", path=str(root))
    found: list[Bundle] = []
    for model_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for version_dir in sorted(p for p in model_dir.iterdir() if p.is_dir() and VERSION_PATTERN.match(p.name)):
            try:
                bundle = Bundle.load(version_dir)
                if (bundle.model_name, bundle.model_version) != (model_dir.name, version_dir.name):
                    raise BundleError(
                        f"metadata says {bundle.model_name}/{bundle.model_version}, the path says "
                        f"{model_dir.name}/{version_dir.name}",
                        path=str(version_dir),
                    )
            except BundleError as exc:
                if strict:
                    raise
                log.warning("skipping broken bundle: %s", exc)
                continue
            found.append(bundle)
    return sorted(found, key=lambda b: (b.model_name, b.model_version))


def resolve_bundle(models_dir: str | PathLike[str], name: str, version: str | None = None) -> Bundle:
    """The bundle ``name`` at ``version``, or its latest version when ``version`` is None."""
    root = Path(models_dir)
    model_dir = root / name
    if not name or Path(name).name != name or not model_dir.is_dir():
        raise BundleError(f"no model named {name!r}", path=str(model_dir))
    if version is not None:
        if not VERSION_PATTERN.match(version):
            raise BundleError(f"not a bundle version (YYYYMMDDTHHMMSSZ): {version!r}", path=str(model_dir / version))
        bundle = Bundle.load(model_dir / version)
    else:
        versions = sorted(p.name for p in model_dir.iterdir() if p.is_dir() and VERSION_PATTERN.match(p.name))
        if not versions:
            raise BundleError(f"model {name!r} has no versions", path=str(model_dir))
        bundle = Bundle.load(model_dir / versions[-1])
    if (bundle.model_name, bundle.model_version) != (name, bundle.path.name):
        raise BundleError(
            f"metadata says {bundle.model_name}/{bundle.model_version}", path=str(bundle.path)
        )
    return bundle
