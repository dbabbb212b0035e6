"""The scored-film overlay: a PNG of the film's size with each joint area coloured by its score."""
from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
from PIL import Image

from rxpredict.imaging.film import KINDS, FilmScore, JointScore
from rxpredict.imaging.layout import ra2_dream_mapping
from rxpredict.imaging.overlay import AMBER, GREEN, GREY, RED, overlay_png, score_colour


def film_of(suffix: str, shape: tuple[int, int], score=lambda i, kind, maximum: i % (maximum + 1)) -> FilmScore:
    """A FilmScore of every joint area of ``suffix``: centres on a grid inside the image, ``score(i, kind, max)``."""
    mapping = ra2_dream_mapping()
    maxima = {(c.joint, c.score): c.maximum for c in mapping.columns}
    joints = mapping.joints_of(suffix)
    rows, cols = shape
    per_row = 6
    found = []
    for i, joint in enumerate(joints):
        x = cols * (i % per_row + 1) / (per_row + 1)
        y = rows * (i // per_row + 1) / (len(joints) // per_row + 2)
        m = {k: maxima.get((joint, k)) for k in KINDS}
        s = {k: None if m[k] is None else score(i, k, m[k]) for k in KINDS}
        found.append(JointScore(joint, x, y, s["erosion"], s["jsn"],
                                None if s["erosion"] is None else float(s["erosion"]),
                                None if s["jsn"] is None else float(s["jsn"]), m["erosion"], m["jsn"]))
    return FilmScore(suffix, shape, tuple(found))


def test_score_colour_runs_green_amber_red_and_grey_for_unscored():
    assert score_colour(0, 5) == GREEN and score_colour(5, 5) == RED and score_colour(2, 4) == AMBER
    assert score_colour(None, 5) == GREY and score_colour(3, None) == GREY
    r, g, _ = score_colour(4, 5)
    assert r > g  # past amber, towards red


def test_overlay_is_a_png_of_the_film_with_max_red_and_zero_green():
    shape = (320, 256)
    image = np.full(shape, 0.4, dtype=np.float32)
    film = film_of("LH", shape, score=lambda i, kind, maximum: maximum if i == 0 else 0)
    png = overlay_png(image, film, kind="erosion")
    with Image.open(io.BytesIO(png)) as drawn:
        assert drawn.format == "PNG" and drawn.mode == "RGB" and drawn.size == (shape[1], shape[0])
        pixels = np.asarray(drawn).astype(int)
    first, second = film.joints[0], film.joints[1]
    r, g, b = pixels[round(first.y), round(first.x)]
    assert r > g + 40 and r > b + 40, (r, g, b)  # maximum: reddish
    r, g, b = pixels[round(second.y), round(second.x)]
    assert g > r + 20 and g > b + 20, (r, g, b)  # 0: greenish
    far = pixels[2, 2]
    assert far[0] == far[1] == far[2] == round(0.4 * 255)  # the film itself, untouched away from the areas


def test_areas_not_scored_for_the_kind_are_grey():
    shape = (200, 160)
    film = film_of("LH", shape)
    unscored = next(j for j in film.joints if j.jsn_max is None)
    pixels = np.asarray(Image.open(io.BytesIO(overlay_png(np.zeros(shape), film, kind="jsn")))).astype(int)
    r, g, b = pixels[round(unscored.y), round(unscored.x)]
    assert abs(r - g) < 8 and abs(g - b) < 8 and r > 40


def test_an_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="erosion"):
        overlay_png(np.zeros((10, 10)), film_of("LH", (10, 10)), kind="total")


def test_an_area_the_locator_was_unsure_of_gets_a_white_ring():
    shape = (320, 256)
    film = film_of("LH", shape)
    first = dataclasses.replace(film.joints[0], located=0.2)
    unsure = dataclasses.replace(film, joints=(first, *film.joints[1:]))
    plain, ringed = (np.asarray(Image.open(io.BytesIO(overlay_png(np.zeros(shape), f)))).astype(int)
                     for f in (film, unsure))
    changed = np.argwhere((plain != ringed).any(axis=-1))
    assert len(changed) and (np.abs(changed - [first.y, first.x]).max(axis=1) < 40).all()  # only around it
    assert ringed.max(axis=(0, 1)).min() == 255  # white drawn
