"""The ``rxpredict`` command line: parses arguments, calls the library, renders the result."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click
import polars as pl

from rxpredict import __version__
from rxpredict.exceptions import RegistryReadError, RegistryValidationError

if TYPE_CHECKING:
    from rxpredict.models.response import ResponseModel
    from rxpredict.registry import Registry
    from rxpredict.survival.persist import SurvivalModels

EXIT_OK, EXIT_INVALID, EXIT_UNREADABLE = 0, 1, 2
KEY = ["patient_id", "index_date", "therapy"]
#: Interval columns of the comparison that ``compare`` leaves out (its columns are those issue 6 lists).
INTERVALS_NOT_LISTED = ["p_good_low", "p_good_high", "p_remission_low", "p_remission_high"]


def _read_or_exit(registry_dir: Path) -> "Registry":
    """The validated registry, or a message and exit 2 (unreadable) or 1 (invalid)."""
    from rxpredict.registry import read_registry

    try:
        return read_registry(registry_dir)
    except RegistryReadError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(EXIT_UNREADABLE)
    except RegistryValidationError as e:
        click.echo(f"error: {e}\nrun `rxpredict validate {registry_dir}` for the full report", err=True)
        sys.exit(EXIT_INVALID)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rxpredict")
def main() -> None:
    """Predict how a rheumatoid-arthritis patient is likely to respond to each therapy option."""


@main.command()
@click.argument("registry_dir", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON for machines.")
@click.option("--max-per-rule", type=click.IntRange(min=0), default=None,
              help="Rows listed per table, rule and column (text default 5, JSON default all).")
def validate(registry_dir: Path, as_json: bool, max_per_rule: int | None) -> None:
    """Check a registry directory against data_schemas/.

    Exits 0 when there is no error (warnings allowed), 1 when there is any
    error, 2 when the directory cannot be read.
    """
    from rxpredict.registry import validate_registry

    try:
        report = validate_registry(registry_dir).report
    except RegistryReadError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(EXIT_UNREADABLE)
    click.echo(report.to_json(max_per_rule) if as_json else report.to_text(5 if max_per_rule is None else max_per_rule))
    sys.exit(EXIT_OK if report.ok else EXIT_INVALID)


@main.command()
@click.argument("registry_dir", type=click.Path(path_type=Path))
@click.option("--patient", "patient_id", default=None, help="Only this patient.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Also write the visit scores to this file (.csv or .parquet).")
def scores(registry_dir: Path, patient_id: str | None, out: Path | None) -> None:
    """Print the derived scores of a registry: DAS28, CDAI, SDAI per visit, SvdH totals per exam."""
    from rxpredict.clinical import svdh_totals, visit_scores

    registry = _read_or_exit(registry_dir)
    keep = pl.lit(True) if patient_id is None else pl.col("patient_id") == patient_id
    visits = (
        registry.lazy("visits").filter(keep).with_columns(visit_scores())
        .select("patient_id", "visit_date", "das28_esr", "das28_esr_category", "das28_crp",
                "das28_crp_category", "cdai", "cdai_category", "sdai", "sdai_category", "esr_floored")
        .sort("patient_id", "visit_date")
        .collect()
    )
    exams = svdh_totals(registry.lazy("imaging").filter(keep)).sort("patient_id", "exam_date").collect()
    with pl.Config(tbl_rows=-1, tbl_cols=-1, float_precision=2, tbl_width_chars=200):
        click.echo(f"Visit scores ({visits.height} visits)")
        click.echo(visits.drop("esr_floored"))
        n_floored = visits.get_column("esr_floored").sum()
        if n_floored:
            click.echo(f"note: ESR below 1 mm/h was taken as 1 in DAS28-ESR for {n_floored} visit(s)")
        click.echo(f"\nSharp/van der Heijde totals ({exams.height} exams)")
        click.echo(exams)
    if out is not None:
        visits.write_parquet(out) if out.suffix == ".parquet" else visits.write_csv(out)
        click.echo(f"wrote {out}")


@main.command()
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Write here instead of printing.")
@click.option("--check", is_flag=True, help="Exit 1 when --out differs from what data_schemas/ gives (stale docs).")
def dictionary(out: Path | None, check: bool) -> None:
    """Render the data dictionary (Markdown) from data_schemas/."""
    from rxpredict.dictionary import render_data_dictionary

    text = render_data_dictionary()
    if out is None:
        click.echo(text)
    elif check:
        current = out.read_text(encoding="utf-8") if out.exists() else ""
        if current != text:
            click.echo(f"{out} is stale: run `rxpredict dictionary --out {out}`", err=True)
            sys.exit(EXIT_INVALID)
        click.echo(f"{out} is up to date")
    else:
        out.write_text(text, encoding="utf-8")
        click.echo(f"wrote {out}")


@main.command()
@click.option("--patients", "n_patients", type=click.IntRange(min=1), required=True, help="Number of patients.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed: the same seed gives the same bytes.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Registry directory to write.")
@click.option("--scenario", default="default", show_default=True,
              help="Preset (default, stress) or a JSON file of scenario parameters to change.")
@click.option("--chunk-size", type=click.IntRange(min=100), default=20_000, show_default=True,
              help="Patients simulated and written at a time (bounds memory).")
def simulate(n_patients: int, seed: int, out: Path, scenario: str, chunk_size: int) -> None:
    """Write a synthetic registry (six tables) with its oracles (response, flare risk), answer key and flares."""
    from rxpredict.simulate import Scenario
    from rxpredict.simulate import simulate as run

    try:
        chosen = Scenario.load(scenario)
    except (ValueError, OSError) as e:
        raise click.BadParameter(str(e), param_hint="--scenario") from e
    summary = run(n_patients, seed=seed, scenario=chosen, out=out, chunk_size=chunk_size)
    click.echo(f"wrote {out}: " + ", ".join(f"{name} {rows:,}" for name, rows in summary.rows.items()))


def _read_pairs(path: Path) -> pl.DataFrame:
    """A CSV or Parquet of (patient_id, index_date) pairs; a bad file or date is a usage error naming the row."""
    reader = pl.read_parquet if path.suffix == ".parquet" else pl.read_csv
    pairs = reader(path)
    missing = {"patient_id", "index_date"} - set(pairs.columns)
    if missing:
        raise click.BadParameter(f"{path} lacks column(s) {sorted(missing)}", param_hint="--episodes")
    pairs = pairs.with_columns(pl.col("index_date").cast(pl.String).str.to_date("%Y-%m-%d", strict=False))
    bad = pairs.with_row_index("row", offset=1).filter(pl.col("index_date").is_null())
    if bad.height:
        raise click.BadParameter(f"{path} row {bad['row'][0]}: index_date is not a YYYY-MM-DD date",
                                 param_hint="--episodes")
    return pairs


@main.command()
@click.option("--registry", "registry_dir", type=click.Path(path_type=Path), required=True, help="Registry directory.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Cohort file to write (.parquet or .csv).")
@click.option("--episodes", "episodes_file", type=click.Path(path_type=Path, exists=True), default=None,
              help="CSV or Parquet of (patient_id, index_date) pairs to restrict to; a pair without a therapy "
                   "start is scored with features only.")
def cohort(registry_dir: Path, out: Path, episodes_file: Path | None) -> None:
    """Build treatment episodes with features as of the index date and outcomes.

    Prints how many episodes each rule left without a baseline or a label, and
    writes that summary beside the cohort as <out>.summary.json.
    """
    import json

    from rxpredict.cohort import build_cohort

    registry = _read_or_exit(registry_dir)
    pairs = None if episodes_file is None else _read_pairs(episodes_file)
    result = build_cohort(registry, episodes=pairs)
    result.frame.write_parquet(out) if out.suffix != ".csv" else result.frame.write_csv(out)
    summary = result.summary()
    out.with_name(out.stem + ".summary.json").write_text(json.dumps(
        {"episodes": result.frame.height, "rules": result.rules.to_dict(), "counts": summary.to_dicts()}, indent=2))
    with pl.Config(tbl_rows=-1):
        click.echo(f"{result.frame.height} episodes of {result.frame['patient_id'].n_unique()} patients -> {out}")
        click.echo(summary)


@main.command()
@click.option("--registry", "registry_dir", type=click.Path(path_type=Path), required=True)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Model bundle directory to write.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--members", type=click.IntRange(min=1), default=None,
              help="Networks in the ensemble [default: the response model's].")
@click.option("--holdout", type=click.FloatRange(0.05, 0.5), default=0.2, show_default=True,
              help="Share of patients kept out of training to evaluate the model and write its card.")
@click.option("--epochs", type=click.IntRange(min=1), default=None,
              help="Most epochs per network (early stopping usually ends sooner) [default: the response model's].")
@click.option("--overwrite", is_flag=True, help="Replace an existing bundle.")
def train(registry_dir: Path, out: Path, seed: int, members: int | None, holdout: float, epochs: int | None,
          overwrite: bool) -> None:
    """Fit the 24-week response model and the survival models (radiographic progression, drug retention) on a
    registry and write one model bundle with its card."""
    import json

    from rxpredict.exceptions import BundleError
    from rxpredict.retrain import each_stage, train_bundle

    try:
        figures = train_bundle(_read_or_exit(registry_dir), out, seed=seed, members=members, epochs=epochs,
                               holdout=holdout, overwrite=overwrite,
                               report=each_stage(lambda line: click.echo(line, err=True)))
    except BundleError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(EXIT_INVALID)
    click.echo(json.dumps(figures, indent=2))
    click.echo(f"wrote {out} (model card: {out / 'MODEL_CARD.md'})")


def _load_model_or_exit(model_dir: Path) -> ResponseModel:
    """The bundle's response model, or a message and exit 1."""
    from rxpredict.bundle import load_bundle
    from rxpredict.exceptions import BundleError

    try:
        return load_bundle(model_dir)
    except BundleError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(EXIT_INVALID)


