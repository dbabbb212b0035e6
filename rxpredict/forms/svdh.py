"""Sharp/van der Heijde scores on the visit form: entered per joint area, or uploaded as a CSV file.

Both give imaging rows (patient_id, exam_date, joint, erosion, jsn, source)
for :class:`rxpredict.store.records.VisitEntry`; the upload is checked with the
registry validator's rules and every problem names its CSV row, column and rule.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from rxpredict.forms.fields import FieldSpec, field_spec, readable
from rxpredict.schemas import load_contract
from rxpredict.validation.records import Problem, check_records

#: The columns of an uploaded SvdH file, one row per joint area.
SVDH_CSV_COLUMNS = ("joint", "erosion", "jsn")
_INTEGER = re.compile(r"[+-]?\d+")


@dataclass(frozen=True)
class SvdhArea:
    """One joint area on the entry form, with a field per feature it is scored for (None where it is not)."""

    joint: str
    side: str
    region: str
    title: str
    erosion: FieldSpec | None
    jsn: FieldSpec | None


def svdh_areas() -> list[SvdhArea]:
    """Every SvdH joint area in vocabulary order, each feature's field bounded by that area's maximum."""
    imaging = load_contract().tables["imaging"]

    def bounded(column: str, maximum: int | None) -> FieldSpec | None:
        if maximum is None:
            return None
        f = imaging.field(column)
        return replace(field_spec("imaging", column), max=maximum,
                       help=f"{f.description} Allowed here: {f.minimum:g}..{maximum} {f.unit}.")

    return [
        SvdhArea(a.name, a.side, a.region, readable(a.name), bounded("erosion", a.erosion_max),
                 bounded("jsn", a.jsn_max))
        for a in load_contract().joint_areas
    ]


def svdh_rows(scores: Mapping[str, Mapping[str, Any]], *, patient_id: str, exam_date: dt.date,
              source: str = "reader") -> list[dict[str, Any]]:
    """Imaging rows from per-area entries ({joint: {"erosion": .., "jsn": ..}}); areas left empty give no row."""
    return [
        {"patient_id": patient_id, "exam_date": exam_date, "joint": joint,
         "erosion": entry.get("erosion"), "jsn": entry.get("jsn"), "source": source}
        for joint, entry in scores.items()
        if entry.get("erosion") is not None or entry.get("jsn") is not None
    ]


def _cell(text: str | None) -> int | str | None:
    """A CSV cell: empty is null, an integer is read as one, anything else stays text for the validator to name."""
    if text is None or not text.strip():
        return None
    return int(text) if _INTEGER.fullmatch(text.strip()) else text


def parse_svdh_csv(data: bytes | str, *, patient_id: str, exam_date: dt.date,
                   source: str = "reader") -> tuple[list[dict[str, Any]], list[Problem]]:
    """Imaging rows from an uploaded CSV (columns joint, erosion, jsn) and every problem with it.

    Problems are the registry validator's (row = the CSV's data row, 1 for the
    first after the header), plus file-level ones (row None): not UTF-8 text,
    a missing or unknown column, and a warning where joint areas are missing
    (the exam's SvdH total would be incomplete). Rows are returned even when
    there are problems, so the page can show them; save only when no problem
    is an error.
    """
    try:
        text = data.decode("utf-8-sig") if isinstance(data, bytes) else data.removeprefix("\ufeff")
    except UnicodeDecodeError:
        return [], [Problem("imaging", None, None, "encoding", "the file is not UTF-8 text")]
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [(h or "").strip().lower() for h in reader.fieldnames or []]
    problems = [Problem("imaging", None, c, "missing_column", f"the file has no column {c!r}")
                for c in SVDH_CSV_COLUMNS if c not in header]
    problems += [Problem("imaging", None, h, "unknown_column", f"the file has a column {h!r}; expected only "
                         f"{', '.join(SVDH_CSV_COLUMNS)}") for h in header if h not in SVDH_CSV_COLUMNS]
    if problems:
        return [], problems
    reader.fieldnames = header
    try:
        cells = list(reader)
    except csv.Error as e:
        return [], [Problem("imaging", None, None, "csv", f"line {reader.line_num} is not readable as CSV: {e}")]
    if not cells:
        return [], [Problem("imaging", None, None, "empty", "the file has no rows")]
    rows = [
        {"patient_id": patient_id, "exam_date": exam_date, "joint": (r.get("joint") or "").strip() or None,
         "erosion": _cell(r.get("erosion")), "jsn": _cell(r.get("jsn")), "source": source}
        for r in cells
    ]
    problems = [Problem("imaging", i, None, "extra_cells", "the row has more cells than the header")
                for i, r in enumerate(cells, start=1) if None in r]
    problems += [p for p in check_records({"imaging": rows}) if p.rule != "foreign_key"]
    missing = {a.name for a in load_contract().joint_areas} - {r["joint"] for r in rows}
    if missing:
        problems.append(Problem("imaging", None, "joint", "incomplete_exam",
                                f"{len(missing)} joint areas are missing, so the SvdH total is incomplete",
                                severity="warning"))
    return rows, problems
