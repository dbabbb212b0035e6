"""The audit log: who changed which record when, with the values before and after.

Every write of the store adds its audit rows through :func:`record_write` in
the same transaction as the change itself, so a change and its audit entry
are committed together or not at all. Values are kept as JSON text (dates as
ISO 8601); passwords and their hashes never reach it.
"""
from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

import polars as pl
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from rxpredict.store.tables import AuditEntry

#: Columns of :func:`audit_frame`, newest entry first.
AUDIT_SCHEMA = pl.Schema({
    "at": pl.Datetime("us", "UTC"), "user": pl.String, "action": pl.String, "table": pl.String,
    "record_key": pl.String, "old_values": pl.String, "new_values": pl.String,
})


def _json_value(value: Any) -> Any:
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    raise TypeError(f"cannot write a {type(value).__name__} to the audit log")


def as_json(values: Mapping[str, Any] | None) -> str | None:
    """Values as JSON text with sorted keys and ISO dates (None stays None)."""
    if values is None:
        return None
    return json.dumps(dict(values), sort_keys=True, default=_json_value, ensure_ascii=False)


def key_text(key: Mapping[str, Any] | str) -> str:
    """A record's key as stored in the log: JSON for a mapping (a table's primary key), else the text itself."""
    return key if isinstance(key, str) else as_json(key)


def record_write(session: Session, *, user: str | None, action: str, table: str, key: Mapping[str, Any] | str,
                 old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> None:
    """Add one audit row to ``session``'s transaction (it commits or rolls back with the change)."""
    session.add(AuditEntry(user_name=user, action=action, table_name=table, record_key=key_text(key),
                           old_values=as_json(old), new_values=as_json(new)))


def as_utc(at: dt.datetime | None) -> dt.datetime | None:
    """A stored timestamp as timezone-aware UTC (SQLite hands them back without a zone; the store writes UTC)."""
    return at if at is None or at.tzinfo else at.replace(tzinfo=dt.timezone.utc)


def audit_frame(engine: Engine, *, table: str | None = None, key: Mapping[str, Any] | str | None = None,
                limit: int = 500) -> pl.DataFrame:
    """The newest ``limit`` audit rows, optionally of one table and one record key (as given to record_write)."""
    query = select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit)
    if table is not None:
        query = query.where(AuditEntry.table_name == table)
    if key is not None:
        query = query.where(AuditEntry.record_key == key_text(key))
    with Session(engine) as session:
        rows = [(as_utc(e.at), e.user_name, e.action, e.table_name, e.record_key, e.old_values, e.new_values)
                for e in session.scalars(query)]
    return pl.DataFrame(rows, schema=AUDIT_SCHEMA, orient="row")


def audited_tables(engine: Engine) -> list[str]:
    """The tables the audit log has entries for, by name: what an audit view can filter on."""
    with engine.connect() as connection:
        return sorted(connection.scalars(select(AuditEntry.table_name).distinct()))
