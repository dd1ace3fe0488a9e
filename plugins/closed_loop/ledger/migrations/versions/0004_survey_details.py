"""Intake: the survey details last read, kept with the survey's date_modified (read again only when it
changes).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "survey_details",
        sa.Column("survey_id", sa.String(length=64), nullable=False),
        sa.Column("date_modified", sa.String(length=64), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("survey_id", name=op.f("pk_survey_details")),
    )


def downgrade() -> None:
    op.drop_table("survey_details")
