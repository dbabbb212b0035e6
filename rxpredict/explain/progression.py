"""SHAP values of the risk of rapid radiographic progression (``p_rrp``) per therapy option, per feature.

The progression model (rxpredict/survival/progression.py) is a Cox (or
Weibull AFT) model: for a fixed option its log cumulative hazard at the time
``p_rrp`` is read is linear in the standardised covariates, ``eta = a + w . z``,
and ``p_rrp = 1 - exp(-exp(eta))`` is one increasing function ``g`` of it.
For such a model (linear map, then one element-wise non-linearity) shap's
DeepExplainer computes DeepLIFT's rescale rule averaged over the background:
``phi_c = mean_b w_c (z_c - b_c) (g(eta) - g(eta_b)) / (eta - eta_b)``. This
module computes exactly that in numpy (a test checks it against shap's
DeepExplainer on the same function written as a torch module); it is exact
(the values add up to ``p_rrp - mean_b g(eta_b)`` by construction, checked
against the model's own ``predict_options``) and takes milliseconds.

A patient without a radiograph is scored by the submodel without imaging
covariates; the base value stays the background's mean under the full model,
and the difference between the two submodels' background means, the shift
caused by the missing radiograph, is credited to ``mask_imaging``, so the
values still add up and the imaging block reads as missing, not as no influence.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import shap

from rxpredict.exceptions import BundleError
from rxpredict.explain.background import BACKGROUND_SIZE
from rxpredict.explain.shapley import ADDITIVITY_TOLERANCE, AdditivityError, _option_index
from rxpredict.features import MASK_COLUMNS
from rxpredict.models.design import feature_matrix
from rxpredict.models.overlap import _check_fitted
from rxpredict.survival.data import progression_time_data
from rxpredict.survival.progression import TWO_YEARS, ProgressionModel

#: The blocks the progression model reads (no wearable covariates).
BLOCKS = ("clinical", "genetic", "imaging")
#: Explainable progression outputs.
PROGRESSION_OUTPUTS = ("p_rrp", "p_rrp_2y")


@dataclass(frozen=True)
class ProgressionFeatures:
    """The features of a progression explanation, laid out as a response model's (``columns_``, ``blocks_``),
    so that :func:`~rxpredict.explain.modality.by_modality` and :func:`~rxpredict.explain.reasons.top_reasons`
    read both."""

    columns_: list[str]
    blocks_: dict[str, list[str]]


def progression_features(model: ProgressionModel) -> ProgressionFeatures:
    """The model's covariates (features, then the three block masks), grouped by block."""
    _check_fitted(model, "time_models_")
    features = [c for c in model.design_.covariates_ if not c.startswith("mask_")]
    return ProgressionFeatures(columns_=features + [MASK_COLUMNS[b] for b in BLOCKS],
                               blocks_={b: [c for c in features if c.startswith(f"{b}_")] for b in BLOCKS})


def draw_progression_background(model: ProgressionModel, cohort: pl.DataFrame, n: int = BACKGROUND_SIZE,
                                seed: int = 0) -> np.ndarray:
    """``n`` training episodes with a time to progression, drawn with ``seed``, as standardised covariates.

    Returns (n, len(model.design_.covariates_)) z-scores; assign it to ``model.background_`` (a bundle saved
    from the model keeps it).
    """
    _check_fitted(model, "time_models_")
    rows = progression_time_data(cohort)
    if rows.height == 0:
        raise ValueError("the cohort has no episodes with a time to progression to draw a background from")
    picked = np.sort(np.random.default_rng(seed).choice(rows.height, size=min(n, rows.height), replace=False))
    return model.design_.standardise(rows[picked])


def _background(model: ProgressionModel) -> np.ndarray:
    background = getattr(model, "background_", None)
    if background is None:
        raise BundleError("this progression model has no background sample for explanations (a bundle saved "
                          "without one): set model.background_ = draw_progression_background(model, "
                          "training_cohort), or train the bundle again")
    if background.ndim != 2 or background.shape[1] != len(model.design_.covariates_):
        raise ValueError(f"the background has shape {background.shape}; it needs "
                         f"{len(model.design_.covariates_)} columns (the model's covariates)")
    return background


def _risk(model: ProgressionModel, pattern: str, Z: np.ndarray, option: str, days: float
          ) -> tuple[np.ndarray, np.ndarray]:
    """(P(progression by ``days``), log cumulative hazard) of z-score rows ``Z`` (full model's covariates)
    under ``option``, from the submodel of ``pattern``."""
    design, hazard = model.time_models_[pattern]
    columns = [model.design_.covariates_.index(c) for c in design.covariates_]
    therapy = np.full(len(Z), option, dtype=object)
    free = hazard.survival(design.expand(Z[:, columns], therapy), np.array([days]), design.stratum(therapy))[:, 0]
    return 1 - free, np.log(np.maximum(-np.log(free), 1e-300))


