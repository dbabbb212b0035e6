"""The explained quantity as a torch module that shap's DeepExplainer can take apart exactly.

:class:`ExplainedOutput` maps the network inputs (standardised block features,
then the block masks, in ``model.columns_`` order, then the baseline DAS28 the
outcomes are measured from: what ``ResponseModel._tensors`` gives) to one or
more explained outputs: an option's ensemble-mean probability (or DAS28
change), or the difference between two options'. A probability is
Phi((expected improvement - threshold(baseline)) / scale): linear maps, the
thresholds' ReLUs and the normal CDF, each a module of its own.

DeepExplainer (DeepLIFT's rescale rule, averaged over a background sample)
sums exactly to ``f(x) - mean f(background)`` when the network is built from
linear maps and element-wise non-linearities that are ``nn.Module`` s used once
per forward pass. The response network is, except for one product: a block
encoder's embedding times the block's mask. Because the embedding is a ReLU
output (h >= 0) and the mask is 0 or 1, ``h * mask == relu(h - GATE * (1 - mask))``
for any h <= GATE; the module computes it that way, with a ReLU of its own per
member and block, so that every operation has a DeepLIFT rule. It runs in
float64, so the large ``GATE`` costs no precision. shap learns here that
:class:`~rxpredict.models.outcome.NormalCDF` is such an element-wise function.

A model with ``encoder="tabnet"`` cannot be written so (:func:`deeplift_splits`):
TabNet's sparsemax attention is no element-wise function, and its attention
masks and GLU gates multiply two functions of the input. Such a model is
explained model-agnostically (rxpredict/explain/shapley.py) on
:func:`targets_of_inputs`, the same targets from the model's own forward pass.
"""
from __future__ import annotations

import copy
import sys
from collections.abc import Iterable, Sequence

import numpy as np
import polars as pl
import torch
from pytorch_tabnet.tab_network import GBN
from shap.explainers._deep.deep_pytorch import nonlinear_1d, op_handler
from torch import nn

from rxpredict.models.network import BlockEncoder
from rxpredict.models.outcome import NormalCDF, Thresholds
from rxpredict.models.response import ResponseModel

#: Explainable outputs -> the outcome's column in models/outcome.py (None: the expected DAS28 change).
OUTPUTS = {"p_response": 0, "p_good": 1, "p_remission": 2, "das28_change": None}
#: Larger than any block embedding: relu(h - GATE) is 0 where a block is missing.
GATE = 1e6

op_handler[NormalCDF.__name__] = nonlinear_1d  # DeepLIFT's rescale rule, as for a sigmoid


def check_output(output: str) -> None:
    """Refuse an output that cannot be explained, naming those that can."""
    if output not in OUTPUTS:
        raise ValueError(f"output {output!r} cannot be explained; choose one of {', '.join(OUTPUTS)}")


def deeplift_splits(model: ResponseModel) -> bool:
    """Whether every block encoder is the MLP :class:`ExplainedOutput` can rewrite (not TabNet's)."""
    return all(isinstance(e, BlockEncoder) for net in model.networks_ for e in net.encoders)


def target_weights(options: Iterable[int], targets: Sequence[tuple[int, int | None]]) -> np.ndarray:
    """(options, targets): +1 at each target's option, -1 at its versus option; ``outputs @ weights`` are the targets."""
    options = list(options)
    weights = np.zeros((len(options), len(targets)))
    for j, (option, versus) in enumerate(targets):
        weights[options.index(option), j] += 1.0
        if versus is not None:
            weights[options.index(versus), j] -= 1.0
    return weights


