"""Synthetic hand and foot radiographs with known SvdH scores, in the RA2-DREAM layout, for tests and demos.

Each film is drawn procedurally: bright bones (cortex brighter than the
medulla) inside a grey soft-tissue silhouette on a dark background. Every
scored joint is a dark joint space carved between two bones whose width
shrinks with the JSN score (nearly closed at 4), and every erosion is a dark
punched-out notch at the cortex beside the joint, larger and more numerous as
the score rises. A canonical right hand or foot is drawn; left films are its
mirror image. Each film then varies like real films do: anatomy size and ray
angles, a few degrees of rotation, exposure and contrast, blur, a heel-effect
gradient and noise. Scores come from a latent severity per patient, so many
are 0, as in real cohorts. Nothing is downloaded; only Pillow and numpy.

Example
-------
>>> from rxpredict.imaging.synth import synthesize
>>> synthesize(3, "films", seed=1)                   # doctest: +SKIP
PosixPath('films/scores.csv')
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from PIL import Image, ImageDraw, ImageFilter, ImageOps

from rxpredict.imaging.layout import ImagePart, ra2_dream_mapping

#: The canonical drawing's size (width, height) in pixels; films are resized to ``size`` afterwards.
CANVAS = (512, 640)
BACKGROUND, SOFT_TISSUE, CORTEX, MEDULLA = 18, 62, 215, 165
SCORES_FILE = "scores.csv"
#: Share of patients without any damage, and the scale of the others' latent severity.
P_HEALTHY, SEVERITY_SCALE = 0.4, 0.5
Point = tuple[float, float]
Scores = Mapping[tuple[str, str], int]


@dataclass(frozen=True)
class Ray:
    """A finger or toe: base point, angle from vertical (degrees, + towards the image's right), bone lengths and widths.

    ``joints`` names the scored area of each joint from the base (the CMC or
    TMT joint) to the last interphalangeal joint; None for an unscored joint.
    """

    base: Point
    angle: float
    lengths: tuple[float, ...]
    widths: tuple[float, ...]
    joints: tuple[str | None, ...]


@dataclass(frozen=True)
class Bone:
    """A carpal or tarsal bone or a forearm bone end: an ellipse, and the area its erosions score (or None)."""

    name: str
    centre: Point
    radii: Point
    area: str | None = None


@dataclass(frozen=True)
class Gap:
    """The joint space between two overlapping bones (by name), and the area its JSN scores (or None)."""

    a: str
    b: str
    area: str | None = None


HAND_RAYS = (
    Ray((178, 448), -38, (88, 58, 44), (22, 19, 16), ("hand_cmc1", "hand_mcp1", "hand_ip1")),
    Ray((215, 430), -6, (125, 75, 45, 32), (20, 18, 15, 13), (None, "hand_mcp2", "hand_pip2", None)),
    Ray((252, 428), 0, (130, 82, 50, 34), (20, 18, 15, 13), ("hand_cmc3", "hand_mcp3", "hand_pip3", None)),
    Ray((288, 432), 6, (122, 76, 47, 32), (19, 17, 14, 12), ("hand_cmc4", "hand_mcp4", "hand_pip4", None)),
    Ray((320, 442), 13, (108, 60, 36, 28), (17, 15, 13, 11), ("hand_cmc5", "hand_mcp5", "hand_pip5", None)),
)
HAND_BONES = (
    Bone("radius", (236, 572), (50, 58), "hand_radius"),
    Bone("ulna", (318, 592), (19, 52), "hand_ulna"),
    Bone("trapezium", (186, 462), (25, 21), "hand_trapezium"),
    Bone("trapezoid", (219, 455), (19, 18)),
    Bone("capitate", (254, 466), (22, 28)),
    Bone("hamate", (293, 468), (23, 26)),
    Bone("scaphoid", (212, 500), (29, 20), "hand_scaphoid"),
    Bone("lunate", (259, 505), (24, 19), "hand_lunate"),
    Bone("triquetrum", (301, 500), (21, 18)),
)
HAND_GAPS = (
    Gap("trapezium", "scaphoid", "hand_scaphoid_trapezium"),
    Gap("trapezoid", "scaphoid", "hand_scaphoid_trapezium"),
    Gap("capitate", "scaphoid", "hand_capitate_scaphoid_lunate"),
    Gap("capitate", "lunate", "hand_capitate_scaphoid_lunate"),
    Gap("radius", "scaphoid", "hand_radiocarpal"),
    Gap("radius", "lunate", "hand_radiocarpal"),
    Gap("trapezium", "trapezoid"),
    Gap("trapezoid", "capitate"),
    Gap("capitate", "hamate"),
    Gap("scaphoid", "lunate"),
    Gap("lunate", "triquetrum"),
    Gap("hamate", "triquetrum"),
)
FOOT_RAYS = (
    Ray((205, 540), -4, (150, 70, 48), (34, 30, 26), (None, "foot_mtp1", "foot_ip1")),
    Ray((246, 545), 2, (165, 50, 22, 20), (20, 18, 15, 14), (None, "foot_mtp2", None, None)),
    Ray((281, 550), 7, (150, 45, 20, 18), (19, 17, 14, 13), (None, "foot_mtp3", None, None)),
    Ray((313, 558), 12, (138, 40, 18, 17), (18, 16, 13, 12), (None, "foot_mtp4", None, None)),
    Ray((342, 570), 18, (118, 36, 16, 15), (19, 16, 13, 12), (None, "foot_mtp5", None, None)),
)
FOOT_BONES = (
    Bone("navicular", (240, 640), (62, 26)),
    Bone("cuboid", (332, 610), (32, 36)),
    Bone("medial cuneiform", (206, 586), (26, 30)),
    Bone("intermediate cuneiform", (247, 584), (19, 26)),
    Bone("lateral cuneiform", (284, 590), (20, 28)),
)
FOOT_GAPS = (
    Gap("medial cuneiform", "intermediate cuneiform"),
    Gap("intermediate cuneiform", "lateral cuneiform"),
    Gap("lateral cuneiform", "cuboid"),
    Gap("navicular", "medial cuneiform"),
    Gap("navicular", "intermediate cuneiform"),
    Gap("navicular", "lateral cuneiform"),
)
ANATOMY = {"hand": (HAND_RAYS, HAND_BONES, HAND_GAPS), "foot": (FOOT_RAYS, FOOT_BONES, FOOT_GAPS)}
#: A joint space at JSN 4 keeps ``CLOSED`` of its width at JSN 0.
CLOSED = 0.1
#: Joint-space width between carpal or tarsal bones at JSN 0, per unit of a film's ``gap`` share.
CARPAL_GAP = 14
#: Erosions of carpal bones and forearm ends are sized as on a long bone this half-width (pixels).
CARPAL_HALF_WIDTH = 12


# --- scores -------------------------------------------------------------------------------------------------------


def draw_scores(rng: np.random.Generator) -> dict[str, int]:
    """One patient's score row (column -> score): a latent severity, then Poisson scores capped at each maximum."""
    severity = 0.0 if rng.random() < P_HEALTHY else rng.gamma(1.3, SEVERITY_SCALE)
    columns = ra2_dream_mapping().columns
    draws = rng.poisson(severity * 0.15 * np.array([c.maximum for c in columns], dtype=float))
    return {c.column: int(min(d, c.maximum)) for c, d in zip(columns, draws)}


def _joint_scores(row: Mapping[str, int], side: str) -> dict[tuple[str, str], int]:
    """A score row as (area without the side, kind) -> score for one side."""
    prefix = f"{side}_"
    return {(c.joint.removeprefix(prefix), c.score): row[c.column]
            for c in ra2_dream_mapping().columns if c.joint.startswith(prefix)}


# --- drawing ------------------------------------------------------------------------------------------------------


def _capsule(draw: ImageDraw.ImageDraw, p: Point, q: Point, width: float, fill: int) -> None:
    """A thick segment with round ends: a long bone, a finger's soft tissue."""
    r = width / 2
    draw.line([p, q], fill=fill, width=max(1, round(width)))
    for x, y in (p, q):
        draw.ellipse([x - r, y - r, x + r, y + r], fill=fill)


def _ellipse(draw: ImageDraw.ImageDraw, c: Point, radii: Point, fill: int) -> None:
    draw.ellipse([c[0] - radii[0], c[1] - radii[1], c[0] + radii[0], c[1] + radii[1]], fill=fill)


def _ray_points(ray: Ray, scale: float, tilt: float) -> tuple[list[Point], Point]:
    """The joint points of a ray from its base to its tip, and its unit direction."""
    a = math.radians(ray.angle + tilt)
    d = (math.sin(a), -math.cos(a))
    points, s = [ray.base], 0.0
    for length in ray.lengths:
        s += length * scale
        points.append((ray.base[0] + d[0] * s, ray.base[1] + d[1] * s))
    return points, d


def _carve(draw: ImageDraw.ImageDraw, centre: Point, across: Point, half_length: float, width: float) -> None:
    """A joint space: a dark band ``width`` wide across ``across``, ``2 * half_length`` long."""
    px, py = -across[1], across[0]
    ends = [(centre[0] - px * half_length, centre[1] - py * half_length),
            (centre[0] + px * half_length, centre[1] + py * half_length)]
    draw.line(ends, fill=SOFT_TISSUE, width=max(1, round(width)))


def _gap_width(base: float, jsn: int) -> float:
    """Joint-space width at a JSN score: ``base`` at 0, shrinking linearly to ``CLOSED * base`` at 4."""
    return base * (1 - (1 - CLOSED) * jsn / 4)


def _erosion_sizes(area: str, scores: Scores, maxima: Mapping[tuple[str, str], int], half_width: float) -> list[float]:
    """Radii of the notches of an area's erosion score: more and larger as the score (scaled to 0..5) rises."""
    score = scores.get((area, "erosion"), 0)
    if score <= 0:
        return []
    s = score * 5 / maxima[(area, "erosion")]
    count = 1 + int(s >= 3) + int(s >= 5)
    return [half_width * (0.25 + 0.08 * s)] * count


def _notches(draw: ImageDraw.ImageDraw, spots: list[Point], radii: list[float]) -> None:
    """Punched-out cortical defects: dark discs at the first ``len(radii)`` spots on a bone's margin."""
    for (x, y), r in zip(spots, radii):
        draw.ellipse([x - r, y - r, x + r, y + r], fill=SOFT_TISSUE)


def _draw_ray(draw: ImageDraw.ImageDraw, ray: Ray, scale: float, tilt: float, gap: float, scores: Scores,
              maxima: Mapping[tuple[str, str], int], landmarks: dict[str, Point]) -> None:
    """A finger or toe: its bones, a joint space at each joint (``gap`` of the bone width at JSN 0), its erosions."""
    points, d = _ray_points(ray, scale, tilt)
    widths = [w * scale for w in ray.widths]
    for p, q, w in zip(points, points[1:], widths):
        _capsule(draw, p, q, w, CORTEX)
        inset = (d[0] * w * 0.3, d[1] * w * 0.3)
        _capsule(draw, (p[0] + inset[0], p[1] + inset[1]), (q[0] - inset[0], q[1] - inset[1]), w * 0.45, MEDULLA)
    for i, area in enumerate(ray.joints):
        centre = points[i]
        w = min(widths[max(i - 1, 0)], widths[i])
        _carve(draw, centre, d, w * 0.75, _gap_width(gap * w, scores.get((area, "jsn"), 0)))
        if area is None:
            continue
        landmarks[area] = centre
        perp = (-d[1], d[0])
        # proximal bone on both sides of the joint, then the distal bone
        spots = [(centre[0] + w * (perp[0] * sp / 2 - d[0] * sa), centre[1] + w * (perp[1] * sp / 2 - d[1] * sa))
                 for sa, sp in ((0.45, -1), (0.45, 1), (-0.45, -1))]
        _notches(draw, spots, _erosion_sizes(area, scores, maxima, w / 2))


def _soft_tissue(draw: ImageDraw.ImageDraw, rays: tuple[Ray, ...], bones: tuple[Bone, ...], scale: float,
                 tilt: float) -> None:
    """The grey silhouette: a capsule around each ray, and a hull over the palm or midfoot and the forearm."""
    hull = []
    for ray in rays:
        points, _ = _ray_points(ray, scale, tilt)
        _capsule(draw, points[0], points[-1], max(ray.widths) * scale * 2.1, SOFT_TISSUE)
        hull += [points[0], points[1]]
    hull += [(b.centre[0] + sx * b.radii[0] * 1.4, b.centre[1] + b.radii[1]) for b in bones for sx in (-1, 1)]
    xs = [x for x, _ in hull]
    draw.polygon(_convex_hull(hull), fill=SOFT_TISSUE)
    draw.rectangle([min(xs) + 10, max(y for _, y in hull) - 30, max(xs) - 5, CANVAS[1]], fill=SOFT_TISSUE)


def _convex_hull(points: list[Point]) -> list[Point]:
    """Andrew's monotone chain."""
    pts = sorted(set(points))

    def half(seq: list[Point]) -> list[Point]:
        out: list[Point] = []
        for p in seq:
            while len(out) >= 2 and ((out[-1][0] - out[-2][0]) * (p[1] - out[-2][1])
                                     - (out[-1][1] - out[-2][1]) * (p[0] - out[-2][0])) <= 0:
                out.pop()
            out.append(p)
        return out[:-1]

    return half(pts) + half(pts[::-1])


def _radius_along(bone: Bone, u: Point) -> float:
    """The distance from an ellipse's centre to its margin along the unit vector ``u``."""
    return 1 / math.hypot(u[0] / bone.radii[0], u[1] / bone.radii[1])


def _gap_line(a: Bone, b: Bone) -> tuple[Point, Point, float]:
    """Centre, direction across, and half length of the joint space where bones ``a`` and ``b`` overlap."""
    dx, dy = b.centre[0] - a.centre[0], b.centre[1] - a.centre[1]
    d = math.hypot(dx, dy)
    u = (dx / d, dy / d)
    ra, rb = _radius_along(a, u), _radius_along(b, u)
    s = ra + (d - ra - rb) / 2
    perp = (-u[1], u[0])
    half_length = 0.75 * min(_radius_along(a, perp), _radius_along(b, perp))
    return (a.centre[0] + u[0] * s, a.centre[1] + u[1] * s), u, half_length


def _draw_bones(draw: ImageDraw.ImageDraw, bones: tuple[Bone, ...], gaps: tuple[Gap, ...], gap: float,
                scores: Scores, maxima: Mapping[tuple[str, str], int], landmarks: dict[str, Point]) -> None:
    """Carpal or tarsal bones and forearm ends, the joint spaces between them, and their erosions."""
    by_name = {b.name: b for b in bones}
    for b in bones:
        _ellipse(draw, b.centre, b.radii, CORTEX)
        _ellipse(draw, b.centre, (b.radii[0] * 0.6, b.radii[1] * 0.6), MEDULLA)
    centres: dict[str, list[Point]] = {}
    for g in gaps:
        centre, across, half_length = _gap_line(by_name[g.a], by_name[g.b])
        _carve(draw, centre, across, half_length, _gap_width(gap * CARPAL_GAP, scores.get((g.area, "jsn"), 0)))
        centres.setdefault(g.area, []).append(centre)
    landmarks.update({a: tuple(np.mean(c, axis=0)) for a, c in centres.items() if a is not None})
    for b in bones:
        if b.area is None:
            continue
        landmarks[b.area] = b.centre
        spots = [(b.centre[0] + b.radii[0] * math.cos(a), b.centre[1] - b.radii[1] * math.sin(a))
                 for a in (math.radians(160), math.radians(20), math.radians(90))]
        _notches(draw, spots, _erosion_sizes(b.area, scores, maxima, CARPAL_HALF_WIDTH))


def render(part: ImagePart, row: Mapping[str, int], rng: np.random.Generator,
           size: tuple[int, int] = CANVAS) -> tuple[np.ndarray, dict[str, Point]]:
    """One film of a patient's score ``row``: a uint8 image (rows, columns) and its joint centres (x, y).

    Every random draw is made whatever the scores, so two rows rendered with
    equally seeded generators differ only where their scores differ.
    """
    scale, tilt = rng.normal(1.0, 0.04), rng.normal(0.0, 1.5)
    gap, angle = rng.uniform(0.32, 0.44), rng.uniform(-6.0, 6.0)
    side_scores = _joint_scores(row, part.side)
    maxima = {(c.joint.removeprefix(f"{part.side}_"), c.score): c.maximum for c in ra2_dream_mapping().columns}
    rays, bones, gaps = ANATOMY[part.region]
    image = Image.new("L", CANVAS, BACKGROUND)
    draw = ImageDraw.Draw(image)
    landmarks: dict[str, Point] = {}
    _soft_tissue(draw, rays, bones, scale, tilt)
    _draw_bones(draw, bones, gaps, gap, side_scores, maxima, landmarks)
    for ray in rays:
        _draw_ray(draw, ray, scale, tilt, gap, side_scores, maxima, landmarks)
    if part.side == "left":
        image = ImageOps.mirror(image)
        landmarks = {a: (CANVAS[0] - 1 - x, y) for a, (x, y) in landmarks.items()}
    image = image.rotate(angle, resample=Image.Resampling.BILINEAR, fillcolor=BACKGROUND)
    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 1.5))).resize(size, Image.Resampling.BILINEAR)
    factor = (size[0] / CANVAS[0], size[1] / CANVAS[1])
    landmarks = {f"{part.side}_{a}": _rotated(p, angle, factor) for a, p in landmarks.items()}
    return _expose(np.asarray(image, dtype=np.float32), rng), landmarks


