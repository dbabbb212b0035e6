"""The radiograph scorer end to end on tiny synthetic films, its networks' guarantees, and its bundle."""
from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
import torch

from rxpredict.bundle import write_bundle
from rxpredict.exceptions import BundleError, ImagingDataError
from rxpredict.imaging.augment import Pose, move_points, random_affine, warp
from rxpredict.imaging.film import FilmScore, JointScore, imaging_rows
from rxpredict.imaging.geometry import place
from rxpredict.imaging.layout import ra2_dream_mapping, read_folder, read_image
from rxpredict.imaging.networks import CropScorer, decode_heatmaps, expected_scores, heatmap_target, ordinal_loss
from rxpredict.imaging.persist import load_scorer, save_scorer
from rxpredict.imaging.scorer import RadiographScorer, area_maxima, areas, region_areas
from rxpredict.schemas import load_contract
from tests.imaging_support import TINY, tiny_films, tiny_scorer

@pytest.fixture(scope="module")
def films(tmp_path_factory):
    return tiny_films(tmp_path_factory.mktemp("films"), seed=3)


@pytest.fixture(scope="module")
def scorer(films):
    return tiny_scorer(films)


def test_folder_scores_have_the_training_columns_and_stay_in_range(films, scorer):
    table, scored = scorer.score_folder(read_folder(films))
    mapping = ra2_dream_mapping()
    assert table.columns == mapping.csv_columns and table.height == 4
    for c in mapping.columns:
        assert table[c.column].is_between(0, c.maximum).all(), c.column
    for total, kinds in mapping.totals.items():
        parts = sum(table[c.column] for c in mapping.columns if c.score in kinds)
        assert (table[total] == parts).all()
    expected, _ = scorer.score_folder(read_folder(films), expected=True)
    assert expected.columns == mapping.csv_columns and expected["LH_mcp_E__2"].dtype == pl.Float64
    assert ((expected.drop("Patient_ID") - table.drop("Patient_ID").cast(pl.Float64)).select(
        pl.all().abs().max()).row(0)[3:] <= (0.506,) * 86)       # whole scores are the nearest ones
    film = scored["SYN00001"]["LH"]
    assert {j.joint for j in film.joints} == set(mapping.joints_of("LH"))
    assert all(0 <= j.x < 128 and 0 <= j.y < 160 for j in film.joints)


@pytest.mark.parametrize("shape", [(64, 64), (300, 90), (700, 520), (160, 128)])
@pytest.mark.parametrize("suffix", ["LH", "RF"])
def test_any_film_scores_within_each_areas_maxima(scorer, shape, suffix):
    image = np.random.default_rng(sum(shape)).random(shape, dtype=np.float32)
    film = scorer.score_film(image, suffix)
    for j in film.joints:
        for kind in ("erosion", "jsn"):
            top, score, expected = getattr(j, f"{kind}_max"), j.score(kind), getattr(j, f"{kind}_expected")
            if top is None:
                assert score is None and expected is None
            else:
                assert 0 <= score <= top and 0 <= expected <= top
    assert film.shape == shape


def test_bundle_round_trip_scores_alike(films, scorer, tmp_path):
    save_scorer(scorer, tmp_path / "model", metrics={"rmse_total": 1.5})
    tensors = torch.load(tmp_path / "model" / "weights.pt", weights_only=True)
    assert all(isinstance(t, torch.Tensor) for t in tensors.values())
    again = load_scorer(tmp_path / "model")
    image = read_image(films / "SYN00002-RH.jpg")
    assert again.score_film(image, "RH") == scorer.score_film(image, "RH")
    assert "rmse_total: 1.5" in (tmp_path / "model" / "MODEL_CARD.md").read_text()


def test_a_changed_or_foreign_bundle_is_refused(scorer, tmp_path):
    save_scorer(scorer, tmp_path / "model")
    with (tmp_path / "model" / "weights.pt").open("ab") as f:
        f.write(b"\0")
    with pytest.raises(BundleError, match="weights.pt was changed"):
        load_scorer(tmp_path / "model")
    config = {"kind": "flare_risk", "schema_version": load_contract().version}
    write_bundle(tmp_path / "other", {"config.json": lambda p: p.write_text(json.dumps(config))})
    with pytest.raises(BundleError, match="not a radiograph scorer"):
        load_scorer(tmp_path / "other")