def _load_survival_or_exit(model_dir: Path, *, required: bool) -> SurvivalModels | None:
    """The bundle's survival models; where it has none, a message and exit 1 if ``required``, else a note and None."""
    from rxpredict.bundle import load_survival
    from rxpredict.exceptions import BundleError

    try:
        return load_survival(model_dir)
    except BundleError as e:
        if required:
            click.echo(f"error: {e}", err=True)
            sys.exit(EXIT_INVALID)
        click.echo(f"note: {e}; progression and retention outputs are left out", err=True)
        return None


def _print_figures(figures: dict, indent: str = "") -> None:
    """Figures one per line; a group (one outcome's figures) under its name, indented."""
    for name, value in figures.items():
        if isinstance(value, dict):
            click.echo(f"{indent}{name}")
            _print_figures(value, indent + "  ")
        else:
            label = f"{indent}{name}"
            click.echo(f"{label:<24} {value:.4f}" if isinstance(value, float) else f"{label:<24} {value}")


@main.command()
@click.option("--model", "model_dir", type=click.Path(path_type=Path), required=True, help="Model bundle.")
@click.option("--registry", "registry_dir", type=click.Path(path_type=Path), required=True)
@click.option("--oracle", "oracle_file", type=click.Path(path_type=Path, exists=True), default=None,
              help="A simulator's oracle.parquet: adds PEHE, policy regret, interval coverage and the survival "
                   "models' RMSE.")
