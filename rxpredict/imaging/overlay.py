"""A scored film drawn for a reader: each joint area a circle coloured by its score, with the score beside it.

Green is 0, amber half the area's maximum, red the maximum; grey marks an
area the film does not score for that kind (JSN of the wrist bones, say).
Computing is the scorer's; this only draws its :class:`FilmScore`.

Example
-------
>>> from rxpredict.imaging.overlay import overlay_png
>>> png = overlay_png(image, film, kind="jsn")       # doctest: +SKIP
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from rxpredict.imaging.film import KINDS, FilmScore

#: Colours (RGB) of a score of 0, half the maximum and the maximum, and of an area not scored.
GREEN, AMBER, RED, GREY = (40, 180, 60), (245, 170, 0), (220, 30, 30), (150, 150, 150)
#: Circle radius as a share of the film's shorter side, and how opaque its fill is.
RADIUS_SHARE, FILL_ALPHA = 0.025, 150


def score_colour(score: float | None, maximum: float | None) -> tuple[int, int, int]:
    """The colour of ``score`` out of ``maximum``: green (0) through amber to red (maximum); grey for None."""
    if score is None or not maximum:
        return GREY
    t = min(max(score / maximum, 0.0), 1.0)
    low, high, t = (GREEN, AMBER, 2 * t) if t <= 0.5 else (AMBER, RED, 2 * t - 1)
    return tuple(round(a + (b - a) * t) for a, b in zip(low, high))


def overlay_png(image: np.ndarray, film: FilmScore, kind: str = "erosion") -> bytes:
    """The film (grayscale in [0, 1], rows x columns) as an RGB PNG of its size with each area's ``kind`` score drawn.

    Each joint area is a filled circle at its centre, radius scaled to the
    film, coloured by :func:`score_colour`, with its score written beside it
    (grey and unlabelled where the area is not scored for ``kind``). An area
    whose place the locator was unsure of gets a white ring and a ``?``.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    gray = (np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0) * 255).round().astype(np.uint8)
    base = Image.fromarray(gray).convert("RGBA")
    marks = Image.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(marks)
    r = max(3, round(RADIUS_SHARE * min(base.size)))
    font = ImageFont.load_default(size=max(8, round(1.6 * r)))
    for j in film.joints:
        maximum = getattr(j, f"{kind}_max")
        score = j.score(kind) if maximum is not None else None
        colour = score_colour(score, maximum)
        draw.ellipse((j.x - r, j.y - r, j.x + r, j.y + r), fill=(*colour, FILL_ALPHA), outline=(*colour, 255),
                     width=max(1, r // 4))
        if j.unsure:
            ring = 1.5 * r
            draw.ellipse((j.x - ring, j.y - ring, j.x + ring, j.y + ring), outline=(255, 255, 255, 255),
                         width=max(1, r // 4))
        label = ("" if score is None else str(score)) + ("?" if j.unsure else "")
        if label:
            draw.text((j.x + 1.2 * r, j.y - 1.2 * r), label, fill=(*colour, 255), font=font,
                      stroke_width=max(1, r // 6), stroke_fill=(0, 0, 0, 255))
    out = io.BytesIO()
    Image.alpha_composite(base, marks).convert("RGB").save(out, format="PNG")
    return out.getvalue()
