"""From a cohort frame to the numbers a model sees: feature columns by block, their masks, in a fixed order."""
from __future__ import annotations

import numpy as np
import polars as pl

from rxpredict.features import FEATURE_BLOCKS, MASK_COLUMNS, feature_columns


def model_columns(frame: pl.DataFrame | pl.LazyFrame) -> list[str]:
    """Every block's feature columns followed by the block masks, in block order: what a model is fitted on."""
    blocks = feature_columns(frame)
    names = frame.collect_schema().names()
    return [c for b in FEATURE_BLOCKS for c in blocks.get(b, [])] + [MASK_COLUMNS[b] for b in FEATURE_BLOCKS
                                                                    if MASK_COLUMNS[b] in names]


def feature_matrix(frame: pl.DataFrame, columns: list[str]) -> np.ndarray:
    """``frame[columns]`` as float64 with NaN for missing; a column the frame lacks is all NaN, a mask it lacks 0.

    Scoring passes the training columns, so a registry without, say, a
    genetic marker still gives the matrix the model expects; an absent
    ``mask_*`` column means the modality is absent, exactly as a stored 0 does.
    """
    present = set(frame.columns)

    def absent(c: str) -> pl.Expr:
        return pl.lit(0.0 if c.startswith("mask_") else None, dtype=pl.Float64).alias(c)

    return frame.select(pl.col(c).cast(pl.Float64) if c in present else absent(c) for c in columns).to_numpy().astype(float)


def observed_moments(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column mean and SD over the observed (non-NaN) values; an SD of 0 or an empty column gives 1.

    Whole modalities are missing for most patients, so statistics over imputed values would make the
    patients who have them look extreme.
    """
    observed = ~np.isnan(X)
    count = np.maximum(observed.sum(axis=0), 1)
    mean = np.where(observed, X, 0).sum(axis=0) / count
    spread = np.sqrt(np.where(observed, (X - mean) ** 2, 0).sum(axis=0) / count)
    return mean, np.where(spread > 0, spread, 1.0)
