"""The numeric encodings the networks read: piecewise-linear fill and quantile bin numbers."""
from __future__ import annotations

import numpy as np

from rxpredict.models.encoding import PiecewiseLinearEncoder, QuantileBins


def test_piecewise_linear_fill_is_one_below_the_value_its_position_inside_and_zero_above():
    X = np.array([[0.0], [1.0], [2.0], [3.0], [4.0]])
    encoder = PiecewiseLinearEncoder(n_bins=4).fit(X)
    out = encoder.transform(np.array([[2.5], [np.nan]]))
    assert np.allclose(out[0], [1, 1, 0.5, 0, 0]) and np.allclose(out[1], [0, 0, 0, 0, 1])
    assert encoder.feature_of_.tolist() == [0] * 5


def test_quantile_bins_number_each_value_between_its_training_quantiles_and_missing_last():
    X = np.column_stack([np.arange(100.0), np.r_[np.zeros(50), np.ones(50)]])
    bins = QuantileBins(n_bins=4).fit(X)
    assert np.allclose(bins.edges_[0], [24.75, 49.5, 74.25])
    assert np.allclose(bins.edges_[1], [0.0, 0.5, 1.0])
    out = bins.transform(np.array([[-5.0, 0.0], [50.0, 1.0], [1e6, np.nan]]))
    assert out.dtype == np.float32
    assert out.tolist() == [[0, 1], [2, 3], [3, 4]]  # a value on an edge goes above it; missing is bin n_bins
