"""Platt recalibration: a logistic map of held-out log-odds onto the labels, shared by every classifier here."""
from __future__ import annotations

import numpy as np

from rxpredict.metrics import calibration_slope_intercept

EPS = 1e-6


def platt_fit(p: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(intercept, slope) mapping held-out probabilities to calibrated ones; identity if it cannot be fitted
    (too few or one-class labels) or would reverse the order of the predictions."""
    try:
        slope, intercept = calibration_slope_intercept(np.asarray(y).astype(int), np.clip(p, EPS, 1 - EPS))
    except ValueError:
        return 0.0, 1.0
    return (intercept, slope) if slope > 0 else (0.0, 1.0)


def platt_apply(p: np.ndarray, intercept: float, slope: float) -> np.ndarray:
    """Calibrated probabilities of ``p`` (clipped into (0, 1) first)."""
    q = np.clip(p, EPS, 1 - EPS)
    return 1 / (1 + np.exp(-(intercept + slope * np.log(q / (1 - q)))))
