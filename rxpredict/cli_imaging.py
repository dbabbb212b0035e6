"""``rxpredict imaging``: radiograph damage scoring (issue 12).

``synth`` writes synthetic hand and foot films with known SvdH scores in the
RA2-DREAM layout; ``train`` fits a scorer on such a folder and writes its
bundle; ``score`` scores a folder into a score CSV, or a patient's films into
a registry's imaging table or the app database (docs/imaging.md). Exit codes:
0 done, 1 invalid data (the message names the file, line and column), 2 a bad
argument or unreadable model.
"""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import click

from rxpredict.cli_store import DATABASE_OPTION, EXIT_BAD_ARGUMENT, EXIT_REFUSED, cli_operator, fail
from rxpredict.exceptions import BundleError, ImagingDataError, RecordError, RegistryValidationError

EXIT_INVALID = EXIT_REFUSED


@click.group("imaging")
def imaging() -> None:
    """Radiographs of hands and feet: synthetic films, training and scoring a damage scorer."""


@imaging.command("synth")
@click.option("--patients", type=click.IntRange(min=1), required=True, help="How many patients (4 films each).")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="New or empty folder to write.")
@click.option("--seed", type=int, default=0, show_default=True)
def synth(patients: int, out: Path, seed: int) -> None:
    """Write synthetic hand and foot films, landmark files and a score CSV in the RA2-DREAM layout."""
    from rxpredict.imaging.synth import synthesize

    try:
        csv = synthesize(patients, out, seed=seed)
    except FileExistsError as e:
        fail(str(e), EXIT_BAD_ARGUMENT)
    click.echo(f"wrote {patients} patients ({4 * patients} films) to {out}; scores in {csv.name}")


def _invalid(e: ImagingDataError) -> None:
    fail("\n".join(e.problems), EXIT_INVALID)


def _scorer(model: Path):
    from rxpredict.imaging.persist import load_scorer

    try:
        return load_scorer(model)
    except (BundleError, OSError, json.JSONDecodeError) as e:
        fail(f"{model}: not a radiograph scorer bundle ({e})", EXIT_BAD_ARGUMENT)


@imaging.command("train")
@click.option("--data", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="RA2-DREAM folder: <Patient_ID>-<LH|RH|LF|RF>.jpg/.png films, one score CSV, landmark files.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Model folder to write.")
@click.option("--scores", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="The score CSV, when the folder holds more than one.")
@click.option("--locator", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="A scorer bundle whose locator places the joints of films without a landmark file.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--epochs", type=click.IntRange(min=1), default=None,
              help="Most epochs of each network (default: the scorer's; early stopping may end sooner).")
@click.option("--overwrite", is_flag=True, help="Replace a model folder that is not empty.")
def train(data: Path, out: Path, scores: Path | None, locator: Path | None, seed: int, epochs: int | None,
          overwrite: bool) -> None:
    """Train a radiograph scorer on scored films and write its bundle, with figures on held-out patients."""
    from rxpredict.imaging.evaluate import evaluate
    from rxpredict.imaging.layout import read_folder
    from rxpredict.imaging.persist import save_scorer
    from rxpredict.imaging.scorer import RadiographScorer

    if out.exists() and any(out.iterdir()) and not overwrite:
        fail(f"{out} is not empty; pass --overwrite to replace it", EXIT_BAD_ARGUMENT)
    given = _scorer(locator) if locator is not None else None
    try:
        folder = read_folder(data, scores)
        limits = {} if epochs is None else {"locator_epochs": epochs, "scorer_epochs": epochs}
        scorer = RadiographScorer(seed=seed, **limits).fit(folder, locator=given)
        figures, _ = evaluate(scorer, folder, scorer.validation_patients_) if scorer.validation_patients_ else ({}, None)
    except ImagingDataError as e:
        _invalid(e)
    except ValueError as e:  # a --locator bundle of other settings
        fail(str(e), EXIT_BAD_ARGUMENT)
    save_scorer(scorer, out, metrics=figures, overwrite=overwrite)
    click.echo(f"trained on {scorer.training_['patients']} patients in {scorer.training_['seconds']:.0f} s; "
               f"wrote {out}")
    for name in ("rmse_joint", "rmse_total", "icc_total", "landmark_error_mean_px"):
        if figures.get(name) is not None:
            click.echo(f"  held out ({len(scorer.validation_patients_)} patients): {name} {figures[name]:.3g}")


def _part(path: Path) -> str:
    from rxpredict.imaging.layout import part_of

    part = part_of(path.name)
    if part is None:
        fail(f"{path}: name the film's part: the file name must end in -LH, -RH, -LF or -RF "
             "(left/right hand/foot), e.g. P001-LH.dcm", EXIT_BAD_ARGUMENT)
    return part


@imaging.command("score")
@click.option("--model", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="RA2-DREAM folder of films to score (any score CSV in it is ignored).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Score CSV to write (with --data): the training CSV's columns, one row per patient.")
@click.option("--expected", is_flag=True,
              help="With --data: write the model's expected scores (two decimals, as RA2-DREAM predictions) "
                   "instead of whole scores.")
