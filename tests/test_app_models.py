"""The Models page (data scientists, admins) through AppTest, and the safe unpacking of uploaded registries
(rxpredict.store.uploads): upload, validation report, cohort, training job, versions, promotion and roll-back."""
from __future__ import annotations

import io
import json
import os
import shutil
import stat
import zipfile
from pathlib import Path

import pytest

from rxpredict.evaluation_plots import PLOTS
from rxpredict.registry import read_registry
from rxpredict.retrain import train_bundle
from rxpredict.simulate import simulate
from rxpredict.store import jobs, models
from rxpredict.store.audit import audit_frame
from rxpredict.store.jobs import training_jobs
from rxpredict.store.models import active_model, model_versions, register_model
from rxpredict.store.uploads import UploadError, check_upload, unpack_registry, uploads_root
from rxpredict.store.worker import run_job
from tests import test_app
from tests.test_app import ROLE_USERS, app_as, errors, page_alone

app_db = test_app.app_db  # the app database fixture: the example registry and one user per role
FAST = {"members": 1, "epochs": 1}


def zipped(files: dict[str, bytes], *, links: tuple[str, ...] = ()) -> bytes:
    """A zip archive of ``files`` (member name -> content); the members in ``links`` are symbolic links."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            info = zipfile.ZipInfo(name)
            if name in links:
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, data)
    return buffer.getvalue()


def folder_files(directory: Path, prefix: str = "") -> dict[str, bytes]:
    return {f"{prefix}{p.name}": p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def simulated(tmp_path_factory) -> Path:
    """A simulated registry of 400 patients: enough for every model, trained in seconds with one network."""
    return simulate(400, seed=5, out=tmp_path_factory.mktemp("models_page") / "registry", progress=False).out


@pytest.fixture(scope="module")
def bundle(simulated) -> Path:
    train_bundle(read_registry(simulated), simulated.parent / "bundle", **FAST)
    return simulated.parent / "bundle"


@pytest.fixture(autouse=True)
def models_dir(monkeypatch, tmp_path) -> Path:
    monkeypatch.setenv(models.MODELS_DIR_ENV, str(tmp_path / "models" / "response"))
    return tmp_path / "models" / "response"


@pytest.fixture()
def no_worker(monkeypatch):
    """Jobs are queued but no worker process is launched: the test runs the job itself (run_job, in-process)."""
    monkeypatch.setattr(jobs, "_launch", lambda engine, job_id: os.getpid())


def table(at, *columns: str):
    """The first table shown with these columns (as a pandas frame)."""
    return next(d.value for d in at.dataframe if set(columns) <= set(d.value.columns))


def upload(at, data: bytes, name: str = "registry.zip"):
    return at.file_uploader(key="models_upload").set_value((name, data, "application/zip")).run()


# --- who may open it -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("role", list(ROLE_USERS))
def test_the_models_page_is_for_data_scientists_and_admins(app_db, role):
    at = page_alone(app_db, role, "models")
    assert not at.exception, at.exception
    if role in ("data_scientist", "admin"):
        assert [t.value for t in at.title] == ["Models"] and not errors(at)
        assert [t.label for t in at.tabs] == ["Train", "Jobs", "Versions"]
    else:
        assert errors(at) == [f"the {role.replace('_', ' ')} role may not open the models page"] and not at.title


# --- upload and validation -------------------------------------------------------------------------------------

def test_an_upload_with_planted_errors_shows_the_report_and_trains_nothing(app_db, example_dir):
    files = folder_files(example_dir)
    visits = files["visits.csv"].decode().splitlines()
    first = visits[1].split(",")
    visits[1] = ",".join([first[0], first[1], "-3", *first[3:]])  # a negative tender joint count, row 1
    visits.append(",".join(["NOBODY", "2022-01-10", *first[2:]]))  # a visit of a patient nobody registered
    files["visits.csv"] = "\n".join(visits).encode() + b"\n"
    at = upload(app_as(app_db, "data_scientist", "models"), zipped(files))
    assert not at.exception, at.exception
    assert errors(at)[0].startswith("The registry breaks the data contract v")
    assert "Nothing was trained" in errors(at)[0]
    summary, report = table(at, "count", "first_rows"), table(at, "row", "value")
    planted = {(r.table, r.row, r.column, r.rule) for r in report.itertuples() if r.severity == "error"}
    assert ("visits", 1, "tjc28", "minimum") in planted
    assert {"table", "rule", "column", "count", "first_rows"} <= set(summary.columns)
    assert any(t == "visits" and c == "patient_id" and rule == "foreign_key" for t, _, c, rule in planted), planted
    assert "models_train" not in [b.key for b in at.button] and "Cohort" not in [h.value for h in at.subheader]
    assert training_jobs(app_db).is_empty() and list(uploads_root().iterdir()) == []  # its folder is gone


def test_an_archive_climbing_out_of_its_folder_is_refused_and_nothing_is_unpacked(app_db, example_dir, tmp_path):
    at = upload(app_as(app_db, "admin", "models"), zipped({"../evil.csv": b"x\n", **folder_files(example_dir)}))
    assert errors(at) == [("The upload was refused: the archive member '../evil.csv' points outside the archive's "
                           "folder: zip the registry folder itself. Nothing was unpacked or trained.")]
    assert not (uploads_root().parent / "evil.csv").exists() and not uploads_root().exists()
    assert training_jobs(app_db).is_empty()


@pytest.mark.parametrize(("files", "links", "message"), [
    ({"/etc/patients.csv": b"x"}, (), "points outside"),
    ({"reg\\..\\patients.csv": b"x"}, (), "points outside"),
    ({"C:/patients.csv": b"x"}, (), "points outside"),
    ({"patients.csv": b"/etc/passwd"}, ("patients.csv",), "is a link"),
    ({"a/b/patients.csv": b"x", "notes.txt": b"x"}, (), "holds no registry table"),
    ({"one/patients.csv": b"x", "two/visits.csv": b"x"}, (), "tables in 2 places"),
    ({"patients.csv": b"x", "reg/visits.csv": b"x"}, (), "tables in 2 places"),
    ({"__MACOSX/._patients.csv": b"x"}, (), "holds no registry table"),
    ({"patients.csv": b"x" * 101}, (), "unpacks to 101 bytes, more than the 100 allowed"),
    ({"patients.csv": b"x" * 60, "visits.csv": b"x" * 60}, (), "the archive unpacks to 120 bytes"),
])
def test_unsafe_or_foreign_archives_are_refused_whole(files, links, message):
    with pytest.raises(UploadError, match=message.replace("(", r"\(")):
        unpack_registry(zipped(files, links=links), max_member_bytes=100, max_total_bytes=110)
    assert not uploads_root().exists() or list(uploads_root().iterdir()) == []


def test_a_file_twice_or_no_zip_at_all_is_refused():
    twice = io.BytesIO()
    with zipfile.ZipFile(twice, "w") as archive:
        archive.writestr("patients.csv", b"a")
        with pytest.warns(UserWarning, match="Duplicate name"):
            archive.writestr("patients.csv", b"b")
    with pytest.raises(UploadError, match="holds patients.csv twice: keep one"):
        unpack_registry(twice.getvalue())
    with pytest.raises(UploadError, match="not a zip archive that can be read"):
        unpack_registry(b"patient_id,sex\nP1,F\n")


def test_a_zipped_folder_is_unpacked_flat_and_other_files_are_passed_over(example_dir):
    files = folder_files(example_dir, "export/") | {"__MACOSX/export/._visits.csv": b"junk", "export/.DS_Store": b"",
                                                    "export/": b"", "export/oracle.parquet": b"x", "README": b"x"}
    check = check_upload(zipped(files))
    assert check.report.ok and check.directory.parent == uploads_root()
    assert check.report.notes[-1] == ("passed over the archive's files that are no registry table: "
                                      "export/oracle.parquet, README")
    assert folder_files(check.directory) == folder_files(example_dir)
    assert (check.episodes, check.patients) == (7, 4)
    assert set(check.summary["outcome"]) == {"baseline_visit", "response", "retention", "rrp"}


# --- training jobs ---------------------------------------------------------------------------------------------

def test_a_valid_upload_shows_its_cohort_and_trains_a_candidate_that_every_user_sees(app_db, simulated, no_worker):
    at = upload(app_as(app_db, "data_scientist", "models"), zipped(folder_files(simulated, "registry/")))
    assert not errors(at) and at.success[0].value.startswith("The registry meets the data contract v")
    assert at.caption[0].value.startswith("Note: passed over the archive's files that are no registry table: "
                                          "registry/answer_key.parquet, ")
    cohort = table(at, "outcome", "episodes")
    assert {"baseline_visit", "response", "retention", "rrp"} == set(cohort["outcome"])
    assert at.markdown[0].value.endswith(" patients.") and "treatment episodes of" in at.markdown[0].value
    at.number_input(key="models_members").set_value(1)
    at.number_input(key="models_epochs").set_value(1)
    at.button(key="models_train").click().run()
    job = training_jobs(app_db).row(0, named=True)
    assert at.success[-1].value == f"Training job {job['id']} started. Follow it in the Jobs tab; it goes on if you " \
                                   "leave this page."
    assert (job["status"], job["started_by"], job["members"], job["epochs"]) == ("queued", "dana", 1, 1)
    assert Path(job["registry_path"]).parent == uploads_root().resolve()

    other = app_as(app_db, "admin", "models")  # a second user sees the job, and cannot start another
    assert other.get("progress")[0].proto.text == f"Training job {job['id']} (dana): queued, 0%"
    upload(other, zipped(folder_files(simulated)))
    assert other.button(key="models_train").disabled
    assert f"Training job {job['id']}, started by dana, is queued: one job trains at a time" in other.info[0].value

    assert run_job(app_db, job["id"]).status == "succeeded"
    other.run()
    version = model_versions(app_db).row(0, named=True)
    assert f"Training job {job['id']} succeeded: model version {version['id']}, a candidate." in other.success[-1].value
    assert table(other, "registered_by")["status"].tolist() == ["candidate"]
    assert sorted(c for i in other.image for c in i.captions) == sorted(PLOTS.values())
    assert not other.button(key="models_train").disabled


def test_a_failed_job_shows_its_reason(app_db, example_dir, no_worker):
    at = upload(app_as(app_db, "data_scientist", "models"), zipped(folder_files(example_dir)))
    at.button(key="models_train").click().run()
    failed = run_job(app_db, training_jobs(app_db)["id"][0])
    assert failed.status == "failed" and failed.error
    assert app_as(app_db, "admin", "models").error[0].value == f"Training job {failed.id} failed: {failed.error}"


# --- versions, promotion, roll-back -----------------------------------------------------------------------------

def promotions(engine) -> list[tuple[str, str, int]]:
    log = audit_frame(engine, table="model_versions").reverse()
    return [(r["user"], r["action"], json.loads(r["record_key"])["id"]) for r in log.iter_rows(named=True)
            if r["action"] != "register"]


def promote(at, version: int):
    at.selectbox(key="models_version").select(version).run()
    assert at.button(key="models_promote").disabled  # not before it is confirmed
    at.checkbox(key=f"models_confirm_{version}").check().run()
    return at.button(key="models_promote").click().run()


def test_promoting_marks_the_version_active_in_the_audit_log_and_a_retired_one_rolls_back(app_db, bundle, tmp_path):
    first, second = (register_model(app_db, shutil.copytree(bundle, tmp_path / f"b{k}"), user="dana").id
                     for k in range(2))
    at = app_as(app_db, "data_scientist", "models")
    assert table(at, "registered_by")["id"].tolist() == [second, first]
    assert any(c.value.startswith("No version is active yet") for c in at.caption)
    figures = table(at, "figure")
    assert {"auroc", "brier", "c_index"} <= set(figures["figure"]) and {"response", "retention"} <= set(figures["model"])
    assert len(at.image) == len(PLOTS)

    promote(at, first)
    assert at.success[0].value == f"Model version {first} is active now: the therapy comparison uses it."
    assert active_model(app_db).id == first and promotions(app_db) == [("dana", "promote", first)]
    assert dict(table(at, "registered_by")[["id", "status"]].values) == {first: "active",
                                                                                        second: "candidate"}
    promote(at, second)
    assert at.success[0].value == (f"Model version {second} is active now: the therapy comparison uses it. Model "
                                   f"version {first} is retired and kept: promote it again to roll back.")
    at.selectbox(key="models_version").select(first).run()
    assert at.button(key="models_promote").label == f"Roll back to model version {first}"
    promote(at, first)
    assert active_model(app_db).id == first
    assert promotions(app_db) == [("dana", "promote", first), ("dana", "promote", second), ("dana", "roll_back", first)]


def test_a_promotion_that_fails_says_why_and_changes_nothing(app_db, bundle, tmp_path):
    folder = shutil.copytree(bundle, tmp_path / "b")
    version = register_model(app_db, folder, user="dana").id
    at = app_as(app_db, "admin", "models")
    (folder / "calibration.png").write_bytes(b"not the plot")
    promote(at, version)
    changed = "calibration.png was changed after the bundle was written (checksum mismatch)"
    assert errors(at) == [f"Model version {version} was not promoted: {folder.resolve()}: {changed}",
                          f"The plots of model version {version} cannot be shown: {folder.resolve()}: {changed}"]
    assert active_model(app_db) is None and promotions(app_db) == []
