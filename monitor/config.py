"""The monitor configuration: which tests run and how findings are decided, per model and feature.

A YAML file, validated completely at load; any mistake raises :class:`ConfigError` whose
``field`` is the dotted key path (``models.bikeshare.features.temp.floors.psi``)::

    version: 1
    defaults:                    # every model and feature
      bh_level: 0.01             # Benjamini-Hochberg level for q-values, in (0, 1)
      severity_multiplier: 2.0   # critical when effect >= multiplier x floor (>= 1)
      min_count: 1000            # fewest values before a test without a p-value may alert
      persistence: {k: 2, n: 3}  # alert only if it alerted in k of the last n windows
      floors: {psi: 0.25}        # practical floors by test name (see monitor.decide)
      tests: {wasserstein: false}  # switch tests off (or back on) by name
      min_samples: {ks: 50}      # fewest values per side before a test decides (else insufficient_data)
      large_sample: {fraction: 0.5, q_value: 1.0e-10, min_count: 10000}  # warnings below the floor
      trend: {windows: 12, level: 0.001, fraction: 0.3}  # slow drift across windows
    calibration:                 # what `skewwatch calibrate` replays
      window_rows: 1000          # rows per window (the traffic of one configured window)
      windows: 1000              # windows per replay
      seed: 0
    models:
      bikeshare:                 # same keys as defaults, for one model ...
        floors: {mean_shift: 0.3}
        features:
          temp:                  # ... and for one of its features
            tests: {ks: false}

Resolution: feature > model > defaults > built-in defaults (:mod:`monitor.decide`), key by
key; ``floors`` and ``tests`` merge per test name. Unknown keys and unknown test names are
errors, so a typo never silently does nothing. A YAML mapping with a repeated key is an
error too. No file (``path=None``) means the built-in defaults.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Mapping

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from monitor.alerting_config import AlertingConfig
from monitor.references import References, Segments
from monitor.compare.results import TestName
from monitor.decide import LargeSample, Persistence, Policy, Trend
from monitor.errors import ConfigError

__all__ = ["Overrides", "ModelOverrides", "Calibration", "MonitorConfig", "load_monitor_config",
           "parse_monitor_config"]

_BUILT_IN = Policy()
_Floor = Annotated[float, Field(strict=True, ge=0, allow_inf_nan=False)]
_Switch = Annotated[bool, Field(strict=True)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PersistenceRule(_Strict):
    k: Annotated[int, Field(strict=True, ge=1)]
    n: Annotated[int, Field(strict=True, ge=1, le=32)]  # collectors keep 32 windows of history

    @model_validator(mode="after")
    def _k_within_n(self) -> "PersistenceRule":
        if self.k > self.n:
            raise ValueError(f"k ({self.k}) must not exceed n ({self.n})")
        return self


_Share = Annotated[float, Field(strict=False, gt=0, le=1, allow_inf_nan=False)]


class LargeSampleRule(_Strict):
    """Keys of :class:`monitor.decide.LargeSample`; unset keys inherit."""

    enabled: _Switch | None = None
    fraction: _Share | None = None
    q_value: Annotated[float, Field(strict=False, gt=0, lt=1)] | None = None
    min_count: Annotated[int, Field(strict=True, ge=1)] | None = None
    tests: list[TestName] | None = None


class TrendRule(_Strict):
    """Keys of :class:`monitor.decide.Trend`; unset keys inherit."""

    enabled: _Switch | None = None
    windows: Annotated[int, Field(strict=True, ge=8, le=32)] | None = None
    min_windows: Annotated[int, Field(strict=True, ge=8, le=32)] | None = None
    level: Annotated[float, Field(strict=False, gt=0, lt=1)] | None = None
    fraction: _Share | None = None


class Overrides(_Strict):
    """Settings at one level (defaults, a model, a feature); unset keys inherit."""

    bh_level: Annotated[float, Field(strict=True, gt=0, lt=1)] | None = None
    severity_multiplier: Annotated[float, Field(strict=True, ge=1, allow_inf_nan=False)] | None = None
    min_count: Annotated[int, Field(strict=True, ge=1)] | None = None
    persistence: PersistenceRule | None = None
    floors: dict[TestName, _Floor] = Field(default_factory=dict)
    tests: dict[TestName, _Switch] = Field(default_factory=dict)
    min_samples: dict[TestName, Annotated[int, Field(strict=True, ge=1)]] = Field(default_factory=dict)
    large_sample: LargeSampleRule | None = None
    trend: TrendRule | None = None


class ModelOverrides(Overrides):
    """A model's settings plus per-feature overrides, its references and its segments."""

    features: dict[str, Overrides] = Field(default_factory=dict)
    references: References | None = None  # monitor.references: what each window is compared with
    segments: Segments | None = None  # monitor.references: how its traffic is split


class Calibration(_Strict):
    """What ``skewwatch calibrate`` replays: windows of ``window_rows`` training rows."""

    window_rows: Annotated[int, Field(strict=True, ge=1, le=10_000_000)] = 1000
    windows: Annotated[int, Field(strict=True, ge=1, le=1_000_000)] = 1000
    seed: Annotated[int, Field(strict=True, ge=0)] = 0


