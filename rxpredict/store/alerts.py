"""The flare-risk monitor's alerts in the app database: record a day's alerts, list them, decide on them.

- :func:`record_alerts` stores one ``open`` alert per scored row whose
  ``alert`` is set, unless the patient has an open alert, an alert on that
  date, or an alert decided in the last ``quiet_days`` for a date within
  ``quiet_days`` of it. So scoring a day twice stores nothing new, and an
  alert the clinic has just dealt with is not raised again at once.
- :func:`decide_alert` acknowledges (someone follows it up) or dismisses an
  open alert in the name of the signed-in user, with an optional note; a
  decided alert cannot be decided again.
- :func:`open_alerts` and :func:`patient_alerts` read them back as frames.

Every write is one :func:`~rxpredict.store.engine.writing` transaction
holding its audit rows (the SHAP JSON is left out of the audit values: it is
long and already on the alert). Values are bound as parameters and text is
stored verbatim. The module also says where the app finds the active monitor
(:func:`monitor_dir`, :func:`monitor_stamp`, :func:`load_active_monitor`) and reads the stored registry it
scores (:func:`stored_registry`, :func:`latest_wearable_date`, :func:`wearers`).
"""
from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
from sqlalchemy import Engine, Select, func, select
from sqlalchemy.orm import Session

from rxpredict.exceptions import BundleError, RxpredictError
from rxpredict.monitoring.alerts import AlertPolicy
from rxpredict.registry import Registry
from rxpredict.store.audit import as_utc, record_write
from rxpredict.store.engine import default_database_path, writing
from rxpredict.store.tables import REGISTRY_TABLES, Alert, utcnow
from rxpredict.store.transfer import registry_tables

if TYPE_CHECKING:
    import numpy as np

    from rxpredict.monitoring.model import FlareRiskModel

#: Days in which a patient gets no new alert after one was decided (the alert policy's default quiet days).
QUIET_DAYS = AlertPolicy.quiet_days
MONITOR_MODEL_ENV = "RXPREDICT_MONITOR_MODEL"
#: Decision -> the audit log's action for it.
DECISIONS = {"acknowledged": "acknowledge", "dismissed": "dismiss"}
#: Columns of the scores :func:`record_alerts` reads (as rxpredict.monitoring.pipeline.score_patients gives them).
SCORE_COLUMNS = ("patient_id", "date", "p_flare_28d", "alert", "reasons", "shap")
#: Columns of :func:`patient_alerts`.
ALERT_SCHEMA = pl.Schema({
    "id": pl.Int64, "patient_id": pl.String, "date": pl.Date, "p_flare_28d": pl.Float64, "reasons": pl.String,
    "shap": pl.String, "model": pl.String, "status": pl.String, "created_at": pl.Datetime("us", "UTC"),
    "decided_by": pl.String, "decided_at": pl.Datetime("us", "UTC"), "note": pl.String,
})
#: The patients' columns :func:`open_alerts` shows beside each alert (the patients table holds no names).
PATIENT_COLUMNS = ("sex", "birth_year")
#: Columns of :func:`open_alerts`: the alert's, with the patient's after patient_id.
OPEN_ALERT_SCHEMA = pl.Schema({"id": pl.Int64, "patient_id": pl.String, "sex": pl.String, "birth_year": pl.Int64,
                               **{n: t for n, t in ALERT_SCHEMA.items() if n not in ("id", "patient_id")}})


class AlertError(RxpredictError):
    """An alert cannot be recorded or decided: no such alert, decided already, a bad decision, unknown patients."""


# --- the monitor the app uses, and the data it scores ------------------------------------------------------

def monitor_dir() -> Path:
    """Where the app finds the active flare-risk monitor: ``$RXPREDICT_MONITOR_MODEL``, else
    ``models/monitor`` in ``$RXPREDICT_HOME`` (the database's folder, default ``~/.rxpredict``)."""
    chosen = os.environ.get(MONITOR_MODEL_ENV)
    return Path(chosen) if chosen else default_database_path().parent / "models" / "monitor"


