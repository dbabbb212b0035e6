"""``rxpredict imaging train`` and ``score``: a bundle from a folder, a score CSV from films, rows into a registry
or the app database, and every bad input named with exit 1 (data) or 2 (argument)."""
from __future__ import annotations

import datetime as dt
import shutil

import polars as pl
import pytest
from click.testing import CliRunner

from rxpredict.cli import main
from rxpredict.imaging.layout import ra2_dream_mapping
from rxpredict.imaging.persist import save_scorer
from rxpredict.registry import read_registry
from rxpredict.store import records
from rxpredict.store.migrate import open_store
from rxpredict.store.transfer import import_registry
from tests.imaging_support import tiny_films, tiny_scorer

@pytest.fixture(scope="module")
def films(tmp_path_factory):
    return tiny_films(tmp_path_factory.mktemp("films"), seed=11)


@pytest.fixture(scope="module")
def model(films, tmp_path_factory):
    return save_scorer(tiny_scorer(films), tmp_path_factory.mktemp("model") / "m")


def run(*args: str):
    return CliRunner().invoke(main, ["imaging", *map(str, args)])


def test_train_writes_a_bundle_with_held_out_figures(films, tmp_path):
    result = run("train", "--data", films, "--out", tmp_path / "m", "--epochs", "1")
    assert result.exit_code == 0, result.output
    assert "trained on 4 patients" in result.output and "held out (1 patients)" in result.output
    assert {"weights.pt", "config.json", "metrics.json", "MODEL_CARD.md"} <= {p.name for p in (tmp_path / "m").iterdir()}
    again = run("train", "--data", films, "--out", tmp_path / "m", "--epochs", "1")
    assert again.exit_code == 2 and "--overwrite" in again.output


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.drop("LH_pip_J__3"), "missing column(s) LH_pip_J__3"),
    (lambda t: t.with_columns(pl.when(pl.int_range(pl.len()) == 1).then(pl.lit("7")).otherwise("LH_mcp_E__2")
                              .alias("LH_mcp_E__2")), "line 3, column LH_mcp_E__2: 7 outside 0..5"),
])
def test_train_refuses_a_bad_score_csv_naming_line_and_column(films, tmp_path, edit, message):
    data = tmp_path / "films"
    shutil.copytree(films, data)
    edit(pl.read_csv(data / "scores.csv", infer_schema=False)).write_csv(data / "scores.csv")
    result = run("train", "--data", data, "--out", tmp_path / "m", "--epochs", "1")
    assert result.exit_code == 1 and message in result.output, result.output
    assert not (tmp_path / "m").exists()


def test_score_a_folder_into_the_training_csvs_columns(films, model, tmp_path):
    result = run("score", "--model", model, "--data", films, "--out", tmp_path / "scores.csv")
    assert result.exit_code == 0, result.output
    table = pl.read_csv(tmp_path / "scores.csv")
    assert table.columns == ra2_dream_mapping().csv_columns and table.height == 4
    for c in ra2_dream_mapping().columns:
        assert table[c.column].is_between(0, c.maximum).all()
    result = run("score", "--model", model, "--data", films, "--out", tmp_path / "expected.csv", "--expected")
    assert result.exit_code == 0, result.output
    assert pl.read_csv(tmp_path / "expected.csv")["LH_mcp_E__2"].dtype == pl.Float64


def _films_of(films, patient: str = "SYN00001"):
    return [films / f"{patient}-{s}.jpg" for s in ("LH", "RH", "LF", "RF")]


def test_score_a_patients_films_into_a_registry_once(films, model, example_dir, tmp_path):
    registry = tmp_path / "registry"
    shutil.copytree(example_dir, registry)
    before = read_registry(registry)["imaging"].height
    args = ["score", "--model", model, *_films_of(films), "--patient", "EX001", "--date", "2026-05-04",
            "--registry", registry]
    result = run(*args)
    assert result.exit_code == 0, result.output
    assert "added 56 imaging rows of EX001 on 2026-05-04" in result.output
    imaging = read_registry(registry)["imaging"]
    exam = imaging.filter(pl.col("exam_date") == dt.date(2026, 5, 4))
    assert imaging.height == before + 56 and set(exam["source"]) == {"model"}
    again = run(*args)
    assert again.exit_code == 1 and "stored already; nothing written" in again.output
    assert read_registry(registry)["imaging"].height == before + 56


def test_score_a_patients_films_into_the_app_database(films, model, example_dir, tmp_path):
    url = f"sqlite:///{tmp_path / 'app.db'}"
    engine = open_store(url)
    import_registry(engine, example_dir, user="test")
    result = run("score", "--model", model, *_films_of(films)[:2], "--patient", "EX002", "--date", "2026-05-04",
                 "--database", url)
    assert result.exit_code == 0, result.output
    exam = records.patient_tables(engine, "EX002")["imaging"].filter(pl.col("exam_date") == dt.date(2026, 5, 4))
    assert exam.height == 44 and set(exam["joint"].str.slice(0, 10)) == {"left_hand_", "right_hand"}
    unknown = run("score", "--model", model, *_films_of(films)[:1], "--patient", "NOBODY", "--date", "2026-05-04",
                  "--database", url)
    assert unknown.exit_code == 1 and "nothing saved" in unknown.output
    engine.dispose()


def test_bad_films_and_arguments_are_named(films, model, tmp_path):
    unnamed = tmp_path / "film.jpg"
    unnamed.write_bytes((films / "SYN00001-LH.jpg").read_bytes())
    result = run("score", "--model", model, unnamed, "--patient", "EX001", "--date", "2026-05-04")
    assert result.exit_code == 2 and "must end in -LH, -RH, -LF or -RF" in result.output
    broken = tmp_path / "P1-LH.jpg"
    broken.write_bytes(b"\xff\xd8\xff not really a jpeg")
    result = run("score", "--model", model, broken, "--patient", "EX001", "--date", "2026-05-04",
                 "--registry", tmp_path)
    assert result.exit_code == 1 and "P1-LH.jpg: not a readable image" in result.output
    result = run("score", "--model", films, "--data", films, "--out", tmp_path / "s.csv")
    assert result.exit_code == 2 and "not a radiograph scorer bundle" in result.output
    result = run("score", "--model", model)
    assert result.exit_code == 2 and "give --data DIR --out SCORES.csv" in result.output


def test_a_folder_with_a_bad_film_is_named_and_no_csv_written(films, model, tmp_path):
    data = tmp_path / "films"
    shutil.copytree(films, data)
    (data / "SYN00002-LH.jpg").write_bytes(b"junk")
    result = run("score", "--model", model, "--data", data, "--out", tmp_path / "s.csv")
    assert result.exit_code == 1 and "SYN00002-LH.jpg: not a readable image" in result.output
    assert not (tmp_path / "s.csv").exists()
