"""Hyperparameters of the bike-sharing model, validated once, recorded in the bundle."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

from monitor.errors import ConfigError

__all__ = ["HParams"]


@dataclass(frozen=True)
class HParams:
    """Model and training hyperparameters.

    ``num_buckets`` quantile buckets for each of ``bucket_features``; their bucket indices
    are crossed into one embedded feature. ``crosses`` are pairs of categorical features
    crossed exactly (every combination its own embedding row). ``log_target`` trains on
    ``log1p(cnt)`` and puts ``expm1`` inside the exported model. ``max_tokens`` caps each
    categorical vocabulary as ``StringLookup(max_tokens=...)`` does (the OOV index counts):
    the ``max_tokens - 1`` most frequent training values are kept, the rest map to OOV;
    ``None`` keeps every value.
    """

    hidden_units: tuple[int, ...] = (64, 32)
    embedding_dim: int = 8
    num_buckets: int = 8
    bucket_features: tuple[str, ...] = ("temp", "hum")
    crosses: tuple[tuple[str, str], ...] = (("hr", "workingday"),)
    dropout: float = 0.0
    learning_rate: float = 3e-3
    batch_size: int = 256
    epochs: int = 30
    patience: int = 5
    log_target: bool = True
    max_tokens: int | None = None

    def __post_init__(self) -> None:
        # Normalise sequences from JSON (lists) to tuples so instances stay hashable.
        object.__setattr__(self, "hidden_units", tuple(int(u) for u in self.hidden_units))
        object.__setattr__(self, "bucket_features", tuple(str(f) for f in self.bucket_features))
        object.__setattr__(self, "crosses", tuple(tuple(str(f) for f in c) for c in self.crosses))
        checks = [
            ("hidden_units", all(u > 0 for u in self.hidden_units), "every layer needs > 0 units"),
            ("embedding_dim", self.embedding_dim > 0, "must be > 0"),
            ("num_buckets", self.num_buckets >= 2, "must be >= 2"),
            ("crosses", all(len(c) == 2 for c in self.crosses), "each cross is a pair of features"),
            ("dropout", 0.0 <= self.dropout < 1.0, "must be in [0, 1)"),
            ("learning_rate", self.learning_rate > 0, "must be > 0"),
            ("batch_size", self.batch_size > 0, "must be > 0"),
            ("epochs", self.epochs > 0, "must be > 0"),
            ("patience", self.patience >= 0, "must be >= 0"),
            ("max_tokens", self.max_tokens is None or (type(self.max_tokens) is int and self.max_tokens >= 2),
             "must be None or an integer >= 2 (the OOV index counts)"),
        ]
        for name, ok, message in checks:
            if not ok:
                raise ConfigError(f"{message}, got {getattr(self, name)!r}", field=f"hparams.{name}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> "HParams":
        """Build from a mapping (e.g. parsed JSON/YAML); unknown keys raise ConfigError."""
        if not values:
            return cls()
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown hyperparameter(s) {unknown}; known: {sorted(known)}", field=f"hparams.{unknown[0]}")
        try:
            return cls(**dict(values))
        except (TypeError, ValueError) as exc:
            raise ConfigError(str(exc), field="hparams") from None

    def replace(self, **changes: Any) -> "HParams":
        return HParams.from_dict({**self.to_dict(), **changes})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        d = asdict(self)
        d["hidden_units"] = list(self.hidden_units)
        d["bucket_features"] = list(self.bucket_features)
        d["crosses"] = [list(c) for c in self.crosses]
        return d
