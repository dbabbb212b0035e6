"""How well a fitted scorer reads scored films: the headline figures and a table per joint area.

Used on the patients held out of training (``rxpredict imaging train`` keeps
the figures in the bundle) and on a separate test folder (the benchmark).
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import polars as pl

from rxpredict.exceptions import ImagingDataError
from rxpredict.imaging import metrics
from rxpredict.imaging.layout import Ra2DreamFolder
from rxpredict.imaging.scorer import RadiographScorer


def evaluate(scorer: RadiographScorer, folder: Ra2DreamFolder, patients: Iterable[str] | None = None, *,
             expected: bool = False) -> tuple[dict[str, Any], pl.DataFrame]:
    """Score ``folder`` (or only ``patients`` of it) and compare with its score CSV and landmark files.

    Returns :func:`metrics.summary` (landmark figures where the films have
    landmark files) and, per joint area and kind, RMSE, SD, RMSE/SD, ICC and
    SDD: of the whole scores, or with ``expected`` of the expected ones.
    """
    if patients is not None:
        folder = folder.only(patients)
    if folder.scores is None or folder.scores.height == 0:
        raise ImagingDataError([f"{folder.folder}: no scored patients to evaluate on"])
    predicted, films = scorer.score_folder(folder, expected=expected)
    id_column = predicted.columns[0]
    truth = folder.scores.filter(pl.col(id_column).is_in(predicted[id_column].to_list()))
    marks = folder.landmarks_by_film()
    found = {key: {j.joint: (j.x, j.y) for j in films[key[0]][key[1]].joints} for key in marks}
    figures = metrics.summary(truth, predicted, marks or None, found if marks else None)
    areas = metrics.per_joint(truth, predicted, by="area").join(
        metrics.agreement_by_area(truth, predicted), on=["area", "kind"], how="left")
    return figures, areas