@click.option("--json", "as_json", is_flag=True)
def evaluate(model_dir: Path, registry_dir: Path, oracle_file: Path | None, as_json: bool) -> None:
    """Evaluate a model bundle on a registry (and against the truth, with an oracle).

    Response: discrimination, calibration (and with an oracle PEHE, policy
    regret, interval coverage). Retention and progression, where the bundle
    has them: C-index, integrated Brier score over two years and 1-year
    calibration error (with an oracle, RMSE of p_stop_1y and p_rrp).
    """
    import json

    from rxpredict.cohort import build_cohort
    from rxpredict.evaluation import evaluate_response
    from rxpredict.survival import evaluate_survival

    model = _load_model_or_exit(model_dir)
    survival = _load_survival_or_exit(model_dir, required=False)
    cohort = build_cohort(_read_or_exit(registry_dir), markers=model.markers_)
    oracle = pl.read_parquet(oracle_file) if oracle_file else None
    figures = evaluate_response(model, cohort.frame, oracle)
    if survival is not None:
        figures |= evaluate_survival(cohort.frame, survival.progression, survival.retention, oracle)
    if as_json:
        click.echo(json.dumps(figures, indent=2))
    else:
        _print_figures(figures)


def _patient_pairs(patient_id: str, at_date: str | None) -> pl.DataFrame:
    """The (patient_id, index_date) pair of ``--patient`` and ``--at`` (default today); a bad date is a usage error."""
    import datetime as dt

    try:
        when = dt.date.fromisoformat(at_date) if at_date else dt.date.today()
    except ValueError as e:
        raise click.BadParameter(f"{at_date!r} is not a YYYY-MM-DD date", param_hint="--at") from e
    return pl.DataFrame({"patient_id": [patient_id], "index_date": [when]})