def test_films_without_landmarks_need_a_locator(films, scorer, tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    for path in films.iterdir():
        if path.suffix != ".json":
            (bare / path.name).write_bytes(path.read_bytes())
    with pytest.raises(ImagingDataError, match="no hand film has a landmark file"):
        tiny_scorer(bare)
    refit = RadiographScorer(**TINY).fit(read_folder(bare), locator=scorer)
    assert refit.locators_["hand"] is scorer.locators_["hand"]
    assert refit.training_["films_with_landmark_files"] == {"hand": 0, "foot": 0}
    with pytest.raises(ValueError, match="another canvas_size"):
        RadiographScorer(**TINY | {"canvas_size": (256, 320)}).fit(read_folder(bare), locator=scorer)


def test_seeded_fits_agree(films):
    a, b = tiny_scorer(films, seed=5), tiny_scorer(films, seed=5)
    image = read_image(films / "SYN00003-LF.jpg")
    assert a.score_film(image, "LF") == b.score_film(image, "LF")


# --- networks --------------------------------------------------------------------------------------------------------


def test_ordinal_outputs_never_pass_an_areas_maximum():
    maxima = torch.from_numpy(area_maxima())
    net = CropScorer(maxima, width=4).eval()
    with torch.no_grad():
        net.head[-1].bias.fill_(50.0)                        # as damaged as it can say
        area = torch.arange(len(maxima))
        logits = net(torch.rand(len(maxima), 1, 16, 16), area, torch.zeros(len(maxima), dtype=torch.long))
    expected = expected_scores(logits)
    assert torch.allclose(expected, maxima.float(), atol=1e-3)
    thresholds = net.thresholds()
    assert (thresholds.diff(dim=-1) > 0).all()


def test_ordinal_loss_ignores_unscored_kinds():
    logits = torch.tensor([[[0.0, 1.0, float("-inf")], [2.0, float("-inf"), float("-inf")]]])
    with_unscored = ordinal_loss(logits, torch.tensor([[1, -1]]))
    alone = torch.nn.functional.binary_cross_entropy_with_logits(torch.tensor([0.0, 1.0]), torch.tensor([1.0, 0.0]))
    assert torch.isclose(with_unscored, alone)


def test_heat_maps_decode_below_one_cell():
    point = torch.tensor([[[0.237, -0.412]]])
    target = heatmap_target(point, 40, 32, sigma=1.0)
    found, mass = decode_heatmaps(torch.log(target + 1e-12))
    cell = 2 / 32
    assert (found - point).abs().max() < 0.2 * cell and mass.item() > 0.9


def test_points_move_with_their_warped_film():
    image = torch.zeros(1, 1, 80, 64)
    image[0, 0, 30, 20] = 1.0                                 # a bright pixel at x=20, y=30
    point = torch.tensor([[[(2 * 20 + 1) / 64 - 1, (2 * 30 + 1) / 80 - 1]]])
    torch.manual_seed(0)
    theta = random_affine(1, Pose(rotation=20, scale=0.1, shift=0.1), (64, 80))
    moved = move_points(point, theta)[0, 0]
    warped = warp(image, theta)[0, 0]
    y, x = divmod(int(warped.argmax()), 64)
    assert abs(((moved[0] + 1) * 64 - 1) / 2 - x) <= 1 and abs(((moved[1] + 1) * 80 - 1) / 2 - y) <= 1


@pytest.mark.parametrize("mirror", [False, True])
def test_placement_maps_points_there_and_back(mirror):
    canvas, placement = place(np.zeros((300, 200), dtype=np.float32), (128, 160), mirror)
    points = np.array([[0.0, 0.0], [199.0, 299.0], [57.5, 12.25]])
    assert canvas.shape == (160, 128)
    np.testing.assert_allclose(placement.to_film(placement.to_canvas(points)), points, atol=1e-9)


def test_vocabulary_covers_both_regions():
    assert region_areas("hand") + region_areas("foot") == areas()
    assert len(region_areas("hand")) == 22 and len(region_areas("foot")) == 6


# --- imaging rows ---------------------------------------------------------------------------------------------------


def test_reader_corrections_are_kept_as_reader_rows(films, scorer):
    film = scorer.score_film(read_image(films / "SYN00001-LH.jpg"), "LH")
    mcp2 = next(j for j in film.joints if j.joint == "left_hand_mcp2")
    corrections = {"left_hand_mcp2": {"erosion": (mcp2.erosion + 1) % 6}, "left_hand_mcp3": {}}
    rows = imaging_rows([film], patient_id="P1", exam_date=np.datetime64("2026-01-02").item(),
                        corrections=corrections)
    by_joint = {r["joint"]: r for r in rows}
    assert len(rows) == 22
    assert by_joint["left_hand_mcp2"]["source"] == "reader"
    assert by_joint["left_hand_mcp2"]["erosion"] == (mcp2.erosion + 1) % 6
    assert {r["source"] for j, r in by_joint.items() if j != "left_hand_mcp2"} == {"model"}


def test_ordinal_loss_weights_each_crop():
    logits = torch.tensor([[[0.5, -1.0]], [[1.5, 0.2]]])
    scores = torch.tensor([[1], [2]])
    each = [ordinal_loss(logits[i:i + 1], scores[i:i + 1]) for i in range(2)]
    weighted = ordinal_loss(logits, scores, torch.tensor([0.5, 1.0]))
    assert torch.isclose(weighted, (0.5 * each[0] + each[1]) / 2)


def test_the_locator_says_how_sure_it_is_of_each_place(films, scorer):
    film = scorer.score_film(read_image(films / "SYN00001-RH.jpg"), "RH")
    assert all(0 <= j.located <= 1 for j in film.joints)
    assert film.unsure() == [j.joint for j in film.joints if j.located < 0.5]
    sure = JointScore("right_hand_mcp2", 1, 1, 0, 0, 0.0, 0.0, 5, 4, located=0.95)
    unsure = JointScore("right_hand_mcp3", 1, 1, 0, 0, 0.0, 0.0, 5, 4, located=0.2)
    assert not sure.unsure and unsure.unsure
    assert FilmScore("RH", (10, 10), (sure, unsure)).unsure() == ["right_hand_mcp3"]
