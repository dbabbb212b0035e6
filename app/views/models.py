"""Models (data scientists, admins): upload a registry export, read its validation report and cohort, train a
response model in the background, follow the job, read a version's figures and plots, promote one to active.

Unpacking, validation, the cohort, training, the jobs and the versions all come from ``rxpredict``; this page only
asks and shows. Training runs in a worker process of its own (:mod:`rxpredict.store.jobs`), so the page stays
responsive, and everyone who opens it sees the job and its progress.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import streamlit as st
from streamlit.runtime.uploaded_file_manager import UploadedFile

from rxpredict.evaluation_plots import PLOTS, bundle_plots
from rxpredict.exceptions import BundleError
from rxpredict.store.jobs import TrainingError, start_training, training_jobs
from rxpredict.store.models import ModelError, model_versions, promote_model
from rxpredict.store.tables import UNFINISHED_JOB_STATUSES
from rxpredict.store.uploads import RegistryCheck, UploadError, check_upload
from rxpredict.validation import ValidationReport
from ui import engine, guard

#: Seconds between two looks at a job that is queued or running.
REFRESH_S = 2.0
#: Most violations listed on the page (the downloaded report holds every one).
MAX_VIOLATIONS_SHOWN = 1_000
#: Jobs listed, newest first.
JOBS_SHOWN = 20

user = guard("models")
st.title("Models")


def _unfinished(jobs: pl.DataFrame) -> dict[str, Any] | None:
    """The job that is queued or running (at most one is), or None."""
    running = jobs.filter(pl.col("status").is_in(UNFINISHED_JOB_STATUSES))
    return running.row(0, named=True) if running.height else None


# --- train ---------------------------------------------------------------------------------------------------------

def _checked(uploaded: UploadedFile) -> RegistryCheck | None:
    """The upload's check, made once per uploaded file and kept in the session; None (the reason shown) if refused."""
    held = st.session_state.get("models_check")
    if held is None or held[0] != uploaded.file_id:
        try:
            with st.spinner("Unpacking and validating the registry"):
                result: RegistryCheck | UploadError = check_upload(uploaded)
        except UploadError as e:
            result = e
        held = st.session_state["models_check"] = (uploaded.file_id, result)
    if isinstance(held[1], UploadError):
        st.error(f"The upload was refused: {held[1]}. Nothing was unpacked or trained.")
        return None
    return held[1]


def _show_report(report: ValidationReport) -> None:
    """The verdict, the counts per table, rule and column, and the violations row by row."""
    rows = ", ".join(f"{table} {n:,}" for table, n in report.rows_read.items())
    if report.ok:
        st.success(f"The registry meets the data contract v{report.contract_version} ({report.n_warnings} "
                   f"warning(s)). Rows read: {rows}.")
    else:
        st.error(f"The registry breaks the data contract v{report.contract_version}: {report.n_errors} error(s) in "
                 f"{', '.join(report.tables_with_errors())}. Nothing was trained: correct the rows listed below in "
                 "the export and upload it again.")
        st.caption(f"Rows read: {rows}.")
    for note in report.notes:
        st.caption(f"Note: {note}.")
    if report.violations.is_empty():
        return
    st.dataframe(report.summary(), hide_index=True, width="stretch", key="models_report_summary",
                 column_config={"first_rows": "first rows", "count": "violations"})
    shown = report.violations.sort("severity", "table", "row", nulls_last=True).head(MAX_VIOLATIONS_SHOWN)
    if report.violations.height > shown.height:
        st.caption(f"The first {shown.height:,} of {report.violations.height:,} violations; the downloaded report "
                   "holds every one.")
    st.dataframe(shown, hide_index=True, width="stretch", key="models_violations")
    st.download_button("Download the validation report (JSON)", report.to_json(), file_name="validation.json",
                       mime="application/json", key="models_report_download")


def _show_cohort(check: RegistryCheck) -> None:
    st.subheader("Cohort")
    st.markdown(f"**{check.episodes:,}** treatment episodes of **{check.patients:,}** patients.")
    st.caption("What the cohort rules left of them: the episodes with and without a baseline visit and, per outcome, "
               "those labelled (`observed`; for retention, how the course ended) and why the others have no label. "
               "Episodes without a label still train the outcomes they have.")
    st.dataframe(check.summary, hide_index=True, width="stretch", key="models_cohort")