class MonitorConfig(_Strict):
    """The whole monitor configuration; :meth:`policy_for` resolves one feature's policy."""

    version: Literal[1] = 1
    defaults: Overrides = Field(default_factory=Overrides)
    models: dict[str, ModelOverrides] = Field(default_factory=dict)
    calibration: Calibration = Field(default_factory=Calibration)
    alerting: AlertingConfig = Field(default_factory=AlertingConfig)  # routes, receivers, timers: monitor.alerting_config
    references: References = Field(default_factory=References)  # every model's, unless it sets its own
    _policies: dict[tuple[str, str], Policy] = PrivateAttr(default_factory=dict)  # policy_for's answers

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> "MonitorConfig":
        copy = super().model_copy(update=update, deep=deep)
        copy._policies = {}  # a copy may differ: it resolves its policies itself
        return copy

    def with_models(self, documents: Mapping[str, Any]) -> "MonitorConfig":
        """This config with each named model's section replaced by a stored one (a model's config set
        through the API wins over the file's); every other section (defaults, alerting, references) stays.
        Each document is validated; a mistake raises :class:`ConfigError` naming ``models.<model>...``."""
        if not documents:
            return self
        models = dict(self.models)
        for model, document in documents.items():
            try:
                models[model] = document if isinstance(document, ModelOverrides) else \
                    ModelOverrides.model_validate(document)
            except ValidationError as exc:
                first = exc.errors()[0]
                raise ConfigError(first["msg"], field=".".join(["models", model, *map(str, first["loc"])])) from None
        merged = self.model_copy(update={"models": models})  # model_copy skips the validators: run them
        try:
            merged._every_level_resolves()
        except ValueError as exc:
            path, _, message = str(exc).partition(": ")
            raise ConfigError(message, field=path) from None
        return merged

    def references_for(self, model: str) -> References:
        model_cfg = self.models.get(model)
        return model_cfg.references if model_cfg is not None and model_cfg.references is not None else self.references

    def segments_for(self, model: str) -> Segments | None:
        model_cfg = self.models.get(model)
        return model_cfg.segments if model_cfg is not None else None

    def policy_for(self, model: str, feature: str) -> Policy:
        """The :class:`~monitor.decide.Policy` of ``feature`` of ``model`` (feature > model > defaults);
        resolved once per config (it is frozen), as every window asks again."""
        found = self._policies.get((model, feature))
        if found is None:
            if len(self._policies) >= 4096:  # names from API queries too: bounded
                self._policies.clear()
            found = self._policies[(model, feature)] = self._resolve_policy(model, feature)
        return found

    def _resolve_policy(self, model: str, feature: str) -> Policy:
        layers: list[Overrides] = [self.defaults]
        model_cfg = self.models.get(model)
        if model_cfg is not None:
            layers.append(model_cfg)
            feature_cfg = model_cfg.features.get(feature)
            if feature_cfg is not None:
                layers.append(feature_cfg)
        base = _BUILT_IN
        fields: dict[str, Any] = {
            "bh_level": base.bh_level,
            "severity_multiplier": base.severity_multiplier,
            "min_count": base.min_count,
            "persistence": base.persistence,
        }
        floors = {name: value for name, value in base.floors.items()}
        enabled = set(base.enabled)
        minima: dict[TestName, int] = dict(base.min_samples)
        tier = {f: getattr(base.large_sample, f) for f in ("enabled", "fraction", "q_value", "min_count", "tests")}
        trend = {f: getattr(base.trend, f) for f in ("enabled", "windows", "min_windows", "level", "fraction")}
        for layer in layers:
            for key in ("bh_level", "severity_multiplier", "min_count"):
                value = getattr(layer, key)
                if value is not None:
                    fields[key] = value
            if layer.persistence is not None:
                fields["persistence"] = Persistence(k=layer.persistence.k, n=layer.persistence.n)
            floors.update(layer.floors)
            for name, on in layer.tests.items():
                (enabled.add if on else enabled.discard)(name)
            minima.update(layer.min_samples)
            if layer.large_sample is not None:
                tier.update(layer.large_sample.model_dump(exclude_none=True))
            if layer.trend is not None:
                trend.update(layer.trend.model_dump(exclude_none=True))
        return Policy(floors=floors, enabled=frozenset(enabled), min_samples=minima,
                      large_sample=LargeSample(**{**tier, "tests": frozenset(tier["tests"])}),
                      trend=Trend(**trend), **fields)

    @model_validator(mode="after")
    def _every_level_resolves(self) -> "MonitorConfig":
        """Keys that are valid alone but not together (trend.windows below min_windows, set at two
        levels) fail at load, not when a window is decided."""
        where = [("defaults", "", "")] + [(f"models.{m}", m, "") for m in self.models] + [
            (f"models.{m}.features.{f}", m, f) for m, cfg in self.models.items() for f in cfg.features]
        for path, model, feature in where:
            try:
                self.policy_for(model or "\0", feature or "\0")
            except ConfigError as exc:
                raise ValueError(f"{path}: {exc}") from None
        return self


def _path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc if part != "[key]")


def parse_monitor_config(data: Any, *, source: str = "monitor config") -> MonitorConfig:
    """Validate an already-parsed YAML/JSON document (``None`` = empty)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping, got {type(data).__name__}")
    try:
        return MonitorConfig.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        more = f" (and {len(errors) - 1} more error{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
        raise ConfigError(f"{first['msg']}{more} [{source}]", field=_path(first["loc"]) or None) from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a mapping with the same key twice (PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ConfigError(f"duplicate key {key!r} (line {key_node.start_mark.line + 1})", field=str(key))
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_monitor_config(path: str | Path | None) -> MonitorConfig:
    """Read and validate the monitor YAML at ``path``; ``None`` gives the built-in defaults."""
    if path is None:
        return MonitorConfig()
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}", field="monitor_config") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})", field="monitor_config") from None
    return parse_monitor_config(data, source=str(path))
