"""``rxpredict monitor``: data between clinic visits.

``import`` brings a patient's wearable file into a registry; ``train`` fits
the flare-risk model and its alert policy into a bundle; ``score`` gives each
patient's risk, alert and reasons on a date.

``monitor import`` prints what it read, imported, set aside and rejected
(counts and line numbers, never a patient's values) and exits
- 0 when the days were imported, even if some records were rejected or
  conflicted with stored days (they are listed, and a warning goes to stderr);
- 1 when nothing was imported because of the data: a malformed or unreadable
  file, a file with rejected records and no day left, a stored wearables
  table that breaks the contract, or a table that could not be written;
- 2 for a bad argument: no such registry, patient or file, a bad mapping, a
  mapping given for a file that is not CSV.
In every failing case the registry is left as it was.
"""
from __future__ import annotations

from pathlib import Path

import click

from rxpredict.cli_store import EXIT_BAD_ARGUMENT, EXIT_REFUSED, fail
from rxpredict.monitoring.ingest.formats import FORMATS

#: Files from this size on show a progress bar on stderr (where stderr is a terminal).
PROGRESS_BYTES = 10 * 2**20


@click.group("monitor")
def monitor() -> None:
    """Monitoring between visits: wearable and self-reported data per patient-day."""


@monitor.command("import")
@click.option("--registry", "registry_dir", required=True, type=click.Path(path_type=Path),
              help="Registry directory; its wearables table is created as Parquet if absent.")
@click.option("--patient", "patient_id", required=True, help="The patient's ID in the registry's patients table.")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "file_format", type=click.Choice(FORMATS), default="auto", show_default=True,
              help="apple: Apple Health export.xml or export.zip; csv: a daily CSV (with --mapping, any layout; "
                   "without, the wearables columns); parquet: the wearables columns. auto: by name, then content.")
@click.option("--mapping", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="JSON column mapping of a daily CSV (format: data_schemas/daily_csv_mapping.json).")
@click.option("--replace", is_flag=True,
              help="Where a stored day holds another value than the file, take the file's (default: keep stored).")
def import_file(registry_dir: Path, patient_id: str, file: Path, file_format: str, mapping: Path | None,
                replace: bool) -> None:
    """Import one patient's wearable FILE into the registry's wearables table.

    Days already stored keep their values unless --replace; values they lack
    are added. Exits 0 when imported (rejected records listed), 1 when the
    file or the stored table stops the import, 2 for a bad argument.
    """
    from rxpredict.exceptions import RegistryReadError
    from rxpredict.monitoring.ingest import (ImportFileError, MappingError, PatientNotFoundError, StoredTableError,
                                             import_wearables)

    try:
        result = import_wearables(registry_dir, patient_id, file, format=file_format, mapping=mapping,
                                  replace=replace, progress=file.stat().st_size >= PROGRESS_BYTES)
    except (RegistryReadError, PatientNotFoundError, MappingError) as e:
        fail(str(e), EXIT_BAD_ARGUMENT)
    except (ImportFileError, StoredTableError) as e:
        fail(str(e), EXIT_REFUSED)
    except OSError as e:
        fail(f"the wearables table could not be written ({type(e).__name__}); the registry is as it was", EXIT_REFUSED)
    click.echo(result.to_text())
    rejected = result.file.n_rejected
    if rejected and result.file.days.is_empty():
        fail(f"nothing was imported: {rejected:,} records were rejected and no day was left", EXIT_REFUSED)
    if rejected:
        click.echo(f"warning: {rejected:,} records were rejected and not imported (listed above)", err=True)
    if result.conflicts.height and not replace:
        click.echo(f"warning: {result.conflicts.height:,} stored values differ from the file and were kept",
                   err=True)


@monitor.command("train")
@click.option("--registry", "registry_dir", required=True, type=click.Path(path_type=Path), help="Registry directory.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Model bundle directory to write.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--holdout", type=click.FloatRange(0.05, 0.5), default=0.25, show_default=True,
              help="Share of patients kept out of training to fit the alert policy and measure the model.")
@click.option("--budget", type=click.FloatRange(min=0.01), default=1.0, show_default=True,
              help="Alerts per patient-month, on average, that the alert threshold allows.")
@click.option("--overwrite", is_flag=True, help="Replace an existing bundle.")
def train(registry_dir: Path, out: Path, seed: int, holdout: float, budget: float, overwrite: bool) -> None:
    """Fit the flare-risk model and its alert policy on a registry's wearable days; write a bundle with its card."""
    import json

    from rxpredict.cli import _read_or_exit
    from rxpredict.exceptions import BundleError
    from rxpredict.monitoring.pipeline import fit_monitor
    from rxpredict.monitoring.persist import save_monitor

    registry = _read_or_exit(registry_dir)
    try:
        fitted = fit_monitor(registry, held_out_fraction=holdout, seed=seed, budget_per_month=budget)
        save_monitor(fitted.model, fitted.policy, fitted.background, out, metrics=fitted.metrics,
                     training=fitted.training, overwrite=overwrite)
    except (ValueError, BundleError) as e:
        fail(str(e), EXIT_REFUSED)
    click.echo(json.dumps(fitted.metrics, indent=2))
    click.echo(f"wrote {out} (model card: {out / 'MODEL_CARD.md'})")


@monitor.command("score")
@click.option("--model", "model_dir", required=True, type=click.Path(path_type=Path), help="Flare-risk bundle.")
@click.option("--registry", "registry_dir", required=True, type=click.Path(path_type=Path), help="Registry directory.")
@click.option("--at", "at", required=True, type=click.DateTime(formats=["%Y-%m-%d"]), help="Date to score (YYYY-MM-DD).")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Write the rows here (.parquet or .csv) instead of printing them.")
@click.option("--reasons/--alert-reasons-only", default=False, show_default=True,
              help="Explain every patient (slower), or only those with an alert.")
def score(model_dir: Path, registry_dir: Path, at, out: Path | None, reasons: bool) -> None:
    """P(flare within 28 days) on a date for every patient with wearable data in the 56 days before it.

    One row per patient, highest risk first: patient_id, date, p_flare_28d,
    alert, reasons (moved streams and the main SHAP drivers) and shap (JSON).
    """
    from rxpredict.cli import _read_or_exit
    from rxpredict.exceptions import BundleError
    from rxpredict.monitoring.persist import load_monitor
    from rxpredict.monitoring.pipeline import score_patients

    try:
        model, policy, background, _ = load_monitor(model_dir)
    except (BundleError, FileNotFoundError) as e:
        fail(str(e), EXIT_REFUSED)
    rows = score_patients(model, policy, background, _read_or_exit(registry_dir), at.date(), reasons=reasons)
    if out is None:
        for r in rows.iter_rows(named=True):
            flag = "ALERT" if r["alert"] else "     "
            click.echo(f"{r['patient_id']}  {r['date']}  {r['p_flare_28d']:.3f}  {flag}  {r['reasons']}")
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    (rows.write_csv if out.suffix == ".csv" else rows.write_parquet)(out)
    click.echo(f"wrote {rows.height:,} patients ({rows['alert'].sum():,} alerts) to {out}")
