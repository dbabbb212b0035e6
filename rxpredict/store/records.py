"""Patients and visits in the app database: register, edit (keeping every version), search, and save a visit whole.

Every record is checked by :func:`rxpredict.validation.records.check_records`,
the registry validator's own rules, before it is written, so the database
never holds a row that ``rxpredict validate`` would reject. A write is one
:func:`~rxpredict.store.engine.writing` transaction holding the rows and their
audit entries: any problem raises :class:`~rxpredict.exceptions.RecordError`
and nothing is stored. Values are bound as parameters and strings are stored
verbatim. Callers get plain dicts and polars frames in the contract's dtypes.
"""
from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import polars as pl
from sqlalchemy import or_, Engine, Table, case, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from rxpredict.exceptions import RecordError
from rxpredict.schemas import Field, load_contract
from rxpredict.store.audit import as_utc, record_write
from rxpredict.store.engine import writing
from rxpredict.store.tables import REGISTRY_TABLES, PatientVersion
from rxpredict.validation.records import Problem, as_text, check_records

Row = dict[str, Any]


@dataclass
class VisitEntry:
    """Everything one visit form saves, as rows of the registry tables.

    ``started`` are new treatment courses; ``stopped`` close stored courses
    (patient_id, drug, start_date name the course; stop_date and stop_reason
    are set). Rows without a patient_id get the visit's. Problems with
    treatments number the started rows first, then the stopped ones.
    """

    visit: Row
    started: list[Row] = field(default_factory=list)
    stopped: list[Row] = field(default_factory=list)
    imaging: list[Row] = field(default_factory=list)


def _key(table: Table, row: Mapping[str, Any]) -> Row:
    return {c.name: row[c.name] for c in table.primary_key.columns}


def _from_text(f: Field, text: str) -> Any:
    """A value the validator accepted, read as its schema type (the validator's reading: stripped, ISO dates)."""
    if f.type == "integer":
        return int(float(text))
    if f.type == "number":
        return float(text)
    if f.type == "boolean":
        return text in f.true_values
    if f.type == "date":
        return dt.datetime.strptime(text.strip(), "%Y-%m-%d").date()
    return text


def _typed(table: str, row: Mapping[str, Any]) -> Row:
    """A validated record's values in their schema types, every column of the table present."""
    out = {}
    for f in load_contract().tables[table].fields:
        text = as_text(row.get(f.name))
        out[f.name] = None if text is None else _from_text(f, text)
    return out


def _frame(table: str, rows: list[Mapping[str, Any]]) -> pl.DataFrame:
    schema = load_contract().tables[table].polars_schema
    return pl.DataFrame([[r.get(c) for c in schema] for r in rows], schema=schema, orient="row")


def _is_duplicate(error: IntegrityError) -> bool:
    """A primary-key or unique clash (not, say, a foreign key), on PostgreSQL or SQLite."""
    orig = error.orig
    if getattr(orig, "sqlstate", None) == "23505":  # PostgreSQL unique_violation
        return True
    return getattr(orig, "sqlite_errorname", "") in ("SQLITE_CONSTRAINT_PRIMARYKEY", "SQLITE_CONSTRAINT_UNIQUE")


def _insert(session: Session, table_name: str, rows: list[Row], *, user: str | None) -> None:
    """Insert rows one by one with an audit entry each; a clash names its table, row and key columns."""
    table = REGISTRY_TABLES[table_name]
    for i, row in enumerate(rows, start=1):
        try:
            session.execute(insert(table).values(row))
        except IntegrityError as e:
            columns = ",".join(c.name for c in table.primary_key.columns)
            rule, message = (("duplicate_key", f"a {table_name} row with this ({columns}) is stored already")
                             if _is_duplicate(e) else ("integrity", f"the database refused this {table_name} row"))
            raise RecordError([Problem(table_name, i, columns, rule, message)]) from None
        record_write(session, user=user, action="insert", table=table_name, key=_key(table, row), old=None, new=row)


def _raise_if(problems: list[Problem]) -> None:
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise RecordError(errors)


def _stored_patient(session: Session, patient_id: Any, *,
                    lock: Literal["share", "update"] | None = None) -> Row | None:
    """The patient's row; locked on PostgreSQL so that an edit and a visit of one patient never validate at once."""
    patients = REGISTRY_TABLES["patients"]
    query = select(patients).where(patients.c.patient_id == patient_id)
    if lock:
        query = query.with_for_update(read=lock == "share")
    row = session.execute(query).mappings().one_or_none()
    return dict(row) if row is not None else None


