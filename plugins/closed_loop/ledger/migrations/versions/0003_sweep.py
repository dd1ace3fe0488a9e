"""SLA sweep: read-back columns on cases, the case a recovery pulse follows up on survey_sends.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("account_name", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("sf_dissatisfied", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("sf_closed", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("sf_documented", sa.Boolean(), nullable=True))
    with op.batch_alter_table("survey_sends") as batch:
        batch.add_column(sa.Column("case_key", sa.String(length=255), nullable=True))
        batch.create_index(batch.f("ix_survey_sends_case_key"), ["case_key"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("survey_sends") as batch:
        batch.drop_index(batch.f("ix_survey_sends_case_key"))
        batch.drop_column("case_key")
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("sf_documented")
        batch.drop_column("sf_closed")
        batch.drop_column("sf_dissatisfied")
        batch.drop_column("account_name")
