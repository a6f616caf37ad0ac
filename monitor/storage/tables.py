"""The store's tables (SQLAlchemy Core), one dialect-neutral definition for SQLite and PostgreSQL.

Every instant is an integer of epoch milliseconds (``*_ms``, see :mod:`monitor.timeutil`), so
ordering and window arithmetic are exact in SQL too. The migrations under
``monitor/storage/migrations`` create exactly these tables; a test compares the two.

Groups:

* decided windows: ``windows``, ``findings``, ``latest_scores`` (one row per score, upserted by
  each window: metrics scrapes never scan the history), ``window_profiles``, ``window_samples``;
* collection: ``partials`` (closed partial windows waiting to be merged), ``stream_progress`` and
  ``partition_progress`` (what each source partition has closed), ``collector_checkpoints``
  (a collector's watermark state per partition), ``dead_letters`` and ``dead_letter_examples``;
* alerting: ``alerts``, ``silences``, ``outbox`` (notifications to send, at least once);
* administration: ``monitor_configs``.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

__all__ = ["metadata", "NAME", "ID"]

NAME = 256  # model, version, feature, test, receiver names
SEGMENT = 512
ID = BigInteger().with_variant(Integer, "sqlite")  # SQLite autoincrements INTEGER PRIMARY KEY only

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# -- decided windows ---------------------------------------------------------------------------

windows = Table(
    "windows",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("model", String(NAME), nullable=False),
    Column("model_version", String(NAME), nullable=False),
    Column("segment", String(SEGMENT), nullable=False),  # "" is all traffic
    Column("start_ms", BigInteger, nullable=False),
    Column("end_ms", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),  # decided | failed
    Column("error", Text),
    Column("rows", BigInteger, nullable=False),
    Column("records", BigInteger, nullable=False),
    Column("invalid_instances", BigInteger, nullable=False),
    Column("late_records", BigInteger, nullable=False),
    Column("duplicate_records", BigInteger, nullable=False),
    Column("partials", Integer, nullable=False),
    Column("findings", Integer, nullable=False),  # how many findings the window carries
    Column("alerting", Integer, nullable=False),  # how many of them alert
    Column("decided_at_ms", BigInteger, nullable=False),
    UniqueConstraint("model", "model_version", "segment", "start_ms"),
    Index(None, "start_ms"),
    Index(None, "model", "start_ms"),
    Index(None, "decided_at_ms"),
)

findings = Table(
    "findings",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("window_id", ID, ForeignKey("windows.id", ondelete="CASCADE"), nullable=False),
    Column("model", String(NAME), nullable=False),
    Column("model_version", String(NAME), nullable=False),
    Column("segment", String(SEGMENT), nullable=False),
    Column("start_ms", BigInteger, nullable=False),
    Column("end_ms", BigInteger, nullable=False),
    Column("mode", String(16), nullable=False),
    Column("reference_window_id", ID),
    Column("family", String(16), nullable=False),  # features | output
    Column("feature", String(NAME), nullable=False),
    Column("test", String(NAME), nullable=False),
    Column("statistic", Float),
    Column("p_value", Float),
    Column("q_value", Float),
    Column("effect", Float),
    Column("floor", Float),
    Column("significant", Boolean, nullable=False),
    Column("verdict", String(24), nullable=False),
    Column("alerting", Boolean, nullable=False),
    Column("message", Text, nullable=False),
    UniqueConstraint("window_id", "mode", "family", "feature", "test"),
    Index(None, "model", "feature", "test", "mode", "start_ms"),
    Index(None, "verdict"),
)

latest_scores = Table(
    "latest_scores",
    metadata,
    Column("model", String(NAME), primary_key=True),
    Column("model_version", String(NAME), primary_key=True),
    Column("segment", String(SEGMENT), primary_key=True),
    Column("mode", String(16), primary_key=True),
    Column("family", String(16), primary_key=True),
    Column("feature", String(NAME), primary_key=True),
    Column("test", String(NAME), primary_key=True),
    Column("window_id", ID, nullable=False),
    Column("end_ms", BigInteger, nullable=False),
    Column("statistic", Float),
    Column("q_value", Float),
    Column("effect", Float),
    Column("floor", Float),
    Column("verdict", String(24), nullable=False),
    Column("alerting", Boolean, nullable=False),
)

window_profiles = Table(
    "window_profiles",
    metadata,
    Column("window_id", ID, ForeignKey("windows.id", ondelete="CASCADE"), primary_key=True),
    Column("features", LargeBinary, nullable=False),
    Column("outputs", LargeBinary, nullable=False),
)

window_samples = Table(
    "window_samples",
    metadata,
    Column("window_id", ID, ForeignKey("windows.id", ondelete="CASCADE"), primary_key=True),
    Column("rows", Integer, nullable=False),
    Column("sample", LargeBinary, nullable=False),  # JSON: {"columns": {...}, "outputs": {...}}
)

# -- collection --------------------------------------------------------------------------------

partials = Table(
    "partials",
    metadata,
    Column("model", String(NAME), primary_key=True),
    Column("model_version", String(NAME), primary_key=True),
    Column("segment", String(SEGMENT), primary_key=True),
    Column("start_ms", BigInteger, primary_key=True),
    Column("source_topic", String(NAME), primary_key=True),
    Column("source_partition", Integer, primary_key=True),
    Column("first_offset", BigInteger, primary_key=True),
    Column("last_offset", BigInteger, primary_key=True),
    Column("end_ms", BigInteger, nullable=False),
    Column("rows", BigInteger, nullable=False),
    Column("records", BigInteger, nullable=False),
    Column("invalid_instances", BigInteger, nullable=False),
    Column("late_records", BigInteger, nullable=False),
    Column("duplicate_records", BigInteger, nullable=False),
    Column("features", LargeBinary, nullable=False),
    Column("outputs", LargeBinary, nullable=False),
    Column("sample", LargeBinary, nullable=False),
    Column("received_ms", BigInteger, nullable=False),
    Index(None, "model", "start_ms"),
)

stream_progress = Table(
    "stream_progress",
    metadata,
    Column("source_topic", String(NAME), primary_key=True),
    Column("source_partition", Integer, primary_key=True),
    Column("model", String(NAME), primary_key=True),
    Column("closed_through_ms", BigInteger, nullable=False),  # every window ending at or before is closed here
    Column("idle", Boolean, nullable=False),
    Column("open_windows", Text, nullable=False),  # JSON list of start_ms still open at this partition
    Column("sent_ms", BigInteger, nullable=False),
)

partition_progress = Table(
    "partition_progress",
    metadata,
    Column("source_topic", String(NAME), primary_key=True),
    Column("source_partition", Integer, primary_key=True),
    Column("caught_up", Boolean, nullable=False),
    Column("position", BigInteger, nullable=False),
    Column("sent_ms", BigInteger, nullable=False),
)

collector_checkpoints = Table(
    "collector_checkpoints",
    metadata,
    Column("source_topic", String(NAME), primary_key=True),
    Column("source_partition", Integer, primary_key=True),
    Column("position", BigInteger, nullable=False),  # the state holds every record before this offset
    Column("state", Text, nullable=False),  # JSON, collectors.watermarks
    Column("saved_ms", BigInteger, nullable=False),
)

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("reason", String(64), primary_key=True),
    Column("model", String(NAME), primary_key=True),  # "" when the record names none
    Column("count", BigInteger, nullable=False),
    Column("last_ms", BigInteger, nullable=False),
)

dead_letter_examples = Table(
    "dead_letter_examples",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("reason", String(64), nullable=False),
    Column("model", String(NAME), nullable=False),
    Column("source_topic", String(NAME), nullable=False),
    Column("source_partition", Integer, nullable=False),
    Column("source_offset", BigInteger, nullable=False),
    Column("detail", Text, nullable=False),
    Column("received_ms", BigInteger, nullable=False),
    Index(None, "reason", "id"),
)

# -- alerting ----------------------------------------------------------------------------------

alerts = Table(
    "alerts",
    metadata,
    Column("fingerprint", String(64), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("model", String(NAME), nullable=False),
    Column("model_version", String(NAME), nullable=False),
    Column("segment", String(SEGMENT), nullable=False),
    Column("feature", String(NAME), nullable=False),
    Column("mode", String(16), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("labels", Text, nullable=False),
    Column("annotations", Text, nullable=False),
    Column("findings", Text, nullable=False),
    Column("starts_ms", BigInteger, nullable=False),
    Column("ends_ms", BigInteger),
    Column("updated_ms", BigInteger, nullable=False),
    Column("firing_windows", Integer, nullable=False),
    Column("healthy_windows", Integer, nullable=False),
    Column("acknowledged_by", String(NAME)),
    Column("acknowledged_until_ms", BigInteger),
    Column("acknowledged_comment", Text),
    Column("notified_status", String(16)),
    Column("notified_severity", String(16)),
    Column("last_notified_ms", BigInteger),
    Index(None, "state"),
    Index(None, "model", "state"),
)

silences = Table(
    "silences",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("matchers", Text, nullable=False),
    Column("starts_ms", BigInteger, nullable=False),
    Column("ends_ms", BigInteger, nullable=False),
    Column("created_by", String(NAME), nullable=False),
    Column("comment", Text, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("expired_ms", BigInteger),
    Index(None, "ends_ms"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("receiver", String(NAME), nullable=False),
    Column("dedup_key", String(NAME), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("payload", Text, nullable=False),
    Column("status", String(16), nullable=False),  # pending | delivered | failed
    Column("attempts", Integer, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("next_attempt_ms", BigInteger, nullable=False),
    Column("delivered_ms", BigInteger),
    Column("last_error", Text),
    Index(None, "status", "next_attempt_ms"),
    Index(None, "receiver", "status"),
)

# -- administration ----------------------------------------------------------------------------

monitor_configs = Table(
    "monitor_configs",
    metadata,
    Column("model", String(NAME), primary_key=True),
    Column("document", Text, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
    Column("updated_by", String(NAME), nullable=False),
)
