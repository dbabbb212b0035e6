"""Scoring radiographs on the visit page (AppTest, with a stand-in scorer): overlays, the grid, corrections, errors."""
from __future__ import annotations

import datetime as dt
import io
import sys

import numpy as np
import pandas as pd
import polars as pl
import pytest
from PIL import Image

from rxpredict.exceptions import BundleError
from rxpredict.imaging import installed
from rxpredict.imaging.layout import ra2_dream_mapping
from rxpredict.store import records
from tests.test_app import app_db, errors, visit_page  # noqa: F401 - app_db is a fixture used here
from tests.test_imaging_overlay import film_of

SHAPE = (160, 128)  # rows, columns


class FakeScorer:
    """Scores every film the same way for its part (see film_of), and counts the calls."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def score_film(self, image: np.ndarray, suffix: str):
        assert image.shape == SHAPE and image.dtype == np.float32
        self.calls.append(suffix)
        return film_of(suffix, image.shape)


@pytest.fixture()
def db(app_db):  # noqa: F811 - the fixture imported above
    """The app database with the example registry and a user per role (tests.test_app's app_db)."""
    return app_db


@pytest.fixture()
def scorer(monkeypatch) -> FakeScorer:
    fake = FakeScorer()
    monkeypatch.setattr(installed, "installed_scorer", lambda: fake)
    return fake


def png(seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, SHAPE, dtype=np.uint8)).save(out, format="PNG")
    return out.getvalue()


def visit_with_films(engine, day: dt.date, files):
    """The visit page with the required fields filled for ``day`` and ``files`` uploaded on the films tab."""
    at = visit_page(engine)
    at.radio(key="visit_joint_mode").set_value("type the totals").run()
    at.date_input(key="visit.visit_date").set_value(day)
    at.number_input(key="visit.tjc28").set_value(1)
    at.number_input(key="visit.sjc28").set_value(0)
    at.checkbox(key="visit_has_imaging").check().run()
    at.file_uploader(key="visit_films").set_value(files).run()
    assert not at.exception, at.exception
    return at


def grid(at, suffix: str) -> pd.DataFrame:
    return next(d for d in at.data_editor if d.key == f"visit_film_grid_{suffix}").value


def cells(column: pd.Series) -> list[int | None]:
    return [None if pd.isna(v) else int(v) for v in column]


def exam(engine, day: dt.date) -> pl.DataFrame:
    return records.patient_tables(engine, "EX001")["imaging"].filter(pl.col("exam_date") == day).sort("joint")


def test_films_are_scored_once_shown_and_a_correction_is_saved_as_the_readers(db, scorer):
    day = dt.date(2026, 7, 1)
    at = visit_with_films(db, day, [("P1-LH.png", png(1), "image/png"), ("P1-rf.png", png(2), "image/png")])
    assert not errors(at), errors(at)
    assert scorer.calls == ["LH", "RF"]
    assert len(at.image) == 2  # one overlay per film
    expected = film_of("LH", SHAPE)
    shown = grid(at, "LH")
    assert shown["joint"].tolist() == [j.joint for j in expected.joints]
    assert cells(shown["erosion"]) == [j.erosion for j in expected.joints]
    assert cells(shown["jsn"]) == [j.jsn for j in expected.joints]
    totals = {m.label: m.value for m in at.metric}
    assert totals["LH erosion total"] == str(expected.total("erosion"))

    at.radio(key="visit_film_kind_LH").set_value("jsn").run()  # colour by JSN: no new scoring
    assert scorer.calls == ["LH", "RF"]
    row = [j.joint for j in expected.joints].index("left_hand_mcp2")
    assert expected.joints[row].erosion != 4
    at.session_state["visit_film_grid_LH"] = {"edited_rows": {row: {"erosion": 4}}, "added_rows": [],
                                              "deleted_rows": []}
    at.run()
    assert {m.label: m.value for m in at.metric}["LH erosion total"] == str(
        expected.total("erosion") - expected.joints[row].erosion + 4)
    at.button(key="visit_save").click().run()
    assert not errors(at), errors(at)
    assert at.success[0].value == f"Saved the visit of EX001 on {day}."
    saved = exam(db, day)
    mapping = ra2_dream_mapping()
    assert saved.height == len(mapping.joints_of("LH")) + len(mapping.joints_of("RF"))
    readers = saved.filter(pl.col("source") == "reader")
    assert readers.select("joint", "erosion", "jsn").rows() == [("left_hand_mcp2", 4, expected.joints[row].jsn)]
    models = saved.filter(pl.col("source") == "model")
    by_joint = {j.joint: (j.erosion, j.jsn) for j in expected.joints + film_of("RF", SHAPE).joints}
    assert all(by_joint[r["joint"]] == (r["erosion"], r["jsn"]) for r in models.iter_rows(named=True))


