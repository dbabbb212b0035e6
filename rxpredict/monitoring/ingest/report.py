"""What an import found: every rejected record with its line, column and rule, and the days it yields.

Reports hold counts, line numbers and rule names only, never a patient's
values, dates or device names, so that they can be printed and logged.
"""
from __future__ import annotations

from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from rxpredict.monitoring.ingest.mapping import measure_columns

#: Columns of a problems frame, one row per rejected record (or day and column, for a day-level rule).
PROBLEM_SCHEMA = pl.Schema(
    {
        "severity": pl.String(),  # "error": not imported; "warning": kept aside (a conflict with stored data)
        "line": pl.Int64(),  # line of the file (XML, CSV with the header on line 1), or 1-based row of a Parquet file
        "column": pl.String(),  # the wearables column concerned, null where none
        "rule": pl.String(),
        "message": pl.String(),
    }
)

#: Things not imported that are not errors, by reason, as the summary words them.
SET_ASIDE = {
    "other_type": "records of types that are not imported",
    "not_asleep": "sleep records in bed or awake (not asleep)",
    "other_source": "records of a second device, on a day another device recorded more of the same measure",
    "no_value": "days with no value left to import",
}
#: Where a problem's message names its second line (:meth:`ProblemLog.add`'s ``other_line``).
OTHER_LINE = "{other_line}"


class ProblemLog:
    """Problems in the order found, held compactly (two line numbers and the index of a distinct kind).

    A 1 GB export with a systematic fault may reject millions of records;
    each costs 20 bytes here instead of a Python object.
    """

    def __init__(self) -> None:
        self._lines = array("q")
        self._other_lines = array("q")
        self._kinds = array("I")
        self._index: dict[tuple[str, str | None, str, str], int] = {}

    def add(self, line: int | None, rule: str, message: str, column: str | None = None,
            severity: str = "error", other_line: int | None = None) -> None:
        """Record one problem; ``line`` None for a problem of the whole file.

        ``other_line`` is a second line the problem concerns (the first
        occurrence of a repeated record); it is written into the message
        where that says :data:`OTHER_LINE`.
        """
        kind = self._index.setdefault((severity, column, rule, message), len(self._index))
        self._lines.append(-1 if line is None else line)
        self._other_lines.append(-1 if other_line is None else other_line)
        self._kinds.append(kind)

    def add_lines(self, lines: Iterable[int | None], rule: str, message: str, column: str | None = None,
                  severity: str = "error") -> None:
        """Record the same problem at each of ``lines``."""
        for line in lines:
            self.add(line, rule, message, column, severity)

    def __len__(self) -> int:
        return len(self._lines)

    def frame(self) -> pl.DataFrame:
        """Every problem as a row of :data:`PROBLEM_SCHEMA`, in line order (file-level problems first)."""
        kinds = pl.DataFrame(list(self._index), schema=["severity", "column", "rule", "message"], orient="row")
        found = pl.DataFrame({"line": pl.Series(self._lines, dtype=pl.Int64),
                              "other_line": pl.Series(self._other_lines, dtype=pl.Int64),
                              "kind": pl.Series(self._kinds, dtype=pl.UInt32)})
        if found.is_empty():
            return pl.DataFrame(schema=PROBLEM_SCHEMA)
        other = pl.col("other_line")
        return (
            found.with_columns(pl.when(pl.col("line") >= 0).then(pl.col("line")))
            .join(kinds.with_row_index("kind"), on="kind", how="left", maintain_order="left")
            .with_columns(pl.when(other >= 0)
                          .then(pl.col("message").str.replace(OTHER_LINE, other.cast(pl.String), literal=True))
                          .otherwise(pl.col("message")))
            .sort("line", nulls_last=False, maintain_order=True)
            .select(PROBLEM_SCHEMA.names())
            .cast(dict(PROBLEM_SCHEMA))
        )


def summarise_problems(problems: pl.DataFrame, first: int = 5) -> pl.DataFrame:
    """Counts per severity, rule and column, with the message and the first lines involved."""
    return (
        problems.group_by("severity", "rule", "column", maintain_order=True)
        .agg(pl.len().alias("count"), pl.col("message").first(),
             pl.col("line").drop_nulls().head(first).alias("first_lines"))
        .sort("severity", "rule", "column", nulls_last=True)
    )


def problem_lines(problems: pl.DataFrame, location: str, first: int = 5, indent: str = "    ") -> list[str]:
    """One text line per rule and column: count, rule in words, first lines (no values)."""
    out = []
    for g in summarise_problems(problems, first).iter_rows(named=True):
        where = f" {g['column']}" if g["column"] else ""
        lines = ", ".join(map(str, g["first_lines"]))
        more = " ..." if g["count"] > len(g["first_lines"]) else ""
        at = f" ({location}{'s' if len(g['first_lines']) > 1 else ''} {lines}{more})" if lines else ""
        out.append(f"{indent}{g['rule']}{where}: {g['count']:,} - {g['message']}{at}")
    return out


@dataclass
class WearableImport:
    """One file read for one patient: the days it yields and every record it does not.

    Attributes
    ----------
    days : pl.DataFrame
        The patient's days in the wearables table's schema, one row per date.
    lines : pl.DataFrame
        ``date`` and, per measure column, the line (row for Parquet) of the
        day's first record of that measure: where a later conflict is reported.
    problems : pl.DataFrame
        Every rejected record (:data:`PROBLEM_SCHEMA`); rejected values are not in ``days``.
    records_read : int
        Records (XML) or rows (CSV, Parquet) read.
    set_aside : dict
        Counts of what was not imported without being an error, by reason (:data:`SET_ASIDE`).
    notes : list of str
        Other things the summary should say (columns ignored, days with several devices).
    location : str
        ``"line"`` or ``"row"``: what the numbers in ``problems`` count.
    """

    path: str
    format: str
    patient_id: str
    days: pl.DataFrame
    lines: pl.DataFrame
    problems: pl.DataFrame
    records_read: int
    set_aside: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    location: str = "line"

    @property
    def n_rejected(self) -> int:
        """Records (or values) rejected by a rule."""
        return self.problems.filter(pl.col("severity") == "error").height

    def days_per_measure(self) -> dict[str, int]:
        """Days with a value, per measure column."""
        return self.days.select(pl.col(measure_columns()).count()).row(0, named=True)

    def summary(self) -> pl.DataFrame:
        """Rejected records per rule and column, with the first lines involved."""
        return summarise_problems(self.problems)

    def to_text(self, first: int = 5) -> str:
        """What was read, imported, set aside and rejected, in a few lines (counts and line numbers only)."""
        per = ", ".join(f"{m} {n:,}" for m, n in self.days_per_measure().items() if n)
        lines = [f"{Path(self.path).name} ({self.format}): {self.records_read:,} "
                 f"{'records' if self.format == 'apple' else 'rows'} read, {self.days.height:,} days with data"
                 + (f" ({per})" if per else "")]
        lines += [f"  set aside: {n:,} {SET_ASIDE[k]}" for k, n in self.set_aside.items() if n]
        lines += [f"  note: {n}" for n in self.notes]
        if self.n_rejected:
            lines.append(f"  rejected: {self.n_rejected:,} (not imported)")
            lines += problem_lines(self.problems.filter(pl.col("severity") == "error"), self.location, first)
        return "\n".join(lines)
