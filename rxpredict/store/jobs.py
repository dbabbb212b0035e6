"""Training jobs in the app database: start one in a background worker, follow its progress, see how it ended.

- :func:`start_training` queues a job and launches its worker, a process of
  its own (``python -m rxpredict.store.worker JOB_ID``, in a session of its
  own, its output in :func:`job_log`), so the app's pages stay responsive and
  the job outlives the page that started it. It refuses while another job is
  queued or running: training takes the machine's cores.
- The worker (:func:`rxpredict.store.worker.run_job`) marks the job running,
  writes its stage and share done to the row as it trains, registers the
  bundle as a candidate model version and marks the job succeeded with that
  version, or failed with a readable error.
- :func:`training_job` and :func:`training_jobs` read them back; every user
  reads the same rows, so a second user sees the job running. A job whose
  worker process is gone while its row says queued or running (killed, out of
  memory, the machine restarted) is reported failed, "the worker stopped";
  the next start closes it so in the database.

The process check assumes that the app and the workers it starts share one
machine. Starting and ending a job are audited (table ``training_jobs``,
actions ``start`` and ``finish``); the progress writes are not.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import os
import subprocess
import sys
import threading
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from rxpredict.exceptions import RxpredictError
from rxpredict.store.audit import as_utc, record_write
from rxpredict.store.engine import DATABASE_URL_ENV, writing
from rxpredict.store.models import models_root
from rxpredict.store.tables import UNFINISHED_JOB_STATUSES, TrainingJobRow, utcnow

WORKER_MODULE = "rxpredict.store.worker"
#: The error of a job whose worker process is gone while its row says queued or running.
WORKER_STOPPED = "the worker stopped"
#: Columns of :func:`training_jobs`.
TRAINING_JOB_SCHEMA = pl.Schema({
    "id": pl.Int64, "registry_path": pl.String, "status": pl.String, "stage": pl.String, "fraction": pl.Float64,
    "seed": pl.Int64, "members": pl.Int64, "epochs": pl.Int64, "started_by": pl.String,
    "started_at": pl.Datetime("us", "UTC"), "finished_at": pl.Datetime("us", "UTC"), "error": pl.String,
    "model_version_id": pl.Int64, "pid": pl.Int64,
})


class TrainingError(RxpredictError):
    """A training job cannot be started, found or run: another one is not finished, no such job, a bad folder."""


@dataclass(frozen=True)
class TrainingJob:
    """One training job: the registry folder and settings (None: the model's default), its status (queued,
    running, succeeded, failed), stage and share done, who started it when, and how it ended."""

    id: int
    registry_path: Path
    status: str
    stage: str
    fraction: float
    seed: int
    members: int | None
    epochs: int | None
    started_by: str | None
    started_at: dt.datetime
    finished_at: dt.datetime | None
    error: str | None
    model_version_id: int | None
    pid: int | None


def job_log(job_id: int) -> Path:
    """The worker's log of a job (its stages, and where it failed; never patient data), beside the bundles."""
    return models_root() / f"training-job-{job_id}.log"


# --- is the worker still there ----------------------------------------------------------------------------------

def _alive(pid: int | None) -> bool:
    """Whether the process ``pid`` exists (a job queued a moment ago may have no worker process yet)."""
    if pid is None:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def _stopped(engine: Engine) -> set[int]:
    """Unfinished jobs whose worker is gone. Read before the jobs' rows and in a transaction of its own, so that a
    worker that ends its job and exits in between is seen to have ended it, not to have stopped."""
    with engine.connect() as connection:
        unfinished = connection.execute(select(TrainingJobRow.id, TrainingJobRow.pid)
                                        .where(TrainingJobRow.status.in_(UNFINISHED_JOB_STATUSES))).all()
    return {job_id for job_id, pid in unfinished if not _alive(pid)}


def _job(row: TrainingJobRow, stopped: Collection[int] = ()) -> TrainingJob:
    """A row as a job; an unfinished one among ``stopped`` as failed, "the worker stopped"."""
    values = {f.name: getattr(row, f.name) for f in dataclasses.fields(TrainingJob)}
    values |= {"registry_path": Path(row.registry_path), "started_at": as_utc(row.started_at),
               "finished_at": as_utc(row.finished_at)}
    if row.id in stopped and row.status in UNFINISHED_JOB_STATUSES:
        values |= {"status": "failed", "error": WORKER_STOPPED}
    return TrainingJob(**values)


# --- reads -------------------------------------------------------------------------------------------------------

def training_job(engine: Engine, job_id: int) -> TrainingJob:
    """One job as it stands (failed, "the worker stopped", where its worker is gone); TrainingError if none."""
    stopped = _stopped(engine)
    with Session(engine) as session:
        row = session.get(TrainingJobRow, job_id)
        if row is None:
            raise TrainingError(f"there is no training job {job_id}")
        return _job(row, stopped)


def training_jobs(engine: Engine) -> pl.DataFrame:
    """Every job, newest first (:data:`TRAINING_JOB_SCHEMA`), as :func:`training_job` reports each."""
    stopped = _stopped(engine)
    query = select(TrainingJobRow).order_by(TrainingJobRow.started_at.desc(), TrainingJobRow.id.desc())
    with Session(engine) as session:
        jobs = [_job(row, stopped) for row in session.scalars(query)]
    return pl.DataFrame([dataclasses.asdict(j) | {"registry_path": str(j.registry_path)} for j in jobs],
                        schema=TRAINING_JOB_SCHEMA)


# --- writes ------------------------------------------------------------------------------------------------------

