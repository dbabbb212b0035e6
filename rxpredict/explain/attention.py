"""TabNet's own attention-based importance of the clinical block's features, for a model with ``encoder="tabnet"``.

At each decision step TabNet attends to the features through a sparse mask
(sparsemax rows that sum to 1). As in pytorch-tabnet's ``explain`` and
``feature_importances_`` (Arik & Pfister 2021), a row's importance
is the sum over steps of the step's mask weighted by the size of its decision
output (the sum of its ReLU outputs), normalised to sum to 1 per row; here it
is averaged over the ensemble members and the rows. This is what the
encoder looks at, not how the prediction moves (SHAP values say that), and it
covers the clinical block only: the other blocks and the wide part have no
attention.

A row without a baseline visit (clinical mask 0) has its clinical embedding
zeroed, and a row whose steps all output 0 has none: the encoder speaks for
neither, so their attention is NaN and left out of the means.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import torch
from pytorch_tabnet.tab_network import TabNetEncoder

from rxpredict.explain.reasons import feature_label
from rxpredict.figures import agg_figure, png_bytes
from rxpredict.models.network import TabNetBlockEncoder
from rxpredict.models.overlap import _check_fitted
from rxpredict.models.response import ResponseModel


def _tabnet_encoders(model: ResponseModel) -> list[TabNetEncoder]:
    """Each member's TabNet encoder of the first (clinical) block; a ValueError for a model without one."""
    _check_fitted(model, "networks_")
    encoders = [net.encoders[0] for net in model.networks_]
    if not all(isinstance(e, TabNetBlockEncoder) for e in encoders):
        raise ValueError("attention masks exist only for a model with encoder='tabnet'; this model encodes the "
                         "clinical block with an MLP (explain it with explain_options)")
    return [e.net for e in encoders]


def _attention(model: ResponseModel, rows: pl.DataFrame) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(the encoder's input columns, importance (members, rows, inputs), masks (members, steps, rows, inputs)).

    Importance rows sum to 1, mask rows too (each step's sparsemax); both are NaN where the member's
    encoder gives the row no embedding.
    """
    encoders = _tabnet_encoders(model)
    if rows.height == 0:
        raise ValueError("no rows to explain")
    blocks, masks, _, _ = model._tensors(rows)
    x = torch.cat([blocks[0], masks[:, :1]], dim=1)
    importance, steps = [], []
    with torch.no_grad():
        for encoder in encoders:
            explained, by_step = encoder.forward_masks(x)
            weight = explained.numpy().astype(np.float64) * masks[:, :1].numpy()
            total = weight.sum(axis=1, keepdims=True)
            spoken = total > 0
            importance.append(np.where(spoken, weight / np.where(spoken, total, 1.0), np.nan))
            steps.append(np.where(spoken, np.stack([m.numpy() for m in by_step.values()]), np.nan))
    columns = [model.columns_[i] for i in np.r_[model._block_index[0], model._mask_index[0]]]
    return columns, np.stack(importance), np.stack(steps)


def tabnet_attention(model: ResponseModel, rows: pl.DataFrame) -> pl.DataFrame:
    """TabNet's attention importance over ``rows`` (cohort rows), one row per input of the clinical encoder.

    Columns: ``rank``, ``feature`` (the clinical block's columns, then its mask), ``title``,
    ``importance`` (the mean over members and rows of each row's normalised importance: non-negative,
    summing to 1), and ``step_1`` ... ``step_n``, the mean attention mask of each decision step (each
    summing to 1); largest importance first. A ValueError for a model without a TabNet encoder, or rows
    for none of which the encoder gives an embedding.
    """
    columns, importance, masks = _attention(model, rows)
    if np.isnan(importance).all():
        raise ValueError("no row has a clinical embedding (a baseline visit): TabNet's attention covers none")
    mean = np.nanmean(importance.reshape(-1, len(columns)), axis=0)  # over every (member, row) with an embedding
    step = np.nanmean(np.moveaxis(masks, 1, 0).reshape(masks.shape[1], -1, len(columns)), axis=1)
    return (pl.DataFrame({"feature": columns, "title": [feature_label(c)[0] for c in columns], "importance": mean,
                          **{f"step_{k + 1}": m for k, m in enumerate(step)}})
            .sort("importance", descending=True)
            .with_row_index("rank", offset=1))


def save_attention_plot(model: ResponseModel, rows: pl.DataFrame, path: str | Path) -> Path:
    """Draw :func:`tabnet_attention` as PNG: the mean mask per step and feature as a heat map, the importance as bars.

    Features are labelled with their data-dictionary titles, most important at the top.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"{path.name}: plots are written as PNG, give a .png file")
    attention = tabnet_attention(model, rows)
    steps = [c for c in attention.columns if c.startswith("step_")]
    figure = agg_figure((10, 1.5 + 0.28 * attention.height))
    heat, bars = figure.subplots(1, 2, sharey=True, width_ratios=[max(2, len(steps)), 3])
    image = heat.imshow(attention.select(steps).to_numpy(), aspect="auto", cmap="viridis")
    heat.set_xticks(range(len(steps)), [s.replace("_", " ") for s in steps])
    heat.set_yticks(range(attention.height), attention["title"].to_list())
    heat.set_title("Mean attention mask")
    figure.colorbar(image, ax=heat, location="bottom", shrink=0.8, label="share of the step's attention")
    bars.barh(range(attention.height), attention["importance"].to_numpy())
    bars.set_xlabel("importance (share of attention)")
    bars.set_title("TabNet attention, clinical block")
    path.write_bytes(png_bytes(figure))
    return path
