"""Registry tables of the data contract: patients, visits, treatments, imaging, genetics, wearables.

Revision ID: 0001
Revises:
Create Date: 2026-11-23

Columns, types, required flags, keys and comments (the fields' titles) as
data_schemas/ defines them at this revision.
"""
from alembic import op
import sqlalchemy as sa

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _patient_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["patient_id"], ["patients.patient_id"],
                                   name=op.f(f"fk_{table}_patient_id_patients"), ondelete="RESTRICT")


def _patient_id() -> sa.Column:
    return sa.Column("patient_id", sa.String(), nullable=False, comment="Patient ID")


def upgrade() -> None:
    op.create_table(
        "patients",
        _patient_id(),
        sa.Column("sex", sa.String(), nullable=False, comment="Sex"),
        sa.Column("birth_year", sa.Integer(), nullable=False, comment="Year of birth"),
        sa.Column("diagnosis_date", sa.Date(), nullable=False, comment="Diagnosis date"),
        sa.Column("rf_positive", sa.Boolean(), nullable=True, comment="Rheumatoid factor positive"),
        sa.Column("acpa_positive", sa.Boolean(), nullable=True, comment="ACPA positive"),
        sa.Column("smoking", sa.String(), nullable=True, comment="Smoking"),
        sa.PrimaryKeyConstraint("patient_id", name=op.f("pk_patients")),
        comment="Patients",
    )
    op.create_table(
        "visits",
        _patient_id(),
        sa.Column("visit_date", sa.Date(), nullable=False, comment="Visit date"),
        sa.Column("tjc28", sa.Integer(), nullable=False, comment="Tender joints (28)"),
        sa.Column("sjc28", sa.Integer(), nullable=False, comment="Swollen joints (28)"),
        sa.Column("esr_mm_h", sa.Double(), nullable=True, comment="ESR"),
        sa.Column("crp_mg_l", sa.Double(), nullable=True, comment="CRP"),
        sa.Column("patient_global_0_100", sa.Double(), nullable=True, comment="Patient global assessment"),
        sa.Column("physician_global_0_100", sa.Double(), nullable=True, comment="Physician global assessment"),
        sa.Column("pain_0_100", sa.Double(), nullable=True, comment="Pain"),
        sa.Column("haq_di", sa.Double(), nullable=True, comment="HAQ-DI"),
        sa.Column("bmi_kg_m2", sa.Double(), nullable=True, comment="BMI"),
        sa.Column("morning_stiffness_min", sa.Integer(), nullable=True, comment="Morning stiffness"),
        _patient_fk("visits"),
        sa.PrimaryKeyConstraint("patient_id", "visit_date", name=op.f("pk_visits")),
        comment="Visits",
    )
    op.create_table(
        "treatments",
        _patient_id(),
        sa.Column("drug", sa.String(), nullable=False, comment="Drug"),
        sa.Column("start_date", sa.Date(), nullable=False, comment="Start date"),
        sa.Column("stop_date", sa.Date(), nullable=True, comment="Stop date"),
        sa.Column("stop_reason", sa.String(), nullable=True, comment="Stop reason"),
        _patient_fk("treatments"),
        sa.PrimaryKeyConstraint("patient_id", "drug", "start_date", name=op.f("pk_treatments")),
        comment="Treatments",
    )
    op.create_table(
        "imaging",
        _patient_id(),
        sa.Column("exam_date", sa.Date(), nullable=False, comment="Exam date"),
        sa.Column("joint", sa.String(), nullable=False, comment="Joint area"),
        sa.Column("erosion", sa.Integer(), nullable=True, comment="Erosion score"),
        sa.Column("jsn", sa.Integer(), nullable=True, comment="Joint space narrowing score"),
        sa.Column("source", sa.String(), nullable=False, comment="Score source"),
        _patient_fk("imaging"),
        sa.PrimaryKeyConstraint("patient_id", "exam_date", "joint", name=op.f("pk_imaging")),
        comment="Imaging",
    )
    op.create_table(
        "genetics",
        _patient_id(),
        sa.Column("marker", sa.String(), nullable=False, comment="Marker"),
        sa.Column("value", sa.Double(), nullable=False, comment="Value"),
        _patient_fk("genetics"),
        sa.PrimaryKeyConstraint("patient_id", "marker", name=op.f("pk_genetics")),
        comment="Genetics",
    )
    op.create_table(
        "wearables",
        _patient_id(),
        sa.Column("date", sa.Date(), nullable=False, comment="Date"),
        sa.Column("steps", sa.Integer(), nullable=True, comment="Steps"),
        sa.Column("active_min", sa.Integer(), nullable=True, comment="Active minutes"),
        sa.Column("sleep_min", sa.Integer(), nullable=True, comment="Sleep"),
        sa.Column("resting_hr_bpm", sa.Integer(), nullable=True, comment="Resting heart rate"),
        sa.Column("pain_0_10", sa.Double(), nullable=True, comment="Pain (self report)"),
        sa.Column("stiffness_min", sa.Integer(), nullable=True, comment="Morning stiffness (self report)"),
        _patient_fk("wearables"),
        sa.PrimaryKeyConstraint("patient_id", "date", name=op.f("pk_wearables")),
        comment="Wearables",
    )


def downgrade() -> None:
    raise NotImplementedError("rxpredict never downgrades a database: restore the backup written before the upgrade")
