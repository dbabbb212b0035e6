"""The three 24-week outcomes as tails of one predicted distribution of the DAS28 improvement.

EULAR response, good response and DAS28 remission are all read off the
baseline DAS28 ``b`` and the follow-up ``f`` (clinical-reference.md; the
cohort's labels, :func:`rxpredict.clinical.eular_response`). With the
improvement ``d = b - f``:

- response (good or moderate) <=> d > min(1.2, max(0.6, b - 5.1))
- good response               <=> d > max(1.2, b - 3.2)
- remission (f < 2.6)         <=> d > b - 2.6

So the model predicts, per option, the improvement's mean and spread, and
each probability is a tail of that one normal. This is a statement about the
outcomes' definitions, not about any data set: the continuous improvement
carries more information than three labels cut from it, and the three
probabilities stay coherent (P(good) <= P(response) for every patient).
The thresholds are written with ReLUs so that DeepLIFT splits them exactly
(rxpredict/explain/target.py).
"""
from __future__ import annotations

import torch
from torch import nn

#: The outcomes in the order of :class:`Thresholds`' columns.
OUTCOMES = ("response", "good_response", "remission")


class Thresholds(nn.Module):
    """Baseline DAS28 (n,) -> the improvements (n, 3) above which response, good response and remission hold.

    min(1.2, max(0.6, b - 5.1)) = 0.6 + relu(b - 5.7) - relu(b - 6.3); max(1.2, b - 3.2) = 1.2 + relu(b - 4.4).
    """

    def __init__(self) -> None:
        super().__init__()
        self.response_low, self.response_high, self.good = nn.ReLU(), nn.ReLU(), nn.ReLU()

    def forward(self, baseline: torch.Tensor) -> torch.Tensor:
        response = 0.6 + self.response_low(baseline - 5.7) - self.response_high(baseline - 6.3)
        return torch.stack([response, 1.2 + self.good(baseline - 4.4), baseline - 2.6], dim=-1)


class NormalCDF(nn.Module):
    """Phi(x), element-wise: a module, so that shap's DeepExplainer treats it as a 1-d non-linearity."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.special.ndtr(x)


def standard_scores(change: torch.Tensor, scale: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """z = (expected improvement - threshold) / scale, (..., 3): each outcome's probability is Phi(z).

    ``change`` is the expected DAS28 change (follow-up minus baseline, so the
    improvement is its negative) with ``scale`` its SD, both in the same units
    as ``thresholds``; a (n, options) change takes (n, 3) thresholds.
    """
    if change.dim() == thresholds.dim():  # (n, options) against (n, 3)
        thresholds = thresholds[:, None, :]
    return (-change[..., None] - thresholds) / scale[..., None]
