"""The RA2-DREAM data layout: radiographs per hand and foot, a score CSV, optional landmark files.

A folder holds one image per hand or foot, ``<Patient_ID>-<LH|RH|LF|RF>.jpg``
(``.jpeg``/``.png`` too), optionally ``<Patient_ID>-<LH|RH|LF|RF>.json``
beside it mapping contract joint areas (``left_hand_mcp2``) to ``[x, y]``
pixel centres, and at most one CSV with a row per patient: ``Patient_ID``,
the ``Overall_*`` totals and one column per joint area and score. Which
column is which joint area lives in ``data_schemas/ra2_dream_columns.json``,
cross-checked here against the contract's SvdH areas, so no name is typed
twice. Every error names the file, and for the CSV the line and column.

Example
-------
>>> from datetime import date
>>> from rxpredict.imaging.layout import imaging_rows, read_folder
>>> films = read_folder("ra2")                      # doctest: +SKIP
>>> imaging_rows(films.scores, exam_date=date(2024, 1, 1))  # doctest: +SKIP
"""
from __future__ import annotations

import json
import math
import re
import tempfile
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from PIL import Image, UnidentifiedImageError

from rxpredict.exceptions import ImagingDataError
from rxpredict.imaging.dicom import is_dicom, read_dicom
from rxpredict.schemas import load_contract, schema_dir

MAPPING_FILE = "ra2_dream_columns.json"
SCORE_KINDS = ("erosion", "jsn")
IMAGE_FORMATS = ("JPEG", "PNG")
#: The fewest pixels a film may have along either side.
MIN_SIDE = 64


@dataclass(frozen=True)
class ScoreColumn:
    """One RA2-DREAM score column: the contract joint area it scores, the kind of score and its maximum."""

    column: str
    joint: str
    score: str
    maximum: int
    description: str


@dataclass(frozen=True)
class ImagePart:
    """One image suffix (``LH``): the side and region it shows."""

    suffix: str
    side: str
    region: str


@dataclass(frozen=True)
class Ra2DreamMapping:
    """The layout of ``ra2_dream_columns.json``: ID column, image parts, totals and score columns."""

    id_column: str
    image_extensions: tuple[str, ...]
    parts: tuple[ImagePart, ...]
    totals: dict[str, tuple[str, ...]]
    columns: tuple[ScoreColumn, ...]

    @property
    def csv_columns(self) -> list[str]:
        """Every column the score CSV must have, in the RA2-DREAM order."""
        return [self.id_column, *self.totals, *(c.column for c in self.columns)]

    def part(self, suffix: str) -> ImagePart:
        return next(p for p in self.parts if p.suffix == suffix)

    def joints_of(self, suffix: str) -> list[str]:
        """The contract joint areas an image of this part shows, in mapping order, each once."""
        part = self.part(suffix)
        prefix = f"{part.side}_{part.region}_"
        return list(dict.fromkeys(c.joint for c in self.columns if c.joint.startswith(prefix)))

    def frame(self) -> pl.DataFrame:
        """The mapping as a frame: column, joint, score, maximum."""
        return pl.DataFrame(
            [(c.column, c.joint, c.score, c.maximum) for c in self.columns],
            schema={"column": pl.String, "joint": pl.String, "score": pl.String, "maximum": pl.Int64}, orient="row",
        )


@cache
def ra2_dream_mapping() -> Ra2DreamMapping:
    """Read ``ra2_dream_columns.json`` and check it covers each scored contract area once per side and kind."""
    path = schema_dir() / MAPPING_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        parts = tuple(ImagePart(p["suffix"], p["side"], p["region"]) for p in raw["images"])
        areas = {a.name: a for a in load_contract().joint_areas}
        columns = tuple(_score_column(c, areas) for c in raw["columns"])
        mapping = Ra2DreamMapping(raw["id_column"], tuple(raw["image_extensions"]), parts,
                                  {t["column"]: tuple(t["scores"]) for t in raw["totals"]}, columns)
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise ImagingDataError([f"{path}: unreadable or malformed mapping ({type(e).__name__}: {e})"]) from e
    except ValueError as e:  # a column naming an area or kind the contract does not score
        raise ImagingDataError([f"{path}: {e}"]) from e
    problems = _coverage_problems(mapping, areas)
    if problems:
        raise ImagingDataError([f"{path}: {p}" for p in problems])
    return mapping


