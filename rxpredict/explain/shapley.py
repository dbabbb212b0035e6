"""SHAP values of one therapy option's prediction, or of the difference between two options', per feature.

The explainer is shap's DeepExplainer on :class:`~rxpredict.explain.target.ExplainedOutput`
(docs/explanations.md says why): exact additivity, and a forward and backward
pass over the background per patient and option, many patients and options
batched into one pass, so a patient takes milliseconds. The explained
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
from shap.explainers._deep.deep_pytorch import add_interim_values, deeplift_grad

from rxpredict.explain.background import resolve_background
from rxpredict.explain.target import ExplainedOutput, network_inputs, outputs_of_inputs
from rxpredict.models.overlap import _check_fitted
from rxpredict.models.response import BASELINE_DAS28, ResponseModel

#: Largest allowed |base + sum(values) - model output| on the explained scale.
ADDITIVITY_TOLERANCE = 1e-4
#: Rows (patients and options times background episodes, twice) in one forward and backward pass: large enough
#: that torch, not Python's per-module hooks, sets the pace; larger passes measured slower (memory traffic).
PASS_ROWS = 6_000


class AdditivityError(RuntimeError):
    """SHAP values that do not add up to the model's output: a bug, never a property of the data."""


def _option_index(model: ResponseModel, option: str, name: str) -> int:
    if option not in model.options_:
        raise ValueError(f"{name} {option!r} is not an option of this model ({', '.join(model.options_)})")
    return model.options_.index(option)