def _scored_rows(registry: Registry, pairs: pl.DataFrame, markers: list[str], hint: str) -> pl.DataFrame:
    """One cohort row per (patient_id, index_date) of ``pairs``; an unknown patient is a usage error on ``hint``."""
    from rxpredict.compare import scoring_rows

    try:
        return scoring_rows(registry, pairs, markers)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint=hint) from e


@main.command()
@click.option("--model", "model_dir", type=click.Path(path_type=Path), required=True, help="Model bundle.")
@click.option("--registry", "registry_dir", type=click.Path(path_type=Path), required=True)
@click.option("--patient", "patient_id", default=None, help="One patient to compare the options for.")
@click.option("--at", "at_date", default=None, help="Date of the comparison (YYYY-MM-DD; default today).")
@click.option("--episodes", "episodes_file", type=click.Path(path_type=Path, exists=True), default=None,
              help="CSV of (patient_id, index_date) pairs, with --out: predictions for many.")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Predictions file (.parquet or .csv).")
def compare(model_dir: Path, registry_dir: Path, patient_id: str | None, at_date: str | None,
            episodes_file: Path | None, out: Path | None) -> None:
    """Every therapy option side by side for a patient (best first), with intervals and flags.

    Beside the 24-week response: the risk of rapid radiographic progression
    (p_rrp), the probability of stopping within a year for inefficacy or an
    adverse event (p_stop_1y) and the median retention, where the bundle holds
    the survival models.
    """
    if (patient_id is None) == (episodes_file is None):
        raise click.UsageError("give either --patient or --episodes")
    from rxpredict.compare import compare_patient, predict_comparison

    model = _load_model_or_exit(model_dir)
    survival = _load_survival_or_exit(model_dir, required=False)
    registry = _read_or_exit(registry_dir)
    if episodes_file is not None:
        cohort = _scored_rows(registry, _read_pairs(episodes_file), model.markers_, "--episodes")
        _show_predictions(predict_comparison(model, survival, cohort).drop(INTERVALS_NOT_LISTED), out)
        return
    at = _patient_pairs(patient_id, at_date)["index_date"][0]
    try:
        comparison = compare_patient(model, survival, registry, patient_id, at)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--patient") from e
    pred = comparison.options.drop(INTERVALS_NOT_LISTED)
    if out is not None:
        _show_predictions(pred, out)
        return
    click.echo(f"{patient_id} on {at}: 24-week outcomes by therapy option (best first); "
               f"model trained on data contract v{model.contract_version_}")
    for line in comparison.notices():
        click.echo(line)
    if survival is not None:
        click.echo("p_rrp: rapid radiographic progression by the first follow-up radiograph; p_stop_1y: stopping "
                   "within a year for inefficacy or an adverse event; median_retention_days: null beyond "
                   f"{survival.retention.horizon_days} days (`rxpredict survival` shows the curves)")
    _show_predictions(pred.drop("patient_id", "index_date"), None)
    if comparison.flags.height:
        click.echo("safety flags (shown, never used to drop an option):")
        for flag in comparison.flags.iter_rows(named=True):
            click.echo(f"  - {flag['therapy']} ({flag['kind']}): {flag['message']}")


