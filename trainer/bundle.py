"""Write a model bundle atomically (format: see :mod:`monitor.bundle`).

Everything is written into a hidden temporary directory beside the final one and then
moved into place with one ``os.rename``, so a reader never sees a half-written bundle.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import tempfile
from datetime import datetime, timedelta, timezone
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Mapping, Sequence

import keras
import pandas as pd
from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2

from monitor.bundle import BUNDLE_FORMAT, METADATA_FILE, PREDICTION_SPEC
from monitor.errors import BundleError
from monitor.profileset import encode_profiles
from monitor.schema import FeatureSpec, specs_to_dicts
from monitor.stats import Profile
from trainer.baseline import write_tfdv
from trainer.model import describe_preprocessing

__all__ = ["BUNDLE_FILES", "MAX_SAMPLE_ROWS", "code_version", "format_version", "sample_rows", "write_bundle"]

log = logging.getLogger(__name__)

BUNDLE_FILES: dict[str, str] = {
    "model": "model.keras",
    "baseline": "baseline.swstats",
    "prediction_baseline": "prediction_baseline.swstats",
    "tfdv_statistics": "tfdv/statistics.pb",
    "tfdv_schema": "tfdv/schema.pbtxt",
    "sample": "sample.csv",
}
MAX_SAMPLE_ROWS = 5000


def format_version(when: datetime) -> str:
    """UTC ``YYYYMMDDTHHMMSSZ``: lexical order is time order."""
    return when.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def code_version() -> str:
    """``git rev-parse HEAD`` of the source tree (``+dirty`` if modified), else the package version."""
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here, capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
        if sha:
            return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        return "skewwatch-" + importlib_metadata.version("skewwatch")
    except importlib_metadata.PackageNotFoundError:
        return "unknown"


def sample_rows(df: pd.DataFrame, *, max_rows: int = MAX_SAMPLE_ROWS, seed: int = 0) -> pd.DataFrame:
    """A reproducible random sample of at most ``max_rows`` rows, in time order, dates as text."""
    if max_rows <= 0:
        raise BundleError(f"max_rows must be > 0, got {max_rows}")
    picked = df.sample(n=min(max_rows, len(df)), random_state=seed) if len(df) > max_rows else df
    if "event_time" in picked.columns:
        picked = picked.sort_values("event_time", kind="stable")
    out = picked.reset_index(drop=True).copy()
    for col in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[col]):
            fmt = "%Y-%m-%d" if col == "dteday" else "%Y-%m-%dT%H:%M:%SZ"
            out[col] = out[col].dt.tz_convert("UTC").dt.strftime(fmt) if out[col].dt.tz else out[col].dt.strftime(fmt)
    return out


def _rfc3339(when: datetime) -> str:
    return when.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def write_bundle(
    *,
    models_dir: str | os.PathLike[str],
    model_name: str,
    model: keras.Model,
    specs: Sequence[FeatureSpec],
    label: str,
    baseline: Profile,
    prediction_baseline: Profile,
    tfdv_statistics: statistics_pb2.DatasetFeatureStatisticsList,
    tfdv_schema: schema_pb2.Schema,
    sample: pd.DataFrame,
    metrics: Mapping[str, Any],
    hyperparameters: Mapping[str, Any],
    data: Mapping[str, Any],
    created_at: datetime | None = None,
    tuning: Mapping[str, Any] | None = None,
    baseline_slots: Mapping[str, Profile] | None = None,
    baseline_segments: Mapping[str, Profile] | None = None,
) -> Path:
    """Write ``<models_dir>/<model_name>/<version>/`` atomically and return its path.

    ``data`` must hold ``path``, ``train_start``, ``train_end`` and ``rows``. The version is
    the UTC creation time; if that version exists already, the next free second is used.
    ``tuning`` (the hyperparameter search that chose ``hyperparameters``, JSON-ready) is
    stored as ``metadata["tuning"]`` when given. ``baseline_slots`` / ``baseline_segments`` (profile
    sets of :mod:`trainer.slices`) are written as optional files when given.
    """
    if not model_name or Path(model_name).name != model_name or model_name.startswith("."):
        raise BundleError(f"model_name must be a plain directory name, got {model_name!r}")
    for key in ("path", "train_start", "train_end", "rows"):
        if key not in data:
            raise BundleError(f"data description lacks {key!r}")
    if len(sample) > MAX_SAMPLE_ROWS:
        raise BundleError(f"sample has {len(sample)} rows, more than {MAX_SAMPLE_ROWS}")
    created = (created_at or datetime.now(timezone.utc)).astimezone(timezone.utc).replace(microsecond=0)
    model_dir = Path(models_dir) / model_name
    model_dir.mkdir(parents=True, exist_ok=True)

    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=model_dir))
    try:
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; a bundle is meant to be read by others
        model.save(tmp / BUNDLE_FILES["model"])
        (tmp / BUNDLE_FILES["baseline"]).write_bytes(baseline.to_bytes())
        (tmp / BUNDLE_FILES["prediction_baseline"]).write_bytes(prediction_baseline.to_bytes())
        write_tfdv(
            tfdv_statistics,
            tfdv_schema,
            statistics_path=tmp / BUNDLE_FILES["tfdv_statistics"],
            schema_path=tmp / BUNDLE_FILES["tfdv_schema"],
        )
        sample.to_csv(tmp / BUNDLE_FILES["sample"], index=False, na_rep="")
        files = dict(BUNDLE_FILES)
        for key, profiles in (("baseline_slots", baseline_slots), ("baseline_segments", baseline_segments)):
            if profiles:
                files[key] = f"{key}.swstats"
                (tmp / files[key]).write_bytes(encode_profiles(profiles))
        meta: dict[str, Any] = {
            "bundle_format": BUNDLE_FORMAT,
            "model_name": model_name,
            "model_version": "",
            "created_at": "",
            "features": specs_to_dicts(specs),
            "label": label,
            "prediction": specs_to_dicts([PREDICTION_SPEC])[0],
            "metrics": dict(metrics),
            "hyperparameters": dict(hyperparameters),
            "data": dict(data),
            "preprocessing": describe_preprocessing(model, specs),
            "code_version": code_version(),
            "files": files,
        }
        if tuning is not None:
            meta["tuning"] = dict(tuning)
        for attempt in range(60):
            when = created + timedelta(seconds=attempt)
            version = format_version(when)
            meta["model_version"], meta["created_at"] = version, _rfc3339(when)
            (tmp / METADATA_FILE).write_text(json.dumps(meta, indent=2, sort_keys=False) + "\n", encoding="utf-8")
            final = model_dir / version
            if final.exists():
                continue
            try:
                os.rename(tmp, final)
            except OSError:
                if final.exists():  # lost a race for this version: try the next second
                    continue
                raise
            log.info("wrote bundle %s", final)
            return final
        raise BundleError("no free version in the next 60 seconds", path=str(model_dir))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
