"""The app database's tables: the registry tables of ``data_schemas/`` plus users, login sessions, the audit log,
patient versions, the flare-risk monitor's alerts, the response-model versions and their training jobs.

The registry tables are derived from the data contract (column names, types,
nullability, primary and foreign keys), so the database cannot drift from
``data_schemas/``; Alembic migrations create them and a test checks that the
migrated database matches this metadata. The app's own tables are ORM classes.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import (Boolean, CheckConstraint, Column, Date, DateTime, Double, ForeignKey,
                        ForeignKeyConstraint, Index, Integer, MetaData, PrimaryKeyConstraint, String, Table, Text,
                        UniqueConstraint, text)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from rxpredict.schemas import Contract, TableSchema, load_contract

#: Roles a user can hold, from least to most privileged in data terms.
ROLES = ("clinic_staff", "rheumatologist", "data_scientist", "admin")
#: An alert's status: open until someone acknowledges (will act on it) or dismisses it.
ALERT_STATUSES = ("open", "acknowledged", "dismissed")
#: A model version's status: registered as a candidate, the active one (at most one), or retired (kept to roll back).
MODEL_STATUSES = ("candidate", "active", "retired")
#: A training job's status: queued until its worker starts, running, then succeeded or failed.
JOB_STATUSES = ("queued", "running", "succeeded", "failed")
#: The statuses of a job that has not ended.
UNFINISHED_JOB_STATUSES = ("queued", "running")

#: Table Schema field types and the SQL type that stores them.
SQL_TYPES = {"string": String, "integer": Integer, "number": Double, "boolean": Boolean, "date": Date}

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base holding every table of the app database."""

    metadata = MetaData(naming_convention=NAMING)


def registry_table(schema: TableSchema, metadata: MetaData) -> Table:
    """One registry table as SQL: the contract's columns, types, required flags and keys."""
    key = set(schema.primary_key)
    columns = [
        Column(f.name, SQL_TYPES[f.type](), nullable=not (f.required or f.name in key), comment=f.title)
        for f in schema.fields
    ]
    constraints = [PrimaryKeyConstraint(*schema.primary_key)] if schema.primary_key else []
    constraints += [
        ForeignKeyConstraint(list(fk.fields), [f"{fk.resource}.{c}" for c in fk.reference_fields], ondelete="RESTRICT")
        for fk in schema.foreign_keys
    ]
    return Table(schema.name, metadata, *columns, *constraints, comment=schema.title)


def _registry_tables(contract: Contract) -> dict[str, Table]:
    # patients first: the other tables' foreign keys point at it
    return {name: registry_table(schema, Base.metadata) for name, schema in contract.tables.items()}


#: The registry tables of the data contract, by table name.
REGISTRY_TABLES: dict[str, Table] = _registry_tables(load_contract())


def utcnow() -> dt.datetime:
    """Now, in UTC, timezone-aware: every timestamp in the database is UTC."""
    return dt.datetime.now(dt.timezone.utc)


def _among(column: str, values: tuple[str, ...]) -> str:
    """SQL saying that ``column`` holds one of ``values`` (for check constraints and partial indexes)."""
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _partial_unique(name: str, column: str, where: str) -> Index:
    """A unique index on ``column`` over the rows ``where`` holds (SQLite and PostgreSQL both have them)."""
    return Index(name, column, unique=True, sqlite_where=text(where), postgresql_where=text(where))


class User(Base):
    """A local login with one role; the password is stored only as an argon2 hash."""

    __tablename__ = "users"
    __table_args__ = (CheckConstraint(_among("role", ROLES), name="role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(32))
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class LoginSession(Base):
    """A signed-in browser session; only the token's SHA-256 is stored."""

    __tablename__ = "login_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    ended_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class AuditEntry(Base):
    """One write: who, when, which record, the values before and after (JSON text)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    user_name: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    table_name: Mapped[str] = mapped_column(String(64))
    record_key: Mapped[str] = mapped_column(Text)
    old_values: Mapped[str | None] = mapped_column(Text)
    new_values: Mapped[str | None] = mapped_column(Text)


class PatientVersion(Base):
    """A patient's row as it was before an edit (version 1 is the registration)."""

    __tablename__ = "patient_versions"

    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.patient_id", ondelete="RESTRICT"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    values: Mapped[str] = mapped_column(Text)
    changed_by: Mapped[str | None] = mapped_column(String(64))
    changed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Alert(Base):
    """A flare-risk alert on one patient-day: the monitor's risk and reasons, and what the clinic decided about it."""

    __tablename__ = "alerts"
    __table_args__ = (
        CheckConstraint(_among("status", ALERT_STATUSES), name="status"),
        UniqueConstraint("patient_id", "date"),  # one alert per patient-day, whoever scores it
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.patient_id", ondelete="RESTRICT"))
    date: Mapped[dt.date] = mapped_column(Date)
    p_flare_28d: Mapped[float] = mapped_column(Double)
    reasons: Mapped[str] = mapped_column(Text)
    shap: Mapped[str | None] = mapped_column(Text)
    model: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    note: Mapped[str | None] = mapped_column(Text)


class ModelVersionRow(Base):
    """A response-model bundle registered for the app: its folder, creation time, figures, and whether it is the
    active one (at most one is; the partial unique index backs the check that promotion makes)."""

    __tablename__ = "model_versions"
    __table_args__ = (
        CheckConstraint(_among("status", MODEL_STATUSES), name="status"),
        _partial_unique("uq_model_versions_active", "status", "status = 'active'"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(Text, unique=True)
    created: Mapped[str] = mapped_column(String(64))
    registered_by: Mapped[str | None] = mapped_column(String(64))
    registered_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default="candidate")
    promoted_by: Mapped[str | None] = mapped_column(String(64))
    promoted_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    note: Mapped[str | None] = mapped_column(Text)
    metrics: Mapped[str] = mapped_column(Text)


class TrainingJobRow(Base):
    """One training of a response-model bundle on a registry folder by a background worker: its settings, how far
    it has got, and how it ended (the partial unique index keeps two jobs from being queued, or running, at once)."""

    __tablename__ = "training_jobs"
    __table_args__ = (
        CheckConstraint(_among("status", JOB_STATUSES), name="status"),
        _partial_unique("uq_training_jobs_unfinished", "status", _among("status", UNFINISHED_JOB_STATUSES)),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    registry_path: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    stage: Mapped[str] = mapped_column(Text, default="")
    fraction: Mapped[float] = mapped_column(Double, default=0.0)
    seed: Mapped[int] = mapped_column(Integer)
    members: Mapped[int | None] = mapped_column(Integer)
    epochs: Mapped[int | None] = mapped_column(Integer)
    started_by: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    error: Mapped[str | None] = mapped_column(Text)
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id", ondelete="RESTRICT"))
    pid: Mapped[int | None] = mapped_column(Integer)