def test_a_correction_above_the_area_maximum_is_refused_and_nothing_saved(db, scorer):
    day = dt.date(2026, 7, 2)
    at = visit_with_films(db, day, [("P1-LH.png", png(1), "image/png")])
    at.session_state["visit_film_grid_LH"] = {"edited_rows": {0: {"erosion": 9}}, "added_rows": [],
                                              "deleted_rows": []}
    at.run()
    assert any(m.startswith("left hand mcp1 erosion:") and "maximum" in m for m in errors(at)), errors(at)
    at.button(key="visit_save").click().run()
    assert records.patient_tables(db, "EX001")["visits"].filter(pl.col("visit_date") == day).height == 0
    assert exam(db, day).height == 0


def test_an_unreadable_film_is_named_and_nothing_saved(db, scorer):
    day = dt.date(2026, 7, 3)
    at = visit_with_films(db, day, [("P1-LH.png", png(1), "image/png"),
                                        ("broken-RH.png", b"\x89PNG not really", "image/png")])
    shown = errors(at)
    assert any("broken-RH.png" in m and "not a readable image" in m for m in shown), shown
    assert not any("/tmp" in m for m in shown)  # the upload's name, not a temporary copy's path
    assert scorer.calls == ["LH"] and len(at.image) == 1
    at.button(key="visit_save").click().run()
    assert records.patient_tables(db, "EX001")["visits"].filter(pl.col("visit_date") == day).height == 0


def test_a_film_without_a_part_in_its_name_asks_for_it(db, scorer):
    at = visit_with_films(db, dt.date(2026, 7, 4), [("scan.png", png(3), "image/png")])
    assert scorer.calls == [] and not at.image
    assert any("nothing is scored until every film has one" in i.value for i in at.info)
    at.selectbox(key="visit_film_part_0").select("LF").run()
    assert scorer.calls == ["LF"] and len(at.image) == 1
    assert grid(at, "LF")["joint"].tolist() == ra2_dream_mapping().joints_of("LF")


def test_two_films_of_one_part_are_refused(db, scorer):
    at = visit_with_films(db, dt.date(2026, 7, 5), [("a-LH.png", png(1), "image/png"),
                                                        ("b-LH.png", png(2), "image/png")])
    assert any("a-LH.png, b-LH.png" in m for m in errors(at)), errors(at)
    assert scorer.calls == []


def test_a_new_film_of_a_part_starts_a_fresh_grid(db, scorer):
    at = visit_with_films(db, dt.date(2026, 7, 6), [("P1-LH.png", png(1), "image/png")])
    at.session_state["visit_film_grid_LH"] = {"edited_rows": {0: {"erosion": 4}}, "added_rows": [],
                                              "deleted_rows": []}
    at.run()
    assert at.session_state["visit_film_grid_LH"]["edited_rows"]
    at.file_uploader(key="visit_films").set_value([("P2-LH.png", png(2), "image/png")]).run()
    assert scorer.calls == ["LH", "LH"]
    assert not at.session_state["visit_film_grid_LH"]["edited_rows"]  # the first film's correction is gone


def test_films_and_a_csv_together_are_refused(db, scorer):
    day = dt.date(2026, 7, 7)
    at = visit_with_films(db, day, [("P1-LH.png", png(1), "image/png")])
    at.file_uploader(key="visit_svdh_file").set_value(("svdh.csv", b"joint,erosion,jsn\nleft_hand_mcp2,2,1\n",
                                                         "text/csv")).run()
    assert any("remove one of the two uploads" in m for m in errors(at)), errors(at)
    at.button(key="visit_save").click().run()
    assert records.patient_tables(db, "EX001")["visits"].filter(pl.col("visit_date") == day).height == 0


