"""Feature specifications: the names and kinds of the inputs a model takes.

A model bundle's ``metadata.json`` lists its features as ``FeatureSpec`` dicts; statistics,
comparisons and the collectors all key on them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Iterable, Literal, get_args

from monitor.errors import SchemaError

__all__ = ["FeatureKind", "FeatureDtype", "FeatureSpec", "specs_from_dicts", "specs_to_dicts"]

FeatureKind = Literal["numeric", "categorical"]
FeatureDtype = Literal["float", "int", "string"]


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    """One input feature: ``kind`` picks the statistics, ``dtype`` the raw JSON type."""

    name: str
    kind: FeatureKind
    dtype: FeatureDtype

    def __post_init__(self) -> None:
        if not self.name:
            raise SchemaError("feature name must be non-empty")
        if self.kind not in get_args(FeatureKind):
            raise SchemaError(f"kind must be one of {get_args(FeatureKind)}, got {self.kind!r}", feature=self.name)
        if self.dtype not in get_args(FeatureDtype):
            raise SchemaError(f"dtype must be one of {get_args(FeatureDtype)}, got {self.dtype!r}", feature=self.name)


def specs_from_dicts(items: Iterable[dict[str, Any]]) -> tuple[FeatureSpec, ...]:
    specs = []
    for item in items:
        try:
            specs.append(FeatureSpec(name=item["name"], kind=item["kind"], dtype=item["dtype"]))
        except KeyError as exc:
            raise SchemaError(f"feature spec lacks {exc.args[0]!r}: {item!r}") from None
    names = [s.name for s in specs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SchemaError(f"duplicate feature names: {dupes}")
    return tuple(specs)


def specs_to_dicts(specs: Iterable[FeatureSpec]) -> list[dict[str, str]]:
    return [asdict(s) for s in specs]