def network_inputs(model: ResponseModel, frame: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(what the networks see, float64: ``columns_`` then the baseline; the raw feature matrix with NaN for missing)."""
    blocks, masks, baseline, X = model._tensors(frame)
    return torch.cat([*blocks, masks, baseline[:, None]], dim=1).numpy().astype(np.float64), X


class ExplainedOutput(nn.Module):
    """Network inputs -> one column per target ``(option, versus option or None)``: the ensemble mean output.

    ``output`` is one of :data:`OUTPUTS`; probabilities are the ensemble mean
    before calibration, the DAS28 change is in DAS28 units.
    """

    def __init__(self, model: ResponseModel, output: str, targets: list[tuple[int, int | None]]) -> None:
        super().__init__()
        check_output(output)
        if not deeplift_splits(model):
            raise ValueError("DeepLIFT cannot split a model with encoder='tabnet' (sparsemax attention, GLU gates); "
                             "explain_options explains it with the permutation explainer instead")
        self.outcome = OUTPUTS[output]
        self.scale = float(model.change_scale_)
        self.members = nn.ModuleList(copy.deepcopy(net).double().eval() for net in model.networks_)
        self.options = sorted({o for pair in targets for o in pair if o is not None})
        weights = torch.from_numpy(target_weights(self.options, targets))
        self.register_buffer("weights", weights / len(self.members))  # the ensemble mean, folded in
        self.encoder_inputs = [np.r_[idx, mask] for idx, mask in zip(model._block_index, model._mask_index)]
        self.mask_columns = [int(m) for m in model._mask_index]
        self.gates = nn.ModuleList(nn.ModuleList(nn.ReLU() for _ in self.mask_columns) for _ in self.members)
        self.thresholds = Thresholds()
        self.cdfs = nn.ModuleList(NormalCDF() for _ in self.members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inputs, baseline = x[:, :-1], x[:, -1]
        if self.outcome is not None:
            threshold = self.thresholds(baseline)[:, self.outcome, None] / self.scale  # in the network's units
        total = torch.zeros(len(x), len(self.options), dtype=x.dtype)
        for net, gates, cdf in zip(self.members, self.gates, self.cdfs):
            wide = net.wide(inputs) + net.wide_options(inputs)[:, self.options]  # one output per option
            encoded = [gate(encoder.net(inputs[:, cols]) - GATE * (1 - inputs[:, m : m + 1]))
                       for encoder, gate, cols, m in zip(net.encoders, gates, self.encoder_inputs, self.mask_columns)]
            z = net.shared(torch.cat(encoded, dim=1))
            out = wide + torch.cat([net.heads[o](z) for o in self.options], dim=1)
            if self.outcome is None:
                total = total + out * self.scale
            else:  # Phi((improvement - threshold) / scale); the improvement is minus the change
                total = total + cdf((-out - threshold) / net.log_scale[self.options].exp())
        return total @ self.weights


def option_outputs(model: ResponseModel, frame: pl.DataFrame, output: str) -> np.ndarray:
    """Every option's explained quantity, (rows, options), the model's own way (float32): what SHAP values add to."""
    return outputs_of_inputs(model, network_inputs(model, frame)[0], output)


def outputs_of_inputs(model: ResponseModel, inputs: np.ndarray, output: str) -> np.ndarray:
    """:func:`option_outputs` from the network inputs :func:`network_inputs` gave (so a frame is read once)."""
    check_output(output)
    k = OUTPUTS[output]
    x = torch.from_numpy(inputs.astype(np.float32))  # exact: the inputs were float32 before widening
    probabilities, changes = model._member_predictions([x[:, idx] for idx in model._block_index],
                                                       x[:, model._mask_index], x[:, -1])
    members = changes * np.float32(model.change_scale_) if k is None else probabilities[:, k]
    return members.astype(np.float64).mean(axis=0)


def targets_of_inputs(model: ResponseModel, inputs: np.ndarray, output: str,
                      targets: Sequence[tuple[int, int | None]]) -> np.ndarray:
    """Each target's explained quantity (rows, targets), float64, from the model's own forward pass.

    What the SHAP values of ``targets`` add to, and what the permutation explainer evaluates.
    """
    return outputs_of_inputs(model, inputs, output) @ target_weights(range(len(model.options_)), targets)


def whole_batches(model: ResponseModel) -> ResponseModel:
    """A copy of ``model`` whose TabNet ghost batch norms normalise each batch whole: the same outputs, faster.

    In eval mode batch normalisation uses its running statistics, row by row, so
    the virtual batches of 128 rows change nothing but cost a Python call each;
    the permutation explainer passes up to 14,500 rows a patient and permutation
    (145 masked copies of 100 background episodes): a third of its time.
    """
    fast = copy.copy(model)
    fast.networks_ = [copy.deepcopy(net).eval() for net in model.networks_]
    for net in fast.networks_:
        for module in net.modules():
            if isinstance(module, GBN):
                module.virtual_batch_size = sys.maxsize
    return fast
