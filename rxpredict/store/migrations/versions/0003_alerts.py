"""The flare-risk monitor's alerts and what the clinic decided about each.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23

Only a new table: the tables of 0001 and 0002 and their rows are left as they are.
"""
from alembic import op
import sqlalchemy as sa

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.String(), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("p_flare_28d", sa.Double(), nullable=False),
        sa.Column("reasons", sa.Text(), nullable=False),
        sa.Column("shap", sa.Text(), nullable=True),
        sa.Column("model", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.String(length=64), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.CheckConstraint("status IN ('open', 'acknowledged', 'dismissed')", name=op.f("ck_alerts_status")),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.patient_id"], name=op.f("fk_alerts_patient_id_patients"),
                                ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
        sa.UniqueConstraint("patient_id", "date", name=op.f("uq_alerts_patient_id")),
    )
    op.create_index(op.f("ix_alerts_status"), "alerts", ["status"], unique=False)


def downgrade() -> None:
    raise NotImplementedError("rxpredict never downgrades a database: restore the backup written before the upgrade")
