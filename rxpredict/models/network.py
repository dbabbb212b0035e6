"""The multimodal network: one encoder per data modality, a shared representation, one head per option.

TARNet-style (Shalit et al., ICML 2017): the representation is shared by all
therapy options, each option has its own head, and only the head of the
option a patient received learns from that patient's outcome. Each block
encoder sees the block's features and its mask, so that a patient without
genetics or imaging is encoded from what exists and "missing" is not read as
"zero".
"""
from __future__ import annotations

import torch
from torch import nn

#: Per option the head predicts logits of response, good response and remission, and the DAS28 change.
HEAD_OUTPUTS = 4


class BlockEncoder(nn.Module):
    """Features of one modality plus its mask -> a small embedding (zero where the block is missing)."""

    def __init__(self, n_features: int, dim: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_features + 1, dim), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(dim, dim), nn.ReLU())

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, mask], dim=1)) * mask


class ResponseNetwork(nn.Module):
    """Block encoders -> shared representation -> one head per option, shape (batch, options, HEAD_OUTPUTS)."""

    def __init__(self, block_sizes: list[int], n_options: int, block_dim: int = 16, hidden: int = 64,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.encoders = nn.ModuleList(BlockEncoder(n, block_dim, dropout) for n in block_sizes)
        self.shared = nn.Sequential(nn.Linear(block_dim * len(block_sizes), hidden), nn.ReLU(), nn.Dropout(dropout),
                                    nn.Linear(hidden, hidden), nn.ReLU())
        self.heads = nn.ModuleList(nn.Sequential(nn.Linear(hidden, hidden // 2), nn.ReLU(),
                                                 nn.Linear(hidden // 2, HEAD_OUTPUTS)) for _ in range(n_options))

    def forward(self, blocks: list[torch.Tensor], masks: torch.Tensor) -> torch.Tensor:
        encoded = [enc(x, masks[:, i : i + 1]) for i, (enc, x) in enumerate(zip(self.encoders, blocks))]
        z = self.shared(torch.cat(encoded, dim=1))
        return torch.stack([head(z) for head in self.heads], dim=1)
