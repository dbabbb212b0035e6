"""The outcome thresholds agree with the cohort's own labels; the probabilities are coherent tails."""
from __future__ import annotations

import numpy as np
import polars as pl
import torch

from rxpredict.clinical import eular_response
from rxpredict.models.outcome import Thresholds, standard_scores


def test_thresholds_give_the_labels_the_cohort_reads_off_the_visits():
    grid = np.round(np.arange(1.0, 9.0, 0.05), 2)
    b, d = (a.ravel() for a in np.meshgrid(grid, np.round(np.arange(-2.0, 6.0, 0.05), 2)))
    d = d + 0.013  # off the table's ties (the cohort rounds; a normal never lands on one)
    frame = pl.DataFrame({"b": b, "f": b - d}).with_columns(eular_response("b", "f"))
    thresholds = Thresholds()(torch.from_numpy(b)).numpy()
    above = d[:, None] > thresholds
    assert np.array_equal(above[:, 0], (frame["eular_response"] != "none").to_numpy())
    assert np.array_equal(above[:, 1], (frame["eular_response"] == "good").to_numpy())
    assert np.array_equal(above[:, 2], (frame["f"] < 2.6).to_numpy())


def test_good_response_never_more_likely_than_response_and_tails_match_the_normal():
    baseline = torch.linspace(2.0, 8.5, 40, dtype=torch.float64)
    change = -torch.linspace(-1.0, 4.0, 7, dtype=torch.float64).repeat(40, 1)  # (rows, options)
    p = torch.special.ndtr(standard_scores(change, torch.full((7,), 0.9, dtype=torch.float64), Thresholds()(baseline)))
    assert p.shape == (40, 7, 3) and bool((p[..., 1] <= p[..., 0] + 1e-12).all())
    z = standard_scores(change[:, 0], torch.full((40,), 0.9, dtype=torch.float64), Thresholds()(baseline))
    assert torch.allclose(torch.special.ndtr(z), p[:, 0, :])
