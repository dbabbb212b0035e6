"""The explained quantity as a torch module that shap's DeepExplainer can take apart exactly.

:class:`ExplainedOutput` maps the network inputs (standardised block features,
then the block masks, in ``model.columns_`` order: what ``ResponseModel._tensors``
gives) to one or more explained outputs: an option's ensemble-mean probability
(or DAS28 change), or the difference between two options'.

DeepExplainer (DeepLIFT's rescale rule, averaged over a background sample)
sums exactly to ``f(x) - mean f(background)`` when the network is built from
linear maps and element-wise non-linearities that are ``nn.Module`` s used once
per forward pass. The response network is, except for one product: a block
encoder's embedding times the block's mask. Because the embedding is a ReLU
output (h >= 0) and the mask is 0 or 1, ``h * mask == relu(h - GATE * (1 - mask))``
for any h <= GATE; the module computes it that way, with a ReLU of its own per
member and block, so that every operation has a DeepLIFT rule. It runs in
float64, so the large ``GATE`` costs no precision.
"""
from __future__ import annotations

import copy

import numpy as np
import polars as pl
import torch
from torch import nn

from rxpredict.models.network import HEAD_OUTPUTS, BlockEncoder
from rxpredict.models.response import ResponseModel

#: Explainable outputs -> (index of the head output, whether it is a probability through a sigmoid).
OUTPUTS = {"p_response": (0, True), "p_remission": (2, True), "das28_change": (3, False)}
#: Larger than any block embedding: relu(h - GATE) is 0 where a block is missing.
GATE = 1e6


def check_output(output: str) -> None:
    """Refuse an output that cannot be explained exactly, naming those that can."""
    if output not in OUTPUTS:
        raise ValueError(f"output {output!r} cannot be explained; choose one of {', '.join(OUTPUTS)} "
                         "(p_good is a product of two probabilities, which DeepLIFT cannot split exactly)")


def network_inputs(model: ResponseModel, frame: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(what the networks see, float64; the raw feature matrix with NaN for missing), both in ``columns_`` order."""
    blocks, masks, X = model._tensors(frame)
    return torch.cat([*blocks, masks], dim=1).numpy().astype(np.float64), X


class ExplainedOutput(nn.Module):
    """Network inputs -> one column per target ``(option, versus option or None)``: the ensemble mean output.

    ``output`` is one of :data:`OUTPUTS`; probabilities are the ensemble mean
    before calibration, the DAS28 change is in DAS28 units.
    """

    def __init__(self, model: ResponseModel, output: str, targets: list[tuple[int, int | None]]) -> None:
        super().__init__()
        check_output(output)
        if not all(isinstance(e, BlockEncoder) for net in model.networks_ for e in net.encoders):
            raise ValueError("explanations need the model's MLP block encoders; a model with encoder='tabnet' "
                             "cannot be explained exactly yet")
        self.head_index, self.probability = OUTPUTS[output]
        self.scale = float(model.change_scale_) if output == "das28_change" else 1.0
        self.members = nn.ModuleList(copy.deepcopy(net).double().eval() for net in model.networks_)
        self.options = sorted({o for pair in targets for o in pair if o is not None})
        weights = torch.zeros(len(self.options), len(targets), dtype=torch.float64)
        for j, (option, versus) in enumerate(targets):
            weights[self.options.index(option), j] += 1.0
            if versus is not None:
                weights[self.options.index(versus), j] -= 1.0
        self.register_buffer("weights", weights / len(self.members))  # the ensemble mean, folded in
        self.encoder_inputs = [np.r_[idx, mask] for idx, mask in zip(model._block_index, model._mask_index)]
        self.mask_columns = [int(m) for m in model._mask_index]
        self.gates = nn.ModuleList(nn.ModuleList(nn.ReLU() for _ in self.mask_columns) for _ in self.members)
        self.sigmoids = nn.ModuleList(nn.Sigmoid() for _ in self.members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = torch.zeros(len(x), len(self.options), dtype=x.dtype)
        for net, gates, sigmoid in zip(self.members, self.gates, self.sigmoids):
            wide = (net.wide(x)[:, self.head_index, None]
                    + net.wide_options(x).view(len(x), -1, HEAD_OUTPUTS)[:, self.options, self.head_index])
            encoded = [gate(encoder.net(x[:, cols]) - GATE * (1 - x[:, m : m + 1]))
                       for encoder, gate, cols, m in zip(net.encoders, gates, self.encoder_inputs, self.mask_columns)]
            z = net.shared(torch.cat(encoded, dim=1))
            out = wide + torch.stack([net.heads[o](z)[:, self.head_index] for o in self.options], dim=1)
            total = total + (sigmoid(out) if self.probability else out * self.scale)
        return total @ self.weights


def option_outputs(model: ResponseModel, frame: pl.DataFrame, output: str) -> np.ndarray:
    """Every option's explained quantity, (rows, options), the model's own way (float32): what SHAP values add to."""
    return outputs_of_inputs(model, network_inputs(model, frame)[0], output)


def outputs_of_inputs(model: ResponseModel, inputs: np.ndarray, output: str) -> np.ndarray:
    """:func:`option_outputs` from the network inputs :func:`network_inputs` gave (so a frame is read once)."""
    check_output(output)
    k, probability = OUTPUTS[output]
    x = torch.from_numpy(inputs.astype(np.float32))  # exact: the inputs were float32 before widening
    blocks, masks = [x[:, idx] for idx in model._block_index], x[:, model._mask_index]
    members = []
    with torch.no_grad():
        for net in model.networks_:
            out = net(blocks, masks)
            # _probabilities gives (response, good, remission): the head's outputs 0 and 2 keep their index
            value = model._probabilities(out)[k].exp() if probability else out[..., k] * float(model.change_scale_)
            members.append(value.numpy().astype(np.float64))
    return np.mean(members, axis=0)
