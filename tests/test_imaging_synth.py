"""Synthetic films: reproducible, in the RA2-DREAM layout, scores within maxima, and damage that shows."""
from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

from rxpredict.cli import main
from rxpredict.imaging.layout import ra2_dream_mapping, read_folder, read_image
from rxpredict.imaging.synth import draw_scores, render, synthesize


@pytest.fixture(scope="module")
def films(tmp_path_factory):
    out = tmp_path_factory.mktemp("films")
    synthesize(4, out, seed=11)
    return out


def test_layout_and_round_trip(films):
    mapping = ra2_dream_mapping()
    assert pl.read_csv(films / "scores.csv").columns == mapping.csv_columns
    folder = read_folder(films)
    assert sorted(folder.images) == [f"SYN{i:05d}" for i in range(1, 5)]
    for patient, parts in folder.landmarks.items():
        assert set(parts) == {"LH", "RH", "LF", "RF"}
        for suffix, centres in parts.items():
            assert sorted(centres) == sorted(mapping.joints_of(suffix)), (patient, suffix)


def test_reproducible_with_a_seed(films, tmp_path):
    synthesize(2, tmp_path, seed=11)
    for name in ("SYN00002-LF.jpg", "SYN00002-LF.json"):
        assert (tmp_path / name).read_bytes() == (films / name).read_bytes()
    assert pl.read_csv(tmp_path / "scores.csv").equals(pl.read_csv(films / "scores.csv").head(2))


def test_scores_within_maxima_and_often_zero():
    rows = [draw_scores(np.random.default_rng([3, i])) for i in range(300)]
    columns = ra2_dream_mapping().columns
    values = np.array([[row[c.column] for c in columns] for row in rows])
    assert (values >= 0).all() and (values <= [c.maximum for c in columns]).all()
    assert 0.5 < (values == 0).mean() < 0.95 and values.max() > 0


def test_output_folder_must_be_new_or_empty(films):
    with pytest.raises(FileExistsError, match="not an empty folder"):
        synthesize(1, films)


def _window(part: str, changed: dict[str, int], joint: str, half: int = 9) -> tuple[float, float]:
    """Mean intensity around ``joint`` in a film of a healthy patient and of the same film with ``changed`` scores."""
    healthy = {c.column: 0 for c in ra2_dream_mapping().columns}
    means = []
    for row in (healthy, {**healthy, **changed}):
        pixels, landmarks = render(ra2_dream_mapping().part(part), row, np.random.default_rng(5))
        x, y = (round(v) for v in landmarks[joint])
        means.append(float(pixels[y - half:y + half + 1, x - half:x + half + 1].astype(float).mean()))
    return means[0], means[1]


@pytest.mark.parametrize("part, column, joint", [("LH", "LH_mcp_J__3", "left_hand_mcp3"),
                                                 ("RF", "RF_mtp_J__1", "right_foot_mtp1"),
                                                 ("RH", "RH_wrist_J__radcar", "right_hand_radiocarpal")])
def test_narrowing_closes_the_joint_space(part, column, joint):
    healthy, narrowed = _window(part, {column: 4}, joint, half=4)
    assert narrowed > healthy + 5


@pytest.mark.parametrize("part, column, joint", [("RH", "RH_mcp_E__2", "right_hand_mcp2"),
                                                 ("LF", "LF_mtp_E__5", "left_foot_mtp5"),
                                                 ("LH", "LH_wrist_E__lunate", "left_hand_lunate")])
def test_erosions_darken_the_joint(part, column, joint):
    maximum = next(c.maximum for c in ra2_dream_mapping().columns if c.column == column)
    healthy, eroded = _window(part, {column: maximum}, joint, half=16)
    assert eroded < healthy - 5


def test_landmarks_sit_on_the_drawn_joints(films):
    """Every landmark is inside its film, and bone (bright) lies close to it: the centres follow mirror and rotation."""
    for path in films.glob("SYN00001-*.json"):
        pixels = read_image(path.with_suffix(".jpg"))
        bone = np.percentile(pixels, 10) + 0.3  # well above the background and the soft tissue of any exposure
        for x, y in json.loads(path.read_text()).values():
            window = pixels[round(y) - 6:round(y) + 7, round(x) - 6:round(x) + 7]
            assert window.size and window.max() > bone, (path.name, x, y)


def test_cli_synth(tmp_path):
    result = CliRunner().invoke(main, ["imaging", "synth", "--patients", "2", "--out", str(tmp_path / "f"),
                                       "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert "wrote 2 patients (8 films)" in result.output
    assert read_folder(tmp_path / "f").scores.height == 2
    again = CliRunner().invoke(main, ["imaging", "synth", "--patients", "1", "--out", str(tmp_path / "f")])
    assert again.exit_code == 2 and "not an empty folder" in again.output