def _show_predictions(pred: pl.DataFrame, out: Path | None) -> None:
    """Write the predictions to ``out`` (.csv, else Parquet), or print them where there is none."""
    if out is None:
        with pl.Config(tbl_rows=-1, tbl_cols=-1, float_precision=2, tbl_width_chars=250):
            click.echo(pred)
        return
    pred.write_csv(out) if out.suffix == ".csv" else pred.write_parquet(out)
    click.echo(f"wrote {pred.height} predictions to {out}")


@main.command("survival")
@click.option("--model", "model_dir", type=click.Path(path_type=Path), required=True, help="Model bundle.")
@click.option("--registry", "registry_dir", type=click.Path(path_type=Path), required=True)
@click.option("--patient", "patient_id", required=True, help="The patient.")
@click.option("--at", "at_date", default=None, help="Date of the comparison (YYYY-MM-DD; default today).")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Draw the curves per option into this file (.png or .svg).")
def survival_curves(model_dir: Path, registry_dir: Path, patient_id: str, at_date: str | None,
                    out: Path | None) -> None:
    """Drug retention and freedom from rapid radiographic progression under every option, for one patient.

    Prints, per option, the probability of stopping within a year (overall,
    for inefficacy, for an adverse event), the median retention, the risk of
    rapid radiographic progression by the first follow-up radiograph and by two
    years, the median time to it, and each model's support and
    out-of-distribution flags; with --out, draws the per-option curves.
    """
    from rxpredict.survival import PatientCurvesDisplay, save_figure
    from rxpredict.survival.plots import FORMATS

    if out is not None and out.suffix.lower() not in FORMATS:
        raise click.BadParameter(f"{out.name}: the suffix must be one of {', '.join(FORMATS)}", param_hint="--out")
    model = _load_model_or_exit(model_dir)
    models = _load_survival_or_exit(model_dir, required=True)
    pairs = _patient_pairs(patient_id, at_date)
    row = _scored_rows(_read_or_exit(registry_dir), pairs, model.markers_, "--patient")
    flags = lambda name: {"support": f"support_{name}", "ood": f"ood_{name}"}  # noqa: E731
    table = (models.retention.predict_options(row).rename(flags("retention"))
             .join(models.progression.predict_options(row).rename(flags("progression")), on=KEY, how="left"))
    click.echo(f"{patient_id} on {pairs['index_date'][0]}: drug retention and radiographic progression by therapy "
               f"option; model trained on data contract v{model.contract_version_}")
    with pl.Config(tbl_rows=-1, tbl_cols=-1, float_precision=2, tbl_width_chars=250):
        click.echo(table.drop("patient_id", "index_date"))
    if out is not None:
        display = PatientCurvesDisplay.from_models(row, models.retention, models.progression)
        display.plot()
        save_figure(display.figure_, out)
        click.echo(f"wrote the curves to {out}")


