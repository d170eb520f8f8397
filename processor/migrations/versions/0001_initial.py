"""initial schema: payments, attempts, DLQ entries, audit log

Revision ID: 0001
Revises:
Create Date: 2026-11-28 05:46:39.559276
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("namespace", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("actor", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("role", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("action", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("target", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("outcome", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("client", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index("ix_audit_action_id", ["namespace", "action", "id"], unique=False)
        batch_op.create_index("ix_audit_actor_id", ["namespace", "actor", "id"], unique=False)
        batch_op.create_index("ix_audit_namespace_id", ["namespace", "id"], unique=False)

    op.create_table(
        "dlq_entries",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("namespace", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("dedup_key", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("fingerprint", sqlmodel.sql.sqltypes.AutoString(length=400), nullable=False),
        sa.Column("error_code", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("error_message", sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=True),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("exception_type", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("payment_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("merchant_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("dead_lettered_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("ingested_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("body_bytes", sa.Integer(), nullable=False),
        sa.Column("headers", sa.Text(), nullable=False),
        sa.Column("content_type", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("message_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("correlation_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("reply_to", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("origin", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("replay_of", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("replayed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("replayed_by", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("replayed_body", sa.Text(), nullable=True),
        sa.Column("discarded_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("discarded_by", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("namespace", "dedup_key", name="uq_dlq_namespace_dedup"),
    )
    with op.batch_alter_table("dlq_entries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_dlq_fingerprint_time",
            ["namespace", "fingerprint", "dead_lettered_at", "id"],
            unique=False,
        )
        batch_op.create_index(
            "ix_dlq_merchant_time",
            ["namespace", "merchant_id", "dead_lettered_at", "id"],
            unique=False,
        )
        batch_op.create_index(
            "ix_dlq_payment_time",
            ["namespace", "payment_id", "dead_lettered_at", "id"],
            unique=False,
        )
        batch_op.create_index(
            "ix_dlq_reason_time", ["namespace", "reason", "dead_lettered_at", "id"], unique=False
        )
        batch_op.create_index("ix_dlq_replay_of", ["replay_of"], unique=False)
        batch_op.create_index(
            "ix_dlq_status_fingerprint_time",
            ["namespace", "status", "fingerprint", "dead_lettered_at", "id"],
            unique=False,
        )
        batch_op.create_index(
            "ix_dlq_status_reason_time",
            ["namespace", "status", "reason", "dead_lettered_at", "id"],
            unique=False,
        )
        batch_op.create_index(
            "ix_dlq_status_time", ["namespace", "status", "dead_lettered_at", "id"], unique=False
        )
        batch_op.create_index("ix_dlq_time", ["namespace", "dead_lettered_at", "id"], unique=False)

    op.create_table(
        "payment_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("payment_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("outcome", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("error_code", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("error_message", sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=True),
        sa.Column("replay_of", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("started_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("finished_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("payment_attempts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_payment_attempts_payment_id"), ["payment_id"], unique=False
        )

    op.create_table(
        "payments",
        sa.Column("payment_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("currency", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
        sa.Column("merchant_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("fingerprint", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.Column("gateway_charge_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("last_error_code", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column(
            "last_error_message", sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=True
        ),
        sa.Column("dead_letter_reason", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("lease_owner", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
        sa.Column("lease_until", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("payment_id"),
    )
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_payments_merchant_id"), ["merchant_id"], unique=False)
        batch_op.create_index("ix_payments_status_updated", ["status", "updated_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_index("ix_payments_status_updated")
        batch_op.drop_index(batch_op.f("ix_payments_merchant_id"))

    op.drop_table("payments")
    with op.batch_alter_table("payment_attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payment_attempts_payment_id"))

    op.drop_table("payment_attempts")
    with op.batch_alter_table("dlq_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_dlq_time")
        batch_op.drop_index("ix_dlq_status_time")
        batch_op.drop_index("ix_dlq_status_reason_time")
        batch_op.drop_index("ix_dlq_status_fingerprint_time")
        batch_op.drop_index("ix_dlq_replay_of")
        batch_op.drop_index("ix_dlq_reason_time")
        batch_op.drop_index("ix_dlq_payment_time")
        batch_op.drop_index("ix_dlq_merchant_time")
        batch_op.drop_index("ix_dlq_fingerprint_time")

    op.drop_table("dlq_entries")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_namespace_id")
        batch_op.drop_index("ix_audit_actor_id")
        batch_op.drop_index("ix_audit_action_id")

    op.drop_table("audit_log")
