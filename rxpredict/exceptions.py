"""Domain errors of rxpredict, in one place (the lifelines habit): bad data or a bad file raises one of these."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rxpredict.validation.report import ValidationReport


class RxpredictError(Exception):
    """Base class of every error rxpredict raises on purpose."""


class ContractError(RxpredictError):
    """The files in data_schemas/ are missing, malformed or contradict each other."""


class RegistryReadError(RxpredictError):
    """A registry directory or one of its files cannot be read at all."""


class RegistryValidationError(RxpredictError):
    """A registry breaks the data contract; `report` lists every violation."""

    def __init__(self, report: "ValidationReport") -> None:
        self.report = report
        super().__init__(
            f"registry breaks the data contract: {report.n_errors} error(s) "
            f"in {', '.join(report.tables_with_errors()) or 'no table'}; "
            "see .report for every row, column and rule"
        )


class BundleError(RxpredictError):
    """A model bundle is missing, of another format or schema version, or was changed after it was written."""



class RecordError(RxpredictError):
    """Records cannot be stored; ``problems`` lists each one with its table, row, column and rule."""

    def __init__(self, problems: list) -> None:
        self.problems = list(problems)
        shown = "; ".join(str(p) for p in self.problems[:5])
        more = f" (and {len(self.problems) - 5} more)" if len(self.problems) > 5 else ""
        super().__init__(f"nothing was saved: {shown}{more}")


class ImagingDataError(RxpredictError):
    """A radiograph folder, score CSV, landmark file or image breaks the RA2-DREAM layout; ``problems`` lists each
    (the first ten are in the message, the rest counted)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        more = f" (and {len(self.problems) - 10} more)" if len(self.problems) > 10 else ""
        super().__init__("; ".join(self.problems[:10]) + more)