def _score_column(c: dict[str, Any], areas: dict[str, Any]) -> ScoreColumn:
    joint = f"{c['side']}_{c['area']}"
    if joint not in areas or c["score"] not in SCORE_KINDS:
        raise ValueError(f"column {c['column']}: {joint!r} or {c['score']!r} is not a contract area and score kind")
    maximum = getattr(areas[joint], f"{c['score']}_max")
    if maximum is None:
        raise ValueError(f"column {c['column']}: {joint} is not scored for {c['score']} in the contract")
    return ScoreColumn(c["column"], joint, c["score"], int(maximum), c["description"])


def _coverage_problems(mapping: Ra2DreamMapping, areas: dict[str, Any]) -> list[str]:
    """Each (joint area, score kind) the contract scores is mapped exactly once; names and parts are unique."""
    mapped = Counter((c.joint, c.score) for c in mapping.columns)
    wanted = {(a.name, k) for a in areas.values() for k in SCORE_KINDS if getattr(a, f"{k}_max") is not None}
    problems = [f"{j} {k} has no column" for j, k in sorted(wanted - set(mapped))]
    problems += [f"{j} {k} is mapped {n} times" for (j, k), n in sorted(mapped.items()) if n > 1]
    problems += [f"column {c} repeats" for c, n in Counter(mapping.csv_columns).items() if n > 1]
    problems += [f"total {t} sums {kinds}, not kinds of {SCORE_KINDS}" for t, kinds in mapping.totals.items()
                 if not kinds or not set(kinds) <= set(SCORE_KINDS)]
    if sorted((p.side, p.region) for p in mapping.parts) != sorted({(a.side, a.region) for a in areas.values()}):
        problems.append("images must name each side and region of the contract once")
    return problems


# --- score CSV ---------------------------------------------------------------------------------------------------


def read_scores(path: str | Path) -> pl.DataFrame:
    """The validated score CSV: the ID as string, every total and score as Int64, one row per patient.

    Raises :class:`ImagingDataError` naming the CSV line (the header is line 1)
    and column of every missing column, non-integer, negative or above-maximum
    score, total that is not the sum of its areas, and repeated patient.
    """
    path = Path(path)
    mapping = ra2_dream_mapping()
    try:
        raw = pl.read_csv(path, infer_schema=False)
    except (OSError, pl.exceptions.PolarsError) as e:
        raise ImagingDataError([f"{path}: not a readable CSV ({e})"]) from e
    missing = [c for c in mapping.csv_columns if c not in raw.columns]
    if missing:
        raise ImagingDataError([f"{path}: missing column(s) {', '.join(missing)}"])
    problems = [p for column in mapping.csv_columns[1:] for p in _integer_problems(path, raw, column)]
    if problems:
        raise ImagingDataError(problems)
    scores = raw.select(pl.col(mapping.id_column), pl.col(mapping.csv_columns[1:]).str.strip_chars().cast(pl.Int64))
    problems = _range_problems(path, scores, mapping) + _total_problems(path, scores, mapping)
    problems += _id_problems(path, scores, mapping.id_column)
    if problems:
        raise ImagingDataError(problems)
    return scores


def _lines(frame: pl.DataFrame, bad: pl.Expr) -> list[tuple[int, Any]]:
    """(CSV line, row) of the rows where ``bad`` holds; the header is line 1."""
    hits = frame.with_row_index("_line", offset=2).filter(bad)
    return list(zip(hits["_line"], hits.drop("_line").iter_rows(named=True)))


def _integer_problems(path: Path, raw: pl.DataFrame, column: str) -> list[str]:
    text = pl.col(column).str.strip_chars()
    bad = text.is_null() | (text.cast(pl.Int64, strict=False).is_null())
    return [f"{path} line {line}, column {column}: {row[column]!r} is not a whole number"
            for line, row in _lines(raw, bad)]


def _range_problems(path: Path, scores: pl.DataFrame, mapping: Ra2DreamMapping) -> list[str]:
    return [
        f"{path} line {line}, column {c.column}: {row[c.column]} outside 0..{c.maximum} ({c.joint} {c.score})"
        for c in mapping.columns
        for line, row in _lines(scores, (pl.col(c.column) < 0) | (pl.col(c.column) > c.maximum))
    ]


def _total_problems(path: Path, scores: pl.DataFrame, mapping: Ra2DreamMapping) -> list[str]:
    problems = []
    for total, kinds in mapping.totals.items():
        parts = pl.sum_horizontal([c.column for c in mapping.columns if c.score in kinds])
        for line, row in _lines(scores.with_columns(parts.alias("_sum")), pl.col(total) != pl.col("_sum")):
            problems.append(f"{path} line {line}, column {total}: {row[total]} is not the sum of the "
                            f"{'+'.join(kinds)} columns ({row['_sum']})")
    return problems


