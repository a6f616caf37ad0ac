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
* alerting: ``alerts`` (one row per fingerprint), ``alert_groups`` and ``alert_group_members``
  (notification groups and what their receivers last heard), ``silences``, ``outbox``
  (messages to send, at least once);
* administration: ``monitor_configs`` (a model's monitor config set through the API), ``baselines``
  (TFDV statistics and schema uploaded for a model version).
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
    Column("raw_verdict", String(24), nullable=False),  # before the persistence rule: what history reads
    Column("min_samples", Integer),  # verdict insufficient_data: the values each side needs
    Column("alerting", Boolean, nullable=False),
    Column("message", Text, nullable=False),
    UniqueConstraint("window_id", "mode", "family", "feature", "test"),
    Index(None, "model", "feature", "test", "mode", "start_ms"),
    Index(None, "model", "feature", "start_ms", "id"),  # a feature's history, newest first, in pages
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

dead_letter_seen = Table(  # identities already counted: a dead letter produced twice counts once
    "dead_letter_seen",
    metadata,
    Column("source_topic", String(NAME), primary_key=True),
    Column("source_partition", Integer, primary_key=True),
    Column("source_offset", BigInteger, primary_key=True),
    Column("seen_ms", BigInteger, nullable=False),
    Index(None, "seen_ms"),
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
    Column("fingerprint", String(32), primary_key=True),
    Column("state", String(16), nullable=False),  # pending | firing | resolved (monitor.alerting_config)
    Column("kind", String(16), nullable=False),  # feature | output | model
    Column("model", String(NAME), nullable=False),
    Column("model_version", String(NAME), nullable=False),
    Column("segment", String(SEGMENT), nullable=False),
    Column("feature", String(NAME), nullable=False),  # "" for a model-wide alert
    Column("mode", String(32), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("labels", Text, nullable=False),  # JSON, Alertmanager's labels
    Column("annotations", Text, nullable=False),  # JSON: summary, description, drilldown
    Column("findings", Text, nullable=False),  # JSON: the alerting findings (or features), ranked by score
    Column("score", Float, nullable=False),  # largest effect / floor: ranks alerts in a message
    Column("pending_since_ms", BigInteger),  # event time: start of the current alerting streak
    Column("starts_ms", BigInteger, nullable=False),  # event time: start of the incident
    Column("ends_ms", BigInteger),  # event time: end of the window that resolved it
    Column("updated_ms", BigInteger, nullable=False),  # event time: end of the last window seen
    Column("window_id", ID),  # the last window that changed it
    Column("firing_windows", Integer, nullable=False),  # consecutive alerting windows
    Column("healthy_windows", Integer, nullable=False),  # consecutive healthy windows
    Column("incident", Integer, nullable=False),  # how many times it has fired
    Column("inhibited_by", String(32)),  # fingerprint of the model-wide alert muting it
    Column("acknowledged_by", String(NAME)),
    Column("acknowledged_until_ms", BigInteger),
    Column("acknowledged_comment", Text),
    Column("acknowledged_ms", BigInteger),
    Column("resolved_by", String(NAME)),
    Column("changed_ms", BigInteger, nullable=False),  # wall time of the last change
    Index(None, "state"),
    Index(None, "model", "state"),
    Index(None, "model", "model_version", "segment"),
)

alert_groups = Table(
    "alert_groups",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("route", String(64), nullable=False),
    Column("receiver", String(64), nullable=False),
    Column("key_hash", String(32), nullable=False),
    Column("group_key", Text, nullable=False),  # Alertmanager's groupKey: {route}:{label="value",...}
    Column("group_labels", Text, nullable=False),  # JSON
    Column("next_flush_ms", BigInteger),  # wall time the group is next looked at; NULL: nothing to do
    Column("last_flush_ms", BigInteger),  # NULL: no live group (the next alert waits group_wait)
    Column("last_notified_ms", BigInteger),
    Column("notified", Text, nullable=False),  # JSON {fingerprint: {"severity", "ack"}}: what receivers last heard
    Column("seq", Integer, nullable=False),  # notifications made (dedup keys)
    UniqueConstraint("route", "key_hash"),
    Index(None, "next_flush_ms"),
)

alert_group_members = Table(
    "alert_group_members",
    metadata,
    Column("group_id", ID, ForeignKey("alert_groups.id", ondelete="CASCADE"), primary_key=True),
    Column("fingerprint", String(32), ForeignKey("alerts.fingerprint", ondelete="CASCADE"), primary_key=True),
    Index(None, "fingerprint"),
)

silences = Table(
    "silences",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("matchers", Text, nullable=False),  # JSON [{"name", "op", "value"}]
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
    Column("receiver", String(64), nullable=False),
    Column("integration", String(128), nullable=False),  # receiver/kind/index: which integration sends it
    Column("target", String(64), nullable=False),  # kind + hash of the destination: order and rate limit
    Column("kind", String(16), nullable=False),  # slack | pagerduty | webhook | alertmanager
    Column("dedup_key", String(255), nullable=False),
    Column("payload", Text, nullable=False),  # JSON without secrets
    Column("status", String(16), nullable=False),  # pending | delivered | failed
    Column("attempts", Integer, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("next_attempt_ms", BigInteger, nullable=False),
    Column("lease_owner", String(64)),
    Column("lease_until_ms", BigInteger),
    Column("delivered_ms", BigInteger),
    Column("last_status", Integer),
    Column("last_error", Text),
    UniqueConstraint("dedup_key"),
    Index(None, "status", "target", "id"),
    Index(None, "status", "next_attempt_ms"),
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

baselines = Table(  # TFDV statistics + schema uploaded through the API for one model version
    "baselines",
    metadata,
    Column("model", String(NAME), primary_key=True),
    Column("model_version", String(NAME), primary_key=True),
    Column("statistics", LargeBinary, nullable=False),  # a serialised DatasetFeatureStatisticsList
    Column("schema", Text, nullable=False),  # a Schema text proto
    Column("sha256", String(64), nullable=False),
    Column("features", Integer, nullable=False),
    Column("uploaded_ms", BigInteger, nullable=False),
    Column("uploaded_by", String(NAME), nullable=False),
)
