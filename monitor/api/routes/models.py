"""Models and versions, their baselines (read, and TFDV upload), and the monitor config per model."""

from __future__ import annotations

import math
from typing import Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Path
from fastapi.exceptions import RequestValidationError
from pydantic import Field

from monitor.api.bounded import clip
from monitor.api.context import Context
from monitor.api.routes.common import NAME_MAX, READ, WRITE, not_found, only
from monitor.api.schemas import Problem, WindowOut, _Out, window_out
from monitor.api.security import Guards
from monitor.api.tfdv_baselines import UploadError, check_upload, summarise_statistics
from monitor.bundle import PREDICTION_SPEC, Bundle
from monitor.config import MonitorConfig, ModelOverrides, parse_monitor_config
from monitor.errors import ConfigError
from monitor.report import QUANTILES
from monitor.stats import CategoricalStats, NumericStats, Profile
from monitor.timeutil import format_instant

__all__ = ["add_model_routes", "effective_config"]

ModelName = Path(min_length=1, max_length=NAME_MAX, description="A model name.")
Version = Path(min_length=1, max_length=NAME_MAX, description="A model version (YYYYMMDDTHHMMSSZ).")
BundleVersion = Path(pattern=r"^\d{8}T\d{6}Z$", description="A bundle version (YYYYMMDDTHHMMSSZ).")
_NOT_FOUND = {404: {"model": Problem, "description": "No such model, version or baseline."}}


class FeatureSpecOut(_Out):
    name: str
    kind: Literal["numeric", "categorical"]
    dtype: Literal["float", "int", "string"]


class BundleOut(_Out):
    created_at: str | None
    label: str | None
    features: list[FeatureSpecOut]
    metrics: dict[str, Any]


class UploadedBaselineOut(_Out):
    model: str
    model_version: str
    sha256: str
    features: int
    uploaded_ms: int
    uploaded_at: str
    uploaded_by: str


class StreamOut(_Out):
    segment: str
    latest_window: WindowOut


class VersionOut(_Out):
    version: str
    bundle: BundleOut | None
    uploaded_baseline: UploadedBaselineOut | None
    streams: list[StreamOut]


class ModelOut(_Out):
    model: str
    versions: list[VersionOut]
    config_source: Literal["store", "file", "defaults"]


class ModelsOut(_Out):
    models: list[ModelOut]


class FeatureSummary(_Out):
    name: str
    kind: Literal["numeric", "categorical"]
    count: int
    missing: int
    mean: float | None = None
    std: float | None = None
    min: float | None = None
    max: float | None = None
    quantiles: dict[str, float | None] | None = None
    distinct: float | None = None
    exact: bool | None = None
    top: list[dict[str, Any]] | None = None


class BaselineOut(_Out):
    model: str
    model_version: str
    rows: int
    features: list[FeatureSummary]
    predictions: list[FeatureSummary]
    uploaded_tfdv: UploadedBaselineOut | None


class TfdvUpload(_Out):
    statistics: str = Field(min_length=1, description="A serialised DatasetFeatureStatisticsList (one dataset), "
                                                       "base64: a bundle's tfdv/statistics.pb.")
    schema_: str = Field(min_length=1, alias="schema", description="The Schema as a text proto (tfdv/schema.pbtxt).")
    by: str = Field(min_length=1, max_length=NAME_MAX, description="Who uploads it.")


class TfdvBaselineOut(UploadedBaselineOut):
    num_examples: int
    feature_statistics: list[dict[str, Any]]


class PolicyOut(_Out):
    bh_level: float
    severity_multiplier: float
    min_count: int
    persistence: dict[str, int] | None = Field(description="k of the last n windows must alert; null: every window")
    floors: dict[str, float]
    enabled: list[str]


class ConfigOut(_Out):
    model: str
    source: Literal["store", "file", "defaults"]
    document: dict[str, Any] = Field(description="The model's section of the monitor config (ModelOverrides).")
    updated_ms: int | None
    updated_at: str | None
    updated_by: str | None
    policies: dict[str, PolicyOut] = Field(description="The resolved policy of each feature of the latest bundle.")