def _train(check: RegistryCheck) -> None:
    """The settings and the Train button: a job for the worker; refused, with the reason, while another runs."""
    with st.expander("Training settings"):
        seed = st.number_input("Seed", value=0, step=1, key="models_seed",
                               help="Seeds the held-out patients and the networks: the same seed trains the same "
                                    "model again")
        members = st.number_input("Networks in the ensemble", value=None, min_value=1, step=1, key="models_members",
                                  placeholder="the model's default")
        epochs = st.number_input("Most epochs per network", value=None, min_value=1, step=1, key="models_epochs",
                                 placeholder="the model's default")
    running = _unfinished(training_jobs(engine()))
    if running is not None:
        st.info(f"Training job {running['id']}, started by {running['started_by'] or 'someone'}, is "
                f"{running['status']}: one job trains at a time. Train this registry when it has ended (Jobs tab).")
    if not st.button("Train", type="primary", disabled=running is not None, key="models_train"):
        return
    try:
        job_id = start_training(engine(), check.directory, user=user.name, seed=int(seed),
                                members=None if members is None else int(members),
                                epochs=None if epochs is None else int(epochs))
    except TrainingError as e:
        st.warning(f"Nothing was started: {e}.")
    else:
        st.success(f"Training job {job_id} started. Follow it in the Jobs tab; it goes on if you leave this page.")


def _train_section() -> None:
    uploaded = st.file_uploader("Registry export: a zip of one Parquet or CSV file per table", type=["zip"],
                                key="models_upload",
                                help="The tables of data_schemas/ (patients, visits, treatments, ...), at the top "
                                     "of the archive or in one folder")
    if uploaded is None:
        st.info("Upload a registry export to validate it and see its cohort; a valid one can be trained on.")
        return
    check = _checked(uploaded)
    if check is None:
        return
    st.subheader("Validation")
    _show_report(check.report)
    if check.directory is not None:
        _show_cohort(check)
        _train(check)


# --- jobs ----------------------------------------------------------------------------------------------------------

def _job_outcome(job: dict[str, Any]) -> None:
    """The newest job: a progress bar while it runs, else how it ended."""
    if job["status"] in UNFINISHED_JOB_STATUSES:
        st.progress(job["fraction"], text=f"Training job {job['id']} ({job['started_by'] or 'someone'}): "
                                          f"{job['stage']}, {job['fraction']:.0%}")
    elif job["status"] == "failed":
        st.error(f"Training job {job['id']} failed: {job['error']}")
    else:
        st.success(f"Training job {job['id']} succeeded: model version {job['model_version_id']}, a candidate. "
                   "Read its figures and plots in the Versions tab, then promote it.")


def _jobs_panel(watching: bool) -> None:
    """The newest job and the list; once a job watched ends, the whole page runs again (the Versions tab lists its
    model, and the refresh stops)."""
    jobs = training_jobs(engine())
    if jobs.is_empty():
        st.info("No model has been trained here yet.")
        return
    if watching and _unfinished(jobs) is None:
        st.rerun()
    _job_outcome(jobs.row(0, named=True))
    shown = jobs.head(JOBS_SHOWN).select("id", "status", "stage", "fraction", "started_by", "started_at",
                                         "finished_at", "model_version_id", "error", "registry_path")
    st.dataframe(shown, hide_index=True, width="stretch", key="models_jobs",
                 column_config={"fraction": st.column_config.ProgressColumn("done", format="percent"),
                                "model_version_id": st.column_config.NumberColumn("model version", format="%d"),
                                "started_by": "started by", "started_at": "started", "finished_at": "ended",
                                "registry_path": "registry"})


def _jobs_section() -> None:
    watching = _unfinished(training_jobs(engine())) is not None
    st.fragment(_jobs_panel, run_every=REFRESH_S if watching else None)(watching)


# --- versions ------------------------------------------------------------------------------------------------------

def _figure_text(value: float | int | None) -> str:
    """A figure as the page shows it: a count whole, anything else to three decimals."""
    if value is None:
        return ""
    return f"{value:,}" if isinstance(value, int) else f"{value:.3f}"


