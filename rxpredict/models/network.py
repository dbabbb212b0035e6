"""The multimodal network: a wide (linear) part plus a deep part with one encoder per modality and one head per option.

Deep part, TARNet-style (Shalit et al., ICML 2017): the representation is
shared by all therapy options, each option has its own head, and only the
head of the option a patient received learns from that patient's outcome.
Each block encoder sees the block's features and its mask, so that a patient
without genetics or imaging is encoded from what exists and "missing" is not
read as "zero".

Wide part (Cheng et al., "Wide & Deep", 2016): a linear predictor shared by
all options plus a per-option linear deviation, both penalised (``penalty``).
On registry-sized, noisy data the deep part alone overfits within a few
epochs and does worse than a penalised logistic model with option x
covariate interactions (docs/response-model.md); the wide part gives the
network that model's strength, and the deep heads, which start at zero, add
only the non-linear structure the validation loss rewards.
"""
from __future__ import annotations

import torch
from pytorch_tabnet.tab_network import TabNetEncoder
from torch import nn

#: Per option the head predicts the expected DAS28 change (in units of its SD); the outcome probabilities are
#: tails of a normal around it (models/outcome.py).
HEAD_OUTPUTS = 1
#: The encoders the clinical block can use (``encoder=``).
ENCODERS = ("mlp", "tabnet")
#: Weight of TabNet's attention-sparsity loss (pytorch-tabnet's default ``lambda_sparse``).
TABNET_SPARSITY = 1e-3


class BlockEncoder(nn.Module):
    """Features of one modality plus its mask -> a small embedding (zero where the block is missing)."""

    def __init__(self, n_features: int, dim: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_features + 1, dim), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(dim, dim), nn.ReLU())

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, mask], dim=1)) * mask


class TabNetBlockEncoder(nn.Module):
    """pytorch-tabnet's encoder (sequential attention over the features, Arik & Pfister 2021) for one block.

    The embedding is the sum of the decision steps' outputs, as in TabNet itself; ``sparsity`` holds
    the last batch's attention-entropy term, which the network adds to its penalty.
    """

    def __init__(self, n_features: int, dim: int, n_steps: int = 3) -> None:
        super().__init__()
        self.net = TabNetEncoder(n_features + 1, dim, n_d=dim, n_a=dim, n_steps=n_steps,
                                 group_attention_matrix=torch.eye(n_features + 1))
        self.sparsity = torch.zeros(())

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        steps, m_loss = self.net(torch.cat([x, mask], dim=1))
        self.sparsity = -m_loss
        return torch.stack(steps).sum(dim=0) * mask


class ResponseNetwork(nn.Module):
    """Wide part + (block encoders -> shared representation -> one head per option); (batch, options, HEAD_OUTPUTS).

    ``log_scale`` holds, per option, the log SD of the improvement around its expected value (in units of
    the change's SD): one spread per option, not per patient, so that every probability stays a composition
    of linear maps and element-wise functions that DeepLIFT splits exactly. ``shared_penalty`` and
    ``option_penalty`` are the L2 penalties (per training example) on the
    weights of the shared and of the per-option linear predictors; options differ from each other
    only as far as the data pull them apart. ``encoder="tabnet"`` encodes the first block (clinical)
    with TabNet instead of the small MLP.
    """

    def __init__(self, block_sizes: list[int], n_options: int, block_dim: int = 16, hidden: int = 64,
                 dropout: float = 0.1, shared_penalty: float = 1e-4, option_penalty: float = 1e-3,
                 encoder: str = "mlp") -> None:
        super().__init__()
        if encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {', '.join(ENCODERS)}, not {encoder!r}")
        self.n_options = n_options
        self.shared_penalty = shared_penalty
        self.option_penalty = option_penalty
        n_inputs = sum(block_sizes) + len(block_sizes)  # every block's features and the block masks
        self.wide = nn.Linear(n_inputs, HEAD_OUTPUTS)
        self.wide_options = nn.Linear(n_inputs, n_options * HEAD_OUTPUTS)
        self.log_scale = nn.Parameter(torch.zeros(n_options))
        nn.init.zeros_(self.wide_options.weight)
        nn.init.zeros_(self.wide_options.bias)
        self.encoders = nn.ModuleList(
            TabNetBlockEncoder(n, block_dim) if i == 0 and encoder == "tabnet" else BlockEncoder(n, block_dim, dropout)
            for i, n in enumerate(block_sizes))
        self.shared = nn.Sequential(nn.Linear(block_dim * len(block_sizes), hidden), nn.ReLU(), nn.Dropout(dropout),
                                    nn.Linear(hidden, hidden), nn.ReLU())
        self.heads = nn.ModuleList(nn.Sequential(nn.Linear(hidden, hidden // 2), nn.ReLU(),
                                                 nn.Linear(hidden // 2, HEAD_OUTPUTS)) for _ in range(n_options))
        for head in self.heads:  # the network starts as its wide part
            nn.init.zeros_(head[-1].weight)
            nn.init.zeros_(head[-1].bias)

    def penalty(self) -> torch.Tensor:
        """The L2 penalty on the wide part's weights (and TabNet's sparsity term), added to the training loss."""
        sparsity = sum(e.sparsity for e in self.encoders if isinstance(e, TabNetBlockEncoder))
        return (self.shared_penalty * self.wide.weight.square().sum()
                + self.option_penalty * self.wide_options.weight.square().sum() + TABNET_SPARSITY * sparsity)

    def forward(self, blocks: list[torch.Tensor], masks: torch.Tensor) -> torch.Tensor:
        x = torch.cat([*blocks, masks], dim=1)
        wide = self.wide(x)[:, None, :] + self.wide_options(x).view(len(x), self.n_options, HEAD_OUTPUTS)
        encoded = [enc(b, masks[:, i : i + 1]) for i, (enc, b) in enumerate(zip(self.encoders, blocks))]
        z = self.shared(torch.cat(encoded, dim=1))
        return wide + torch.stack([head(z) for head in self.heads], dim=1)
