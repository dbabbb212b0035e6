"""Response-model versions (candidate, active, retired) and the training jobs that make them.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25

Only new tables: the tables of 0001 to 0003 and their rows are left as they are.
"""
from alembic import op
import sqlalchemy as sa

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

ONE_ACTIVE = "status = 'active'"
ONE_UNFINISHED = "status IN ('queued', 'running')"


def upgrade() -> None:
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("created", sa.String(length=64), nullable=False),
        sa.Column("registered_by", sa.String(length=64), nullable=True),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("promoted_by", sa.String(length=64), nullable=True),
        sa.Column("promoted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("metrics", sa.Text(), nullable=False),
        sa.CheckConstraint("status IN ('candidate', 'active', 'retired')", name=op.f("ck_model_versions_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_versions")),
        sa.UniqueConstraint("path", name=op.f("uq_model_versions_path")),
    )
    op.create_index(op.f("uq_model_versions_active"), "model_versions", ["status"], unique=True,
                    sqlite_where=sa.text(ONE_ACTIVE), postgresql_where=sa.text(ONE_ACTIVE))
    op.create_table(
        "training_jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("registry_path", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("stage", sa.Text(), nullable=False),
        sa.Column("fraction", sa.Double(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("members", sa.Integer(), nullable=True),
        sa.Column("epochs", sa.Integer(), nullable=True),
        sa.Column("started_by", sa.String(length=64), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("model_version_id", sa.Integer(), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.CheckConstraint("status IN ('queued', 'running', 'succeeded', 'failed')",
                           name=op.f("ck_training_jobs_status")),
        sa.ForeignKeyConstraint(["model_version_id"], ["model_versions.id"],
                                name=op.f("fk_training_jobs_model_version_id_model_versions"), ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_training_jobs")),
    )
    op.create_index(op.f("uq_training_jobs_unfinished"), "training_jobs", ["status"], unique=True,
                    sqlite_where=sa.text(ONE_UNFINISHED), postgresql_where=sa.text(ONE_UNFINISHED))


def downgrade() -> None:
    raise NotImplementedError("rxpredict never downgrades a database: restore the backup written before the upgrade")
