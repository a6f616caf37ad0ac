"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-12-01 13:55:10.027501
"""
from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('alert_groups',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('route', sa.String(length=64), nullable=False),
    sa.Column('receiver', sa.String(length=64), nullable=False),
    sa.Column('key_hash', sa.String(length=32), nullable=False),
    sa.Column('group_key', sa.Text(), nullable=False),
    sa.Column('group_labels', sa.Text(), nullable=False),
    sa.Column('next_flush_ms', sa.BigInteger(), nullable=True),
    sa.Column('last_flush_ms', sa.BigInteger(), nullable=True),
    sa.Column('last_notified_ms', sa.BigInteger(), nullable=True),
    sa.Column('notified', sa.Text(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alert_groups')),
    sa.UniqueConstraint('route', 'key_hash', name=op.f('uq_alert_groups_route_key_hash'))
    )
    with op.batch_alter_table('alert_groups', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_alert_groups_next_flush_ms'), ['next_flush_ms'], unique=False)

    op.create_table('alerts',
    sa.Column('fingerprint', sa.String(length=32), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('model', sa.String(length=256), nullable=False),
    sa.Column('model_version', sa.String(length=256), nullable=False),
    sa.Column('segment', sa.String(length=512), nullable=False),
    sa.Column('feature', sa.String(length=256), nullable=False),
    sa.Column('mode', sa.String(length=32), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('labels', sa.Text(), nullable=False),
    sa.Column('annotations', sa.Text(), nullable=False),
    sa.Column('findings', sa.Text(), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('pending_since_ms', sa.BigInteger(), nullable=True),
    sa.Column('starts_ms', sa.BigInteger(), nullable=False),
    sa.Column('ends_ms', sa.BigInteger(), nullable=True),
    sa.Column('updated_ms', sa.BigInteger(), nullable=False),
    sa.Column('window_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('firing_windows', sa.Integer(), nullable=False),
    sa.Column('healthy_windows', sa.Integer(), nullable=False),
    sa.Column('incident', sa.Integer(), nullable=False),
    sa.Column('inhibited_by', sa.String(length=32), nullable=True),
    sa.Column('acknowledged_by', sa.String(length=256), nullable=True),
    sa.Column('acknowledged_until_ms', sa.BigInteger(), nullable=True),
    sa.Column('acknowledged_comment', sa.Text(), nullable=True),
    sa.Column('acknowledged_ms', sa.BigInteger(), nullable=True),
    sa.Column('resolved_by', sa.String(length=256), nullable=True),
    sa.Column('changed_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('fingerprint', name=op.f('pk_alerts'))
    )
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_alerts_model_model_version_segment'), ['model', 'model_version', 'segment'], unique=False)
        batch_op.create_index(batch_op.f('ix_alerts_model_state'), ['model', 'state'], unique=False)
        batch_op.create_index(batch_op.f('ix_alerts_state'), ['state'], unique=False)

    op.create_table('baselines',
    sa.Column('model', sa.String(length=256), nullable=False),
    sa.Column('model_version', sa.String(length=256), nullable=False),
    sa.Column('statistics', sa.LargeBinary(), nullable=False),
    sa.Column('schema', sa.Text(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('features', sa.Integer(), nullable=False),
    sa.Column('uploaded_ms', sa.BigInteger(), nullable=False),
    sa.Column('uploaded_by', sa.String(length=256), nullable=False),
    sa.PrimaryKeyConstraint('model', 'model_version', name=op.f('pk_baselines'))
    )
    op.create_table('collector_checkpoints',
    sa.Column('source_topic', sa.String(length=256), nullable=False),
    sa.Column('source_partition', sa.Integer(), nullable=False),
    sa.Column('position', sa.BigInteger(), nullable=False),
    sa.Column('state', sa.Text(), nullable=False),
    sa.Column('saved_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('source_topic', 'source_partition', name=op.f('pk_collector_checkpoints'))
    )
    op.create_table('dead_letter_examples',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('reason', sa.String(length=64), nullable=False),
    sa.Column('model', sa.String(length=256), nullable=False),
    sa.Column('source_topic', sa.String(length=256), nullable=False),
    sa.Column('source_partition', sa.Integer(), nullable=False),
    sa.Column('source_offset', sa.BigInteger(), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('received_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dead_letter_examples'))
    )
    with op.batch_alter_table('dead_letter_examples', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dead_letter_examples_reason_id'), ['reason', 'id'], unique=False)

    op.create_table('dead_letter_seen',
    sa.Column('source_topic', sa.String(length=256), nullable=False),
    sa.Column('source_partition', sa.Integer(), nullable=False),
    sa.Column('source_offset', sa.BigInteger(), nullable=False),
    sa.Column('seen_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('source_topic', 'source_partition', 'source_offset', name=op.f('pk_dead_letter_seen'))
    )
    with op.batch_alter_table('dead_letter_seen', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dead_letter_seen_seen_ms'), ['seen_ms'], unique=False)

    op.create_table('dead_letters',
    sa.Column('reason', sa.String(length=64), nullable=False),
    sa.Column('model', sa.String(length=256), nullable=False),
    sa.Column('count', sa.BigInteger(), nullable=False),
    sa.Column('last_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('reason', 'model', name=op.f('pk_dead_letters'))
    )
    op.create_table('latest_scores',
    sa.Column('model', sa.String(length=256), nullable=False),
    sa.Column('model_version', sa.String(length=256), nullable=False),
    sa.Column('segment', sa.String(length=512), nullable=False),
    sa.Column('mode', sa.String(length=16), nullable=False),
    sa.Column('family', sa.String(length=16), nullable=False),
    sa.Column('feature', sa.String(length=256), nullable=False),
    sa.Column('test', sa.String(length=256), nullable=False),
    sa.Column('window_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('end_ms', sa.BigInteger(), nullable=False),
    sa.Column('statistic', sa.Float(), nullable=True),
    sa.Column('q_value', sa.Float(), nullable=True),
    sa.Column('effect', sa.Float(), nullable=True),
    sa.Column('floor', sa.Float(), nullable=True),
    sa.Column('verdict', sa.String(length=24), nullable=False),
    sa.Column('alerting', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('model', 'model_version', 'segment', 'mode', 'family', 'feature', 'test', name=op.f('pk_latest_scores'))
    )
    op.create_table('monitor_configs',
    sa.Column('model', sa.String(length=256), nullable=False),
    sa.Column('document', sa.Text(), nullable=False),
    sa.Column('updated_ms', sa.BigInteger(), nullable=False),
    sa.Column('updated_by', sa.String(length=256), nullable=False),
    sa.PrimaryKeyConstraint('model', name=op.f('pk_monitor_configs'))
    )
    op.create_table('outbox',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('receiver', sa.String(length=64), nullable=False),
    sa.Column('integration', sa.String(length=128), nullable=False),
    sa.Column('target', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('dedup_key', sa.String(length=255), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('created_ms', sa.BigInteger(), nullable=False),
    sa.Column('next_attempt_ms', sa.BigInteger(), nullable=False),
    sa.Column('lease_owner', sa.String(length=64), nullable=True),
    sa.Column('lease_until_ms', sa.BigInteger(), nullable=True),
    sa.Column('delivered_ms', sa.BigInteger(), nullable=True),
    sa.Column('last_status', sa.Integer(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox')),
    sa.UniqueConstraint('dedup_key', name=op.f('uq_outbox_dedup_key'))
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outbox_status_next_attempt_ms'), ['status', 'next_attempt_ms'], unique=False)
        batch_op.create_index(batch_op.f('ix_outbox_status_target_id'), ['status', 'target', 'id'], unique=False)

    op.create_table('partials',
    sa.Column('model', sa.String(length=256), nullable=False),
    sa.Column('model_version', sa.String(length=256), nullable=False),
    sa.Column('segment', sa.String(length=512), nullable=False),
    sa.Column('start_ms', sa.BigInteger(), nullable=False),
    sa.Column('source_topic', sa.String(length=256), nullable=False),
    sa.Column('source_partition', sa.Integer(), nullable=False),
    sa.Column('first_offset', sa.BigInteger(), nullable=False),
    sa.Column('last_offset', sa.BigInteger(), nullable=False),
    sa.Column('end_ms', sa.BigInteger(), nullable=False),
    sa.Column('rows', sa.BigInteger(), nullable=False),
    sa.Column('records', sa.BigInteger(), nullable=False),
    sa.Column('invalid_instances', sa.BigInteger(), nullable=False),
    sa.Column('late_records', sa.BigInteger(), nullable=False),
    sa.Column('duplicate_records', sa.BigInteger(), nullable=False),
    sa.Column('features', sa.LargeBinary(), nullable=False),
    sa.Column('outputs', sa.LargeBinary(), nullable=False),
    sa.Column('sample', sa.LargeBinary(), nullable=False),
    sa.Column('received_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('model', 'model_version', 'segment', 'start_ms', 'source_topic', 'source_partition', 'first_offset', 'last_offset', name=op.f('pk_partials'))
    )
    with op.batch_alter_table('partials', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_partials_model_start_ms'), ['model', 'start_ms'], unique=False)

    op.create_table('partition_progress',
    sa.Column('source_topic', sa.String(length=256), nullable=False),
    sa.Column('source_partition', sa.Integer(), nullable=False),
    sa.Column('caught_up', sa.Boolean(), nullable=False),
    sa.Column('position', sa.BigInteger(), nullable=False),
    sa.Column('sent_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('source_topic', 'source_partition', name=op.f('pk_partition_progress'))
    )
    op.create_table('silences',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('matchers', sa.Text(), nullable=False),
    sa.Column('starts_ms', sa.BigInteger(), nullable=False),
    sa.Column('ends_ms', sa.BigInteger(), nullable=False),
    sa.Column('created_by', sa.String(length=256), nullable=False),
    sa.Column('comment', sa.Text(), nullable=False),
    sa.Column('created_ms', sa.BigInteger(), nullable=False),
    sa.Column('expired_ms', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_silences'))
    )
    with op.batch_alter_table('silences', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_silences_ends_ms'), ['ends_ms'], unique=False)

    op.create_table('stream_progress',
    sa.Column('source_topic', sa.String(length=256), nullable=False),
    sa.Column('source_partition', sa.Integer(), nullable=False),
    sa.Column('model', sa.String(length=256), nullable=False),
    sa.Column('closed_through_ms', sa.BigInteger(), nullable=False),
    sa.Column('idle', sa.Boolean(), nullable=False),
    sa.Column('open_windows', sa.Text(), nullable=False),
    sa.Column('sent_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('source_topic', 'source_partition', 'model', name=op.f('pk_stream_progress'))
    )
    op.create_table('windows',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('model', sa.String(length=256), nullable=False),
    sa.Column('model_version', sa.String(length=256), nullable=False),
    sa.Column('segment', sa.String(length=512), nullable=False),
    sa.Column('start_ms', sa.BigInteger(), nullable=False),
    sa.Column('end_ms', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('rows', sa.BigInteger(), nullable=False),
    sa.Column('records', sa.BigInteger(), nullable=False),
    sa.Column('invalid_instances', sa.BigInteger(), nullable=False),
    sa.Column('late_records', sa.BigInteger(), nullable=False),
    sa.Column('duplicate_records', sa.BigInteger(), nullable=False),
    sa.Column('partials', sa.Integer(), nullable=False),
    sa.Column('findings', sa.Integer(), nullable=False),
    sa.Column('alerting', sa.Integer(), nullable=False),
    sa.Column('decided_at_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_windows')),
    sa.UniqueConstraint('model', 'model_version', 'segment', 'start_ms', name=op.f('uq_windows_model_model_version_segment_start_ms'))
    )
    with op.batch_alter_table('windows', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_windows_decided_at_ms'), ['decided_at_ms'], unique=False)
        batch_op.create_index(batch_op.f('ix_windows_model_start_ms'), ['model', 'start_ms'], unique=False)
        batch_op.create_index(batch_op.f('ix_windows_start_ms'), ['start_ms'], unique=False)

    op.create_table('alert_group_members',
    sa.Column('group_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('fingerprint', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['fingerprint'], ['alerts.fingerprint'], name=op.f('fk_alert_group_members_fingerprint_alerts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['group_id'], ['alert_groups.id'], name=op.f('fk_alert_group_members_group_id_alert_groups'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('group_id', 'fingerprint', name=op.f('pk_alert_group_members'))
    )
    with op.batch_alter_table('alert_group_members', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_alert_group_members_fingerprint'), ['fingerprint'], unique=False)

    op.create_table('findings',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('window_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('model', sa.String(length=256), nullable=False),
    sa.Column('model_version', sa.String(length=256), nullable=False),
    sa.Column('segment', sa.String(length=512), nullable=False),
    sa.Column('start_ms', sa.BigInteger(), nullable=False),
    sa.Column('end_ms', sa.BigInteger(), nullable=False),
    sa.Column('mode', sa.String(length=16), nullable=False),
    sa.Column('reference_window_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('family', sa.String(length=16), nullable=False),
    sa.Column('feature', sa.String(length=256), nullable=False),
    sa.Column('test', sa.String(length=256), nullable=False),
    sa.Column('statistic', sa.Float(), nullable=True),
    sa.Column('p_value', sa.Float(), nullable=True),
    sa.Column('q_value', sa.Float(), nullable=True),
    sa.Column('effect', sa.Float(), nullable=True),
    sa.Column('floor', sa.Float(), nullable=True),
    sa.Column('significant', sa.Boolean(), nullable=False),
    sa.Column('verdict', sa.String(length=24), nullable=False),
    sa.Column('raw_verdict', sa.String(length=24), nullable=False),
    sa.Column('min_samples', sa.Integer(), nullable=True),
    sa.Column('alerting', sa.Boolean(), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['window_id'], ['windows.id'], name=op.f('fk_findings_window_id_windows'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_findings')),
    sa.UniqueConstraint('window_id', 'mode', 'family', 'feature', 'test', name=op.f('uq_findings_window_id_mode_family_feature_test'))
    )
    with op.batch_alter_table('findings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_findings_model_feature_start_ms_id'), ['model', 'feature', 'start_ms', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_findings_model_feature_test_mode_start_ms'), ['model', 'feature', 'test', 'mode', 'start_ms'], unique=False)
        batch_op.create_index(batch_op.f('ix_findings_verdict'), ['verdict'], unique=False)

    op.create_table('window_profiles',
    sa.Column('window_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('features', sa.LargeBinary(), nullable=False),
    sa.Column('outputs', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['window_id'], ['windows.id'], name=op.f('fk_window_profiles_window_id_windows'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('window_id', name=op.f('pk_window_profiles'))
    )
    op.create_table('window_samples',
    sa.Column('window_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('rows', sa.Integer(), nullable=False),
    sa.Column('sample', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['window_id'], ['windows.id'], name=op.f('fk_window_samples_window_id_windows'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('window_id', name=op.f('pk_window_samples'))
    )


def downgrade() -> None:
    op.drop_table('window_samples')
    op.drop_table('window_profiles')
    with op.batch_alter_table('findings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_findings_verdict'))
        batch_op.drop_index(batch_op.f('ix_findings_model_feature_test_mode_start_ms'))
        batch_op.drop_index(batch_op.f('ix_findings_model_feature_start_ms_id'))

    op.drop_table('findings')
    with op.batch_alter_table('alert_group_members', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_alert_group_members_fingerprint'))

    op.drop_table('alert_group_members')
    with op.batch_alter_table('windows', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_windows_start_ms'))
        batch_op.drop_index(batch_op.f('ix_windows_model_start_ms'))
        batch_op.drop_index(batch_op.f('ix_windows_decided_at_ms'))

    op.drop_table('windows')
    op.drop_table('stream_progress')
    with op.batch_alter_table('silences', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_silences_ends_ms'))

    op.drop_table('silences')
    op.drop_table('partition_progress')
    with op.batch_alter_table('partials', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_partials_model_start_ms'))

    op.drop_table('partials')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbox_status_target_id'))
        batch_op.drop_index(batch_op.f('ix_outbox_status_next_attempt_ms'))

    op.drop_table('outbox')
    op.drop_table('monitor_configs')
    op.drop_table('latest_scores')
    op.drop_table('dead_letters')
    with op.batch_alter_table('dead_letter_seen', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dead_letter_seen_seen_ms'))

    op.drop_table('dead_letter_seen')
    with op.batch_alter_table('dead_letter_examples', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dead_letter_examples_reason_id'))

    op.drop_table('dead_letter_examples')
    op.drop_table('collector_checkpoints')
    op.drop_table('baselines')
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_alerts_state'))
        batch_op.drop_index(batch_op.f('ix_alerts_model_state'))
        batch_op.drop_index(batch_op.f('ix_alerts_model_model_version_segment'))

    op.drop_table('alerts')
    with op.batch_alter_table('alert_groups', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_alert_groups_next_flush_ms'))

    op.drop_table('alert_groups')