@main.command("explain")
@click.option("--model", "model_dir", type=click.Path(path_type=Path), required=True, help="Model bundle.")
@click.option("--registry", "registry_dir", type=click.Path(path_type=Path), required=True)
@click.option("--patient", "patient_id", required=True, help="The patient.")
@click.option("--therapy", required=True, help="The option to explain (e.g. il6i).")
@click.option("--versus", default=None, help="Explain why --therapy beats (or trails) this option instead.")
@click.option("--at", "at_date", default=None, help="Date of the prediction (YYYY-MM-DD; default today).")
@click.option("--output", type=click.Choice(["p_response", "p_good", "p_remission", "p_rrp", "p_rrp_2y"]),
              default="p_response", show_default=True,
              help="The probability explained (p_rrp, p_rrp_2y: rapid radiographic progression, from the bundle's "
                   "progression model).")
@click.option("--json", "as_json", is_flag=True, help="Print the explanation as JSON for machines.")
@click.option("--plot", type=click.Path(path_type=Path), default=None,
              help="Draw the patient's SHAP values into this .png file.")
def explain(model_dir: Path, registry_dir: Path, patient_id: str, therapy: str, versus: str | None,
            at_date: str | None, output: str, as_json: bool, plot: Path | None) -> None:
    """Why the model expects what it does for one patient and option, by feature, by data source and in words.

    SHAP values (exact: DeepLIFT, as shap's DeepExplainer computes it) on the
    ensemble's probability before calibration (the calibrated probability
    `compare` shows moves the same way), or on the progression model's
    probability. With --versus: why one option is expected to do better than
    the other (SHAP of the difference).
    """
    from dataclasses import asdict

    from rxpredict.exceptions import BundleError
    from rxpredict.explain import explain_contrast, explain_options
    from rxpredict.explain.importance import save_plot
    from rxpredict.explain.modality import by_modality
    from rxpredict.explain.progression import PROGRESSION_OUTPUTS, explain_progression, progression_features
    from rxpredict.explain.reasons import top_reasons

    model = _load_model_or_exit(model_dir)
    progression = (_load_survival_or_exit(model_dir, required=True).progression if output in PROGRESSION_OUTPUTS
                   else None)
    registry = _read_or_exit(registry_dir)
    pairs = _patient_pairs(patient_id, at_date)
    rows = _scored_rows(registry, pairs, model.markers_, "--patient")
    if plot is not None and plot.suffix.lower() != ".png":
        raise click.BadParameter(f"{plot.name}: plots are written as PNG, give a .png file", param_hint="--plot")
    try:
        if progression is not None:
            explanation = explain_progression(progression, rows, therapy, versus, output)
            layout, scale = progression_features(progression), "probability of the progression model"
        else:
            explanation = (explain_options(model, rows, therapy, output) if versus is None
                           else explain_contrast(model, rows, therapy, versus, output))
            layout, scale = model, "ensemble probability before calibration"
    except BundleError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(EXIT_INVALID)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--therapy/--versus") from e
    reasons = top_reasons(explanation, layout, therapy=therapy, versus=versus, output=output)
    modality = by_modality(explanation, layout).drop("row")
    base = float(explanation.base_values[0])
    features = pl.DataFrame({"feature": explanation.feature_names, "value": explanation.data[0],
                             "shap": explanation.values[0]}).sort(pl.col("shap").abs(), descending=True)
    explained = base + float(features["shap"].sum())
    if plot is not None:
        save_plot(explanation[0], plot, "bar")
    subject = therapy if versus is None else f"{therapy} minus {versus}"
    if as_json:
        import json

        click.echo(json.dumps({
            "patient_id": patient_id, "index_date": str(pairs["index_date"][0]), "therapy": therapy,
            "versus": versus, "output": output, "scale": scale,
            "base_value": base, "explained_value": explained,
            "reasons": [asdict(r) for r in reasons], "by_modality": modality.to_dicts(),
            "features": features.with_columns(pl.col("value").fill_nan(None)).to_dicts(),
        }, indent=2))
        return
    click.echo(f"{patient_id} on {pairs['index_date'][0]}: {output} of {subject} is {explained:.3f} against "
               f"{base:.3f} for the average training patient ({scale})")
    click.echo("main reasons:")
    for r in reasons:
        click.echo(f"  - {r.sentence}")
    with pl.Config(tbl_rows=12, tbl_cols=-1, float_precision=3, tbl_width_chars=200):
        click.echo("by source of data (shap: what was recorded; absent_effect: what was missing):")
        click.echo(modality)
        click.echo("features with the largest SHAP values:")
        click.echo(features.head(12))
    if plot is not None:
        click.echo(f"wrote {plot}")