def _rotated(p: Point, angle: float, factor: Point) -> Point:
    """Where PIL's counter-clockwise ``rotate(angle)`` about the canvas centre, then a resize, moves a point."""
    cx, cy = CANVAS[0] / 2, CANVAS[1] / 2
    a = math.radians(angle)
    dx, dy = p[0] - cx, p[1] - cy
    x, y = cx + dx * math.cos(a) + dy * math.sin(a), cy - dx * math.sin(a) + dy * math.cos(a)
    return round(x * factor[0], 1), round(y * factor[1], 1)


def _expose(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Exposure, contrast (gamma), a heel-effect gradient along the film and noise, as uint8."""
    gain, offset, gamma = rng.uniform(0.8, 1.15), rng.uniform(-12, 12), rng.uniform(0.8, 1.25)
    heel = 1 + rng.uniform(-0.12, 0.12) * np.linspace(-1, 1, pixels.shape[0], dtype=np.float32)[:, None]
    noise = rng.normal(0.0, rng.uniform(2, 6), pixels.shape).astype(np.float32)
    out = 255 * (pixels / 255) ** gamma * gain * heel + offset + noise
    return np.clip(out, 0, 255).astype(np.uint8)


# --- the folder ---------------------------------------------------------------------------------------------------


def synthesize(n_patients: int, out: str | Path, seed: int = 0, size: tuple[int, int] = CANVAS) -> Path:
    """Write ``n_patients`` synthetic patients in the RA2-DREAM layout into ``out``; returns the score CSV's path.

    Patient ``i`` depends only on ``seed`` and ``i``, so a larger run starts
    with the same patients. ``size`` is each film's (width, height). ``out``
    must be new or empty, so films of two runs never mix.
    """
    if n_patients < 1:
        raise ValueError(f"n_patients must be at least 1, not {n_patients}")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} exists and is not an empty folder; choose a new one")
    out.mkdir(parents=True, exist_ok=True)
    mapping = ra2_dream_mapping()
    rows = []
    for i in range(n_patients):
        rng = np.random.default_rng([seed, i])
        patient, row = f"SYN{i + 1:05d}", draw_scores(rng)
        for part in mapping.parts:
            pixels, landmarks = render(part, row, rng, size)
            stem = out / f"{patient}-{part.suffix}"
            Image.fromarray(pixels).save(stem.with_suffix(".jpg"), quality=92)
            stem.with_suffix(".json").write_text(json.dumps(landmarks, indent=1) + "\n", encoding="utf-8")
        rows.append({mapping.id_column: patient, **_totals(row), **row})
    csv = out / SCORES_FILE
    pl.DataFrame(rows).select(mapping.csv_columns).write_csv(csv)
    return csv


def _totals(row: Mapping[str, int]) -> dict[str, int]:
    mapping = ra2_dream_mapping()
    return {total: sum(row[c.column] for c in mapping.columns if c.score in kinds)
            for total, kinds in mapping.totals.items()}