def _figures(metrics: dict[str, Any]) -> pl.DataFrame:
    """A version's figures, one a row: the response model's, then each survival model's group."""
    rows = [("response", k, _figure_text(v)) for k, v in metrics.items() if not isinstance(v, dict)]
    rows += [(group, k, _figure_text(v)) for group, values in metrics.items() if isinstance(values, dict)
             for k, v in values.items()]
    return pl.DataFrame(rows, schema=["model", "figure", "value"], orient="row")


def _headline(name: str) -> pl.Expr:
    """One of the response model's figures, read from the versions' ``metrics`` JSON."""
    return pl.col("metrics").str.json_path_match(f"$.{name}").cast(pl.Float64).alias(name)


def _show_version(version: dict[str, Any]) -> None:
    """A version's figures, its plots (those its bundle holds) and its model card."""
    st.dataframe(_figures(json.loads(version["metrics"])), hide_index=True, width="stretch", key="models_figures")
    folder = Path(version["path"])
    try:
        plots = bundle_plots(folder)
    except (BundleError, OSError) as e:
        st.error(f"The plots of model version {version['id']} cannot be shown: {e}")
    else:
        if not plots:
            st.info("This bundle holds no plots: it was written before bundles had them. Train again to get them.")
        columns = st.columns(2)
        for i, (name, png) in enumerate(plots.items()):
            columns[i % 2].image(png, caption=PLOTS[name])
    card = folder / "MODEL_CARD.md"
    with st.expander("Model card"):
        st.markdown(card.read_text() if card.is_file() else "The bundle has no model card.")


def _promote(version: dict[str, Any], active: int | None) -> None:
    """The promotion (for a retired version, the roll-back), once confirmed; the outcome shown after the rerun."""
    chosen = version["id"]
    if version["status"] == "active":
        st.success(f"Model version {chosen} is the active one: the therapy comparison uses it.")
        return
    action = "Roll back to" if version["status"] == "retired" else "Promote"
    confirmed = st.checkbox(f"I have read the figures of model version {chosen}: the therapy comparison is to use it "
                            "from now on", key=f"models_confirm_{chosen}")
    if not st.button(f"{action} model version {chosen}", type="primary", disabled=not confirmed,
                     key="models_promote"):
        return
    try:
        promote_model(engine(), chosen, user=user.name)
    except (ModelError, BundleError, OSError) as e:
        st.session_state["models_problem"] = f"Model version {chosen} was not promoted: {e}"
    else:
        kept = "" if active is None else (f" Model version {active} is retired and kept: promote it again to roll "
                                          "back.")
        st.session_state["models_notice"] = f"Model version {chosen} is active now: the therapy comparison uses it.{kept}"
    st.rerun()


def _versions_section() -> None:
    if notice := st.session_state.pop("models_notice", None):
        st.success(notice)
    if problem := st.session_state.pop("models_problem", None):
        st.error(problem)
    versions = model_versions(engine())
    if versions.is_empty():
        st.info("No model version yet: train one in the Train tab.")
        return
    table = versions.select("id", "status", "created", "registered_by", "promoted_by", "promoted_at",
                            *(_headline(name) for name in ("auroc", "brier", "ece")), "note", "path")
    st.dataframe(table, hide_index=True, width="stretch", key="models_versions",
                 column_config={"created": "written", "registered_by": "registered by", "promoted_by": "promoted by",
                                "promoted_at": "promoted"})
    active = next((v for v, s in versions.select("id", "status").iter_rows() if s == "active"), None)
    st.caption("No version is active yet: the therapy comparison waits for a promotion." if active is None else
               f"Model version {active} is active: the therapy comparison uses it.")
    by_id = {v["id"]: v for v in versions.iter_rows(named=True)}
    chosen = st.selectbox("Model version", list(by_id), key="models_version", format_func=lambda v: f"version {v}")
    _show_version(by_id[chosen])
    _promote(by_id[chosen], active)


train_tab, jobs_tab, versions_tab = st.tabs(["Train", "Jobs", "Versions"])
with train_tab:
    _train_section()
with jobs_tab:
    _jobs_section()
with versions_tab:
    _versions_section()
