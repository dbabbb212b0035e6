"""The radiograph damage scorer: locate the joint areas of a film, then score each for erosion and JSN.

:class:`RadiographScorer` follows scikit-learn's conventions: parameters in
``__init__``, ``fit`` on an RA2-DREAM folder returns the scorer, learned
state ends in ``_``. Fitting trains, per region (hand, foot), a heat-map
:class:`~rxpredict.imaging.networks.Locator` on the films that have landmark
files, then one :class:`~rxpredict.imaging.networks.CropScorer` on crops
around every joint area (at the landmark files' centres, or where the
locator puts them for films without one). Both learn under random pose and
exposure, stop early on held-out patients and show a progress bar.

The crop scorer reads the crops of one film together (each crop with the
mean of its film's crop features), as a reader compares a joint with the
film's other joints. Most joint areas score 0: films with any damage are
seen ``oversample`` times per epoch, so the rarer scores shape the features
more often, each time with weight ``1 / oversample`` (importance weighting),
so that the loss is still that of the training films as they are and
expected scores stay calibrated.

Example
-------
>>> from rxpredict.imaging.layout import read_folder, read_image
>>> scorer = RadiographScorer(seed=0).fit(read_folder("films"))       # doctest: +SKIP
>>> scorer.score_film(read_image("films/SYN00001-LH.jpg"), "LH")      # doctest: +SKIP
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from rxpredict.exceptions import ImagingDataError
from rxpredict.imaging.augment import Pose, expose, fixed_zoom, move_points, random_affine, warp
from rxpredict.imaging.film import KINDS, FilmScore, JointScore
from rxpredict.imaging.geometry import Placement, normalised, pixels, place, shrink
from rxpredict.imaging.layout import Ra2DreamFolder, ra2_dream_mapping, read_image
from rxpredict.imaging.networks import (CropScorer, Locator, decode_heatmaps, expected_scores, heatmap_target,
                                        ordinal_loss)
from rxpredict.models.params import ParamsMixin
from rxpredict.models.training import train_early_stopping

REGIONS = ("hand", "foot")
#: Side of the square patch kept around each joint area, as a multiple of ``crop_pixels``: room to turn and shift.
PATCH_MARGIN = 1.5
FILM_POSE = Pose(rotation=8.0, scale=0.08, shift=0.06)
CROP_POSE = Pose(rotation=10.0, scale=0.1, shift=0.08)


# --- the joint areas ------------------------------------------------------------------------------------------------


def areas() -> list[str]:
    """Every scored joint area without its side (``hand_mcp2``), in the mapping's order: the scorer's vocabulary."""
    return list(dict.fromkeys(c.joint.split("_", 1)[1] for c in ra2_dream_mapping().columns))


def region_areas(region: str) -> list[str]:
    """The areas of one region (``hand`` or ``foot``), which its locator places, in vocabulary order."""
    return [a for a in areas() if a.startswith(f"{region}_")]


def region_index(region: str) -> np.ndarray:
    """Where each area of :func:`region_areas` stands in the vocabulary (:func:`areas`)."""
    vocabulary = areas()
    return np.array([vocabulary.index(a) for a in region_areas(region)])


def area_maxima() -> np.ndarray:
    """(areas, kinds): each area's erosion and JSN maximum, 0 where it is not scored for that kind."""
    vocabulary = areas()
    maxima = np.zeros((len(vocabulary), len(KINDS)), dtype=np.int64)
    for c in ra2_dream_mapping().columns:
        maxima[vocabulary.index(c.joint.split("_", 1)[1]), KINDS.index(c.score)] = c.maximum
    return maxima


# --- films on the canvas ----------------------------------------------------------------------------------------------


@dataclass
class _Films:
    """Films of one region on the working canvas (uint8), their placements, landmarks (canvas pixels, NaN where
    the film has none) and, for training, the scores per area and kind (-1 where not scored)."""

    keys: list[tuple[str, str]]
    canvases: np.ndarray
    placements: list[Placement]
    landmarks: np.ndarray
    scores: np.ndarray | None = None