def _id_problems(path: Path, scores: pl.DataFrame, id_column: str) -> list[str]:
    ids = pl.col(id_column)
    bad = ids.is_null() | (ids.str.strip_chars() == "") | ids.is_duplicated()
    return [f"{path} line {line}, column {id_column}: {row[id_column]!r} is empty or repeats"
            for line, row in _lines(scores, bad)]


def imaging_rows(scores: pl.DataFrame, exam_date: date, source: str = "reader") -> pl.DataFrame:
    """The contract's imaging-table rows of validated scores: one row per patient and joint area."""
    mapping = ra2_dream_mapping()
    long = (
        scores.unpivot(index=mapping.id_column, on=[c.column for c in mapping.columns], variable_name="column")
        .join(mapping.frame(), on="column")
        .pivot(on="score", index=[mapping.id_column, "joint"], values="value")
    )
    table = load_contract().tables["imaging"]
    return (
        long.rename({mapping.id_column: "patient_id"})
        .with_columns(pl.lit(exam_date).alias("exam_date"), pl.lit(source).alias("source"),
                      *(pl.col(k).cast(pl.Int64) if k in long.columns else pl.lit(None, pl.Int64).alias(k)
                        for k in SCORE_KINDS))
        .select(table.column_names)
        .cast(dict(table.polars_schema))
        .sort("patient_id", "joint")
    )


# --- images and landmarks -----------------------------------------------------------------------------------------


def read_image(path: str | Path) -> np.ndarray:
    """A radiograph as a grayscale float32 array in [0, 1] (rows, columns).

    A ``.dcm`` file, or one with the DICOM prefix, is read by
    :func:`~rxpredict.imaging.dicom.read_dicom` (its windowing and photometric
    interpretation honoured). An empty, truncated or corrupted file, an
    image that is neither DICOM, JPEG nor PNG, or one under ``MIN_SIDE``
    pixels along a side, raises :class:`ImagingDataError` naming the file.
    """
    path = Path(path)
    pixels = read_dicom(path) if is_dicom(path) else _read_picture(path)
    if min(pixels.shape) < MIN_SIDE:
        rows, cols = pixels.shape
        raise ImagingDataError([f"{path}: {cols}x{rows} pixels is too small for a radiograph "
                                f"(at least {MIN_SIDE} pixels each way)"])
    return pixels


def read_image_bytes(data: bytes, name: str) -> np.ndarray:
    """:func:`read_image` of an upload's bytes; errors name the upload (``name``), not a temporary copy."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / (Path(name).name or "film")
        path.write_bytes(data)
        try:
            return read_image(path)
        except ImagingDataError as e:
            raise ImagingDataError([m.replace(str(path), name) for m in e.problems]) from None


def part_of(name: str) -> str | None:
    """The part (``LH``, ``RH``, ``LF``, ``RF``) a file name's ``-LH`` ... ending names, in any case; else None."""
    suffixes = "|".join(p.suffix for p in ra2_dream_mapping().parts)
    match = re.search(rf"-({suffixes})$", Path(name).stem, flags=re.IGNORECASE)
    return match[1].upper() if match else None


