"""SHAP values of one therapy option's prediction, or of the difference between two options', per feature.

The explainer is shap's DeepExplainer on :class:`~rxpredict.explain.target.ExplainedOutput`
(docs/explanations.md says why): exact additivity, and one backward pass per
patient and background episode, so a patient takes milliseconds. The explained
scale is the ensemble-mean probability *before* Platt calibration, in [0, 1];
the calibrated probability ``predict_options`` shows is a monotone function of
it, so signs and rankings carry over.
"""
from __future__ import annotations

import warnings

import numpy as np
import polars as pl
import shap
import torch

from rxpredict.explain.background import resolve_background
from rxpredict.explain.target import ExplainedOutput, model_output, network_inputs
from rxpredict.models.overlap import _check_fitted
from rxpredict.models.response import ResponseModel

#: Largest allowed |base + sum(values) - model output| on the explained scale.
ADDITIVITY_TOLERANCE = 1e-4


class AdditivityError(RuntimeError):
    """SHAP values that do not add up to the model's output: a bug, never a property of the data."""


def _option_index(model: ResponseModel, option: str, name: str) -> int:
    if option not in model.options_:
        raise ValueError(f"{name} {option!r} is not an option of this model ({', '.join(model.options_)})")
    return model.options_.index(option)


def _explain(model: ResponseModel, rows: pl.DataFrame, option: str, versus: str | None, output: str,
             background: np.ndarray | None) -> shap.Explanation:
    """SHAP values of output(option) - output(versus) for each row, checked for additivity."""
    _check_fitted(model, "networks_")
    if rows.height == 0:
        raise ValueError("no rows to explain")
    a = _option_index(model, option, "therapy")
    b = None if versus is None else _option_index(model, versus, "versus")
    if a == b:
        raise ValueError(f"therapy and versus are the same option ({option}): nothing to contrast")
    module = ExplainedOutput(model, output, [(a, b)])
    inputs, raw = network_inputs(model, rows)
    with warnings.catch_warnings():  # shap warns about the container modules it does not need to handle
        warnings.filterwarnings("ignore", message="unrecognized nn.Module")
        explainer = shap.DeepExplainer(module, torch.from_numpy(resolve_background(model, background)))
        values = explainer.shap_values(torch.from_numpy(inputs), check_additivity=False)
    values = np.asarray(values).reshape(rows.height, len(model.columns_))
    base = np.full(rows.height, float(np.ravel(explainer.expected_value)[0]))
    error = np.abs(base + values.sum(axis=1) - model_output(model, rows, output, a, b)).max()
    if error > ADDITIVITY_TOLERANCE:
        raise AdditivityError(f"SHAP values miss the model's {output} by {error:.2g} (tolerance "
                              f"{ADDITIVITY_TOLERANCE:g}); the network has an operation the explainer cannot split")
    return shap.Explanation(values=values, base_values=base, data=raw, feature_names=list(model.columns_))


def explain_options(model: ResponseModel, rows: pl.DataFrame, therapy: str, output: str = "p_response",
                    background: np.ndarray | None = None) -> shap.Explanation:
    """SHAP values of one option's ``output`` for each row of ``rows`` (cohort rows, one per patient and date).

    ``output``: "p_response" or "p_remission" (ensemble-mean probability before
    calibration) or "das28_change" (DAS28 units). ``background`` defaults to
    ``model.background_`` (see :func:`~rxpredict.explain.background.draw_background`).
    The result has ``values`` (rows, features), ``base_values`` (the mean output
    over the background), ``data`` (raw feature values, NaN where missing) and
    ``feature_names`` (``model.columns_``, masks included); base + sum(values)
    equals the model's output within :data:`ADDITIVITY_TOLERANCE`, checked.
    """
    return _explain(model, rows, therapy, None, output, background)


def explain_contrast(model: ResponseModel, rows: pl.DataFrame, therapy: str, versus: str,
                     output: str = "p_response", background: np.ndarray | None = None) -> shap.Explanation:
    """SHAP values of ``output(therapy) - output(versus)``: why one option beats the other for these patients.

    Same conventions and additivity check as :func:`explain_options`; the base
    value is the mean difference over the background.
    """
    return _explain(model, rows, therapy, versus, output, background)
