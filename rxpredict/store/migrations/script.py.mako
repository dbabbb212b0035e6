"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}

Write the DDL out explicitly (never derive it from rxpredict.store.tables at
run time: a migration must do tomorrow what it did today), keep the naming
convention's constraint names and the column comments, and never drop a
table or column that holds data.
"""
from alembic import op
import sqlalchemy as sa
${imports if imports else ""}

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = ${repr(branch_labels)}
depends_on = ${repr(depends_on)}


def upgrade() -> None:
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    raise NotImplementedError("rxpredict never downgrades a database: restore the backup written before the upgrade")