def _read_picture(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as image:
            if image.format not in IMAGE_FORMATS:
                raise ImagingDataError([f"{path}: a {image.format} image; expected {', '.join(IMAGE_FORMATS)} or DICOM"])
            image.load()
            gray = image.convert("L")
    except FileNotFoundError as e:
        raise ImagingDataError([f"{path}: no such image"]) from e
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        empty = path.is_file() and path.stat().st_size == 0
        raise ImagingDataError([f"{path}: {'empty file' if empty else 'not a readable image'} ({e})"]) from e
    return np.asarray(gray, dtype=np.float32) / 255.0


def read_landmarks(path: str | Path, suffix: str, shape: tuple[int, int]) -> dict[str, tuple[float, float]]:
    """The ``[x, y]`` joint centres of a landmark file, checked against the image part and its ``shape`` (rows, cols).

    Unknown or other-side joint names, values that are not two finite numbers
    and centres outside the image raise :class:`ImagingDataError` naming the file.
    """
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ImagingDataError([f"{path}: not a readable JSON file ({e})"]) from e
    if not isinstance(raw, dict):
        raise ImagingDataError([f"{path}: expected an object of joint area -> [x, y]"])
    joints = set(ra2_dream_mapping().joints_of(suffix))
    problems = [p for name, value in raw.items() for p in _landmark_problems(name, value, joints, shape)]
    if problems:
        raise ImagingDataError([f"{path}: {p}" for p in problems])
    return {name: (float(x), float(y)) for name, (x, y) in raw.items()}


def _landmark_problems(name: str, value: Any, joints: set[str], shape: tuple[int, int]) -> list[str]:
    if name not in joints:
        return [f"{name!r} is not a joint area of this image (e.g. {min(joints)})"]
    numeric = isinstance(value, list) and len(value) == 2 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    if not numeric:
        return [f"{name}: {value!r} is not [x, y] with two finite numbers"]
    x, y = value
    if not (0 <= x < shape[1] and 0 <= y < shape[0]):
        return [f"{name}: [{x}, {y}] lies outside the {shape[1]}x{shape[0]} image"]
    return []


# --- a whole folder -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ra2DreamFolder:
    """A validated RA2-DREAM folder: image paths and landmarks per patient and part, and the scores if any."""

    folder: Path
    images: dict[str, dict[str, Path]]
    landmarks: dict[str, dict[str, dict[str, tuple[float, float]]]]
    scores: pl.DataFrame | None

    def only(self, patients: Iterable[str]) -> Ra2DreamFolder:
        """The same folder restricted to ``patients`` (e.g. those held out of training)."""
        keep = set(patients)
        scores = None if self.scores is None else self.scores.filter(pl.col(ra2_dream_mapping().id_column).is_in(keep))
        return Ra2DreamFolder(self.folder, {p: v for p, v in self.images.items() if p in keep},
                              {p: v for p, v in self.landmarks.items() if p in keep}, scores)

    def landmarks_by_film(self) -> dict[tuple[str, str], dict[str, tuple[float, float]]]:
        """The landmark files' centres keyed by (patient, part), for films that have one."""
        return {(patient, suffix): points for patient, parts in self.landmarks.items()
                for suffix, points in parts.items()}


def find_images(folder: str | Path) -> dict[str, dict[str, Path]]:
    """Image paths per patient and part (``{"P1": {"LH": path, ...}}``); two files for one part is an error."""
    mapping = ra2_dream_mapping()
    suffixes = "|".join(p.suffix for p in mapping.parts)
    pattern = re.compile(rf"^(?P<patient>.+)-(?P<part>{suffixes})(?P<ext>\.[A-Za-z]+)$")
    images: dict[str, dict[str, Path]] = {}
    problems = []
    for path in sorted(Path(folder).iterdir()):
        match = pattern.match(path.name)
        if not match or match["ext"].lower() not in mapping.image_extensions:
            continue
        parts = images.setdefault(match["patient"], {})
        if match["part"] in parts:
            problems.append(f"{path}: a second image of {match['patient']} {match['part']} "
                            f"beside {parts[match['part']].name}")
        parts[match["part"]] = path
    if problems:
        raise ImagingDataError(problems)
    return images


def read_folder(folder: str | Path, scores: str | Path | None = None) -> Ra2DreamFolder:
    """Read and validate a folder: every image decodes, landmarks fit their image, scores match the patients.

    ``scores`` is the score CSV; by default the folder's only ``.csv`` file,
    or none (unscored films) when it has none.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ImagingDataError([f"{folder}: no such folder"])
    images = find_images(folder)
    if not images:
        films = "/".join(ra2_dream_mapping().image_extensions)
        raise ImagingDataError([f"{folder}: no <Patient_ID>-<LH|RH|LF|RF>{films} images"])
    landmarks = {patient: _part_landmarks(parts) for patient, parts in images.items()}
    csv = Path(scores) if scores is not None else _only_csv(folder)
    table = read_scores(csv) if csv is not None else None
    if table is not None:
        _check_patients(csv, set(table[ra2_dream_mapping().id_column]), set(images))
    return Ra2DreamFolder(folder, images, landmarks, table)


def _part_landmarks(parts: dict[str, Path]) -> dict[str, dict[str, tuple[float, float]]]:
    """Decode each image (so a bad file fails now) and read the landmark file beside it, if any."""
    found = {}
    for suffix, path in parts.items():
        shape = read_image(path).shape
        if (json_path := path.with_suffix(".json")).exists():
            found[suffix] = read_landmarks(json_path, suffix, shape)
    return found


def _only_csv(folder: Path) -> Path | None:
    csvs = sorted(folder.glob("*.csv"))
    if len(csvs) > 1:
        names = ", ".join(p.name for p in csvs)
        raise ImagingDataError([f"{folder}: {len(csvs)} CSV files ({names}); name the score CSV"])
    return csvs[0] if csvs else None


def _check_patients(csv: Path, scored: set[str], imaged: set[str]) -> None:
    problems = [f"{csv}: patient {p} has a score row but no image" for p in sorted(scored - imaged)]
    problems += [f"{csv}: patient {p} has images but no score row" for p in sorted(imaged - scored)]
    if problems:
        raise ImagingDataError(problems)
