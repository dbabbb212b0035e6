"""Films on the working canvas: one orientation, one size, and the way back to the film's own pixels.

Every film is mirrored to look like a right hand or foot (a left film is the
mirror image of a right one, so one network serves both sides) and scaled,
keeping its aspect, into the centre of a fixed working canvas. The networks
see only the canvas; :class:`Placement` turns canvas points back into the
film's pixels (and film points, e.g. landmark files, onto the canvas).
Pixel centres sit at whole coordinates.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Placement:
    """Where a film of ``shape`` (rows, cols) lies on the canvas: scale per axis, offset, and whether mirrored."""

    shape: tuple[int, int]
    scale: tuple[float, float]
    offset: tuple[float, float]
    mirrored: bool

    def to_canvas(self, points: np.ndarray) -> np.ndarray:
        """Film pixels (n, 2) of x, y to canvas pixels."""
        p = np.asarray(points, dtype=np.float64).reshape(-1, 2).copy()
        if self.mirrored:
            p[:, 0] = self.shape[1] - 1 - p[:, 0]
        return (p + 0.5) * self.scale - 0.5 + self.offset

    def to_film(self, points: np.ndarray) -> np.ndarray:
        """Canvas pixels (n, 2) of x, y to film pixels."""
        p = (np.asarray(points, dtype=np.float64).reshape(-1, 2) - self.offset + 0.5) / self.scale - 0.5
        if self.mirrored:
            p[:, 0] = self.shape[1] - 1 - p[:, 0]
        return p


def place(image: np.ndarray, size: tuple[int, int], mirror: bool) -> tuple[np.ndarray, Placement]:
    """The film (float array in [0, 1]) on a dark canvas of ``size`` (width, height), and its placement."""
    rows, cols = image.shape
    width, height = size
    s = min(width / cols, height / rows)
    new = (max(1, round(cols * s)), max(1, round(rows * s)))
    pixels = image[:, ::-1] if mirror else image
    if new != (cols, rows):
        pixels = np.asarray(Image.fromarray(np.ascontiguousarray(pixels, dtype=np.float32))
                            .resize(new, Image.Resampling.BILINEAR))
    canvas = np.zeros((height, width), dtype=np.float32)
    ox, oy = (width - new[0]) // 2, (height - new[1]) // 2
    canvas[oy:oy + new[1], ox:ox + new[0]] = np.clip(pixels, 0.0, 1.0)
    placement = Placement((rows, cols), (new[0] / cols, new[1] / rows), (float(ox), float(oy)), mirror)
    return canvas, placement


def shrink(canvas: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The canvas at the locator's ``size`` (width, height), averaging over each block of pixels."""
    return np.array(Image.fromarray(canvas).resize(size, Image.Resampling.BOX), dtype=np.float32)


def normalised(points: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Pixel points (..., 2) of an image of ``size`` (width, height) in the [-1, 1] coordinates of torch's
    ``grid_sample`` and ``affine_grid`` with ``align_corners=False``."""
    return (2 * np.asarray(points, dtype=np.float64) + 1) / np.asarray(size, dtype=np.float64) - 1


def pixels(points: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The inverse of :func:`normalised`."""
    return ((np.asarray(points, dtype=np.float64) + 1) * np.asarray(size, dtype=np.float64) - 1) / 2
