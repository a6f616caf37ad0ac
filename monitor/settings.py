"""One settings object, built once at start-up and passed down.

Every field can be set by environment variable (``SKEWWATCH_<FIELD>``, upper case) and
by the matching CLI option; ``KAFKA_BOOTSTRAP_SERVERS`` is read without the prefix, as
every Kafka tool does. Nothing here reads the environment at import time: call
:func:`load_settings` (or ``Settings()``) where the process starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
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
    idle_close_seconds: float = Field(
        10.0, gt=0, description="A partition caught up with the broker and without records of a model for this long is "
        "idle for it: it stops holding that model's windows back and its watermark moves on with the wall clock.")
    max_watermark_jump_seconds: float = Field(
        0.0, ge=0, description="A record further ahead of its partition's watermark than this (beyond what the producer's "
        "clock advanced) waits for a second record to confirm it, else goes to the dead-letter topic; 0: the largest of "
        "30 windows, one day and the allowed lateness.")
    max_record_bytes: int = Field(32 << 20, gt=0, description="Collectors dead-letter messages larger than this (too_large).")
    native_scan: bool = Field(
        True, description="Collectors read plain version-2 records with their C fast path (the same statistics, less "
        "CPU); off: every record is decoded by orjson. Without the compiled extension it is off whatever this says.")
    store_url: str | None = Field(
        None, description="SQLAlchemy URL of the store (postgresql+psycopg://user:password@host/db for a shared "
        "deployment); default: SQLite in state_dir.")
    store_busy_timeout_seconds: float = Field(10.0, gt=0, description="How long a store write waits for a lock before it "
                                              "fails (and is retried).")

    # Collection at scale
    partials_topic: str = Field("skewwatch.partials", description="Topic of closed partial windows (the merge stage reads it).")
    dead_letter_topic: str = Field("skewwatch.dead-letters", description="Topic of records collectors cannot use, unchanged, "
                                   "with the reason in headers.")
    partials_topic_partitions: int = Field(3, gt=0, description="Partitions when skewwatch creates the partials and "
                                           "dead-letter topics.")
    merge_consumer_group: str | None = Field(None, description="Consumer group of the merge stage (default: "
                                             "<consumer_group>-merge).")
    collector_stages: Literal["both", "partials", "merge"] = Field(
        "both", description="What `skewwatch collect` runs: the partial stage (input topic to partials), the merge stage "
        "(partials to decided windows), or both.")
    collector_instance_id: str | None = Field(
        None, description="Static group membership (group.instance.id): a restarted collector with the same id gets its "
        "partitions back at once (use a pod name; never two processes with one id).")
    sample_records: int = Field(20, ge=0, description="Records kept per window as a row sample (for reports).")
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
    max_body_bytes: int = Field(
        8_388_608, gt=0, description="Largest request body in bytes, as sent and after decompression (413 beyond); "
        "8 MiB fits 10,000 instances of about 800 bytes.")
    max_header_bytes: int = Field(16_384, gt=0, description="Largest request line plus headers in bytes (431 beyond).")
    max_headers: int = Field(100, gt=0, description="Most headers a request may carry (431 beyond).")
    max_json_depth: int = Field(32, ge=3, le=200, description="Deepest JSON nesting of a predict body (413 beyond).")
    max_instances: int = Field(10_000, gt=0, description="Most instances per predict request (413 beyond).")
    max_decompression_ratio: float = Field(
        200.0, ge=1.0, description="Sidecar: largest inflated/compressed size ratio of a gzip/deflate body past its first MiB.")
    header_timeout_seconds: float = Field(
        10.0, gt=0, description="A request line and headers must arrive within this (408, or a close when idle).")
    body_timeout_seconds: float = Field(60.0, gt=0, description="A request body must arrive within this (408).")
    log_message_max_bytes: int = Field(
        1_000_000, ge=4096, description="Largest Kafka message (librdkafka message.max.bytes): records are split into "
        "parts of at most this, lowered to the topic's/broker's limit when Kafka reports one.")
    log_partition_key: Literal["request_id", "model"] = Field(
        "request_id", description="Kafka key of a record: request_id spreads a model over every partition (all parts "
        "of a request share it); model keeps a model's records in one partition, in order.")
    log_attribute_headers: str = Field(
        "", description="Comma-separated request headers copied into each record's attributes (lower-cased names, "
        "values cut to 256 characters), for segments.")
    max_event_time_future_seconds: float = Field(
        300.0, ge=0, description="X-Event-Time may be at most this far after the server's clock (400 beyond).")
    min_event_time: str = Field(
        "2000-01-01T00:00:00Z", description="Earliest accepted X-Event-Time, RFC 3339 (400 before it).")

    # Monitor API
    monitor_host: str = "127.0.0.1"
    monitor_port: int = Field(8600, ge=0, le=65535)
    api_token: SecretStr | None = Field(
        None, description="Bearer token the monitor API's changing endpoints require (and reads, with api_read_auth); "
        "unset: every changing endpoint answers 403. Set it by environment, not on a command line.")
    api_read_auth: bool = Field(False, description="Reads need the bearer token too (the dashboard then asks for it).")
    api_cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Comma-separated origins allowed by CORS (none: CORS off).")
    api_max_body_bytes: int = Field(65_536, gt=0, description="Largest request body, except baseline uploads (413 above).")
    api_max_upload_bytes: int = Field(33_554_432, gt=0, description="Largest baseline upload (TFDV statistics + schema).")
    api_max_value_chars: int = Field(
        256, ge=16, description="Longest text value (a category, a message) in API answers; longer ones end in a marker.")
    monitor_public_url: str | None = Field(
        None, description="Public base URL of the monitor (links to the dashboard and reports); default http://host:port.")
    monitor_check_kafka: bool = Field(True, description="/readyz also needs Kafka to answer.")
    report_cache_size: int = Field(64, ge=0, description="Evidently reports kept built (state_dir/reports), newest first.")
    retention_windows_days: float = Field(
        90.0, ge=0, description="Delete windows (and their findings) decided longer ago than this (0: keep forever).")
    retention_findings_days: float = Field(
        90.0, ge=0, description="Delete findings of windows decided longer ago than this; the windows stay (0: forever).")
    retention_profiles_days: float = Field(
        14.0, ge=0, description="Delete window profiles and row samples decided longer ago than this (0: forever); "
        "windows still used as references keep theirs.")
    retention_interval_seconds: float = Field(
        3600.0, ge=0, description="How often the monitor enforces retention (0: never on its own).")

    # Alerts
    webhook_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Comma-separated webhook URLs of the default alert receiver "
        "(Alertmanager's webhook JSON, version 4).")
    slack_webhook_url: SecretStr | None = Field(
        None, description="Slack incoming webhook of the default alert receiver (a secret: set it by environment).")
    pagerduty_routing_key: SecretStr | None = Field(
        None, description="PagerDuty Events API v2 routing key of the default alert receiver (a secret).")
    pagerduty_url: str = Field("https://events.pagerduty.com/v2/enqueue", description="PagerDuty Events API v2 endpoint.")
    alert_request_timeout_seconds: float = Field(10.0, gt=0, description="Timeout of one alert delivery (HTTP request).")
    alert_lease_seconds: float = Field(
        60.0, gt=0, description="How long a sender holds a claimed outbox message; if it dies, another sender "
        "delivers the message after this. Must exceed the request timeout.")
    alert_poll_seconds: float = Field(1.0, gt=0, description="How often an idle alert sender looks for due work.")
    alert_retry_base_seconds: float = Field(1.0, gt=0, description="First retry delay of a failed delivery (doubles).")
    alert_retry_max_seconds: float = Field(300.0, gt=0, description="Longest retry delay of a failed delivery.")

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("webhook_urls", "api_cors_origins", mode="before")
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