def _deeplift(explainer: shap.DeepExplainer, x: torch.Tensor) -> np.ndarray:
    """shap's DeepLIFT values of every row of ``x`` for every output of the explainer: (rows, features, outputs).

    ``explainer.shap_values`` makes one forward and backward pass per patient
    and output, its background tiled against that one patient; at 100
    background episodes the passes are small and the per-module hook overhead
    dominates (about 60 ms a patient and output). This makes the same passes,
    with shap's own hooks, for up to :data:`PASS_ROWS` rows at once: shap's
    rescale rule pairs the first half of a batch with the second, so each
    (patient, output)'s tiled copies (first half) line up with a copy of the
    background (second half); each copy's gradient is taken of its own output
    column, and the values are the mean over the background.
    """
    deep = explainer.explainer
    background = deep.data[0]
    n_background, n_outputs = len(background), deep.num_outputs
    per_pass = max(1, PASS_ROWS // (2 * n_background))
    values = np.empty((len(x), x.shape[1], n_outputs))
    handles = deep.add_handles(deep.model, add_interim_values, deeplift_grad)
    try:
        for start in range(0, len(x) * n_outputs, per_pass):
            patient, output = np.divmod(np.arange(start, min(start + per_pass, len(x) * n_outputs)), n_outputs)
            tiled = x[torch.from_numpy(patient)].repeat_interleave(n_background, dim=0)
            joint = torch.cat([tiled, background.repeat(len(patient), 1)]).requires_grad_()
            column = torch.from_numpy(np.tile(np.repeat(output, n_background), 2))[:, None]
            gradient = torch.autograd.grad(deep.model(joint).gather(1, column).sum(), joint)[0][:len(tiled)]
            delta = tiled - joint[len(tiled):].detach()
            values[patient, :, output] = (gradient * delta).view(len(patient), n_background, -1).mean(dim=1).numpy()
    finally:
        for handle in handles:
            handle.remove()
        deep.remove_attributes(deep.model)
    return values


def _explain(model: ResponseModel, rows: pl.DataFrame, targets: list[tuple[str, str | None]], output: str,
             background: np.ndarray | None) -> list[shap.Explanation]:
    """SHAP values of output(option) - output(versus) for each row and each target, each checked for additivity.

    One explainer over one module with a column per target: the targets share its passes' set-up.
    """
    _check_fitted(model, "networks_")
    if rows.height == 0:
        raise ValueError("no rows to explain")
    pairs = []
    for option, versus in targets:
        a = _option_index(model, option, "therapy")
        b = None if versus is None else _option_index(model, versus, "versus")
        if a == b:
            raise ValueError(f"therapy and versus are the same option ({option}): nothing to contrast")
        pairs.append((a, b))
    module = ExplainedOutput(model, output, pairs)
    inputs, raw = network_inputs(model, rows)
    with warnings.catch_warnings():  # shap warns about the container modules it does not need to handle
        warnings.filterwarnings("ignore", message="unrecognized nn.Module")
        explainer = shap.DeepExplainer(module, torch.from_numpy(resolve_background(model, background)))
        values = _deeplift(explainer, torch.from_numpy(inputs))
    outputs = outputs_of_inputs(model, inputs, output)
    explanations = []
    for j, (a, b) in enumerate(pairs):
        base = np.full(rows.height, float(np.ravel(explainer.expected_value)[j]))
        truth = outputs[:, a] - (0.0 if b is None else outputs[:, b])
        error = np.abs(base + values[..., j].sum(axis=1) - truth).max()
        if error > ADDITIVITY_TOLERANCE:
            raise AdditivityError(f"SHAP values miss the model's {output} by {error:.2g} (tolerance "
                                  f"{ADDITIVITY_TOLERANCE:g}); the network has an operation the explainer cannot "
                                  "split")
        explanations.append(shap.Explanation(values=_fold_baseline(model, values[..., j], raw), base_values=base,
                                             data=raw, feature_names=list(model.columns_)))
    return explanations


def _fold_baseline(model: ResponseModel, values: np.ndarray, raw: np.ndarray) -> np.ndarray:
    """(rows, columns_ + 1) -> (rows, columns_): the baseline DAS28's share goes to the column it was read from.

    The outcome thresholds are measured from DAS28-CRP where the patient has it, else DAS28-ESR
    (:func:`~rxpredict.models.response.label_baseline`): that feature moved the thresholds, so it gets
    their share, and the values still add up to the output.
    """
    folded = values[:, :-1].copy()
    position = {c: i for i, c in enumerate(model.columns_)}
    crp, esr = (position.get(c) for c in BASELINE_DAS28.values())
    source = crp if crp is not None else esr
    if source is None:  # neither DAS28 is a feature: every row's baseline is the training mean, its share 0
        return folded
    if crp is not None and esr is not None:
        source = np.where(np.isnan(raw[:, crp]), esr, crp)
    folded[np.arange(len(folded)), source] += values[:, -1]
    return folded


def explain_options(model: ResponseModel, rows: pl.DataFrame, therapy: str, output: str = "p_response",
                    background: np.ndarray | None = None) -> shap.Explanation:
    """SHAP values of one option's ``output`` for each row of ``rows`` (cohort rows, one per patient and date).

    ``output``: "p_response", "p_good" or "p_remission" (ensemble-mean probability before
    calibration) or "das28_change" (DAS28 units). ``background`` defaults to
    ``model.background_`` (see :func:`~rxpredict.explain.background.draw_background`).
    The result has ``values`` (rows, features), ``base_values`` (the mean output
    over the background), ``data`` (raw feature values, NaN where missing) and
    ``feature_names`` (``model.columns_``, masks included); base + sum(values)
    equals the model's output within :data:`ADDITIVITY_TOLERANCE`, checked.
    """
    return _explain(model, rows, [(therapy, None)], output, background)[0]


def explain_contrast(model: ResponseModel, rows: pl.DataFrame, therapy: str, versus: str,
                     output: str = "p_response", background: np.ndarray | None = None) -> shap.Explanation:
    """SHAP values of ``output(therapy) - output(versus)``: why one option beats the other for these patients.

    Same conventions and additivity check as :func:`explain_options`; the base
    value is the mean difference over the background.
    """
    return _explain(model, rows, [(therapy, versus)], output, background)[0]


def explain_all_options(model: ResponseModel, rows: pl.DataFrame, output: str = "p_response",
                        background: np.ndarray | None = None) -> dict[str, shap.Explanation]:
    """SHAP values of every option's ``output`` for each row: option -> explanation, in ``model.options_`` order.

    Each explanation is what :func:`explain_options` gives for that option
    (same conventions, additivity checked per option), from one explainer
    whose module has a column per option, so the set-up is paid once.
    """
    return dict(zip(model.options_, _explain(model, rows, [(o, None) for o in model.options_], output, background)))
