"""The mapping files of the importers: data_schemas/apple_health.json and a daily CSV's column mapping.

Both are JSON read here into frozen dataclasses, with every mistake reported
by its place in the file (``measures[2].unit``) so a broken mapping never
half-works. The format of a CSV mapping is described for people and other
tools by ``data_schemas/daily_csv_mapping.json`` (a JSON Schema); the checks
below apply the same rules without a JSON Schema library.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from rxpredict.monitoring.ingest.errors import MappingError
from rxpredict.schemas import load_contract, schema_dir

APPLE_MAPPING_FILE = "apple_health.json"
ISO_DATE = "%Y-%m-%d"


def measure_columns() -> list[str]:
    """The wearables table's value columns (every column but its key), in schema order."""
    table = load_contract().tables["wearables"]
    return [c for c in table.column_names if c not in table.primary_key]


@dataclass(frozen=True)
class AppleMeasure:
    """One HealthKit record type and the wearables column it feeds.

    ``factors`` maps each accepted unit to the multiplier into the column's
    unit; ``quantity`` is ``"value"`` (the record's value) or ``"duration"``
    (end minus start, in seconds); ``day`` is ``"start"`` or ``"session_end"``.
    """

    type: str
    column: str
    quantity: str
    day: str
    aggregate: str
    unit: str
    factors: Mapping[str, float]
    counted_values: frozenset[str] = frozenset()
    ignored_values: frozenset[str] = frozenset()
    session_gap_s: float = 0.0


@dataclass(frozen=True)
class AppleMapping:
    """What of an Apple Health export is imported, as data_schemas/apple_health.json says."""

    root_element: str
    record_element: str
    source_attribute: str
    measures: tuple[AppleMeasure, ...]

    @property
    def by_type(self) -> dict[str, AppleMeasure]:
        return {m.type: m for m in self.measures}


class _Reader:
    """Typed access to a JSON document that names the place of each mistake."""

    def __init__(self, name: str) -> None:
        self.name = name

    def fail(self, where: str, problem: str) -> MappingError:
        return MappingError(f"{self.name}: {where}: {problem}")

    def get(self, obj: Mapping[str, Any], key: str, where: str, kind: type | tuple[type, ...],
            default: Any = ..., choices: Any = None) -> Any:
        place = f"{where}.{key}" if where else key
        if key not in obj:
            if default is ...:
                raise self.fail(place, "is missing")
            return default
        value = obj[key]
        if not isinstance(value, kind) or isinstance(value, bool) or (isinstance(value, str) and not value):
            raise self.fail(place, f"must be a non-empty {_kind_name(kind)}")
        if choices is not None and value not in choices:
            raise self.fail(place, f"{value!r} is not one of {', '.join(map(str, choices))}")
        return value

    def positive(self, value: Any, place: str) -> float:
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
            raise self.fail(place, "must be a positive number")
        return float(value)

    def only(self, obj: Mapping[str, Any], allowed: set[str], where: str) -> None:
        if unknown := sorted(set(obj) - allowed):
            raise self.fail(where or "top level", f"unknown key(s) {', '.join(map(repr, unknown))}")


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {str: "text", dict: "object", list: "list", int: "number", float: "number"}
    return " or ".join(dict.fromkeys(names.get(k, k.__name__) for k in kinds))


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise MappingError(f"mapping file not found: {path}") from e
    except (OSError, UnicodeDecodeError) as e:
        raise MappingError(f"mapping file cannot be read: {path}: {e}") from e
    except json.JSONDecodeError as e:
        raise MappingError(f"{path.name} is not valid JSON (line {e.lineno}, column {e.colno}): {e.msg}") from e


def _apple_measure(r: _Reader, d: Any, where: str, columns: list[str]) -> AppleMeasure:
    if not isinstance(d, dict):
        raise r.fail(where, "must be an object")
    quantity = r.get(d, "quantity", where, str, choices=("value", "duration"))
    day = r.get(d, "day", where, str, choices=("start", "session_end"))
    unit = r.get(d, "unit", where, str)
    units = r.get(d, "units", where, dict)
    sizes = {u: r.positive(s, f"{where}.units.{u}") for u, s in units.items()}
    if unit not in sizes:
        raise r.fail(f"{where}.unit", f"{unit!r} is not among its units")
    if quantity == "duration" and "s" not in sizes:
        raise r.fail(f"{where}.units", "a duration needs the size of a second ('s')")
    if day == "session_end" and quantity != "duration":
        raise r.fail(f"{where}.day", "session_end applies to durations only")
    counted = r.get(d, "counted_values", where, list, default=[])
    if quantity == "duration" and not counted:
        raise r.fail(f"{where}.counted_values", "a duration needs the category values it counts")
    gap = r.get(d, "session_gap_min", where, (int, float), default=0) if day == "session_end" else 0
    return AppleMeasure(
        type=r.get(d, "type", where, str),
        column=r.get(d, "column", where, str, choices=columns),
        quantity=quantity,
        day=day,
        aggregate=r.get(d, "aggregate", where, str, choices=("sum", "mean")),
        unit=unit,
        factors={u: s / sizes[unit] for u, s in sizes.items()},
        counted_values=frozenset(counted),
        ignored_values=frozenset(r.get(d, "ignored_values", where, list, default=[])),
        session_gap_s=60.0 * gap,
    )