class ConfigDocument(_Out):
    document: dict[str, Any] = Field(description="The model's section of the monitor YAML, as JSON: bh_level, "
                                                 "severity_multiplier, min_count, persistence, floors, tests, features.")


class ConfigIn(ConfigDocument):
    by: str = Field(min_length=1, max_length=NAME_MAX, description="Who changes it.")


def _f(x: float) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def _summaries(profile: Profile, *, max_chars: int) -> list[FeatureSummary]:
    out = []
    for spec in profile.specs:
        s = profile.features[spec.name]
        if isinstance(s, NumericStats):
            qs = s.quantiles(QUANTILES) if s.count else [math.nan] * len(QUANTILES)
            out.append(FeatureSummary(
                name=spec.name, kind="numeric", count=s.count, missing=s.missing, mean=_f(s.mean), std=_f(s.std),
                min=_f(s.min), max=_f(s.max),
                quantiles={f"p{round(q * 100):02d}": _f(v) for q, v in zip(QUANTILES, qs)}))
        elif isinstance(s, CategoricalStats):
            out.append(FeatureSummary(
                name=spec.name, kind="categorical", count=s.count, missing=s.missing, distinct=s.distinct_estimate,
                exact=s.is_exact, top=[{"value": clip(v, max_chars), "count": c} for v, c in s.top(20)]))
    return out


def _bundle_out(b: Bundle) -> BundleOut:
    metrics = b.metrics if isinstance(b.metrics, dict) else {}
    return BundleOut(created_at=b.created_at, label=b.label,
                     features=[FeatureSpecOut(name=s.name, kind=s.kind, dtype=s.dtype) for s in b.specs],
                     metrics=dict(metrics))


def _uploaded_out(r: Any) -> UploadedBaselineOut:
    return UploadedBaselineOut(model=r.model, model_version=r.model_version, sha256=r.sha256, features=r.features,
                               uploaded_ms=r.uploaded_ms, uploaded_at=format_instant(r.uploaded_ms),
                               uploaded_by=r.uploaded_by)


def effective_config(file_config: MonitorConfig, stored: dict[str, ModelOverrides]) -> MonitorConfig:
    """The file's config with each model's section replaced by the one stored through the API
    (``MonitorConfig.with_models``: the collectors decide with the same)."""
    return file_config.with_models(stored)


def _policy_out(config: MonitorConfig, model: str, feature: str) -> PolicyOut:
    p = config.policy_for(model, feature)
    return PolicyOut(bh_level=p.bh_level, severity_multiplier=p.severity_multiplier, min_count=p.min_count,
                     persistence=None if p.persistence is None else {"k": p.persistence.k, "n": p.persistence.n},
                     floors={str(k): float(v) for k, v in sorted(p.floors.items())},
                     enabled=sorted(str(t) for t in p.enabled))


