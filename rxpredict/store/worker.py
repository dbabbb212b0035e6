"""The training worker: ``python -m rxpredict.store.worker JOB_ID`` runs one queued training job to its end.

:func:`rxpredict.store.jobs.start_training` launches it with the database URL
in ``$RXPREDICT_DATABASE_URL`` and its output going to the job's log.
:func:`run_job` (what :func:`main` calls; tests call it in-process) reads and
validates the job's registry, trains a bundle into a new folder under
:func:`~rxpredict.store.models.models_root` named by the time and the job,
writes the stage and share done to the job's row at most about once a second
(the last report is always written), registers the bundle as a candidate model
version (a warning of the training, such as a bundle without survival models,
becomes its note) and marks the job succeeded with that version. Any failure
marks the job failed with a readable error instead. The log holds the stages
and, for an unexpected failure, where in the code it happened: never patient
data, so no exception message goes there.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import sys
import time
import traceback

from sqlalchemy import Engine

from rxpredict.exceptions import RegistryValidationError, RxpredictError
from rxpredict.registry import read_registry
from rxpredict.retrain import WARNING, train_bundle
from rxpredict.store.engine import make_engine
from rxpredict.store.jobs import TrainingJob, finish_job, job_log, mark_running, record_progress
from rxpredict.store.models import models_root, register_model

LOGGER = logging.getLogger(__name__)
#: Least seconds between two progress writes to the job's row.
PROGRESS_INTERVAL_S = 1.0
#: How much the worker lowers its priority, so that the app's pages stay responsive while it trains.
NICENESS = 10
#: Failures whose message is written for people (and names no more than the database holds); others are named by type.
READABLE = (RxpredictError, ValueError, OSError)


class _ProgressWriter:
    """``train_bundle``'s report: writes the newest (stage, fraction) to the job's row when a second has passed
    since the last write (:meth:`flush` writes what is left), logs each new stage, and keeps the warnings."""

    def __init__(self, engine: Engine, job_id: int) -> None:
        self.engine, self.job_id = engine, job_id
        self.warnings: list[str] = []
        self.pending: tuple[str, float] | None = None
        self.written_at, self.logged = -PROGRESS_INTERVAL_S, ""

    def __call__(self, stage: str, fraction: float) -> None:
        if stage.startswith(WARNING):
            self.warnings.append(stage.removeprefix(WARNING))
            LOGGER.info("job %d: a warning, kept as the model version's note", self.job_id)
        elif stage != self.logged:
            LOGGER.info("job %d: %s", self.job_id, stage)
            self.logged = stage
        self.pending = (stage, fraction)
        if time.monotonic() - self.written_at >= PROGRESS_INTERVAL_S:
            self.flush()

    def flush(self) -> None:
        if self.pending is not None:
            record_progress(self.engine, self.job_id, *self.pending)
            self.pending, self.written_at = None, time.monotonic()


def _readable(error: Exception, job: TrainingJob) -> str:
    """What the job's error says: the reason where it was written for people, else the failure's type."""
    if isinstance(error, RegistryValidationError):
        report = error.report
        return (f"the registry breaks the data contract: {report.n_errors} error(s) in "
                f"{', '.join(report.tables_with_errors())}; validate it (Models page, or `rxpredict validate "
                f"{job.registry_path}`) for every row, column and rule")
    if isinstance(error, READABLE):
        return str(error)
    return f"training failed unexpectedly ({type(error).__name__}); {job_log(job.id)} says where"


def run_job(engine: Engine, job_id: int) -> TrainingJob:
    """Run the queued job ``job_id`` to its end, as the module docstring says; the job as it ended.

    Raises :class:`~rxpredict.store.jobs.TrainingError` for a job that is not
    queued; every failure after that ends the job failed instead of raising.
    """
    job = mark_running(engine, job_id)
    writer = _ProgressWriter(engine, job_id)
    out = models_root() / f"{dt.datetime.now(dt.timezone.utc):%Y%m%d-%H%M%S}-job{job_id}"
    try:
        writer("reading and validating the registry", 0.0)
        registry = read_registry(job.registry_path)
        train_bundle(registry, out, seed=job.seed, members=job.members, epochs=job.epochs, report=writer)
        writer.flush()
        version = register_model(engine, out, user=job.started_by, note="; ".join(writer.warnings))
    except Exception as e:  # the job ends failed, whatever went wrong
        LOGGER.error("job %d failed (%s) at:\n%s", job_id, type(e).__name__,
                     "".join(traceback.format_tb(e.__traceback__)))
        writer.flush()
        return finish_job(engine, job_id, error=_readable(e, job))
    LOGGER.info("job %d: registered %s as model version %d", job_id, out, version.id)
    return finish_job(engine, job_id, model_version_id=version.id)


def main(argv: list[str] | None = None) -> int:
    """Run the job whose id is the one argument; exit 0 when it succeeded, 1 when it failed, 2 on bad usage."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not args[0].isdigit():
        print("usage: python -m rxpredict.store.worker JOB_ID", file=sys.stderr)
        return 2
    os.nice(NICENESS)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    engine = make_engine()
    try:
        job = run_job(engine, int(args[0]))
    finally:
        engine.dispose()
    return 0 if job.status == "succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
