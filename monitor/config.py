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
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from monitor.alerting_config import AlertingConfig
from monitor.compare.results import TestName
from monitor.decide import Persistence, Policy
from monitor.errors import ConfigError

__all__ = ["Overrides", "ModelOverrides", "MonitorConfig", "load_monitor_config", "parse_monitor_config"]

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


class Overrides(_Strict):
    """Settings at one level (defaults, a model, a feature); unset keys inherit."""

    bh_level: Annotated[float, Field(strict=True, gt=0, lt=1)] | None = None
    severity_multiplier: Annotated[float, Field(strict=True, ge=1, allow_inf_nan=False)] | None = None
    min_count: Annotated[int, Field(strict=True, ge=1)] | None = None
    persistence: PersistenceRule | None = None
    floors: dict[TestName, _Floor] = Field(default_factory=dict)
    tests: dict[TestName, _Switch] = Field(default_factory=dict)


class ModelOverrides(Overrides):
    """A model's settings plus per-feature overrides."""

    features: dict[str, Overrides] = Field(default_factory=dict)


class MonitorConfig(_Strict):
    """The whole monitor configuration; :meth:`policy_for` resolves one feature's policy."""

    version: Literal[1] = 1
    defaults: Overrides = Field(default_factory=Overrides)
    models: dict[str, ModelOverrides] = Field(default_factory=dict)
    alerting: AlertingConfig = Field(default_factory=AlertingConfig)  # routes, receivers, timers: monitor.alerting_config

    def policy_for(self, model: str, feature: str) -> Policy:
        """The :class:`~monitor.decide.Policy` of ``feature`` of ``model`` (feature > model > defaults)."""
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
        floors = dict(base.floors)
        enabled = set(base.enabled)
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
        return Policy(floors=floors, enabled=frozenset(enabled), **fields)


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