def _patient_rows(session: Session, table_name: str, patient_id: str) -> list[Row]:
    table = REGISTRY_TABLES[table_name]
    query = select(table).where(table.c.patient_id == patient_id).order_by(*table.primary_key.columns)
    return [dict(r) for r in session.execute(query).mappings()]


def _add_version(session: Session, patient: Row, version: int, *, user: str | None) -> None:
    values = json.dumps({k: as_text(v) for k, v in patient.items()}, ensure_ascii=False)
    session.add(PatientVersion(patient_id=patient["patient_id"], version=version, values=values, changed_by=user))


def register_patient(engine: Engine, values: Mapping[str, Any], *, user: str | None) -> str:
    """Store a new patient (version 1 of its row) and return its ID; RecordError if invalid or the ID is taken."""
    _raise_if(check_records({"patients": [values]}))
    row = _typed("patients", values)
    with writing(engine) as session:
        _insert(session, "patients", [row], user=user)
        _add_version(session, row, 1, user=user)
    return row["patient_id"]


def _dependent_tables() -> list[str]:
    """Tables with a rule bounded by a patient's values (visits by the diagnosis date): an edit must keep them valid."""
    return [name for name, t in load_contract().tables.items()
            if any(r.params.get("notBefore", {}).get("resource") == "patients" for r in t.rules)]


def edit_patient(engine: Engine, patient_id: str, changes: Mapping[str, Any], *, user: str | None) -> int:
    """Change a patient's values and return the new version number (every earlier version stays readable).

    The edited row is validated together with the patient's stored rows that
    depend on it, so an edit cannot make a stored visit invalid. The patient
    ID cannot change. No change at all writes nothing.
    """
    with writing(engine) as session:
        stored = _stored_patient(session, patient_id, lock="update")
        if stored is None:
            raise RecordError([Problem("patients", 1, "patient_id", "not_found", "there is no such patient")])
        if "patient_id" in changes and as_text(changes["patient_id"]) != patient_id:
            raise RecordError([Problem("patients", 1, "patient_id", "read_only", "a patient ID cannot be changed")])
        edited = {**stored, **changes}
        records = {"patients": [edited], **{t: _patient_rows(session, t, patient_id) for t in _dependent_tables()}}
        _raise_if(check_records(records))
        new = _typed("patients", edited)
        latest = session.scalar(select(func.max(PatientVersion.version)).where(PatientVersion.patient_id == patient_id))
        if new == stored:
            return latest or 1
        if latest is None:  # imported, not registered here: its stored row becomes version 1
            _add_version(session, stored, 1, user=None)
            latest = 1
        patients = REGISTRY_TABLES["patients"]
        session.execute(update(patients).where(patients.c.patient_id == patient_id).values(new))
        _add_version(session, new, latest + 1, user=user)
        changed = [k for k in new if new[k] != stored[k]]
        record_write(session, user=user, action="update", table="patients", key={"patient_id": patient_id},
                     old={k: stored[k] for k in changed}, new={k: new[k] for k in changed})
        return latest + 1


def patient_versions(engine: Engine, patient_id: str) -> pl.DataFrame:
    """Every stored version of a patient's row, newest first: version, changed_by, changed_at and the columns."""
    fields = {f.name: f for f in load_contract().tables["patients"].fields}
    with Session(engine) as session:
        versions = session.scalars(select(PatientVersion).where(PatientVersion.patient_id == patient_id)
                                   .order_by(PatientVersion.version.desc())).all()
        rows = [{name: None if text is None else _from_text(fields[name], text)
                 for name, text in json.loads(v.values).items()} for v in versions]
        meta = pl.DataFrame({
            "version": [v.version for v in versions],
            "changed_by": [v.changed_by for v in versions],
            "changed_at": [as_utc(v.changed_at) for v in versions],
        }, schema={"version": pl.Int64, "changed_by": pl.String, "changed_at": pl.Datetime("us", "UTC")})
    return pl.concat([meta, _frame("patients", rows)], how="horizontal")


def get_patient(engine: Engine, patient_id: str) -> Row | None:
    """A patient's stored row as a dict of Python values, or None."""
    with Session(engine) as session:
        return _stored_patient(session, patient_id)