@lru_cache(maxsize=4)
def load_apple_mapping(path: str | Path | None = None) -> AppleMapping:
    """Read and check data_schemas/apple_health.json (or another file of that format); cached."""
    path = Path(path) if path is not None else schema_dir() / APPLE_MAPPING_FILE
    doc = _read_json(path)
    r = _Reader(path.name)
    if not isinstance(doc, dict):
        raise r.fail("top level", "must be an object")
    columns = measure_columns()
    raw = r.get(doc, "measures", "", list)
    measures = tuple(_apple_measure(r, m, f"measures[{i}]", columns) for i, m in enumerate(raw))
    for attr in ("type", "column"):
        values = [getattr(m, attr) for m in measures]
        if len(set(values)) < len(values):
            raise r.fail("measures", f"a {attr} appears more than once")
    return AppleMapping(
        root_element=r.get(doc, "root_element", "", str),
        record_element=r.get(doc, "record_element", "", str),
        source_attribute=r.get(doc, "source_attribute", "", str),
        measures=measures,
    )


@dataclass(frozen=True)
class ColumnMap:
    """One source column of a daily CSV: the wearables column it fills and the factor into that column's unit."""

    source: str
    to: str
    factor: float | None = None


@dataclass(frozen=True)
class CsvMapping:
    """How a daily CSV's columns become wearables columns (see data_schemas/daily_csv_mapping.json)."""

    date_column: str
    columns: tuple[ColumnMap, ...]
    date_format: str = ISO_DATE
    patient_column: str | None = None
    delimiter: str = ","

    @property
    def sources(self) -> list[str]:
        """Every file column the mapping reads."""
        return [self.date_column, *([self.patient_column] if self.patient_column else []),
                *(c.source for c in self.columns)]

    @classmethod
    def own_format(cls, header: list[str]) -> "CsvMapping":
        """The identity mapping of a file in the wearables table's own format (contract column names)."""
        measures = measure_columns()
        return cls(
            date_column="date",
            columns=tuple(ColumnMap(c, c) for c in header if c in measures),
            patient_column="patient_id" if "patient_id" in header else None,
        )


def load_csv_mapping(source: str | Path | Mapping[str, Any]) -> CsvMapping:
    """A CSV column mapping from a JSON file or an already parsed dict, checked in full."""
    if isinstance(source, Mapping):
        doc, r = source, _Reader("mapping")
    else:
        doc, r = _read_json(Path(source)), _Reader(Path(source).name)
    if not isinstance(doc, Mapping):
        raise r.fail("top level", "must be an object")
    r.only(doc, {"date", "patient_column", "delimiter", "columns"}, "")
    date = r.get(doc, "date", "", dict)
    r.only(date, {"column", "format"}, "date")
    delimiter = r.get(doc, "delimiter", "", str, default=",")
    if len(delimiter) != 1:
        raise r.fail("delimiter", "must be a single character")
    targets = measure_columns()
    columns = []
    for name, spec in r.get(doc, "columns", "", dict).items():
        where = f"columns.{name}"
        if not isinstance(spec, Mapping):
            raise r.fail(where, "must be an object")
        r.only(spec, {"to", "factor"}, where)
        factor = r.positive(spec["factor"], f"{where}.factor") if "factor" in spec else None
        columns.append(ColumnMap(name, r.get(spec, "to", where, str, choices=targets), factor))
    if not columns:
        raise r.fail("columns", "maps no column")
    taken = [c.to for c in columns]
    if twice := sorted({t for t in taken if taken.count(t) > 1}):
        raise r.fail("columns", f"more than one source column goes to {', '.join(twice)}")
    return CsvMapping(
        date_column=r.get(date, "column", "date", str),
        date_format=r.get(date, "format", "date", str, default=ISO_DATE),
        patient_column=r.get(doc, "patient_column", "", str, default=None),
        delimiter=delimiter,
        columns=tuple(columns),
    )
