"""SHAP values of one therapy option's prediction, or of the difference between two options', per feature.

The explainer is shap's DeepExplainer on :class:`~rxpredict.explain.target.ExplainedOutput`
(docs/explanations.md says why): exact additivity, and a forward and backward
pass over the background per patient and option, many patients and options
batched into one pass, so a patient takes milliseconds. The explained
scale is the ensemble-mean probability *before* Platt calibration, in [0, 1];
the calibrated probability ``predict_options`` shows is a monotone function of
it, so signs and rankings carry over.

A model with ``encoder="tabnet"`` has operations without a DeepLIFT rule
(sparsemax attention, GLU gates, attention masks times inputs): DeepLIFT's
values would not add up. Such a model is explained by shap's permutation
explainer over the same inputs, background and targets, evaluating the model's
own forward pass: it is exactly additive too (each permutation's steps
telescope from the background's mean output to the patient's), needs only
forward passes, and costs fewer model calls than KernelExplainer.
"""
from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np
import polars as pl
import shap
import torch
from shap.explainers._deep.deep_pytorch import add_interim_values, deeplift_grad

from rxpredict.explain.background import resolve_background
from rxpredict.explain.target import (ExplainedOutput, check_output, deeplift_splits, network_inputs,
                                      targets_of_inputs, whole_batches)
from rxpredict.models.overlap import _check_fitted
from rxpredict.models.response import BASELINE_DAS28, ResponseModel

if TYPE_CHECKING:
    from rxpredict.survival.progression import ProgressionModel

#: Largest allowed |base + sum(values) - model output| on the explained scale.
ADDITIVITY_TOLERANCE = 1e-4
#: Rows (patients and options times background episodes, twice) in one forward and backward pass: large enough
#: that torch, not Python's per-module hooks, sets the pace; larger passes measured slower (memory traffic).
PASS_ROWS = 6_000
#: Permutations (each walked forwards and backwards) per patient in the fallback explainer: shap's own default.
PERMUTATIONS = 10
#: Seed of each patient's permutations: a patient's values are the same whichever rows it is explained with.
PERMUTATION_SEED = 0


class AdditivityError(RuntimeError):
    """SHAP values that do not add up to the model's output: a bug, never a property of the data."""


def _option_index(model: ResponseModel | ProgressionModel, option: str, name: str) -> int:
    """The position of ``option`` in ``model.options_``; a ValueError naming the argument ``name`` where it has none."""
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


def _deep_values(model: ResponseModel, output: str, targets: list[tuple[int, int | None]], inputs: np.ndarray,
                 background: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeepLIFT's values (rows, inputs, targets) and base values (rows, targets): one module, a column per target."""
    with warnings.catch_warnings():  # shap warns about the container modules it does not need to handle
        warnings.filterwarnings("ignore", message="unrecognized nn.Module")
        explainer = shap.DeepExplainer(ExplainedOutput(model, output, targets), torch.from_numpy(background))
        values = _deeplift(explainer, torch.from_numpy(inputs))
    return values, np.broadcast_to(np.ravel(explainer.expected_value), (len(inputs), len(targets)))


def _permutation_values(model: ResponseModel, output: str, targets: list[tuple[int, int | None]],
                        inputs: np.ndarray, background: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """shap's permutation explainer's values (rows, inputs, targets) and base values (rows, targets).

    For models DeepLIFT cannot split (TabNet: sparsemax and GLU gates have no
    rescale rule). The explained function is :func:`~rxpredict.explain.target.targets_of_inputs`,
    the model's own forward pass; the masker fills hidden inputs from every
    background episode. Each patient walks :data:`PERMUTATIONS` permutations of
    the inputs forwards and backwards; every walk's steps telescope from the
    background's mean output to the patient's, so the values add up exactly
    however few permutations (their number sets only how close the values are
    to the Shapley values). Each patient's permutations are seeded with
    :data:`PERMUTATION_SEED`; numpy's global random state, which shap draws
    them from, is restored afterwards.
    """
    fast = whole_batches(model)
    masker = shap.maskers.Independent(background, max_samples=len(background))
    max_evals = PERMUTATIONS * (2 * inputs.shape[1] + 1)
    values = np.empty((*inputs.shape, len(targets)))
    base = np.empty((len(inputs), len(targets)))
    state = np.random.get_state()
    try:
        explainer = shap.explainers.Permutation(lambda x: targets_of_inputs(fast, x, output, targets), masker)
        for i, x in enumerate(inputs):
            np.random.seed(PERMUTATION_SEED)
            row = explainer(x[None], max_evals=max_evals, silent=True)
            values[i], base[i] = np.reshape(row.values, values.shape[1:]), np.ravel(row.base_values)
    finally:
        np.random.set_state(state)
    return values, base


def _explain(model: ResponseModel, rows: pl.DataFrame, targets: list[tuple[str, str | None]], output: str,
             background: np.ndarray | None) -> list[shap.Explanation]:
    """SHAP values of output(option) - output(versus) for each row and each target, each checked for additivity.

    One explainer with an output per target: the targets share its set-up and
    model calls. DeepLIFT where the encoders allow it, else the permutation explainer.
    """
    _check_fitted(model, "networks_")
    check_output(output)
    if rows.height == 0:
        raise ValueError("no rows to explain")
    pairs = []
    for option, versus in targets:
        a = _option_index(model, option, "therapy")
        b = None if versus is None else _option_index(model, versus, "versus")
        if a == b:
            raise ValueError(f"therapy and versus are the same option ({option}): nothing to contrast")
        pairs.append((a, b))
    inputs, raw = network_inputs(model, rows)
    shapley_values = _deep_values if deeplift_splits(model) else _permutation_values
    values, base = shapley_values(model, output, pairs, inputs, resolve_background(model, background))
    truth = targets_of_inputs(model, inputs, output, pairs)
    explanations = []
    for j in range(len(pairs)):
        error = np.abs(base[:, j] + values[..., j].sum(axis=1) - truth[:, j]).max()
        if error > ADDITIVITY_TOLERANCE:
            raise AdditivityError(f"SHAP values miss the model's {output} by {error:.2g} (tolerance "
                                  f"{ADDITIVITY_TOLERANCE:g}); the network has an operation the explainer cannot "
                                  "split")
        explanations.append(shap.Explanation(values=_fold_baseline(model, values[..., j], raw),
                                             base_values=base[:, j].copy(), data=raw,
                                             feature_names=list(model.columns_)))
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