def _mirrored(suffix: str) -> bool:
    return ra2_dream_mapping().part(suffix).side == "left"


def _region(suffix: str) -> str:
    return ra2_dream_mapping().part(suffix).region


def _to_uint8(canvas: np.ndarray) -> np.ndarray:
    return np.round(canvas * 255).astype(np.uint8)


# --- the scorer ------------------------------------------------------------------------------------------------------


class RadiographScorer(ParamsMixin):
    """Sharp/van der Heijde erosion and JSN per joint area of hand and foot films.

    Parameters
    ----------
    canvas_size : (width, height) every film is scaled onto, keeping its aspect; crops come from it.
    locator_size : (width, height) the locator sees; its heat maps have half this resolution.
    crop_pixels : side of each crop as the crop scorer sees it.
    crop_scales : the crop's views, one channel each: a view at scale ``s`` covers ``s * crop_pixels`` canvas
        pixels (the joint itself at 1, its surroundings, e.g. the whole distal radius, at 2).
    width, locator_width : channels of the crop scorer's and the locator's first layer (growing with depth).
    locator_epochs, scorer_epochs : most epochs; training stops after ``patience`` epochs without improvement.
    locator_batch, scorer_batch : films per training batch (the crop scorer reads a film's crops together).
    oversample : how many times per epoch a film with any damage is seen (1 = as often as the others).
    validation_fraction : share of patients held out for early stopping and the validation figures.
    """

    def __init__(self, *, canvas_size: tuple[int, int] = (512, 640), locator_size: tuple[int, int] = (96, 120),
                 crop_pixels: int = 64, crop_scales: tuple[int, ...] = (1, 2), width: int = 16,
                 locator_width: int = 12, locator_epochs: int = 12, scorer_epochs: int = 40, patience: int = 6,
                 locator_batch: int = 16, scorer_batch: int = 8,
                 learning_rate: float = 2e-3, weight_decay: float = 1e-4, heatmap_sigma: float = 1.0,
                 oversample: int = 2, validation_fraction: float = 0.15, seed: int = 0,
                 progress: bool = True) -> None:
        self.canvas_size = tuple(canvas_size)
        self.locator_size = tuple(locator_size)
        self.crop_pixels = crop_pixels
        self.crop_scales = tuple(crop_scales)
        self.width = width
        self.locator_width = locator_width
        self.locator_epochs = locator_epochs
        self.scorer_epochs = scorer_epochs
        self.patience = patience
        self.locator_batch = locator_batch
        self.scorer_batch = scorer_batch
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.heatmap_sigma = heatmap_sigma
        self.oversample = oversample
        self.validation_fraction = validation_fraction
        self.seed = seed
        self.progress = progress

    # --- networks ---------------------------------------------------------------------------------------------------

    def new_locator(self, region: str) -> Locator:
        return Locator(len(region_areas(region)), width=self.locator_width)

    def new_crop_scorer(self) -> CropScorer:
        return CropScorer(torch.from_numpy(area_maxima()), channels=len(self.crop_scales), width=self.width)

    @property
    def patch_size(self) -> int:
        return int(round(self.crop_pixels * PATCH_MARGIN))

    # --- fitting ----------------------------------------------------------------------------------------------------

    def fit(self, folder: Ra2DreamFolder, *, locator: RadiographScorer | None = None) -> RadiographScorer:
        """Train on a scored RA2-DREAM folder; ``locator`` (a fitted scorer) places the joints of films that have
        no landmark file, and is kept for a region where no film has one."""
        if folder.scores is None:
            raise ImagingDataError([f"{folder.folder}: no score CSV; the scorer learns from scored films"])
        if locator is not None:
            differ = [k for k in ("canvas_size", "locator_size", "locator_width")
                      if getattr(locator, k) != getattr(self, k)]
            if differ:
                raise ValueError(f"the locator's scorer has another {', '.join(differ)}; train with its settings")
        started = time.perf_counter()
        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        patients = sorted(folder.images)
        n_val = max(1, round(len(patients) * self.validation_fraction)) if len(patients) > 1 else 0
        held_out = set(rng.permutation(patients)[:n_val].tolist())
        self.locators_, self.history_ = {}, {}
        films, with_files = {}, {}
        for region in REGIONS:
            films[region] = self._load(folder, region)
            with_files[region] = int(np.isfinite(films[region].landmarks).all(axis=(1, 2)).sum())
            validation = np.array([k[0] in held_out for k in films[region].keys])
            self.locators_[region] = self._fit_locator(region, films[region], validation, rng, locator)
            films[region].landmarks = self._complete_landmarks(region, films[region])
        self._fit_crop_scorer(films, held_out, rng)
        self.training_ = {"patients": len(patients), "validation_patients": len(held_out),
                          "films": sum(len(f.keys) for f in films.values()),
                          "films_with_landmark_files": with_files,
                          "seconds": round(time.perf_counter() - started, 1)}
        self.validation_patients_ = sorted(held_out)
        return self

    def _load(self, folder: Ra2DreamFolder, region: str) -> _Films:
        """Every film of ``region`` on the canvas, with its landmark file's centres and its scores."""
        mapping = ra2_dream_mapping()
        vocabulary, names = areas(), region_areas(region)
        suffixes = [p.suffix for p in mapping.parts if p.region == region]
        keys = [(patient, s) for patient in sorted(folder.images) for s in suffixes if s in folder.images[patient]]
        canvases, placements = [], []
        landmarks = np.full((len(keys), len(names), 2), np.nan)
        scores = np.full((len(keys), len(vocabulary), len(KINDS)), -1, dtype=np.int64)
        table = folder.scores.rows_by_key(mapping.id_column, named=True, unique=True) if folder.scores is not None \
            else {}
        for i, (patient, suffix) in enumerate(tqdm(keys, desc=f"reading {region} films", disable=not self.progress)):
            canvas, placement = place(read_image(folder.images[patient][suffix]), self.canvas_size,
                                      _mirrored(suffix))
            canvases.append(_to_uint8(canvas))
            placements.append(placement)
            side = mapping.part(suffix).side
            for joint, point in folder.landmarks.get(patient, {}).get(suffix, {}).items():
                landmarks[i, names.index(joint.removeprefix(f"{side}_"))] = placement.to_canvas(np.array(point))[0]
            for c in mapping.columns if patient in table else ():
                if c.joint.startswith(f"{side}_{region}_"):
                    scores[i, vocabulary.index(c.joint.split("_", 1)[1]), KINDS.index(c.score)] = table[patient][c.column]
        stack = np.stack(canvases) if canvases else np.zeros((0, self.canvas_size[1], self.canvas_size[0]), np.uint8)
        return _Films(keys, stack, placements, landmarks, scores)

    def _locator_inputs(self, canvases: np.ndarray) -> torch.Tensor:
        small = [shrink(c.astype(np.float32) / 255, self.locator_size) for c in canvases]
        return torch.from_numpy(np.stack(small)[:, None]) if small else torch.zeros(0, 1, *self.locator_size[::-1])

    def _fit_locator(self, region: str, films: _Films, validation: np.ndarray, rng: np.random.Generator,
                     given: RadiographScorer | None) -> Locator:
        known = np.isfinite(films.landmarks).all(axis=-1)
        usable = known.any(axis=1)
        if not usable.any():
            if given is None:
                raise ImagingDataError([f"no {region} film has a landmark file, and no fitted scorer was given "
                                        "to place the joints (--locator MODEL_DIR)"])
            self.history_[f"locator_{region}"] = []
            return given.locators_[region]
        images = self._locator_inputs(films.canvases)
        points = torch.from_numpy(np.nan_to_num(normalised(films.landmarks, self.canvas_size)).astype(np.float32))
        present = torch.from_numpy(known)
        train_idx = np.flatnonzero(usable & ~validation)
        val_idx = np.flatnonzero(usable & validation)
        if len(val_idx) == 0 or len(train_idx) == 0:  # too few films to hold any out: stop on the training loss
            train_idx = val_idx = np.flatnonzero(usable)
        network = self.new_locator(region)
        sigma = self.heatmap_sigma

        def loss(net: Locator, batch: list[torch.Tensor]) -> torch.Tensor:
            x, p, seen = batch
            if net.training:
                theta = random_affine(len(x), FILM_POSE, self.locator_size)
                x, p = expose(warp(x, theta)), move_points(p, theta)
                seen = seen & (p.abs() < 1).all(dim=-1)
            logits = net(x)
            target = heatmap_target(p, *logits.shape[-2:], sigma=sigma)
            ce = -(target.flatten(2) * F.log_softmax(logits.flatten(2), dim=-1)).sum(dim=-1)
            return (ce * seen).sum() / seen.sum().clamp_min(1)

        self.history_[f"locator_{region}"] = train_early_stopping(
            network, loss, [images, points, present], train_idx, val_idx, rng, epochs=self.locator_epochs,
            batch_size=self.locator_batch, learning_rate=self.learning_rate, weight_decay=self.weight_decay,
            patience=self.patience, description=f"locating {region} joints", progress=self.progress, anneal=True)
        return network

    def _complete_landmarks(self, region: str, films: _Films) -> np.ndarray:
        """Landmark-file centres where a film has them, the locator's elsewhere."""
        missing = ~np.isfinite(films.landmarks).all(axis=-1)
        if not missing.any():
            return films.landmarks
        found, _ = self._locate(region, films.canvases)
        return np.where(missing[..., None], found, films.landmarks)

    @torch.no_grad()
    def _locate(self, region: str, canvases: np.ndarray, batch: int = 32) -> tuple[np.ndarray, np.ndarray]:
        """Canvas centres (films, areas, 2) of every joint area, and the heat maps' mass near each (a confidence)."""
        network = self.locators_[region].eval()
        points, mass = [], []
        for start in range(0, len(canvases), batch):
            p, m = decode_heatmaps(network(self._locator_inputs(canvases[start:start + batch])))
            points.append(p.numpy())
            mass.append(m.numpy())
        if not points:
            return np.zeros((0, len(region_areas(region)), 2)), np.zeros((0, len(region_areas(region))))
        return pixels(np.concatenate(points), self.canvas_size), np.concatenate(mass)

    def _patches(self, canvases: np.ndarray, landmarks: np.ndarray) -> torch.Tensor:
        """Square uint8 patches (films * areas, scales, P, P) centred on each landmark, one channel per crop scale
        (the canvas averaged over ``s`` x ``s`` pixels for scale ``s``)."""
        k = landmarks.shape[1]
        p = self.patch_size
        offsets = np.arange(p) - (p - 1) / 2
        patches = []
        for canvas, points in zip(canvases, landmarks):
            views = []
            for scale in self.crop_scales:
                image = canvas.astype(np.float32)
                if scale > 1:
                    image = shrink(image, (canvas.shape[1] // scale, canvas.shape[0] // scale))
                centre = (points + 0.5) / scale - 0.5
                xs = centre[:, 0, None, None] + offsets[None, None, :]
                ys = centre[:, 1, None, None] + offsets[None, :, None]
                grid = np.stack(np.broadcast_arrays(xs, ys), axis=-1)             # (k, P, P, 2) pixels of the view
                grid = torch.from_numpy(normalised(grid, image.shape[::-1]).astype(np.float32))
                source = torch.from_numpy(image)[None, None].expand(k, 1, *image.shape)
                views.append(F.grid_sample(source, grid, mode="bilinear", padding_mode="zeros", align_corners=False))
            patches.append(torch.cat(views, dim=1).round().clamp(0, 255).to(torch.uint8))
        return torch.cat(patches) if patches else torch.zeros(0, len(self.crop_scales), p, p, dtype=torch.uint8)

    def _crops(self, patches: torch.Tensor, training: bool) -> torch.Tensor:
        zoom = 1 / PATCH_MARGIN
        n = len(patches)
        theta = random_affine(n, CROP_POSE, (self.patch_size,) * 2, zoom=zoom) if training else fixed_zoom(n, zoom)
        crops = warp(patches.float() / 255, theta, size=(self.crop_pixels, self.crop_pixels))
        return expose(crops) if training else crops

    def _crop_data(self, region: str, films: _Films, slots: int) -> list[torch.Tensor]:
        """Per film, ``slots`` crops (the region's areas, then padding): patches, area indices, scores (-1 where
        not scored) and which slots hold a crop."""
        index = region_index(region)
        n, k, pad = len(films.keys), len(index), slots - len(index)
        patches = self._patches(films.canvases, films.landmarks)
        patches = patches.view(n, k, len(self.crop_scales), self.patch_size, self.patch_size)
        patches = F.pad(patches, (0, 0, 0, 0, 0, 0, 0, pad))
        area = torch.from_numpy(np.pad(np.tile(index, (n, 1)), ((0, 0), (0, pad))))
        scores = torch.from_numpy(np.pad(films.scores[:, index], ((0, 0), (0, pad), (0, 0)), constant_values=-1))
        valid = torch.arange(slots)[None].expand(n, slots) < k
        return [patches, area, scores, valid]

    def _fit_crop_scorer(self, films: dict[str, _Films], held_out: set[str], rng: np.random.Generator) -> None:
        slots = max(len(region_areas(r)) for r in REGIONS)
        data = [torch.cat(parts) for parts in zip(*(self._crop_data(r, films[r], slots) for r in REGIONS))]
        validation = np.array([k[0] in held_out for r in REGIONS for k in films[r].keys])
        train_idx, val_idx = np.flatnonzero(~validation), np.flatnonzero(validation)
        if len(val_idx) == 0:
            val_idx = train_idx
        damaged = (data[2] > 0).any(dim=(1, 2))
        sampled = np.concatenate([train_idx] + [train_idx[damaged[train_idx].numpy()]] * (self.oversample - 1))
        weight = torch.where(damaged, 1 / self.oversample, 1.0)
        network = self.new_crop_scorer()

        def loss(net: CropScorer, batch: list[torch.Tensor]) -> torch.Tensor:
            patches, area, scores, valid, film_weight = batch
            film = torch.arange(len(valid))[:, None].expand_as(valid)[valid]
            crops = self._crops(patches[valid], training=net.training)
            # oversampled films count 1 / oversample each time while training; validation films count once
            weights = film_weight[film] if net.training else None
            return ordinal_loss(net(crops, area[valid], film), scores[valid], weights)

        self.history_["scorer"] = train_early_stopping(
            network, loss, [*data, weight], sampled, val_idx, rng, epochs=self.scorer_epochs,
            batch_size=self.scorer_batch, learning_rate=self.learning_rate, weight_decay=self.weight_decay,
            patience=self.patience, description="scoring joint areas", progress=self.progress, anneal=True)
        self.crop_scorer_ = network

    # --- scoring ----------------------------------------------------------------------------------------------------

    def score_film(self, image: np.ndarray, suffix: str) -> FilmScore:
        """The joint areas of one film (a grayscale array in [0, 1], e.g. from ``read_image``) and their scores."""
        return self.score_films([(image, suffix)])[0]

    @torch.no_grad()
    def score_films(self, films: Sequence[tuple[np.ndarray, str]]) -> list[FilmScore]:
        """:meth:`score_film` for many films at once (faster: the networks see them in batches)."""
        result: list[FilmScore | None] = [None] * len(films)
        for region in REGIONS:
            which = [i for i, (_, suffix) in enumerate(films) if _region(suffix) == region]
            if not which:
                continue
            placed = [place(films[i][0], self.canvas_size, _mirrored(films[i][1])) for i in which]
            canvases = np.stack([_to_uint8(c) for c, _ in placed])
            points, located = self._locate(region, canvases)
            expected = self._expected(region, canvases, points)
            for j, i in enumerate(which):
                result[i] = self._film_score(region, films[i][1], placed[j][1], points[j], expected[j], located[j])
        return result

    @torch.no_grad()
    def _expected(self, region: str, canvases: np.ndarray, points: np.ndarray, batch: int = 16) -> np.ndarray:
        """Expected scores (films, areas, kinds) at the given canvas centres, each film's crops read together."""
        index = torch.from_numpy(region_index(region))
        network = self.crop_scorer_.eval()
        expected = []
        for start in range(0, len(canvases), batch):
            patches = self._patches(canvases[start:start + batch], points[start:start + batch])
            n = len(patches) // len(index)
            area, film = index.repeat(n), torch.arange(n).repeat_interleave(len(index))
            logits = network(self._crops(patches, training=False), area, film)
            expected.append(expected_scores(logits).numpy().reshape(n, len(index), len(KINDS)))
        return np.concatenate(expected)

    def _film_score(self, region: str, suffix: str, placement: Placement, points: np.ndarray,
                    expected: np.ndarray, located: np.ndarray) -> FilmScore:
        maxima = area_maxima()[region_index(region)]
        side = ra2_dream_mapping().part(suffix).side
        at = placement.to_film(points)
        joints = []
        for j, name in enumerate(region_areas(region)):
            top = maxima[j]
            value = [None if top[k] == 0 else float(expected[j, k]) for k in range(len(KINDS))]
            # the whole score nearest the expected one: the whole number of least expected squared error
            score = [None if v is None else int(np.clip(np.round(v), 0, top[k])) for k, v in enumerate(value)]
            joints.append(JointScore(f"{side}_{name}", round(float(at[j, 0]), 1), round(float(at[j, 1]), 1),
                                     score[0], score[1], value[0], value[1], int(top[0]) or None, int(top[1]) or None,
                                     round(float(located[j]), 3)))
        return FilmScore(suffix, placement.shape, tuple(joints))

    def score_folder(self, folder: Ra2DreamFolder, *,
                     expected: bool = False) -> tuple[pl.DataFrame, dict[str, dict[str, FilmScore]]]:
        """Score every patient of a folder: the RA2-DREAM score table (one row per patient whose four films are
        all there) and every film's :class:`FilmScore` by patient and part.

        The table holds whole scores, as a reader's; with ``expected`` the
        model's expected scores instead (two decimals, as RA2-DREAM
        predictions were), which have the smaller error per joint area.
        """
        mapping = ra2_dream_mapping()
        scored: dict[str, dict[str, FilmScore]] = {}
        patients = sorted(folder.images)
        for patient in tqdm(patients, desc="scoring films", disable=not self.progress):
            parts = folder.images[patient]
            films = self.score_films([(read_image(parts[s]), s) for s in parts])
            scored[patient] = dict(zip(parts, films))
        rows = []
        for patient, films in scored.items():
            if len(films) < len(mapping.parts):
                continue
            columns = {k: v for f in films.values() for k, v in f.columns(expected=expected).items()}
            totals = {t: sum(columns[c.column] for c in mapping.columns if c.score in kinds)
                      for t, kinds in mapping.totals.items()}
            rows.append({mapping.id_column: patient, **totals, **columns})
        kind = pl.Float64 if expected else pl.Int64
        schema = {c: (pl.String if c == mapping.id_column else kind) for c in mapping.csv_columns}
        table = pl.DataFrame(rows, schema=schema)
        return (table.with_columns(pl.exclude(mapping.id_column).round(2)) if expected else table), scored
