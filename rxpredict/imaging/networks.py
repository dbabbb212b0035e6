"""The scorer's two networks, in plain torch: a heat-map locator of joint areas, and an ordinal crop scorer.

:class:`Locator` is a small U-Net over the whole (downscaled) film with two
coordinate channels, so that it can tell the second MCP from the third; it
gives one spatial softmax per joint area. :class:`CropScorer` looks at one
joint area's crop and gives, per score kind, a single latent score compared
with increasing thresholds per joint area (a cumulative-link, or
proportional-odds, model): P(score > k) falls with k by construction, and
only the thresholds below an area's maximum exist, so no prediction can
leave the area's range. No torchvision: it has no CPU build here.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _block(c_in: int, c_out: int, dilation: int = 1) -> nn.Sequential:
    """Two 3x3 convolutions with batch normalisation and ReLU."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=dilation, dilation=dilation, bias=False), nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=dilation, dilation=dilation, bias=False), nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


def _conv(c_in: int, c_out: int) -> nn.Sequential:
    """One 3x3 convolution with batch normalisation and ReLU: where a layer sees many pixels, one is enough."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True))


def standardise(x: torch.Tensor) -> torch.Tensor:
    """Each image (or crop) to mean 0 and SD 1, so exposure and contrast between films matter less."""
    mean = x.mean(dim=(-2, -1), keepdim=True)
    sd = x.std(dim=(-2, -1), keepdim=True)
    return (x - mean) / (sd + 1e-3)


def coordinate_channels(n: int, height: int, width: int, device: torch.device | None = None) -> torch.Tensor:
    """Two channels holding each pixel's x and y in [-1, 1] (pixel centres, as ``align_corners=False``)."""
    ys = (torch.arange(height, device=device, dtype=torch.float32) * 2 + 1) / height - 1
    xs = (torch.arange(width, device=device, dtype=torch.float32) * 2 + 1) / width - 1
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x, grid_y]).expand(n, 2, height, width)


class Locator(nn.Module):
    """Heat maps of ``n_landmarks`` joint areas at half the input resolution, as logits (batch, K, H/2, W/2)."""

    def __init__(self, n_landmarks: int, width: int = 16) -> None:
        super().__init__()
        w = width
        self.enc1 = _conv(3, w)
        self.enc2 = _block(w, 2 * w)
        self.enc3 = _block(2 * w, 4 * w)
        self.context = nn.Sequential(_block(4 * w, 4 * w, dilation=2), _block(4 * w, 4 * w, dilation=4))
        self.dec3 = _conv(8 * w, 4 * w)
        self.dec2 = _conv(6 * w, 2 * w)
        self.head = nn.Conv2d(2 * w, n_landmarks, 1)
        self.to(memory_format=torch.channels_last)  # oneDNN's faster layout for convolutions on the CPU

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        n, _, h, w = image.shape
        x = torch.cat([standardise(image), coordinate_channels(n, h, w, image.device)], dim=1)
        x = x.contiguous(memory_format=torch.channels_last)
        e1 = self.enc1(x)                       # H
        e2 = self.enc2(F.max_pool2d(e1, 2))     # H/2
        e3 = self.enc3(F.max_pool2d(e2, 2))     # H/4
        c = self.context(F.max_pool2d(e3, 2))   # H/8
        d3 = self.dec3(torch.cat([F.interpolate(c, size=e3.shape[-2:], mode="bilinear"), e3], dim=1))
        d2 = self.dec2(torch.cat([F.interpolate(d3, size=e2.shape[-2:], mode="bilinear"), e2], dim=1))
        return self.head(d2)


def heatmap_target(points: torch.Tensor, height: int, width: int, sigma: float) -> torch.Tensor:
    """Gaussian target distributions (batch, K, H, W) summing to 1, at normalised points (batch, K, 2)."""
    grid = coordinate_channels(1, height, width, points.device)[0]            # (2, H, W)
    cell = torch.tensor([2 / width, 2 / height], device=points.device)
    d = (grid[None, None] - points[..., None, None]) / (sigma * cell[None, None, :, None, None])
    logits = -0.5 * d.square().sum(dim=2)
    return torch.softmax(logits.flatten(2), dim=-1).view(*points.shape[:2], height, width)


