"""The RA2-DREAM layout: the column mapping covers the contract, and bad CSVs, images and landmarks are named."""
from __future__ import annotations

import json
import shutil
from datetime import date

import polars as pl
import pytest
from PIL import Image

from rxpredict.imaging.layout import (ImagingDataError, imaging_rows, ra2_dream_mapping, read_folder, read_image,
                                      read_landmarks, read_scores)
from rxpredict.imaging.synth import synthesize
from rxpredict.schemas import load_contract, schema_dir


@pytest.fixture(scope="module")
def films(tmp_path_factory):
    """Three synthetic patients; tests copy what they break."""
    out = tmp_path_factory.mktemp("films")
    synthesize(3, out, seed=7, size=(128, 160))
    return out


@pytest.fixture
def table(films) -> pl.DataFrame:
    return pl.read_csv(films / "scores.csv", infer_schema=False)


def _write(frame: pl.DataFrame, tmp_path):
    path = tmp_path / "scores.csv"
    frame.write_csv(path)
    return path


def test_mapping_covers_every_scored_area_once_per_kind():
    mapping = ra2_dream_mapping()
    mapped = [(c.joint, c.score) for c in mapping.columns]
    wanted = {(a.name, k) for a in load_contract().joint_areas for k in ("erosion", "jsn")
              if getattr(a, f"{k}_max") is not None}
    assert len(mapped) == len(set(mapped)) == len(wanted) == 86
    assert set(mapped) == wanted
    assert {c.maximum for c in mapping.columns if c.joint.startswith("left_foot") and c.score == "erosion"} == {10}


@pytest.mark.parametrize("column, joint, kind", [
    ("LH_mcp_E__ip", "left_hand_ip1", "erosion"), ("RH_wrist_E__nav", "right_hand_scaphoid", "erosion"),
    ("LH_wrist_J__mna", "left_hand_scaphoid_trapezium", "jsn"), ("RF_mtp_J__ip", "right_foot_ip1", "jsn"),
])
def test_mapping_names(column, joint, kind):
    c = next(c for c in ra2_dream_mapping().columns if c.column == column)
    assert (c.joint, c.score) == (joint, kind)


def test_valid_folder_reads(films):
    folder = read_folder(films)
    assert folder.scores.height == 3 and set(folder.images) == set(folder.scores["Patient_ID"])
    assert all(set(parts) == {"LH", "RH", "LF", "RF"} for parts in folder.images.values())


def test_missing_column_is_named(table, tmp_path):
    with pytest.raises(ImagingDataError, match="missing column.*LF_mtp_J__3"):
        read_scores(_write(table.drop("LF_mtp_J__3"), tmp_path))


@pytest.mark.parametrize("value, rule", [("6", "outside 0..5"), ("-1", "outside 0..5"), ("2.5", "not a whole number"),
                                         ("", "not a whole number")])
def test_bad_score_names_line_and_column(table, tmp_path, value, rule):
    bad = table.with_columns(pl.when(pl.int_range(pl.len()) == 1).then(pl.lit(value))
                             .otherwise(pl.col("RH_pip_E__3")).alias("RH_pip_E__3"))
    with pytest.raises(ImagingDataError, match=f"scores.csv line 3, column RH_pip_E__3: .*{rule}") as e:
        read_scores(_write(bad, tmp_path))
    assert len(e.value.problems) >= 1


def test_totals_must_add_up(table, tmp_path):
    bad = table.with_columns(pl.lit("999").alias("Overall_narrowing"))
    with pytest.raises(ImagingDataError, match="line 2, column Overall_narrowing: 999 is not the sum"):
        read_scores(_write(bad, tmp_path))


def test_repeated_patient(table, tmp_path):
    with pytest.raises(ImagingDataError, match="line 5, column Patient_ID: 'SYN00001' is empty or repeats"):
        read_scores(_write(pl.concat([table, table.head(1)]), tmp_path))


