"""SHAP values summed per data source (clinical, genetic, imaging, wearable), each block's mask counted in it."""
from __future__ import annotations

from typing import Protocol

import numpy as np
import polars as pl
import shap

from rxpredict.features import MASK_COLUMNS


class FeatureLayout(Protocol):
    """What explanations are laid out by: a fitted ResponseModel, or a progression model's
    :class:`~rxpredict.explain.progression.ProgressionFeatures`. ``columns_`` holds every block's mask."""

    columns_: list[str]
    blocks_: dict[str, list[str]]


def block_columns(model: FeatureLayout) -> dict[str, list[int]]:
    """Block -> positions in ``model.columns_`` of its features and its mask column."""
    position = {c: i for i, c in enumerate(model.columns_)}
    return {block: [position[c] for c in [*cols, MASK_COLUMNS[block]]] for block, cols in model.blocks_.items()}


def recorded(explanation: shap.Explanation, model: FeatureLayout) -> np.ndarray:
    """Per row and column, whether the value was recorded: a non-missing feature, or the mask of a present block."""
    data = np.atleast_2d(explanation.data).astype(float)
    seen = ~np.isnan(data)
    masks = [model.columns_.index(MASK_COLUMNS[block]) for block in model.blocks_]
    seen[:, masks] = data[:, masks] == 1
    return seen


def by_modality(explanation: shap.Explanation, model: FeatureLayout) -> pl.DataFrame:
    """One row per (explained row, block): how far the block's data moved the prediction.

    Columns: ``row`` (position in the explanation), ``block``, ``missing``
    (the block's mask is 0: no data of this source for the patient), ``shap``
    (sum of the SHAP values of the block's recorded features, the mask of a
    present block included; null where nothing of the block was recorded:
    there is no data whose influence it could be, which is not the same as no
    influence) and ``absent_effect`` (sum over what was not recorded, the mask
    of a missing block included: the shift the *absence* caused relative to the
    background; null where everything was recorded). ``shap`` and
    ``absent_effect`` together add up to the row's total. The clinical mask
    marks the baseline visit; demographics and history are recorded without it.
    """
    values = np.atleast_2d(explanation.values)
    if list(explanation.feature_names) != list(model.columns_):
        raise ValueError(f"the explanation's {values.shape[1]} features are not the model's {len(model.columns_)}: "
                         "explain with this model")
    seen = recorded(explanation, model)
    data = np.atleast_2d(explanation.data).astype(float)
    frames = []
    for block, cols in block_columns(model).items():
        v, s = values[:, cols], seen[:, cols]
        frames.append(pl.DataFrame({
            "row": np.arange(len(values)), "block": block,
            "missing": np.nan_to_num(data[:, cols[-1]], nan=0.0) == 0,
            "shap": np.where(s.any(axis=1), (v * s).sum(axis=1), np.nan),
            "absent_effect": np.where((~s).any(axis=1), (v * ~s).sum(axis=1), np.nan),
        }).with_columns(pl.col("shap", "absent_effect").fill_nan(None)))
    return pl.concat(frames).sort("row", maintain_order=True)