@click.argument("images", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--patient", default=None, help="With IMAGE...: the patient the films are of.")
@click.option("--date", "exam_date", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="With IMAGE...: the exam date (YYYY-MM-DD).")
@click.option("--registry", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="With IMAGE...: registry folder whose imaging table gets the rows.")
@DATABASE_OPTION
def score(model: Path, data: Path | None, out: Path | None, expected: bool, images: tuple[Path, ...],
          patient: str | None, exam_date: dt.datetime | None, registry: Path | None, database: str | None) -> None:
    """Score films: a folder into a score CSV (--data, --out), or one patient's IMAGE... files (named
    <anything>-LH.jpg etc.; JPEG, PNG or DICOM) into a registry's imaging table (--registry) or the app
    database (--database), with source = model."""
    if data is not None:
        if images or out is None or registry is not None:
            fail("--data goes with --out, and without IMAGE... or --registry", EXIT_BAD_ARGUMENT)
        _score_folder(_scorer(model), data, out, expected)
    elif images:
        if patient is None or exam_date is None or out is not None:
            fail("IMAGE... needs --patient and --date (and no --out)", EXIT_BAD_ARGUMENT)
        if registry is not None and database is not None:
            fail("give --registry or --database, not both", EXIT_BAD_ARGUMENT)
        _score_images(_scorer(model), images, patient, exam_date.date(), registry, database)
    else:
        fail("give --data DIR --out SCORES.csv, or IMAGE... --patient ID --date D --registry DIR", EXIT_BAD_ARGUMENT)


def _score_folder(scorer, data: Path, out: Path, expected: bool) -> None:
    from rxpredict.imaging.layout import ra2_dream_mapping

    try:
        table, films = scorer.score_folder(_unscored(data), expected=expected)
    except ImagingDataError as e:
        _invalid(e)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.write_csv(out)
    parts = len(ra2_dream_mapping().parts)
    partial = sorted(p for p, f in films.items() if len(f) < parts)
    click.echo(f"scored {table.height} patients into {out}")
    if partial:
        click.echo(f"left out {len(partial)} patient(s) without all {parts} films: {', '.join(partial[:10])}",
                   err=True)


def _unscored(data: Path):
    """The folder's films without its score CSV or landmark files (scoring needs neither); a film that does not
    decode is named when it is scored, before anything is written."""
    from rxpredict.imaging.layout import Ra2DreamFolder, find_images

    images = find_images(data)
    if not images:
        raise ImagingDataError([f"{data}: no <Patient_ID>-<LH|RH|LF|RF> images"])
    return Ra2DreamFolder(data, images, {}, None)


def _score_images(scorer, images: tuple[Path, ...], patient: str, exam_date: dt.date, registry: Path | None,
                  database: str | None) -> None:
    from rxpredict.imaging.film import imaging_rows
    from rxpredict.imaging.layout import read_image

    parts = {}
    for path in images:
        suffix = _part(path)
        if suffix in parts:
            fail(f"{path}: a second {suffix} film beside {parts[suffix]}", EXIT_BAD_ARGUMENT)
        parts[suffix] = path
    try:
        films = scorer.score_films([(read_image(path), suffix) for suffix, path in parts.items()])
    except ImagingDataError as e:
        _invalid(e)
    rows = imaging_rows(films, patient_id=patient, exam_date=exam_date)
    if registry is not None:
        _append_to_registry(registry, rows)
        where = f"{registry}"
    else:
        _save_to_database(database, patient, rows)
        where = "the database"
    for film in films:
        click.echo(f"{film.suffix}: erosion {film.total('erosion')}, JSN {film.total('jsn')}")
        if film.unsure():
            click.echo(f"  the scorer was unsure where these areas are; check them: {', '.join(film.unsure())}",
                       err=True)
    click.echo(f"added {len(rows)} imaging rows of {patient} on {exam_date} to {where} (source = model)")


def _append_to_registry(directory: Path, rows: list[dict]) -> None:
    import polars as pl

    from rxpredict.registry import RegistryReadError, read_registry, table_files, write_registry
    from rxpredict.schemas import load_contract

    try:
        registry = read_registry(directory)
    except RegistryReadError as e:
        fail(str(e), EXIT_BAD_ARGUMENT)
    except RegistryValidationError as e:
        fail(f"{e}\nrun `rxpredict validate {directory}` for the full report", EXIT_INVALID)
    contract = load_contract()
    schema = contract.tables["imaging"].polars_schema
    new = pl.DataFrame(rows, schema=dict(schema))
    stored = registry.tables.get("imaging")
    if stored is not None and stored.height:
        clash = new.join(stored, on=["patient_id", "exam_date"], how="semi")
        if clash.height:
            fail(f"{directory}: imaging of {rows[0]['patient_id']} on {rows[0]['exam_date']} is stored already; "
                 "nothing written", EXIT_INVALID)
        new = pl.concat([stored, new])
    fmt = table_files(directory, contract)[0]["visits"].suffix.lstrip(".")  # write the tables as they were read
    try:
        write_registry({**registry.tables, "imaging": new}, directory, format=fmt)
    except RegistryValidationError as e:
        fail(f"nothing written: {e}", EXIT_INVALID)


def _save_to_database(database: str | None, patient: str, rows: list[dict]) -> None:
    from rxpredict.cli_store import store_engine
    from rxpredict.store import records

    with store_engine(database) as engine:
        try:
            records.save_imaging(engine, patient, rows, user=cli_operator())
        except RecordError as e:
            fail("nothing saved: " + "; ".join(str(p) for p in e.problems), EXIT_INVALID)
