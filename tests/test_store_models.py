"""Response-model versions and training jobs in the app database (rxpredict.store.models, .jobs, .worker),
on SQLite and PostgreSQL."""
from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from alembic import command
from sqlalchemy import func, insert, inspect, select, update
from sqlalchemy.exc import IntegrityError

from rxpredict.bundle import load_models, write_bundle
from rxpredict.exceptions import BundleError
from rxpredict.registry import read_registry
from rxpredict.retrain import train_bundle
from rxpredict.simulate import simulate
from rxpredict.store import jobs, models, worker
from rxpredict.store.alerts import record_alerts
from rxpredict.store.audit import audit_frame
from rxpredict.store.engine import make_engine, writing
from rxpredict.store.jobs import TrainingError, start_training, training_job, training_jobs
from rxpredict.store.migrate import alembic_config, current_revision, head_revision, upgrade_database
from rxpredict.store.models import ModelError, active_model, model_versions, promote_model, register_model
from rxpredict.store.tables import Base, ModelVersionRow, TrainingJobRow
from rxpredict.store.transfer import import_registry
from rxpredict.store.worker import run_job

FAST = {"members": 2, "epochs": 3}
NOW = dt.datetime(2026, 11, 25, 9, 0, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def registries(tmp_path_factory) -> Path:
    """Simulated registries: 60 patients (too few for the survival models) and 400 (enough for every model)."""
    root = tmp_path_factory.mktemp("registries")
    simulate(60, seed=1, out=root / "small", progress=False)
    simulate(400, seed=5, out=root / "large", progress=False)
    return root


@pytest.fixture(scope="module")
def bundle(registries) -> Path:
    train_bundle(read_registry(registries / "small"), registries / "bundle", **FAST)
    return registries / "bundle"


@pytest.fixture()
def bundles(bundle, tmp_path) -> list[Path]:
    """Three folders holding the bundle, to register as three versions."""
    return [shutil.copytree(bundle, tmp_path / f"bundle{k}") for k in range(3)]


@pytest.fixture(autouse=True)
def models_dir(monkeypatch, tmp_path) -> Path:
    monkeypatch.setenv(models.MODELS_DIR_ENV, str(tmp_path / "models"))
    return tmp_path / "models"


def model_audit(engine) -> list[tuple[str, str, dict | None, dict | None]]:
    """The model versions' audit rows, oldest first: (user, action, old values, new values)."""
    log = audit_frame(engine, table="model_versions").reverse()
    return [(r["user"], r["action"], r["old_values"] and json.loads(r["old_values"]), json.loads(r["new_values"]))
            for r in log.iter_rows(named=True)]


# --- model versions --------------------------------------------------------------------------------------------

def test_a_registered_bundle_is_a_candidate_with_its_figures_and_an_audit_row(store_engine, bundles):
    version = register_model(store_engine, bundles[0], user="dana", note="first try")
    config = json.loads((bundles[0] / "config.json").read_text())
    figures = json.loads((bundles[0] / "metrics.json").read_text())["metrics"]
    assert (version.status, version.path, version.created) == ("candidate", bundles[0].resolve(), config["created"])
    assert version.metrics == figures and version.note == "first try" and version.registered_by == "dana"
    assert version.promoted_by is None and active_model(store_engine) is None
    assert model_audit(store_engine) == [("dana", "register", None, {
        "path": str(bundles[0].resolve()), "created": config["created"], "status": "candidate", "note": "first try"})]
    with pytest.raises(ModelError, match=f"bundle0 is registered already, as model version {version.id}"):
        register_model(store_engine, bundles[0], user="dana")


def test_promotion_keeps_one_active_and_promoting_a_retired_version_rolls_back(store_engine, bundles):
    first, second = (register_model(store_engine, b, user="dana").id for b in bundles[:2])
    assert promote_model(store_engine, first, user="ada").status == "active"
    promoted = promote_model(store_engine, second, user="ada")
    assert active_model(store_engine) == promoted and promoted.promoted_by == "ada"
    back = promote_model(store_engine, first, user="root")
    assert active_model(store_engine) == back and back.promoted_by == "root"
    shown = model_versions(store_engine)
    assert shown.schema == models.MODEL_VERSION_SCHEMA
    assert shown.select("id", "status").rows() == [(second, "retired"), (first, "active")]  # newest first
    assert model_audit(store_engine)[2:] == [
        ("ada", "promote", {"active_version": None, "status": "candidate"}, {"active_version": first, "status": "active"}),
        ("ada", "promote", {"active_version": first, "status": "candidate"}, {"active_version": second, "status": "active"}),
        ("root", "roll_back", {"active_version": second, "status": "retired"}, {"active_version": first, "status": "active"}),
    ]


def test_promoting_the_active_version_or_an_unknown_one_changes_nothing(store_engine, bundles):
    version = register_model(store_engine, bundles[0], user="dana")
    promote_model(store_engine, version.id, user="ada")
    with pytest.raises(ModelError, match=f"model version {version.id} is the active one already: nothing changed"):
        promote_model(store_engine, version.id, user="ada")
    with pytest.raises(ModelError, match="there is no model version 99"):
        promote_model(store_engine, 99, user="ada")
    assert [a for _, a, _, _ in model_audit(store_engine)] == ["register", "promote"]


def test_a_folder_that_is_no_loadable_bundle_is_refused_and_nothing_is_registered(store_engine, bundles, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(BundleError, match="empty is not a model bundle"):
        register_model(store_engine, tmp_path / "empty", user="dana")
    weights = bundles[0] / "weights.pt"
    weights.write_bytes(weights.read_bytes()[:-1])
    with pytest.raises(BundleError, match="weights.pt was changed after the bundle was written"):
        register_model(store_engine, bundles[0], user="dana")
    assert model_versions(store_engine).is_empty() and audit_frame(store_engine).is_empty()


def _rewritten(directory: Path, created: str) -> None:
    """The bundle in ``directory`` written again as if at another time (a new bundle in the same folder)."""
    files = {p.name: p.read_bytes() for p in directory.iterdir() if p.name != "manifest.json"}
    config = json.loads(files["config.json"]) | {"created": created}
    files["config.json"] = json.dumps(config).encode()
    write_bundle(directory, {name: lambda path, data=data: path.write_bytes(data) for name, data in files.items()},
                 overwrite=True)


def test_a_version_whose_folder_now_holds_another_bundle_cannot_be_promoted(store_engine, bundles):
    version = register_model(store_engine, bundles[0], user="dana")
    _rewritten(bundles[0], "2030-01-01T00:00:00+00:00")
    with pytest.raises(ModelError, match="holds another bundle .written 2030-01-01T00:00:00.00:00. than model "
                                         f"version {version.id}.*register the folder's bundle as a new version"):
        promote_model(store_engine, version.id, user="ada")
    assert active_model(store_engine) is None


def test_the_database_itself_refuses_a_second_active_version(store_engine):
    row = {"created": "x", "registered_at": NOW, "status": "active", "metrics": "{}"}
    with writing(store_engine) as session:
        session.execute(insert(ModelVersionRow), [row | {"path": "/a"}, row | {"path": "/b", "status": "retired"}])
    with pytest.raises(IntegrityError), writing(store_engine) as session:
        session.execute(insert(ModelVersionRow), [row | {"path": "/c"}])


def test_models_live_in_the_home_folder_unless_named(monkeypatch, tmp_path):
    monkeypatch.delenv(models.MODELS_DIR_ENV)
    monkeypatch.setenv("RXPREDICT_HOME", str(tmp_path / "home"))
    assert models.models_root() == tmp_path / "home" / "models" / "response"
    monkeypatch.setenv(models.MODELS_DIR_ENV, str(tmp_path / "mine"))
    assert models.models_root() == tmp_path / "mine"


# --- training jobs ---------------------------------------------------------------------------------------------

@pytest.fixture()
def no_worker(monkeypatch):
    """start_training queues its job but launches no worker process: the job's worker is this test's process."""
    monkeypatch.setattr(jobs, "_launch", lambda engine, job_id: os.getpid())


def test_start_training_queues_one_job_at_a_time(store_engine, registries, no_worker, tmp_path):
    with pytest.raises(TrainingError, match="nowhere is not a folder: give the folder of a registry export"):
        start_training(store_engine, tmp_path / "nowhere", user="dana")
    job_id = start_training(store_engine, registries / "small", user="dana", seed=3, members=2)
    job = training_job(store_engine, job_id)
    assert (job.status, job.stage, job.fraction, job.seed, job.members, job.epochs) == ("queued", "queued", 0.0, 3, 2,
                                                                                        None)
    assert job.registry_path == (registries / "small").resolve() and job.started_by == "dana"
    with pytest.raises(TrainingError, match=f"training job {job_id}, started by dana at .* UTC, is queued: one job "
                                            "trains at a time"):
        start_training(store_engine, registries / "small", user="ada")
    assert training_jobs(store_engine)["id"].to_list() == [job_id]
    log = audit_frame(store_engine, table="training_jobs")
    assert log["action"].to_list() == ["start"] and json.loads(log["new_values"][0]) == {
        "registry_path": str((registries / "small").resolve()), "seed": 3, "members": 2, "epochs": None}


def test_a_job_whose_worker_stopped_reads_failed_and_the_next_start_closes_it(store_engine, registries, no_worker):
    job_id = start_training(store_engine, registries / "small", user="dana")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    with writing(store_engine) as session:
        session.execute(update(TrainingJobRow).values(status="running", pid=gone.pid))
    job = training_job(store_engine, job_id)
    assert (job.status, job.error) == ("failed", "the worker stopped")
    assert training_jobs(store_engine).select("status", "error").rows() == [("failed", "the worker stopped")]
    again = start_training(store_engine, registries / "small", user="ada")
    assert training_jobs(store_engine).select("id", "status").rows() == [(again, "queued"), (job_id, "failed")]
    ended = audit_frame(store_engine, table="training_jobs").filter(pl.col("action") == "finish")
    assert ended["user"].to_list() == ["dana"] and json.loads(ended["new_values"][0])["error"] == "the worker stopped"


def test_a_job_run_in_process_registers_a_candidate_and_writes_its_progress_at_most_once_a_second(
        store_engine, registries, no_worker, monkeypatch, models_dir):
    written = []

    def recorded(engine, job_id, stage, fraction):
        written.append((time.monotonic(), stage, fraction))
        jobs.record_progress(engine, job_id, stage, fraction)

    monkeypatch.setattr(worker, "record_progress", recorded)
    monkeypatch.setattr(worker, "PROGRESS_INTERVAL_S", 0.2)  # a few writes in a training of about a second
    job_id = start_training(store_engine, registries / "small", user="dana", **FAST)
    job = run_job(store_engine, job_id)
    assert job.status == "succeeded" and job.error is None and job.finished_at is not None
    stored = training_job(store_engine, job_id)
    assert (stored.stage, stored.fraction, stored.model_version_id) == ("done", 1.0, job.model_version_id)
    gaps = [b - a for (a, _, _), (b, _, _) in zip(written, written[1:-1])]  # the last one is always written
    assert len(written) >= 3 and all(gap >= 0.2 for gap in gaps) and written[-1][1:] == ("done", 1.0)
    assert [f for _, _, f in written] == sorted(f for _, _, f in written)

    version = model_versions(store_engine).row(0, named=True)
    assert (version["id"], version["status"], version["registered_by"]) == (job.model_version_id, "candidate", "dana")
    assert Path(version["path"]).parent == models_dir and Path(version["path"]).name.endswith(f"-job{job_id}")
    assert version["note"].startswith("the bundle will hold no survival models: only")  # 60 patients are too few
    model, survival = load_models(version["path"])
    assert model.n_members == 2 and survival is None
    assert audit_frame(store_engine).reverse()["action"].to_list() == ["start", "register", "finish"]
    with pytest.raises(TrainingError, match=f"training job {job_id} is succeeded, not queued: a job runs once"):
        run_job(store_engine, job_id)


def test_a_job_on_a_registry_that_breaks_the_contract_fails_with_a_readable_error(store_engine, registries,
                                                                                    no_worker, tmp_path):
    spoiled = shutil.copytree(registries / "small", tmp_path / "spoiled")
    visits = pl.read_parquet(spoiled / "visits.parquet")
    visits.with_columns(pl.when(pl.int_range(pl.len()) == 2).then(40).otherwise(pl.col("tjc28")).alias("tjc28")
                        ).write_parquet(spoiled / "visits.parquet")
    job = run_job(store_engine, start_training(store_engine, spoiled, user="dana"))
    assert job.status == "failed" and job.model_version_id is None
    assert job.error == ("the registry breaks the data contract: 1 error(s) in visits; validate it (Models page, or "
                         f"`rxpredict validate {spoiled.resolve()}`) for every row, column and rule")
    assert model_versions(store_engine).is_empty()
    assert json.loads(audit_frame(store_engine, table="training_jobs")["new_values"][0])["error"] == job.error
    empty = tmp_path / "empty"
    empty.mkdir()
    job = run_job(store_engine, start_training(store_engine, empty, user="dana"))
    assert job.status == "failed" and "empty" in job.error


def test_a_worker_process_trains_while_every_reader_sees_its_progress(store_engine, registries, models_dir):
    job_id = start_training(store_engine, registries / "large", user="dana", seed=1, **FAST)
    seen, deadline = [], time.monotonic() + 300
    while (job := training_job(store_engine, job_id)).status in ("queued", "running"):
        assert time.monotonic() < deadline, jobs.job_log(job_id).read_text()
        seen.append((job.stage, job.fraction))
        time.sleep(0.05)
    log = jobs.job_log(job_id).read_text()
    assert job.status == "succeeded", log
    fractions = [f for _, f in seen]
    assert fractions == sorted(fractions) and any(0 < f < 1 for f in fractions)
    assert len({stage for stage, _ in seen}) >= 3
    version = model_versions(store_engine).row(0, named=True)
    assert version["id"] == job.model_version_id and version["status"] == "candidate"
    assert json.loads(version["metrics"])["retention"]["c_index"] > 0.5  # 400 patients: survival models too
    assert f"job {job_id}: building the cohort" in log and f"as model version {job.model_version_id}" in log
    assert "P0000" not in log  # no patient data


# --- the migration ---------------------------------------------------------------------------------------------

def _counts(engine) -> dict[str, int]:
    """Rows per table of the database."""
    with engine.connect() as c:
        return {t.name: c.scalar(select(func.count()).select_from(t)) for t in Base.metadata.sorted_tables
                if inspect(c).has_table(t.name)}


def test_a_database_at_revision_0003_gets_the_new_tables_and_keeps_its_rows(database_url, example_dir, bundles):
    engine = make_engine(database_url)
    with engine.begin() as c:
        command.upgrade(alembic_config(c), "0003")
    import_registry(engine, example_dir, user="dana")
    scores = pl.DataFrame({"patient_id": ["EX001"], "date": [dt.date(2022, 3, 1)], "p_flare_28d": [0.3],
                           "alert": [True], "reasons": ["steps down"], "shap": [None]},
                          schema_overrides={"shap": pl.String})
    assert record_alerts(engine, scores, model="monitor", user="dana") == 1
    before = _counts(engine)
    assert "model_versions" not in before and before["alerts"] == 1 and before["audit_log"] > 1

    assert upgrade_database(engine) == head_revision() == current_revision(engine)
    assert _counts(engine) == before | {"model_versions": 0, "training_jobs": 0}
    promote_model(engine, register_model(engine, bundles[0], user="dana").id, user="dana")
    assert active_model(engine).path == bundles[0].resolve()
    engine.dispose()