def monitor_stamp(directory: Path) -> str | None:
    """The name alerts record for the bundle in ``directory`` (folder name and creation time); None without one.

    A bundle written anew gets a new stamp, so the app also keys its cache on it. An unreadable
    ``config.json`` is a :class:`~rxpredict.exceptions.BundleError`.
    """
    config = directory / "config.json"
    if not config.is_file():
        return None
    try:
        created = json.loads(config.read_text()).get("created", "(no creation time)")
    except ValueError:
        raise BundleError(f"{directory}: config.json is not valid JSON") from None
    return f"{directory.name} {created}"


def load_active_monitor(directory: Path) -> tuple[FlareRiskModel, AlertPolicy, tuple[np.ndarray, np.ndarray], dict]:
    """The model, alert policy, SHAP background and metrics of the bundle in ``directory``
    (:func:`rxpredict.monitoring.persist.load_monitor`), every failure to read it a BundleError or an OSError.

    A bundle written by an earlier source tree of the same version can pass the checks and still not fit
    the model's arrays or weights; that is said plainly, with what to do.
    """
    from rxpredict.monitoring.persist import load_monitor  # torch is imported only where a monitor is loaded

    try:
        return load_monitor(directory)
    except (KeyError, ValueError, RuntimeError) as e:
        raise BundleError(f"{directory}: this rxpredict cannot read the bundle ({type(e).__name__}); "
                          "train it again") from e


def stored_registry(engine: Engine) -> Registry:
    """Every registry table of the database from one snapshot, validated: what the monitor scores."""
    return Registry.from_tables(registry_tables(engine))


def latest_wearable_date(engine: Engine) -> dt.date | None:
    """The latest day any patient has wearable data for (None when there is none)."""
    wearables = REGISTRY_TABLES["wearables"]
    with engine.connect() as connection:
        return connection.scalar(select(func.max(wearables.c.date)))


def wearers(engine: Engine, day: dt.date, days: int) -> int:
    """How many patients have wearable data in the ``days`` days up to ``day``: those a scoring of ``day`` sees."""
    wearables = REGISTRY_TABLES["wearables"]
    query = (select(func.count(func.distinct(wearables.c.patient_id)))
             .where(wearables.c.date.between(day - dt.timedelta(days=days - 1), day)))
    with engine.connect() as connection:
        return connection.scalar(query)


# --- writes ----------------------------------------------------------------------------------------------------

def _audited(alert: Alert) -> dict[str, Any]:
    return {"patient_id": alert.patient_id, "date": alert.date, "p_flare_28d": alert.p_flare_28d,
            "reasons": alert.reasons, "model": alert.model, "status": alert.status}


def _decision(alert: Alert) -> dict[str, Any]:
    return {"status": alert.status, "decided_by": alert.decided_by, "decided_at": as_utc(alert.decided_at),
            "note": alert.note}


def _blocks(held: Alert, day: dt.date, decided_since: dt.datetime, quiet: dt.timedelta) -> bool:
    """Whether a stored alert of the patient stops a new one on ``day``."""
    recent = held.decided_at is not None and as_utc(held.decided_at) >= decided_since
    return held.status == "open" or held.date == day or (recent and abs(held.date - day) < quiet)


def _lock_patients(session: Session, patient_ids: list[str]) -> None:
    """Lock the patients' rows (PostgreSQL; SQLite's writer lock is taken already), so two scorings never both add."""
    patients = REGISTRY_TABLES["patients"]
    found = session.scalars(select(patients.c.patient_id).where(patients.c.patient_id.in_(patient_ids))
                            .order_by(patients.c.patient_id).with_for_update()).all()
    if len(found) < len(patient_ids):
        raise AlertError(f"{len(patient_ids) - len(found)} scored patient(s) are not in the database: "
                         "score the registry stored in this database")


