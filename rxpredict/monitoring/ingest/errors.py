"""Why a wearables import stops before it changes anything: a bad mapping, file, patient or stored table."""
from __future__ import annotations

from pathlib import Path

from rxpredict.exceptions import RxpredictError


class WearableImportError(RxpredictError):
    """Base class: nothing was imported and the registry is as it was."""


class MappingError(WearableImportError):
    """A mapping file (data_schemas/apple_health.json or a CSV mapping) is missing, not JSON, or not valid."""


class PatientNotFoundError(WearableImportError):
    """The patient being imported is not in the registry's patients table."""


class StoredTableError(WearableImportError):
    """The registry's stored wearables table cannot be read or breaks the data contract."""


class TableLockedError(StoredTableError):
    """Another import held the registry's wearables table (its lock file) for longer than the timeout."""


class ImportFileError(WearableImportError):
    """The file cannot be imported at all (malformed XML, a CSV that cannot be parsed ...).

    ``line`` is the line of the file where reading failed, when known.
    """

    def __init__(self, path: str | Path, message: str, line: int | None = None) -> None:
        self.path = str(path)
        self.line = line
        where = f", line {line}" if line is not None else ""
        super().__init__(f"{Path(path).name}{where}: {message}; nothing was imported from this file")