def test_imaging_rows_follow_the_contract(films):
    rows = imaging_rows(read_scores(films / "scores.csv"), exam_date=date(2024, 1, 2))
    table = load_contract().tables["imaging"]
    assert rows.schema == table.polars_schema and rows.height == 3 * 56
    wrist = rows.filter(pl.col("joint") == "left_hand_cmc3").row(0, named=True)
    assert wrist["erosion"] is None and wrist["jsn"] is not None
    total = rows.filter(pl.col("patient_id") == "SYN00001").select(pl.sum("erosion") + pl.sum("jsn")).item()
    assert total == read_scores(films / "scores.csv").filter(pl.col("Patient_ID") == "SYN00001")["Overall_Tol"].item()


@pytest.mark.parametrize("content, message", [(b"", "empty file"), (b"not an image at all", "not a readable image")])
def test_unreadable_image_names_the_file(tmp_path, content, message):
    path = tmp_path / "P1-LH.jpg"
    path.write_bytes(content)
    with pytest.raises(ImagingDataError, match=f"P1-LH.jpg: {message}"):
        read_image(path)


def test_truncated_and_wrong_format_images(films, tmp_path):
    truncated = tmp_path / "P1-RH.jpg"
    truncated.write_bytes((films / "SYN00001-RH.jpg").read_bytes()[:600])
    with pytest.raises(ImagingDataError, match="P1-RH.jpg"):
        read_image(truncated)
    gif = tmp_path / "P1-LF.png"
    Image.new("L", (8, 8)).save(gif, format="GIF")
    with pytest.raises(ImagingDataError, match="P1-LF.png: a GIF image"):
        read_image(gif)


def test_read_image_is_grayscale_in_unit_range(films):
    pixels = read_image(films / "SYN00002-LF.jpg")
    assert pixels.shape == (160, 128) and 0 <= pixels.min() < pixels.max() <= 1


def test_a_bad_image_in_a_folder_names_it(films, tmp_path):
    for path in films.iterdir():
        (tmp_path / path.name).write_bytes(path.read_bytes())
    (tmp_path / "SYN00003-LF.jpg").write_bytes(b"\xff\xd8 broken")
    with pytest.raises(ImagingDataError, match="SYN00003-LF.jpg"):
        read_folder(tmp_path)


@pytest.mark.parametrize("landmarks, message", [
    ({"left_hand_mcp2": [10, 10], "right_hand_mcp2": [5, 5]}, "'right_hand_mcp2' is not a joint area of this image"),
    ({"left_hand_mcp2": ["a", 3]}, "is not \\[x, y\\]"),
    ({"left_hand_mcp2": [10, 500]}, "lies outside the 128x160 image"),
])
def test_bad_landmarks_name_the_file(tmp_path, landmarks, message):
    path = tmp_path / "P1-LH.json"
    path.write_text(json.dumps(landmarks))
    with pytest.raises(ImagingDataError, match=f"P1-LH.json: .*{message}"):
        read_landmarks(path, "LH", (160, 128))


def test_patients_without_images_or_scores(films, table, tmp_path):
    extra = table.head(1).with_columns(pl.lit("GHOST").alias("Patient_ID"))
    with pytest.raises(ImagingDataError, match="patient GHOST has a score row but no image"):
        read_folder(films, scores=_write(pl.concat([table, extra]), tmp_path))


@pytest.fixture
def schema_copy(tmp_path, monkeypatch):
    """A copy of data_schemas/ that a test may break; the mapping is re-read from it and from the real one after."""
    copy = tmp_path / "schemas"
    shutil.copytree(schema_dir(), copy)
    monkeypatch.setenv("RXPREDICT_SCHEMA_DIR", str(copy))
    ra2_dream_mapping.cache_clear()
    yield copy / "ra2_dream_columns.json"
    ra2_dream_mapping.cache_clear()


@pytest.mark.parametrize("edit, message", [
    (lambda cols: cols.pop(1), "left_hand_mcp2 erosion has no column"),
    (lambda cols: cols.append(dict(cols[0])), "left_hand_mcp1 erosion is mapped 2 times"),
    (lambda cols: cols[0].update(area="hand_cmc3"), "left_hand_cmc3 is not scored for erosion"),
])
def test_a_mapping_that_breaks_the_contract_is_refused(schema_copy, edit, message):
    raw = json.loads(schema_copy.read_text())
    edit(raw["columns"])
    schema_copy.write_text(json.dumps(raw))
    with pytest.raises(ImagingDataError, match=f"ra2_dream_columns.json: .*{message}"):
        ra2_dream_mapping()