def decode_heatmaps(logits: torch.Tensor, window: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Sub-cell joint centres from heat-map logits: the probability-weighted mean of the cells within ``window``
    of the most likely one. Returns normalised points (batch, K, 2) and the probability mass near them."""
    b, k, h, w = logits.shape
    prob = torch.softmax(logits.flatten(2), dim=-1).view(b, k, h, w)
    best = prob.flatten(2).argmax(dim=-1)
    row, col = best // w, best % w
    rows = torch.arange(h, device=logits.device)
    cols = torch.arange(w, device=logits.device)
    near = (((rows[None, None, :, None] - row[..., None, None]).abs() <= window)
            & ((cols[None, None, None, :] - col[..., None, None]).abs() <= window))
    local = prob * near
    mass = local.sum(dim=(-2, -1))
    grid = coordinate_channels(1, h, w, logits.device)[0]
    points = (local[:, :, None] * grid[None, None]).sum(dim=(-2, -1)) / mass[..., None].clamp_min(1e-12)
    return points, mass


class CropScorer(nn.Module):
    """Erosion and JSN of joint-area crops (one channel per view of a crop), read alongside the other joint areas
    of the same film: a CNN per crop, the mean of its film's crop features, the area's embedding, and ordered
    thresholds per area.

    The film's mean is what a reader gets from comparing a joint with the
    film's other joints: how wide a healthy joint space is on this film, how
    this film shows bone. ``maxima`` is (areas, 2): each area's erosion and
    JSN maximum, 0 where the area is not scored for that kind.
    :meth:`forward` gives the logits of P(score > k), (crops, 2, K) with K the
    largest maximum, and -inf for thresholds at or above the area's maximum.
    """

    def __init__(self, maxima: torch.Tensor, channels: int = 1, width: int = 16, embedding: int = 8) -> None:
        super().__init__()
        w = width
        self.register_buffer("maxima", maxima.to(torch.long))
        n_areas, n_kinds = maxima.shape
        n_thresholds = int(maxima.max())
        self.features = nn.Sequential(
            _conv(channels, w), nn.MaxPool2d(2), _conv(w, 2 * w), nn.MaxPool2d(2),
            _conv(2 * w, 3 * w), nn.MaxPool2d(2), _block(3 * w, 4 * w),
        )
        self.area = nn.Embedding(n_areas, embedding)
        self.head = nn.Sequential(nn.Linear(16 * w + embedding, 64), nn.ReLU(inplace=True), nn.Linear(64, n_kinds))
        # threshold k of (area, kind) = first + sum of softplus(steps) up to k: increasing in k
        self.first = nn.Parameter(torch.zeros(n_areas, n_kinds, 1))
        self.steps = nn.Parameter(torch.zeros(n_areas, n_kinds, max(n_thresholds - 1, 0)))
        self.features.to(memory_format=torch.channels_last)  # about twice as fast on the CPU

    def thresholds(self) -> torch.Tensor:
        return torch.cat([self.first, self.first + torch.cumsum(F.softplus(self.steps) + 0.05, dim=-1)], dim=-1)

    def forward(self, crops: torch.Tensor, areas: torch.Tensor, films: torch.Tensor) -> torch.Tensor:
        """``films`` numbers each crop's film (0, 1, ... within the call); crops of one film are read together."""
        f = self.features(standardise(crops).contiguous(memory_format=torch.channels_last))
        pooled = torch.cat([f.mean(dim=(-2, -1)), f.amax(dim=(-2, -1))], dim=1)
        n_films = int(films.max()) + 1 if len(films) else 0
        sums = pooled.new_zeros(n_films, pooled.shape[1]).index_add(0, films, pooled)
        context = sums / torch.bincount(films, minlength=n_films).clamp_min(1)[:, None]
        latent = self.head(torch.cat([pooled, context[films], self.area(areas)], dim=1))   # (crops, kinds)
        logits = latent[..., None] - self.thresholds()[areas]                               # (crops, kinds, K)
        k = torch.arange(logits.shape[-1], device=crops.device)
        valid = k[None, None] < self.maxima[areas][..., None]
        return logits.masked_fill(~valid, float("-inf"))


def ordinal_loss(logits: torch.Tensor, scores: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean binary cross-entropy of every valid threshold, P(score > k), each crop's terms times its weight
    (default 1); scores < 0 (not scored) are left out."""
    k = torch.arange(logits.shape[-1], device=logits.device)
    above = (scores[..., None] > k).to(logits.dtype)
    valid = torch.isfinite(logits) & (scores[..., None] >= 0)
    safe = logits.masked_fill(~valid, 0.0)
    losses = F.binary_cross_entropy_with_logits(safe, above, reduction="none") * valid
    if weights is not None:
        losses = losses * weights[:, None, None]
    return losses.sum() / valid.sum().clamp_min(1)


def expected_scores(logits: torch.Tensor) -> torch.Tensor:
    """The expected score per kind: the sum over k of P(score > k)."""
    return torch.sigmoid(logits).sum(dim=-1)
