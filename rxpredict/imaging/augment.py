"""Training-time variation of films and crops, in torch: pose (rotation, scale, shift) and exposure.

Real films differ in positioning, magnification, exposure, contrast, blur and
noise; the networks see random amounts of each while they learn, so that
they do not learn one scanner. Poses are affine maps in normalised
coordinates (``align_corners=False``), corrected for the aspect ratio so that
a rotation stays a rotation; landmarks move with their film.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Pose:
    """Ranges of random pose: rotation (degrees, +/-), scale (+/- fraction), shift (+/- fraction of half-size)."""

    rotation: float = 8.0
    scale: float = 0.08
    shift: float = 0.06


def _uniform(n: int, half_range: float) -> torch.Tensor:
    return (torch.rand(n) * 2 - 1) * half_range


def random_affine(n: int, pose: Pose, size: tuple[int, int], zoom: float = 1.0) -> torch.Tensor:
    """``n`` affine maps (n, 2, 3) from output to input normalised coordinates for images of ``size`` (width, height).

    ``zoom`` < 1 samples a central part of the input (a crop from a larger patch).
    """
    width, height = size
    angle = torch.deg2rad(_uniform(n, pose.rotation))
    scale = zoom * (1 + _uniform(n, pose.scale))
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    aspect = height / width
    theta = torch.zeros(n, 2, 3)
    # pixel-space rotation R, seen in normalised coordinates: D^-1 R D with D = diag(width, height) / 2
    theta[:, 0, 0], theta[:, 0, 1] = cos, -sin * aspect
    theta[:, 1, 0], theta[:, 1, 1] = sin / aspect, cos
    theta[:, 0, 2], theta[:, 1, 2] = _uniform(n, pose.shift), _uniform(n, pose.shift)
    return theta


def fixed_zoom(n: int, zoom: float) -> torch.Tensor:
    """The identity pose sampling the central ``zoom`` of the input: how crops are taken at inference."""
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = zoom
    return theta


def warp(images: torch.Tensor, theta: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Resample ``images`` (n, c, h, w) through ``theta``, into ``size`` (width, height) or the same size."""
    n, c, h, w = images.shape
    out = (n, c, h, w) if size is None else (n, c, size[1], size[0])
    grid = F.affine_grid(theta, list(out), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def move_points(points: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Normalised points (n, k, 2) of the input, where ``warp`` with ``theta`` puts them in the output."""
    a, t = theta[:, :, :2], theta[:, :, 2]
    return torch.linalg.solve(a[:, None], (points - t[:, None])[..., None])[..., 0]


def expose(images: torch.Tensor, strength: float = 1.0) -> torch.Tensor:
    """Random gamma, gain, offset, slight blur and noise, on images in [0, 1]."""
    n = images.shape[0]

    def each(half_range: float) -> torch.Tensor:
        return _uniform(n, half_range * strength).view(n, 1, 1, 1)

    x = images.clamp(0, 1) ** torch.exp(each(0.3))
    x = x * (1 + each(0.2)) + each(0.08)
    blur = (torch.rand(n) * 0.6 * strength).view(n, 1, 1, 1)
    x = (1 - blur) * x + blur * F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    return x + torch.randn_like(x) * (torch.rand(n) * 0.03 * strength).view(n, 1, 1, 1)