def record_alerts(engine: Engine, scores: pl.DataFrame, *, model: str, user: str | None,
                  quiet_days: int = QUIET_DAYS, now: dt.datetime | None = None) -> int:
    """Store an open alert for each row of ``scores`` with ``alert`` set (see the module docstring); how many.

    ``scores``: rows as :func:`rxpredict.monitoring.pipeline.score_patients`
    gives them; ``model``: the bundle's stamp (:func:`monitor_stamp`). All
    rows or none are stored, each with an audit row in ``user``'s name.
    """
    missing = [c for c in SCORE_COLUMNS if c not in scores.columns]
    if missing:
        raise ValueError(f"the scores lack the column(s) {', '.join(missing)} that score_patients gives")
    raised = scores.filter(pl.col("alert")).sort("date", "patient_id")
    if raised.is_empty():
        return 0
    now, quiet = now or utcnow(), dt.timedelta(days=quiet_days)
    patient_ids = raised.get_column("patient_id").unique().sort().to_list()
    added = 0
    with writing(engine) as session:
        _lock_patients(session, patient_ids)
        held: dict[str, list[Alert]] = {}
        for stored in session.scalars(select(Alert).where(Alert.patient_id.in_(patient_ids))):
            held.setdefault(stored.patient_id, []).append(stored)
        for row in raised.iter_rows(named=True):
            mine = held.setdefault(row["patient_id"], [])
            if any(_blocks(a, row["date"], now - quiet, quiet) for a in mine):
                continue
            alert = Alert(patient_id=row["patient_id"], date=row["date"], p_flare_28d=float(row["p_flare_28d"]),
                          reasons=row["reasons"] or "", shap=row["shap"], model=model, status="open", created_at=now)
            session.add(alert)
            session.flush()
            record_write(session, user=user, action="insert", table="alerts", key={"id": alert.id}, old=None,
                         new=_audited(alert))
            mine.append(alert)
            added += 1
    return added


def decide_alert(engine: Engine, alert_id: int, decision: str, user: str | None, note: str | None = None, *,
                 now: dt.datetime | None = None) -> None:
    """Acknowledge or dismiss (``decision``) an open alert as ``user``; the note is kept as typed (blank: none).

    Raises :class:`AlertError` for an unknown decision or alert, and for an
    alert decided already (by someone else meanwhile, say): nothing changes then.
    """
    if decision not in DECISIONS:
        raise AlertError(f"an alert is {' or '.join(DECISIONS)}, not {decision!r}")
    with writing(engine) as session:
        alert = session.scalars(select(Alert).where(Alert.id == alert_id).with_for_update()).one_or_none()
        if alert is None:
            raise AlertError(f"there is no alert {alert_id}")
        if alert.status != "open":
            raise AlertError(f"alert {alert_id} was {alert.status} already by {alert.decided_by} on "
                             f"{as_utc(alert.decided_at):%Y-%m-%d %H:%M} UTC; only an open alert can be decided")
        old = _decision(alert)
        alert.status, alert.decided_by, alert.decided_at = decision, user, now or utcnow()
        alert.note = note if note and note.strip() else None
        record_write(session, user=user, action=DECISIONS[decision], table="alerts", key={"id": alert_id},
                     old=old, new=_decision(alert))


# --- reads -----------------------------------------------------------------------------------------------------

def _frame(engine: Engine, query: Select, schema: pl.Schema) -> pl.DataFrame:
    with Session(engine) as session:
        rows = [[as_utc(v) if isinstance(v, dt.datetime) else v for v in row] for row in session.execute(query)]
    return pl.DataFrame(rows, schema=schema, orient="row")


def open_alerts(engine: Engine) -> pl.DataFrame:
    """Every open alert, highest risk first, with the patient's sex and birth year (:data:`OPEN_ALERT_SCHEMA`)."""
    patients = REGISTRY_TABLES["patients"]
    columns = [patients.c[n] if n in PATIENT_COLUMNS else Alert.__table__.c[n] for n in OPEN_ALERT_SCHEMA]
    query = (select(*columns).join(patients, patients.c.patient_id == Alert.patient_id)
             .where(Alert.status == "open").order_by(Alert.p_flare_28d.desc(), Alert.date.desc(), Alert.id))
    return _frame(engine, query, OPEN_ALERT_SCHEMA)


def patient_alerts(engine: Engine, patient_id: str) -> pl.DataFrame:
    """Every alert of one patient, whatever its status, newest date first (:data:`ALERT_SCHEMA`)."""
    query = (select(*(Alert.__table__.c[n] for n in ALERT_SCHEMA)).where(Alert.patient_id == patient_id)
             .order_by(Alert.date.desc(), Alert.id))
    return _frame(engine, query, ALERT_SCHEMA)