def search_patients(engine: Engine, text: str = "", *, limit: int = 50) -> pl.DataFrame:
    """Patients whose ID contains ``text`` (ASCII letters in any case), IDs starting with it first, then by ID.

    SQLite's lower() folds ASCII only, so the text as typed is matched too:
    a non-ASCII ID is always found by its exact spelling.
    """
    patients = REGISTRY_TABLES["patients"]
    pid = func.lower(patients.c.patient_id)
    text = text.strip()
    needle = text.lower()
    matches = or_(pid.contains(needle, autoescape=True), patients.c.patient_id.contains(text, autoescape=True))
    query = (select(patients).where(matches)
             .order_by(case((pid.startswith(needle, autoescape=True), 0), else_=1), patients.c.patient_id)
             .limit(limit))
    with Session(engine) as session:
        rows = list(session.execute(query).mappings())
    return _frame("patients", rows)


def patient_tables(engine: Engine, patient_id: str) -> dict[str, pl.DataFrame]:
    """Every registry table's rows of one patient in the contract's dtypes, sorted by key (for the timeline)."""
    with Session(engine) as session:
        return {name: _frame(name, _patient_rows(session, name, patient_id)) for name in REGISTRY_TABLES}


def _own_rows(table: str, rows: list[Row], patient_id: Any, *, first_row: int = 1) -> tuple[list[Row], list[Problem]]:
    """Rows with the visit's patient_id filled in; a row of another patient is a problem."""
    out, problems = [], []
    for i, row in enumerate(rows, start=first_row):
        if as_text(row.get("patient_id", patient_id)) != as_text(patient_id):
            problems.append(Problem(table, i, "patient_id", "other_patient",
                                    "belongs to another patient than the visit"))
        out.append({**row, "patient_id": row.get("patient_id", patient_id)})
    return out, problems


def _close_courses(session: Session, stopped: list[Row], first_row: int, *, user: str | None) -> list[Problem]:
    """Set stop date and reason of stored courses; a course not stored, or no stop date, is a problem."""
    treatments = REGISTRY_TABLES["treatments"]
    problems = []
    for i, row in enumerate(stopped, start=first_row):
        key = _key(treatments, row)
        if row["stop_date"] is None:
            problems.append(Problem("treatments", i, "stop_date", "required", "a stopped course needs a stop date"))
            continue
        where = [treatments.c[k] == v for k, v in key.items()]
        old = session.execute(select(treatments).where(*where).with_for_update()).mappings().one_or_none()
        if old is None:
            problems.append(Problem("treatments", i, "start_date", "not_found",
                                    "no stored course of this drug starts on this date"))
            continue
        change = {"stop_date": row["stop_date"], "stop_reason": row["stop_reason"]}
        session.execute(update(treatments).where(*where).values(change))
        record_write(session, user=user, action="update", table="treatments", key=key,
                     old={k: old[k] for k in change}, new=change)
    return problems


def save_visit(engine: Engine, entry: VisitEntry, *, user: str | None) -> None:
    """Store a visit with its treatment changes and SvdH scores in one transaction, or nothing (RecordError)."""
    patient_id = entry.visit.get("patient_id")
    started, p_started = _own_rows("treatments", entry.started, patient_id)
    stopped, p_stopped = _own_rows("treatments", entry.stopped, patient_id, first_row=len(started) + 1)
    imaging, p_imaging = _own_rows("imaging", entry.imaging, patient_id)
    _raise_if(p_started + p_stopped + p_imaging)
    with writing(engine) as session:
        stored = _stored_patient(session, as_text(patient_id), lock="share")
        context = {"patients": _frame("patients", [stored] if stored else [])}
        records = {"visits": [entry.visit], "treatments": started + stopped, "imaging": imaging}
        _raise_if(check_records(records, context=context))
        _insert(session, "visits", [_typed("visits", entry.visit)], user=user)
        _insert(session, "treatments", [_typed("treatments", r) for r in started], user=user)
        _raise_if(_close_courses(session, [_typed("treatments", r) for r in stopped], len(started) + 1, user=user))
        _insert(session, "imaging", [_typed("imaging", r) for r in imaging], user=user)


def save_imaging(engine: Engine, patient_id: str, rows: list[Row], *, user: str | None) -> None:
    """Store one patient's SvdH rows of an exam (e.g. from the radiograph scorer) in one transaction, or nothing
    (RecordError naming the row, column and rule: an unknown patient, an out-of-range score, an exam stored already)."""
    imaging, problems = _own_rows("imaging", rows, patient_id)
    _raise_if(problems)
    with writing(engine) as session:
        stored = _stored_patient(session, as_text(patient_id), lock="share")
        _raise_if(check_records({"imaging": imaging}, context={"patients": _frame("patients", [stored] if stored else [])}))
        _insert(session, "imaging", [_typed("imaging", r) for r in imaging], user=user)