def _rescale(model: ProgressionModel, pattern: str, Z: np.ndarray, background: np.ndarray, option: str,
             days: float) -> tuple[np.ndarray, float]:
    """DeepLIFT's rescale values (rows, covariates) and the background's mean output, for ``pattern``.

    ``w`` (the log hazard's slope per covariate) is read off the submodel at the unit vectors; the rescale
    multiplier is the secant of ``g`` between patient and background episode (its slope ``H S`` where the two
    log hazards coincide).
    """
    d = Z.shape[1]
    _, at_units = _risk(model, pattern, np.vstack([np.zeros(d), np.eye(d)]), option, days)
    w = at_units[1:] - at_units[0]
    p, eta = _risk(model, pattern, Z, option, days)
    p_b, eta_b = _risk(model, pattern, background, option, days)
    gap = eta[:, None] - eta_b[None, :]
    slope = (-np.log1p(-p) * (1 - p))[:, None]  # dg/deta = H S
    close = np.abs(gap) < 1e-9
    multiplier = np.where(close, slope, (p[:, None] - p_b[None, :]) / np.where(close, 1.0, gap))
    values = w * (Z * multiplier.mean(axis=1, keepdims=True) - multiplier @ background / len(background))
    return values, float(p_b.mean())


def _option_values(model: ProgressionModel, Z: np.ndarray, imaged: np.ndarray, background: np.ndarray,
                   option: str, days: float, layout: ProgressionFeatures) -> tuple[np.ndarray, float]:
    """(values over ``layout.columns_``, base value) of one option for every row."""
    values = np.zeros((len(Z), len(layout.columns_)))
    position = [layout.columns_.index(c) for c in model.design_.covariates_]
    base = {}
    for pattern, rows_of in (("with_imaging", imaged), ("without_imaging", ~imaged)):
        values[np.ix_(rows_of, position)], base[pattern] = _rescale(model, pattern, Z[rows_of], background, option,
                                                                     days)
    values[~imaged, layout.columns_.index(MASK_COLUMNS["imaging"])] += base["without_imaging"] - base["with_imaging"]
    return values, base["with_imaging"]


def explain_progression(model: ProgressionModel, rows: pl.DataFrame, therapy: str, versus: str | None = None,
                        output: str = "p_rrp") -> shap.Explanation:
    """SHAP values of ``output`` under ``therapy`` (or of ``output(therapy) - output(versus)``) for each row.

    ``output``: "p_rrp" (rapid progression by the first follow-up radiograph,
    as ``predict_options`` gives it) or "p_rrp_2y". Features are
    :func:`progression_features`' ``columns_`` (raw values in ``data``, NaN where
    missing); base + sum(values) equals the model's output within
    :data:`~rxpredict.explain.shapley.ADDITIVITY_TOLERANCE`, checked.
    """
    if output not in PROGRESSION_OUTPUTS:
        raise ValueError(f"output {output!r} cannot be explained; choose one of {', '.join(PROGRESSION_OUTPUTS)}")
    for name, option in (("therapy", therapy), ("versus", versus)):
        if option is not None:
            _option_index(model, option, name)
    if therapy == versus:
        raise ValueError(f"therapy and versus are the same option ({therapy}): nothing to contrast")
    if rows.height == 0:
        raise ValueError("no rows to explain")
    layout = progression_features(model)
    background = _background(model)
    days = model.first_exam_days_ if output == "p_rrp" else float(TWO_YEARS)
    Z, imaged = model.design_.standardise(rows), model.has_imaging(rows)
    values, base = _option_values(model, Z, imaged, background, therapy, days, layout)
    if versus is not None:
        minus, minus_base = _option_values(model, Z, imaged, background, versus, days, layout)
        values, base = values - minus, base - minus_base
    predicted = model.predict_options(rows)[output].to_numpy().reshape(rows.height, len(model.options_))
    truth = predicted[:, model.options_.index(therapy)]
    if versus is not None:
        truth = truth - predicted[:, model.options_.index(versus)]
    error = np.abs(base + values.sum(axis=1) - truth).max()
    if error > ADDITIVITY_TOLERANCE:
        raise AdditivityError(f"SHAP values miss the model's {output} by {error:.2g} (tolerance "
                              f"{ADDITIVITY_TOLERANCE:g}): the log hazard is not linear in the covariates")
    data = feature_matrix(rows, layout.columns_)
    data[:, layout.columns_.index(MASK_COLUMNS["imaging"])] = imaged
    return shap.Explanation(values=values, base_values=np.full(rows.height, base), data=data,
                            feature_names=list(layout.columns_))
