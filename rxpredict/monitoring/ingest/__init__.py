"""Import a patient's wearable data into the registry's ``wearables`` table (one row per patient-day).

Formats: an Apple Health export (``export.xml`` or ``export.zip``), a daily
CSV from any device or app with a JSON column mapping, and the wearables
table's own format (CSV or Parquet). Every record a rule rejects is
reported with its line and rule, never with its value; nothing is stored
twice or half-written. See docs/monitoring-import.md.

>>> from rxpredict.monitoring.ingest import import_wearables
>>> result = import_wearables("registry/", "P0000001", "export.zip")   # doctest: +SKIP
>>> print(result.to_text())                                              # doctest: +SKIP
"""
from rxpredict.monitoring.ingest.apple_health import read_apple_health
from rxpredict.monitoring.ingest.daily_csv import read_daily_csv, read_daily_parquet
from rxpredict.monitoring.ingest.errors import (ImportFileError, MappingError, PatientNotFoundError,
                                                StoredTableError, TableLockedError, WearableImportError)
from rxpredict.monitoring.ingest.formats import FORMATS, detect_format, read_wearables_file
from rxpredict.monitoring.ingest.mapping import (AppleMapping, CsvMapping, load_apple_mapping, load_csv_mapping,
                                                 measure_columns)
from rxpredict.monitoring.ingest.merge import RegistryImport, import_wearables, merge_days
from rxpredict.monitoring.ingest.report import PROBLEM_SCHEMA, WearableImport

__all__ = [
    "FORMATS", "PROBLEM_SCHEMA", "AppleMapping", "CsvMapping", "ImportFileError", "MappingError",
    "PatientNotFoundError", "RegistryImport", "StoredTableError", "TableLockedError", "WearableImport",
    "WearableImportError", "detect_format", "import_wearables", "load_apple_mapping", "load_csv_mapping",
    "measure_columns", "merge_days", "read_apple_health", "read_daily_csv", "read_daily_parquet",
    "read_wearables_file",
]