@main.command()
@click.option("--database", "url", default=None, help="Database URL (default: $RXPREDICT_DATABASE_URL or the SQLite file).")
@click.option("--patients", type=click.IntRange(min=1), default=None, help="Simulated patients for an empty database.")
@click.option("--port", type=click.IntRange(1, 65535), default=8501, show_default=True,
              help="The port the app will listen on (for the URL printed).")
@click.option("--monitor/--no-monitor", default=True, show_default=True,
              help="Train the flare-risk monitor the Monitoring page uses (once, about half a minute; kept in "
                   "$RXPREDICT_HOME/models/monitor or $RXPREDICT_MONITOR_MODEL until rxpredict's version changes).")
@click.option("--model/--no-model", default=True, show_default=True,
              help="Train the response and survival models on the demo's patients and make them the active model "
                   "of the comparison page (once, about a minute; kept in $RXPREDICT_HOME/models/response until "
                   "rxpredict's version changes).")
@click.option("--scorer/--no-scorer", default=True, show_default=True,
              help="Train the radiograph scorer the visit page uses, on synthetic films (once, a minute or two; "
                   "kept in $RXPREDICT_HOME/models/imaging or $RXPREDICT_IMAGING_MODEL until rxpredict's version "
                   "changes).")
def demo(url: str | None, patients: int | None, port: int, monitor: bool, model: bool, scorer: bool) -> None:
    """Prepare a demo database for the clinic app and print one login per role.

    An empty database is filled from the simulator; one already holding
    patients is kept. Every run makes new demo passwords. The response model
    is trained on the demo's patients and made the active model, and the
    flare-risk monitor is trained on a simulated registry of its own and the
    radiograph scorer on synthetic films, each unless one made by this
    rxpredict version is in place.
    """
    from rxpredict.store.demo import DEMO_PATIENTS, build_demo

    made = build_demo(url, patients=patients or DEMO_PATIENTS, monitor=monitor, model=model, scorer=scorer,
                      progress=click.echo)
    click.echo(f"Demo database: {made.url} ({made.patients} patients)")
    if made.model is not None:
        click.echo(f"Response model: {made.model.label} ({'trained now' if made.model_trained else 'kept'})")
    if made.monitor is not None:
        click.echo(f"Flare-risk monitor: {made.monitor} ({'trained now' if made.monitor_trained else 'kept'})")
    if made.scorer is not None:
        click.echo(f"Radiograph scorer: {made.scorer} ({'trained now' if made.scorer_trained else 'kept'}; "
                   "trained on synthetic films only)")
    click.echo(f"Clinic app:    http://127.0.0.1:{port}")
    click.echo("Demo logins (passwords made now; they are not stored anywhere in clear):")
    for role, (name, password) in made.logins.items():
        click.echo(f"  {role:<15} {name:<22} {password}")


def _register_groups() -> None:
    """The ``db``, ``imaging``, ``monitor`` and ``users`` command groups live in their own modules."""
    from rxpredict.cli_db import db
    from rxpredict.cli_imaging import imaging
    from rxpredict.cli_monitor import monitor
    from rxpredict.cli_users import users

    main.add_command(db)
    main.add_command(imaging)
    main.add_command(monitor)
    main.add_command(users)


_register_groups()