def _end(session: Session, row: TrainingJobRow, *, error: str | None = None,
         model_version_id: int | None = None) -> TrainingJob:
    """Mark ``row`` succeeded (with its model version) or failed (with ``error``), audited in its starter's name."""
    before = row.status
    row.status, row.finished_at = ("failed" if error else "succeeded"), utcnow()
    row.error, row.model_version_id = error, model_version_id
    record_write(session, user=row.started_by, action="finish", table="training_jobs", key={"id": row.id},
                 old={"status": before}, new={"status": row.status, "error": error,
                                              "model_version_id": model_version_id})
    return _job(row)


def _locked(session: Session, job_id: int) -> TrainingJobRow:
    row = session.scalars(select(TrainingJobRow).where(TrainingJobRow.id == job_id).with_for_update()).one_or_none()
    if row is None:
        raise TrainingError(f"there is no training job {job_id}")
    return row


def _queue(engine: Engine, registry: Path, *, user: str | None, seed: int, members: int | None,
           epochs: int | None) -> int:
    """Insert a queued job, first closing as failed the jobs whose worker stopped; refused while one is unfinished."""
    stopped = _stopped(engine)
    try:
        with writing(engine) as session:
            unfinished = session.scalars(select(TrainingJobRow).where(
                TrainingJobRow.status.in_(UNFINISHED_JOB_STATUSES)).with_for_update()).all()
            for row in unfinished:
                if row.id in stopped:
                    _end(session, row, error=WORKER_STOPPED)
                else:
                    raise TrainingError(f"training job {row.id}, started by {row.started_by or 'someone'} at "
                                        f"{as_utc(row.started_at):%Y-%m-%d %H:%M} UTC, is {row.status}: one job "
                                        "trains at a time (it takes the machine's cores); start yours when it ends")
            session.flush()  # the stopped ones are failed before the new one is queued (partial unique index)
            row = TrainingJobRow(registry_path=str(registry), status="queued", stage="queued", fraction=0.0,
                                 seed=seed, members=members, epochs=epochs, started_by=user, started_at=utcnow())
            session.add(row)
            session.flush()
            record_write(session, user=user, action="start", table="training_jobs", key={"id": row.id}, old=None,
                         new={"registry_path": row.registry_path, "seed": seed, "members": members, "epochs": epochs})
            return row.id
    except IntegrityError:  # the partial unique index: another start won the race
        raise TrainingError("another training job was started at the same moment: wait for it to end") from None


def _launch(engine: Engine, job_id: int) -> int:
    """Start the worker of ``job_id`` in a session of its own, its output appended to :func:`job_log`; its pid."""
    log = job_log(job_id)
    log.parent.mkdir(parents=True, exist_ok=True)
    environment = os.environ | {DATABASE_URL_ENV: engine.url.render_as_string(hide_password=False)}
    with log.open("ab") as out:
        worker = subprocess.Popen([sys.executable, "-m", WORKER_MODULE, str(job_id)], stdin=subprocess.DEVNULL,
                                  stdout=out, stderr=subprocess.STDOUT, env=environment, start_new_session=True)
    # Reap the worker when it exits: a dead child left unreaped (a zombie) would still look alive to _alive.
    threading.Thread(target=worker.wait, name=f"rxpredict-training-job-{job_id}", daemon=True).start()
    return worker.pid


def start_training(engine: Engine, registry_dir: str | Path, *, user: str | None, seed: int = 0,
                   members: int | None = None, epochs: int | None = None) -> int:
    """Queue a training job on the registry folder ``registry_dir`` in ``user``'s name, launch its worker; its id.

    ``seed``, ``members`` and ``epochs`` are :func:`rxpredict.retrain.train_bundle`'s
    (None: the response model's defaults). The worker reads and validates the
    registry itself: an invalid one ends the job failed, with the reason.
    Raises :class:`TrainingError` where ``registry_dir`` is not a folder, another job is queued or
    running, or the worker cannot be started (the job is then failed).
    """
    registry = Path(registry_dir).resolve()
    if not registry.is_dir():
        raise TrainingError(f"{registry_dir} is not a folder: give the folder of a registry export")
    job_id = _queue(engine, registry, user=user, seed=seed, members=members, epochs=epochs)
    try:
        pid = _launch(engine, job_id)
    except OSError as e:
        finish_job(engine, job_id, error=f"the worker could not be started: {e}")
        raise TrainingError(f"the training worker could not be started: {e}") from e
    with writing(engine) as session:
        session.execute(update(TrainingJobRow).where(TrainingJobRow.id == job_id).values(pid=pid))
    return job_id


def mark_running(engine: Engine, job_id: int) -> TrainingJob:
    """The worker takes its queued job: running, with this process's id; TrainingError if it is not queued."""
    with writing(engine) as session:
        row = _locked(session, job_id)
        if row.status != "queued":
            raise TrainingError(f"training job {job_id} is {row.status}, not queued: a job runs once")
        row.status, row.stage, row.pid = "running", "starting", os.getpid()
        return _job(row)


def record_progress(engine: Engine, job_id: int, stage: str, fraction: float) -> None:
    """Write a running job's stage and share done (not audited: they are progress, not changes)."""
    with writing(engine) as session:
        session.execute(update(TrainingJobRow).where(TrainingJobRow.id == job_id, TrainingJobRow.status == "running")
                        .values(stage=stage, fraction=fraction))


def finish_job(engine: Engine, job_id: int, *, error: str | None = None,
               model_version_id: int | None = None) -> TrainingJob:
    """End a job: succeeded with the model version it registered, or failed with ``error`` (audited)."""
    with writing(engine) as session:
        return _end(session, _locked(session, job_id), error=error, model_version_id=model_version_id)
