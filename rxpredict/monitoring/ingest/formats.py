"""Which reader a file needs, by its name or, failing that, its first bytes."""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rxpredict.monitoring.ingest.apple_health import read_apple_health
from rxpredict.monitoring.ingest.daily_csv import read_daily_csv, read_daily_parquet
from rxpredict.monitoring.ingest.errors import ImportFileError, MappingError
from rxpredict.monitoring.ingest.mapping import CsvMapping, load_csv_mapping
from rxpredict.monitoring.ingest.report import WearableImport

FORMATS = ("auto", "apple", "csv", "parquet")
_SUFFIXES = {".xml": "apple", ".zip": "apple", ".csv": "csv", ".parquet": "parquet"}
_MAGIC = {b"PAR1": "parquet", b"PK\x03\x04": "apple", b"<?xm": "apple"}


def detect_format(path: str | Path) -> str:
    """``apple``, ``csv`` or ``parquet``: by suffix (.xml and .zip are Apple Health), else by the first bytes."""
    path = Path(path)
    if path.suffix.lower() in _SUFFIXES:
        return _SUFFIXES[path.suffix.lower()]
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as e:
        raise ImportFileError(path, f"cannot be read: {type(e).__name__}") from None
    return _MAGIC.get(head, "csv")


def read_wearables_file(path: str | Path, patient_id: str, *, format: str = "auto",
                        mapping: CsvMapping | Mapping[str, Any] | str | Path | None = None,
                        today: dt.date | None = None, progress: bool = False) -> WearableImport:
    """Read one patient's file of any supported format into days of the wearables table.

    ``format`` is one of :data:`FORMATS`; ``mapping`` (a CSV column mapping,
    as an object, a dict or a JSON file) applies to CSV files only; without
    it a CSV must use the wearables table's own column names.
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, not {format!r}")
    kind = detect_format(path) if format == "auto" else format
    if mapping is not None and kind != "csv":
        raise MappingError(f"a column mapping applies to CSV files only, and this file is read as {kind}")
    if kind == "apple":
        return read_apple_health(path, patient_id, today=today, progress=progress)
    if kind == "parquet":
        return read_daily_parquet(path, patient_id, today=today)
    if mapping is not None and not isinstance(mapping, CsvMapping):
        mapping = load_csv_mapping(mapping)
    return read_daily_csv(path, patient_id, mapping=mapping, today=today)
