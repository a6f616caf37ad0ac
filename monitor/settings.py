"""One settings object, built once at start-up and passed down.

Every field can be set by environment variable (``SKEWWATCH_<FIELD>``, upper case) and
by the matching CLI option; ``KAFKA_BOOTSTRAP_SERVERS`` is read without the prefix, as
every Kafka tool does. Nothing here reads the environment at import time: call
:func:`load_settings` (or ``Settings()``) where the process starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from typing_extensions import Annotated

from monitor.errors import ConfigError

__all__ = ["Settings", "load_settings"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SKEWWATCH_", extra="forbid", frozen=True)

    # Kafka
    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "SKEWWATCH_KAFKA_BOOTSTRAP_SERVERS", "kafka_bootstrap_servers"),
        description="Kafka bootstrap servers, comma separated.",
    )
    topic: str = Field("skewwatch.predictions", description="Topic carrying prediction-log records.")
    consumer_group: str = Field("skewwatch-collectors", description="Collector consumer group id.")
    topic_partitions: int = Field(3, gt=0, description="Partitions when skewwatch creates the topic itself.")
    max_poll_interval_ms: int = Field(
        6000, gt=0, description="Kafka consumer max.poll.interval; it also bounds a group join (keep small on Tansu)."
    )

    # Where things live
    models_dir: Path = Field(Path("artifacts/models"), description="Model bundle registry directory.")
    state_dir: Path = Field(Path("artifacts/state"), description="SQLite store and collector state.")
    monitor_config: Path | None = Field(None, description="Per-model / per-feature monitor YAML.")

    # Windows
    window_seconds: int = Field(300, gt=0, description="Event-time tumbling window length in seconds.")
    allowed_lateness_seconds: int = Field(60, ge=0, description="How long after a window ends late records are still accepted.")
    idle_close_seconds: float = Field(10.0, gt=0, description="Close open windows after this much wall time without records.")
    tfdv_checks: bool = Field(False, description="Also validate each window with TFDV against the bundle's schema (loads TensorFlow).")
    collector_metrics_port: int = Field(0, ge=0, le=65535, description="Serve the collector's Prometheus /metrics here (0: off).")

    # Serving
    serve_host: str = "127.0.0.1"
    serve_port: int = Field(8500, ge=0, le=65535)
    log_sample_rate: float = Field(1.0, ge=0.0, le=1.0, description="Share of requests logged to Kafka.")
    log_queue_size: int = Field(10_000, gt=0, description="Bounded in-memory queue of records awaiting Kafka.")
    ab_weights: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description='A/B split per model as JSON, e.g. {"bikeshare": {"20261126T050102Z": 0.9, "20261127T061500Z": 0.1}}; '
        "weights are normalised; models not listed send everything to their latest version.",
    )
    route_key_header: str = Field("X-Skewwatch-Route-Key", description="Request header whose value keeps a caller on one A/B version.")
    sidecar_upstream: str | None = Field(None, description="Model server the sidecar proxies to: http(s)://host[:port][/base].")

    # Monitor API
    monitor_host: str = "127.0.0.1"
    monitor_port: int = Field(8600, ge=0, le=65535)

    # Alerts
    webhook_urls: Annotated[list[str], NoDecode] = Field(default_factory=list, description="Comma-separated webhook URLs.")
    slack_webhook_url: str | None = None
    pagerduty_routing_key: str | None = None
    pagerduty_url: str = "https://events.pagerduty.com/v2/enqueue"

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("webhook_urls", mode="before")
    @classmethod
    def _split_urls(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [u.strip() for u in value.split(",") if u.strip()]
        return value

    @property
    def db_path(self) -> Path:
        return self.state_dir / "skewwatch.sqlite3"


def load_settings(**overrides: Any) -> Settings:
    """Build the settings from the environment plus explicit overrides (CLI options).

    ``None`` overrides are ignored, so CLI options left unset fall through to the environment.
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or None
        raise ConfigError(first["msg"], field=field) from None
