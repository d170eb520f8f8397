"""replay job counts: a job's entries per state, kept with every move of its entries

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 01:15:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "replay_job_counts",
        sa.Column("job_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("note", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("entries", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("job_id", "state", "note"),
    )
    # The jobs that exist already: their counts from their entries, as the code keeps them
    # from now on (the reason only for skipped entries).
    op.execute(
        """
        INSERT INTO replay_job_counts (job_id, state, note, entries)
        SELECT job_id, state, note, COUNT(*)
        FROM (
            SELECT job_id, state,
                   CASE WHEN state = 'skipped' THEN COALESCE(note, '') ELSE '' END AS note
            FROM replay_job_entries
        ) AS moved
        GROUP BY job_id, state, note
        """
    )


def downgrade() -> None:
    op.drop_table("replay_job_counts")