def test_without_a_scorer_the_page_says_how_to_install_one(db, tmp_path, monkeypatch):
    monkeypatch.setenv(installed.IMAGING_MODEL_ENV, str(tmp_path / "no-scorer"))
    at = visit_page(db)
    at.checkbox(key="visit_has_imaging").check().run()
    assert not at.exception and not errors(at)
    assert any("no radiograph scorer" in i.value and "rxpredict imaging train" in i.value for i in at.info)
    assert not [u for u in at.file_uploader if u.key == "visit_films"]


def test_a_broken_scorer_bundle_is_explained(db, tmp_path, monkeypatch):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "weights.pt").write_bytes(b"junk")
    monkeypatch.setenv(installed.IMAGING_MODEL_ENV, str(tmp_path / "broken"))
    at = visit_page(db)
    at.checkbox(key="visit_has_imaging").check().run()
    assert any("cannot be used" in m and "not a model bundle" in m and "rxpredict imaging train" in m
               for m in errors(at)), errors(at)


# --- where the scorer is found ---------------------------------------------------------------------------------

def test_the_scorer_folder_is_the_env_var_else_under_home(tmp_path, monkeypatch):
    monkeypatch.delenv(installed.IMAGING_MODEL_ENV, raising=False)
    monkeypatch.setenv("RXPREDICT_HOME", str(tmp_path / "home"))
    assert installed.imaging_model_dir() == tmp_path / "home" / "models" / "imaging"
    assert installed.installed_scorer() is None  # no folder
    (tmp_path / "home" / "models" / "imaging").mkdir(parents=True)
    assert installed.installed_scorer() is None  # an empty folder
    monkeypatch.setenv(installed.IMAGING_MODEL_ENV, str(tmp_path / "chosen"))
    assert installed.imaging_model_dir() == tmp_path / "chosen"


def test_a_broken_bundle_raises_bundle_error(tmp_path, monkeypatch):
    (tmp_path / "config.json").write_text("{}")
    monkeypatch.setenv(installed.IMAGING_MODEL_ENV, str(tmp_path))
    with pytest.raises(BundleError, match="not a model bundle"):
        installed.installed_scorer()


def test_a_real_scorer_scores_uploaded_films_and_the_rows_are_saved(db, tmp_path, monkeypatch):
    from rxpredict.imaging.persist import save_scorer
    from tests.imaging_support import tiny_films, tiny_scorer

    films = tiny_films(tmp_path / "films", seed=4, patients=2)
    monkeypatch.setenv(installed.IMAGING_MODEL_ENV, str(save_scorer(tiny_scorer(films), tmp_path / "scorer")))
    day = dt.date(2026, 7, 9)
    uploads = [(f"SYN00001-{s}.jpg", (films / f"SYN00001-{s}.jpg").read_bytes(), "image/jpeg")
               for s in ("LH", "RH", "LF", "RF")]
    at = visit_with_films(db, day, uploads)
    assert not errors(at), errors(at)
    assert len(at.image) == 4
    at.button(key="visit_save").click().run()
    assert not errors(at), errors(at)
    saved = exam(db, day)
    assert saved.height == 56 and set(saved["source"]) == {"model"}


def test_areas_the_locator_was_unsure_of_are_named_for_the_reader(db, scorer, monkeypatch):
    import dataclasses

    original = film_of

    def unsure_first(suffix, shape):
        film = original(suffix, shape)
        return dataclasses.replace(film, joints=(dataclasses.replace(film.joints[0], located=0.1), *film.joints[1:]))

    monkeypatch.setattr(sys.modules[__name__], "film_of", unsure_first)
    at = visit_with_films(db, dt.date(2026, 7, 10), [("P1-LH.png", png(1), "image/png")])
    assert any("unsure where these areas are" in w.value and "left hand mcp1" in w.value for w in at.warning)
