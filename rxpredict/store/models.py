"""Response-model versions in the app database: register a trained bundle, promote one to active, roll back.

- :func:`register_model` records a bundle folder as a ``candidate`` once it
  loads as a response model (every file matches its manifest, the data
  contract is this installation's: :func:`rxpredict.bundle.load_bundle`),
  with the figures of its ``metrics.json``; else a BundleError says why.
- :func:`promote_model` makes a version ``active`` and retires the one active
  before, which is kept: promoting a retired version again is the roll-back.
  The bundle is checked again first (it must still be the one registered).
  At most one version is active: the promotion retires the previous one in
  the same transaction, and a partial unique index backs it.
- :func:`active_model` is the version the comparison page loads;
  :func:`model_versions` lists every version, newest first.

Every write is one :func:`~rxpredict.store.engine.writing` transaction with
its audit row (table ``model_versions``; actions ``register``, ``promote``
and ``roll_back``). :func:`models_root` says where the app's training jobs
write their bundles.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from rxpredict.exceptions import BundleError, RxpredictError
from rxpredict.store.audit import as_utc, record_write
from rxpredict.store.engine import default_database_path, writing
from rxpredict.store.tables import ModelVersionRow, utcnow

MODELS_DIR_ENV = "RXPREDICT_MODELS_DIR"
#: Columns of :func:`model_versions` (``metrics``: the bundle's figures as JSON text).
MODEL_VERSION_SCHEMA = pl.Schema({
    "id": pl.Int64, "path": pl.String, "created": pl.String, "status": pl.String, "registered_by": pl.String,
    "registered_at": pl.Datetime("us", "UTC"), "promoted_by": pl.String, "promoted_at": pl.Datetime("us", "UTC"),
    "note": pl.String, "metrics": pl.String,
})


class ModelError(RxpredictError):
    """A model version cannot be registered or promoted: no such version, registered already, active already."""


@dataclass(frozen=True)
class ModelVersion:
    """A registered response-model bundle: its folder, when the bundle was written (``created``, from its
    config), its status (candidate, active or retired), who registered and last promoted it, and its figures."""

    id: int
    path: Path
    created: str
    status: str
    registered_by: str | None
    registered_at: dt.datetime
    promoted_by: str | None
    promoted_at: dt.datetime | None
    note: str | None
    metrics: dict[str, Any]

    @property
    def label(self) -> str:
        """How pages and reports name it: "version 3 (20261124-101500-job2, written 2026-11-24T10:16:02+00:00)"."""
        return f"version {self.id} ({self.path.name}, written {self.created})"


def models_root() -> Path:
    """Where training jobs write response-model bundles: ``$RXPREDICT_MODELS_DIR``, else ``models/response`` in
    ``$RXPREDICT_HOME`` (the database's folder, default ``~/.rxpredict``), beside the flare-risk monitor's."""
    chosen = os.environ.get(MODELS_DIR_ENV)
    return Path(chosen) if chosen else default_database_path().parent / "models" / "response"


def _version(row: ModelVersionRow) -> ModelVersion:
    return ModelVersion(id=row.id, path=Path(row.path), created=row.created, status=row.status,
                        registered_by=row.registered_by, registered_at=as_utc(row.registered_at),
                        promoted_by=row.promoted_by, promoted_at=as_utc(row.promoted_at), note=row.note,
                        metrics=json.loads(row.metrics))


def _verified(directory: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The config and figures of a bundle that loads as a response model; a BundleError says why one does not."""
    from rxpredict.bundle import load_bundle  # torch is imported only where a bundle is checked

    try:
        load_bundle(directory)
    except (KeyError, ValueError, RuntimeError) as e:
        raise BundleError(f"{directory}: this rxpredict cannot read the bundle ({type(e).__name__}); "
                          "train it again") from e
    config = json.loads((directory / "config.json").read_text())
    return config, json.loads((directory / "metrics.json").read_text())["metrics"]


def register_model(engine: Engine, directory: str | Path, *, user: str | None,
                   note: str | None = None) -> ModelVersion:
    """Record the bundle in ``directory`` as a candidate version in ``user``'s name, with an optional note.

    Raises :class:`~rxpredict.exceptions.BundleError` for a folder that is not
    a response-model bundle this rxpredict can load (naming the file or
    version at fault), and :class:`ModelError` for a folder registered already.
    """
    directory = Path(directory).resolve()
    config, metrics = _verified(directory)
    with writing(engine) as session:
        held = session.scalar(select(ModelVersionRow.id).where(ModelVersionRow.path == str(directory)))
        if held is not None:
            raise ModelError(f"{directory} is registered already, as model version {held}")
        row = ModelVersionRow(path=str(directory), created=config["created"], registered_by=user,
                              registered_at=utcnow(), status="candidate",
                              note=note if note and note.strip() else None, metrics=json.dumps(metrics))
        session.add(row)
        session.flush()
        record_write(session, user=user, action="register", table="model_versions", key={"id": row.id}, old=None,
                     new={"path": row.path, "created": row.created, "status": row.status, "note": row.note})
        return _version(row)


def _stored(session: Session, version_id: int, *, lock: bool = False) -> ModelVersionRow:
    query = select(ModelVersionRow).where(ModelVersionRow.id == version_id)
    row = session.scalars(query.with_for_update() if lock else query).one_or_none()
    if row is None:
        raise ModelError(f"there is no model version {version_id}")
    if row.status == "active":
        raise ModelError(f"model version {version_id} is the active one already: nothing changed")
    return row


def promote_model(engine: Engine, version_id: int, *, user: str | None) -> ModelVersion:
    """Make version ``version_id`` the active one in ``user``'s name; the version active before is retired, and kept.

    Promoting a retired version is the roll-back (audited as ``roll_back``).
    The audit row holds the active version and the chosen one's status before
    and after. Raises :class:`ModelError` for an unknown version, the active
    one (nothing changes), a folder that now holds another bundle, or a
    promotion by someone else at the same moment; a BundleError where the
    bundle no longer loads.
    """
    with Session(engine) as session:  # the bundle is checked before the write lock is taken: it takes a while
        stored = _version(_stored(session, version_id))
    config, _ = _verified(stored.path)
    if config["created"] != stored.created:
        raise ModelError(f"{stored.path} holds another bundle (written {config['created']}) than model version "
                         f"{version_id} (written {stored.created}): register the folder's bundle as a new version")
    try:
        with writing(engine) as session:
            row = _stored(session, version_id, lock=True)
            previous = session.scalars(select(ModelVersionRow).where(ModelVersionRow.status == "active")
                                       .with_for_update()).one_or_none()
            if previous is not None:
                previous.status = "retired"
                session.flush()  # before the new one is active: the partial unique index allows one active row
            old = {"active_version": None if previous is None else previous.id, "status": row.status}
            action = "roll_back" if row.status == "retired" else "promote"
            row.status, row.promoted_by, row.promoted_at = "active", user, utcnow()
            record_write(session, user=user, action=action, table="model_versions", key={"id": version_id},
                         old=old, new={"active_version": version_id, "status": row.status})
            return _version(row)
    except IntegrityError:
        raise ModelError("another model version was promoted at the same moment: look at the versions again and "
                         "promote the one you want") from None


def active_model(engine: Engine) -> ModelVersion | None:
    """The active version (the one the comparison page loads); None before any promotion."""
    with Session(engine) as session:
        row = session.scalars(select(ModelVersionRow).where(ModelVersionRow.status == "active")).one_or_none()
        return None if row is None else _version(row)


def model_versions(engine: Engine) -> pl.DataFrame:
    """Every registered version, newest registration first (:data:`MODEL_VERSION_SCHEMA`)."""
    query = select(ModelVersionRow).order_by(ModelVersionRow.registered_at.desc(), ModelVersionRow.id.desc())
    with Session(engine) as session:
        versions = [_version(row) for row in session.scalars(query)]
    rows = [dataclasses.asdict(v) | {"path": str(v.path), "metrics": json.dumps(v.metrics)} for v in versions]
    return pl.DataFrame(rows, schema=MODEL_VERSION_SCHEMA)
