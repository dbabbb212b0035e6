"""What the scorer says of one film: where each joint area is and its erosion and JSN scores.

A :class:`FilmScore` is the scorer's answer for one hand or foot image, in
the image's own pixels, whatever resolution the networks worked at. It turns
into the contract's imaging rows (``source = model``), and a reader's
corrections turn the corrected areas' rows into ``source = reader``.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from rxpredict.imaging.layout import ra2_dream_mapping

#: The two scores of a joint area, as in the imaging table.
KINDS = ("erosion", "jsn")
#: Below this share of its heat map near the centre found, the locator was unsure where the area is.
UNSURE_BELOW = 0.5


@dataclass(frozen=True)
class JointScore:
    """One joint area on a film: its centre (x, y in the image's pixels) and its scores.

    ``erosion``/``jsn`` are whole scores within the area's maximum, or None
    where the area is not scored for that kind; ``*_expected`` are the
    model's expected (mean) scores, for display and for totals with decimals.
    ``located`` is the share of the locator's heat map within two cells of
    the centre (0..1; None when not known): on films like the training
    films it is above 0.9, on anything else far lower.
    """

    joint: str
    x: float
    y: float
    erosion: int | None
    jsn: int | None
    erosion_expected: float | None
    jsn_expected: float | None
    erosion_max: int | None
    jsn_max: int | None
    located: float | None = None

    def score(self, kind: str) -> int | None:
        return getattr(self, kind)

    @property
    def unsure(self) -> bool:
        """Whether the locator was unsure where this area is (a reader should check its place on the film)."""
        return self.located is not None and self.located < UNSURE_BELOW


@dataclass(frozen=True)
class FilmScore:
    """The scored joint areas of one film (``suffix`` LH, RH, LF or RF) of ``shape`` (rows, columns)."""

    suffix: str
    shape: tuple[int, int]
    joints: tuple[JointScore, ...]

    def unsure(self) -> list[str]:
        """The joint areas whose place the locator was unsure of."""
        return [j.joint for j in self.joints if j.unsure]

    def total(self, kind: str) -> int:
        """The film's erosion or JSN total."""
        return sum(j.score(kind) or 0 for j in self.joints)

    def columns(self, expected: bool = False) -> dict[str, float]:
        """This film's RA2-DREAM score columns (``LH_mcp_E__2`` -> score): whole scores, or the expected ones."""
        by_area = {(j.joint, kind): getattr(j, f"{kind}_expected") if expected else j.score(kind)
                   for j in self.joints for kind in KINDS}
        part = ra2_dream_mapping().part(self.suffix)
        prefix = f"{part.side}_{part.region}_"
        return {c.column: by_area[(c.joint, c.score)] for c in ra2_dream_mapping().columns
                if c.joint.startswith(prefix)}


def imaging_rows(films: Iterable[FilmScore], *, patient_id: str, exam_date: dt.date,
                 corrections: Mapping[str, Mapping[str, int | None]] | None = None) -> list[dict[str, Any]]:
    """The imaging-table rows of a patient's scored films, one per joint area.

    ``corrections`` maps a joint area to the scores a reader set
    (``{"left_hand_mcp2": {"erosion": 2}}``); an area whose corrected score
    differs from the model's is kept with ``source = reader``, every other
    area with ``source = model``.
    """
    corrections = corrections or {}
    rows = []
    for film in films:
        for j in film.joints:
            changed = {k: v for k, v in corrections.get(j.joint, {}).items() if k in KINDS and v != j.score(k)}
            scores = {k: changed.get(k, j.score(k)) for k in KINDS}
            rows.append({"patient_id": patient_id, "exam_date": exam_date, "joint": j.joint, **scores,
                         "source": "reader" if changed else "model"})
    return rows
