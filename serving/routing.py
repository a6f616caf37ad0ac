"""A/B routing: which version of a model answers a predict request.

Precedence, decided in :meth:`Router.route` and nowhere else:

1. an explicit version in the path (``/v1/models/{name}/versions/{version}:predict``)
   always wins (:attr:`RouteReason.PINNED`);
2. a model with configured weights (``{model: {version: weight}}``) splits its traffic by
   them (:attr:`RouteReason.SPLIT`). The version is a deterministic function of a route key
   (the ``X-Skewwatch-Route-Key`` header, else the request id): the key is hashed (BLAKE2b,
   64 bits, salted with the model name and a routing personalisation) to a point in
   [0, 1), and the versions, sorted, own consecutive slices of [0, 1) as wide as their
   normalised weights. The same key therefore reaches the same version in every process
   and after every restart, as long as the weights stay the same. The routing hash is
   salted so that it is independent of the prediction log's sampling hash
   (:func:`serving.publisher.keep_in_sample`), which hashes the request id unsalted: a
   sampled log still sees every version in proportion to its weight;
3. every other model: the latest version (:attr:`RouteReason.LATEST`).

Weights are validated once, at start-up (:func:`build_router`): numbers must be finite and
non-negative, each model's must sum to more than zero (they are normalised, so
``{a: 9, b: 1}`` means 90/10), and every model and version must exist in the registry; a
mistake raises :class:`~monitor.errors.ConfigError` naming ``ab_weights.<model>.<version>``.
Versions trained later get no split traffic until they are added to the weights (they can
still be pinned).
"""

from __future__ import annotations

import bisect
import hashlib
import math
from dataclasses import dataclass
from enum import Enum
from typing import Any, Callable, Mapping, Sequence

from monitor.errors import BundleError, ConfigError

__all__ = [
    "ROUTE_KEY_HEADER",
    "RouteReason",
    "Route",
    "TrafficSplit",
    "Router",
    "route_point",
    "parse_weights",
    "build_router",
]

ROUTE_KEY_HEADER = "X-Skewwatch-Route-Key"
_FIELD = "ab_weights"
_PERSON = b"skewwatch-route"  # BLAKE2b personalisation (max 16 bytes)
_POINTS = float(1 << 53)


class RouteReason(str, Enum):
    PINNED = "pinned"
    SPLIT = "split"
    LATEST = "latest"


@dataclass(frozen=True, slots=True)
class Route:
    """The routing decision: ``version`` ``None`` means the latest version on disk."""

    version: str | None
    reason: RouteReason


def route_point(*, model: str, key: str) -> float:
    """The route key's point in [0, 1) for ``model``: deterministic, same in every process."""
    data = model.encode("utf-8") + b"\x00" + key.encode("utf-8")
    digest = hashlib.blake2b(data, digest_size=8, person=_PERSON).digest()
    return (int.from_bytes(digest, "big") >> 11) / _POINTS  # 53 bits: exactly representable, < 1.0


@dataclass(frozen=True, slots=True)
class TrafficSplit:
    """One model's versions (sorted) and the upper ends of their slices of [0, 1)."""

    model: str
    versions: tuple[str, ...]
    bounds: tuple[float, ...]

    @property
    def weights(self) -> dict[str, float]:
        """The normalised weights (the share of traffic each version gets)."""
        lower = 0.0
        out = {}
        for version, upper in zip(self.versions, self.bounds):
            out[version] = upper - lower
            lower = upper
        return out

    def pick(self, key: str) -> str:
        # bounds[-1] == 1.0 > point, so the index is always a valid version
        return self.versions[bisect.bisect_right(self.bounds, route_point(model=self.model, key=key))]


def _split(model: str, weights: Any) -> TrafficSplit:
    if not isinstance(weights, Mapping) or not weights:
        raise ConfigError('must map versions to weights, e.g. {"20261126T050102Z": 0.9, ...}', field=f"{_FIELD}.{model}")
    if not all(isinstance(v, str) and v for v in weights):
        raise ConfigError("versions must be non-empty strings", field=f"{_FIELD}.{model}")
    versions = sorted(weights)
    values = []
    for version in versions:
        value = weights[version]
        where = f"{_FIELD}.{model}.{version}"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"weight must be a number, got {value!r}", field=where)
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"weight must be a finite number >= 0, got {value!r}", field=where)
        values.append(float(value))
    total = math.fsum(values)
    if total <= 0:
        raise ConfigError("weights must sum to more than zero", field=f"{_FIELD}.{model}")
    last_with_traffic = max(i for i, v in enumerate(values) if v > 0)
    bounds, running = [], 0.0
    for i, value in enumerate(values):
        running += value
        # from the last version with traffic on, the bound is exactly 1.0: no float sliver
        # is left to a zero-weight version
        bounds.append(1.0 if i >= last_with_traffic else running / total)
    return TrafficSplit(model=model, versions=tuple(versions), bounds=tuple(bounds))


def parse_weights(weights: Mapping[str, Mapping[str, float]] | None) -> dict[str, TrafficSplit]:
    """Validate the numbers of ``{model: {version: weight}}`` (not yet against the registry)."""
    if not weights:
        return {}
    if not isinstance(weights, Mapping):
        raise ConfigError("must map model names to {version: weight}", field=_FIELD)
    out = {}
    for model, per_version in weights.items():
        if not isinstance(model, str) or not model:
            raise ConfigError("model names must be non-empty strings", field=_FIELD)
        out[model] = _split(model, per_version)
    return out


class Router:
    """Decides the answering version of every predict request (see the module docstring)."""

    def __init__(self, splits: Mapping[str, TrafficSplit] | None = None) -> None:
        self._splits = dict(splits or {})

    @property
    def splits(self) -> dict[str, TrafficSplit]:
        return dict(self._splits)

    def route(self, *, model: str, pinned: str | None, key: str) -> Route:
        if pinned is not None:
            return Route(pinned, RouteReason.PINNED)
        split = self._splits.get(model)
        if split is None:
            return Route(None, RouteReason.LATEST)
        return Route(split.pick(key), RouteReason.SPLIT)


def build_router(
    weights: Mapping[str, Mapping[str, float]] | None, versions_of: Callable[[str], Sequence[str]]
) -> Router:
    """A router for ``weights``, every model and version checked with ``versions_of``.

    ``versions_of(model)`` lists the versions on disk (``ModelRegistry.versions``) and
    raises a :class:`~monitor.errors.BundleError` for an unknown model.
    """
    splits = parse_weights(weights)
    for model, split in splits.items():
        try:
            available = set(versions_of(model))
        except BundleError as exc:
            raise ConfigError(f"cannot split traffic: {exc}", field=f"{_FIELD}.{model}") from None
        for version in split.versions:
            if version not in available:
                raise ConfigError(
                    f"model {model!r} has no version {version!r} (versions: {sorted(available)})",
                    field=f"{_FIELD}.{model}.{version}",
                )
    return Router(splits)
