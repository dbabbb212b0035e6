"""The background sample explanations are measured against: a fixed, seeded draw of training episodes."""
from __future__ import annotations

import numpy as np
import polars as pl

from rxpredict.exceptions import BundleError
from rxpredict.explain.target import network_inputs
from rxpredict.models.overlap import _check_fitted
from rxpredict.models.response import ResponseModel

#: Episodes in the default background sample: enough for stable base values, few enough to explain fast.
BACKGROUND_SIZE = 100


def draw_background(model: ResponseModel, cohort: pl.DataFrame, n: int = BACKGROUND_SIZE,
                    seed: int = 0) -> np.ndarray:
    """``n`` labelled episodes of the training ``cohort``, drawn with ``seed``, as the networks see them.

    Returns a float64 array (n, len(model.columns_) + 1) of standardised features
    and masks, and the baseline DAS28 the outcomes are measured from. Assign it to ``model.background_`` so that
    explanations, and a bundle saved from the model, use it.
    """
    _check_fitted(model, "networks_")
    labelled = cohort.filter(pl.col("therapy").is_not_null() & pl.col("response").is_not_null())
    if labelled.height == 0:
        raise ValueError("the cohort has no labelled episodes to draw an explanation background from")
    rows = np.sort(np.random.default_rng(seed).choice(labelled.height, size=min(n, labelled.height), replace=False))
    return network_inputs(model, labelled[rows])[0]


def resolve_background(model: ResponseModel, background: np.ndarray | None) -> np.ndarray:
    """``background`` if given, else the model's stored one; a clear error where there is neither."""
    if background is None:
        background = getattr(model, "background_", None)
    if background is None:
        raise BundleError("this model has no background sample for explanations (a bundle saved without one): pass "
                          "background=draw_background(model, training_cohort) or set model.background_ to it")
    background = np.asarray(background, dtype=np.float64)
    if background.ndim != 2 or background.shape[1] != len(model.columns_) + 1:
        raise ValueError(f"the background has shape {background.shape}; it needs {len(model.columns_) + 1} columns "
                         "(the model's features and masks, then the baseline DAS28)")
    return background