def add_model_routes(app: FastAPI, ctx: Context, guards: Guards) -> None:
    store = ctx.store
    read, write = [Depends(guards.read)], [Depends(guards.write)]
    chars = ctx.max_chars

    def file_config() -> MonitorConfig:
        try:
            return ctx.file_config()
        except ConfigError as exc:  # our configuration is broken: not the caller's fault
            raise HTTPException(status_code=503, detail=f"the monitor's config file does not load: {exc}") from None

    def source_of(model: str, file_cfg: MonitorConfig, stored: set[str]) -> Literal["store", "file", "defaults"]:
        return "store" if model in stored else "file" if model in file_cfg.models else "defaults"

    def model_out(model: str, file_cfg: MonitorConfig, stored: set[str]) -> ModelOut | None:
        bundles = {v: b for (m, v), b in ctx.bundles.all().items() if m == model}
        streams: dict[str, list[StreamOut]] = {}
        for w in store.latest_windows(model=model):
            streams.setdefault(w.model_version, []).append(StreamOut(segment=w.segment,
                                                                     latest_window=window_out(w, max_chars=chars)))
        uploaded = {r.model_version: r for r in store.baselines(model)}
        versions = sorted(set(bundles) | set(streams) | set(uploaded))
        if not versions:
            return None
        return ModelOut(model=model, config_source=source_of(model, file_cfg, stored), versions=[
            VersionOut(version=v, bundle=_bundle_out(bundles[v]) if v in bundles else None,
                       uploaded_baseline=_uploaded_out(uploaded[v]) if v in uploaded else None,
                       streams=streams.get(v, []))
            for v in versions])

    @app.get("/models", response_model=ModelsOut, responses=READ, tags=["models"],
             dependencies=[*read, Depends(only())])
    def models() -> ModelsOut:
        """Every model with a bundle, a stored window or an uploaded baseline, and its versions."""
        names = {m for m, _ in ctx.bundles.all()} | {w.model for w in store.latest_windows()} \
            | {r.model for r in store.baselines()}
        file_cfg, stored = file_config(), {c.model for c in store.monitor_configs()}
        found = [model_out(m, file_cfg, stored) for m in sorted(names)]
        return ModelsOut(models=[m for m in found if m is not None])

    @app.get("/models/{model}", response_model=ModelOut, responses={**READ, **_NOT_FOUND}, tags=["models"],
             dependencies=[*read, Depends(only())])
    def model(model: str = ModelName) -> ModelOut:
        out = model_out(model, file_config(), {c.model for c in store.monitor_configs()})
        if out is None:
            raise not_found(f"no model {model!r}")
        return out

    # -- baselines -------------------------------------------------------------------------

    @app.get("/models/{model}/versions/{version}/baseline", response_model=BaselineOut,
             responses={**READ, **_NOT_FOUND}, tags=["baselines"], dependencies=[*read, Depends(only())])
    def baseline(model: str = ModelName, version: str = Version) -> BaselineOut:
        """The bundle's training baseline per feature (and the predictions'), and any uploaded TFDV pair."""
        pair = ctx.bundles.profiles(model, version)
        if pair is None:
            raise not_found(f"no bundle {model}/{version} under the models directory")
        uploaded = store.baseline(model, version)
        features, predictions = pair
        return BaselineOut(model=model, model_version=version, rows=features.rows,
                           features=_summaries(features, max_chars=chars),
                           predictions=_summaries(predictions, max_chars=chars),
                           uploaded_tfdv=_uploaded_out(uploaded) if uploaded is not None else None)

    @app.get("/models/{model}/versions/{version}/baseline/tfdv", response_model=TfdvBaselineOut,
             responses={**READ, **_NOT_FOUND}, tags=["baselines"], dependencies=[*read, Depends(only())])
    def tfdv_baseline(model: str = ModelName, version: str = Version) -> TfdvBaselineOut:
        row = store.baseline(model, version)
        if row is None:
            raise not_found(f"no TFDV baseline uploaded for {model}/{version}")
        examples, summary = summarise_statistics(row.statistics)
        for entry in summary:
            for top in entry.get("top_values", ()):
                top["value"] = clip(top["value"], chars)
        return TfdvBaselineOut(**_uploaded_out(row).model_dump(), num_examples=examples, feature_statistics=summary)

    @app.put("/models/{model}/versions/{version}/baseline/tfdv", response_model=UploadedBaselineOut,
             responses={**WRITE, **_NOT_FOUND}, tags=["baselines"], dependencies=[*write, Depends(only())])
    def upload_tfdv_baseline(body: TfdvUpload, model: str = ModelName, version: str = BundleVersion
                             ) -> UploadedBaselineOut:
        """Keep a TFDV statistics + schema pair as this version's baseline for the TFDV checks.

        The version must be a bundle version; the statistics must describe every feature of the bundle
        and the schema every feature of the statistics."""
        bundle = ctx.bundles.get(model, version)
        if bundle is None:
            raise not_found(f"no bundle {model}/{version} under the models directory")
        try:
            checked = check_upload(statistics_b64=body.statistics, schema_text=body.schema_,
                                   expected=[s.name for s in bundle.specs])
        except UploadError as exc:
            raise RequestValidationError([{"loc": ("body", exc.field), "msg": str(exc), "type": "value_error"}]) \
                from None
        row = store.save_baseline(model, version, statistics=checked.statistics, schema=checked.schema,
                                  features=len(checked.features), by=body.by)
        return _uploaded_out(row)

    # -- monitor config --------------------------------------------------------------------

    def config_out(model: str, document: dict[str, Any] | None, row: Any, file_cfg: MonitorConfig,
                   stored: set[str]) -> ConfigOut:
        overrides = {}
        if document is not None:
            overrides[model] = ModelOverrides.model_validate(document)
        effective = effective_config(file_cfg, overrides)
        section = effective.models.get(model)
        bundle = ctx.bundles.latest(model)
        names = [s.name for s in bundle.specs] + [PREDICTION_SPEC.name] if bundle is not None else []
        names += sorted(set(section.features) - set(names)) if section is not None else []
        source = "store" if document is not None else source_of(model, file_cfg, stored)
        return ConfigOut(
            model=model, source=source,
            document=section.model_dump(mode="json", exclude_none=True, exclude_defaults=True) if section else {},
            updated_ms=row.updated_ms if row is not None else None,
            updated_at=format_instant(row.updated_ms) if row is not None else None,
            updated_by=row.updated_by if row is not None else None,
            policies={n: _policy_out(effective, model, n) for n in names})

    def validated(model: str, document: dict[str, Any]) -> dict[str, Any]:
        try:
            config = parse_monitor_config({"version": 1, "models": {model: document}}, source="document")
        except ConfigError as exc:
            prefix = f"models.{model}."
            where = exc.field[len(prefix):] if exc.field and exc.field.startswith(prefix) else exc.field
            raise RequestValidationError([{"loc": ("body", "document", *(where.split(".") if where else ())),
                                           "msg": clip(str(exc), 500), "type": "value_error"}]) from None
        section = config.models[model]
        bundle = ctx.bundles.latest(model)
        if bundle is not None:
            known = {s.name for s in bundle.specs} | {PREDICTION_SPEC.name}
            unknown = sorted(set(section.features) - known)
            if unknown:
                raise RequestValidationError([{"loc": ("body", "document", "features", unknown[0][:NAME_MAX]),
                                               "msg": f"{model} has no feature {unknown[0][:NAME_MAX]!r}",
                                               "type": "value_error"}])
        return section.model_dump(mode="json", exclude_none=True, exclude_defaults=True)

    @app.get("/models/{model}/config", response_model=ConfigOut, responses=READ, tags=["config"],
             dependencies=[*read, Depends(only())])
    def get_config(model: str = ModelName) -> ConfigOut:
        """The model's monitor config: stored through the API, else the file's section, else the defaults."""
        row = store.monitor_config(model)
        return config_out(model, row.document if row else None, row, file_config(),
                          {model} if row is not None else set())

    @app.post("/models/{model}/config/validate", response_model=ConfigOut, responses=READ, tags=["config"],
              dependencies=[*read, Depends(only())])
    def validate_config(body: ConfigDocument, model: str = ModelName) -> ConfigOut:
        """Validate a config without storing it: 422 names the first wrong key; else what it would resolve to."""
        return config_out(model, validated(model, body.document), None, file_config(), set())

    @app.put("/models/{model}/config", response_model=ConfigOut, responses=WRITE, tags=["config"],
             dependencies=[*write, Depends(only())])
    def put_config(body: ConfigIn, model: str = ModelName) -> ConfigOut:
        """Replace the model's config (validated first); the collectors read it from the store."""
        document = validated(model, body.document)
        row = store.put_monitor_config(model, document, by=body.by)
        return config_out(model, row.document, row, file_config(), {model})

    @app.delete("/models/{model}/config", response_model=ConfigOut, responses={**WRITE, **_NOT_FOUND},
                tags=["config"], dependencies=[*write, Depends(only())])
    def delete_config(model: str = ModelName) -> ConfigOut:
        """Forget the stored config: the file's section (or the defaults) applies again."""
        if not store.delete_monitor_config(model):
            raise not_found(f"no config stored for {model!r}")
        return config_out(model, None, None, file_config(), set())
