"""Piecewise-linear encoding of numeric features, so that a network reads thresholds as easily as trees do.

Each feature is cut at its training quantiles into up to ``n_bins`` bins;
a value becomes one number per bin: 1 for bins wholly below it, its position
inside the bin it falls in, 0 above (Gorishniy et al., "On embeddings for
numerical features in tabular deep learning", NeurIPS 2022), plus a missing
indicator. A linear layer on top is then any piecewise-linear function of the
feature: "no flares in the first 30 weeks of a course", a step in days since
the last visit, a U-shape, none of which a linear layer on a z-score can say.
Heavy tails and outliers saturate instead of dominating.
"""
from __future__ import annotations

import numpy as np


def column_quantiles(X: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """(n_features, len(levels)): each column's distinct quantiles at ``levels`` over its observed values,
    NaN-padded (all NaN for a column with none)."""
    X = np.asarray(X, dtype=float)
    out = np.full((X.shape[1], len(levels)), np.nan)
    for j in range(X.shape[1]):
        seen = X[:, j][~np.isnan(X[:, j])]
        if seen.size:
            edges = np.unique(np.quantile(seen, levels))
            out[j, :edges.size] = edges
    return out


class PiecewiseLinearEncoder:
    """Fit quantile bin edges per column; ``transform`` gives the bins' fill plus a missing flag per column.

    Parameters
    ----------
    n_bins : bins per feature at most (fewer where the feature has fewer distinct quantiles)

    Attributes
    ----------
    edges_ : array (n_features, n_bins + 1), bin edges per feature, NaN-padded
    feature_of_ : array (n_outputs,), the input column each output column encodes
    """

    def __init__(self, n_bins: int = 16) -> None:
        self.n_bins = n_bins

    def fit(self, X: np.ndarray) -> "PiecewiseLinearEncoder":
        edges = column_quantiles(X, np.linspace(0, 1, self.n_bins + 1))
        edges[np.isnan(edges[:, 0]), 0] = 0.0  # a column never seen: one edge, so only its missing flag
        return self.set_edges(edges)

    def set_edges(self, edges: np.ndarray) -> "PiecewiseLinearEncoder":
        """Use these bin edges (as fitted, or read back from a saved model)."""
        self.edges_ = np.asarray(edges, dtype=float)
        widths = [int((~np.isnan(e)).sum()) for e in self.edges_]  # bins + the missing flag
        self.feature_of_ = np.repeat(np.arange(len(self.edges_)), widths)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """(n, n_outputs) float32: per feature its bins' fill (0 where missing), then 1 where missing."""
        X = np.asarray(X, dtype=float)
        out = []
        for j, row in enumerate(self.edges_):
            edges = row[~np.isnan(row)]
            x = X[:, j]
            missing = np.isnan(x)
            if edges.size > 1:
                lo, hi = edges[:-1], edges[1:]
                fill = np.clip((np.nan_to_num(x, nan=edges[0])[:, None] - lo) / (hi - lo), 0.0, 1.0)
                out.append(np.where(missing[:, None], 0.0, fill))
            out.append(missing[:, None].astype(float))
        return np.hstack(out).astype(np.float32)


class QuantileBins:
    """Each column's bin number between its interior training quantiles (``n_bins`` at most), ``n_bins`` where missing.

    The index a lookup table per column reads: a piecewise-constant effect
    with a step wherever the data puts one, as a boosted tree's splits do.

    Attributes
    ----------
    edges_ : array (n_features, n_bins - 1), interior quantiles per feature, NaN-padded
    """

    def __init__(self, n_bins: int = 64) -> None:
        self.n_bins = n_bins

    def fit(self, X: np.ndarray) -> "QuantileBins":
        self.edges_ = column_quantiles(X, np.linspace(0, 1, self.n_bins + 1)[1:-1])
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """(n, n_features) float32 bin numbers (a float array, to travel beside the encoded columns)."""
        X = np.asarray(X, dtype=float)
        out = np.empty(X.shape, dtype=np.float32)
        for j, row in enumerate(self.edges_):
            x = X[:, j]
            out[:, j] = np.where(np.isnan(x), self.n_bins,
                                 np.searchsorted(row[~np.isnan(row)], np.nan_to_num(x), side="right"))
        return out
