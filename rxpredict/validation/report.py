"""The validation report: every violation as a row, summaries as frames, text second."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import polars as pl

#: Columns of ValidationReport.violations, one row per violation.
VIOLATION_SCHEMA = pl.Schema(
    {
        "severity": pl.String(),  # "error" or "warning"
        "table": pl.String(),
        "row": pl.Int64(),  # 1-based record number in the table's file (header excluded); null for table-level
        "column": pl.String(),  # null for table-level problems
        "value": pl.String(),  # the offending value as read, null where there is none
        "rule": pl.String(),  # e.g. "maximum", "foreign_key", "stop_before_start"
        "message": pl.String(),
    }
)


def violation_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """Table-level violations (no row) as a frame with the report's columns."""
    return pl.DataFrame(rows, schema=VIOLATION_SCHEMA) if rows else pl.DataFrame(schema=VIOLATION_SCHEMA)


@dataclass
class ValidationReport:
    """Every way a registry breaks the data contract.

    Attributes
    ----------
    violations : pl.DataFrame
        One row per violation: severity, table, row (1-based record number;
        in a CSV the line number is row + 1), column, value, rule, message.
    rows_read : dict[str, int]
        Number of rows read per table.
    source : str | None
        The directory or description of what was validated.
    contract_version : str
        Version of data_schemas/ the registry was checked against.
    notes : list[str]
        Things done to the data that are not violations.
    """

    violations: pl.DataFrame
    rows_read: dict[str, int]
    contract_version: str
    source: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def errors(self) -> pl.DataFrame:
        return self.violations.filter(pl.col("severity") == "error")

    @property
    def warnings(self) -> pl.DataFrame:
        return self.violations.filter(pl.col("severity") == "warning")

    @property
    def n_errors(self) -> int:
        return self.errors.height

    @property
    def n_warnings(self) -> int:
        return self.warnings.height

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings allowed)."""
        return self.n_errors == 0

    def tables_with_errors(self) -> list[str]:
        return self.errors.get_column("table").unique(maintain_order=True).to_list()

    def summary(self) -> pl.DataFrame:
        """Counts per severity, table, rule and column, with the first rows involved."""
        return (
            self.violations.group_by("severity", "table", "rule", "column", maintain_order=True)
            .agg(
                pl.len().alias("count"),
                pl.col("row").drop_nulls().head(5).alias("first_rows"),
                pl.col("message").first(),
            )
            .sort("severity", "table", "rule", "column", nulls_last=True)
        )

    def counts_by_rule(self) -> pl.DataFrame:
        """Number of violations per rule, over all tables."""
        return self.violations.group_by("severity", "rule").agg(pl.len().alias("count")).sort("severity", "rule")

    def to_dict(self, max_per_rule: int | None = None) -> dict[str, Any]:
        """A JSON-ready dict; ``max_per_rule`` caps the rows listed per (table, rule, column)."""
        v = self.violations
        if max_per_rule is not None:
            v = v.filter(pl.int_range(pl.len()).over("table", "rule", "column") < max_per_rule)
        return {
            "ok": self.ok,
            "source": self.source,
            "contract_version": self.contract_version,
            "n_errors": self.n_errors,
            "n_warnings": self.n_warnings,
            "rows_read": self.rows_read,
            "notes": self.notes,
            "counts": self.summary().drop("first_rows").to_dicts(),
            "violations": v.to_dicts(),
        }

    def to_json(self, max_per_rule: int | None = None, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(max_per_rule), indent=indent, default=str)

    def to_text(self, max_per_rule: int = 5) -> str:
        """A readable report grouped by table and rule, with up to ``max_per_rule`` examples each."""
        head = "OK" if self.ok else "INVALID"
        lines = [
            f"{head}: {self.source or 'registry'} against data contract v{self.contract_version}",
            f"  {self.n_errors} error(s), {self.n_warnings} warning(s); rows read: "
            + ", ".join(f"{t} {n}" for t, n in self.rows_read.items()),
        ]
        lines += [f"  note: {n}" for n in self.notes]
        for table in self.violations.get_column("table").unique(maintain_order=True).to_list():
            lines.append(f"\n[{table}]")
            for g in self.summary().filter(pl.col("table") == table).iter_rows(named=True):
                where = f" {g['column']}" if g["column"] else ""
                lines.append(f"  {g['severity']:<7} {g['rule']}{where}: {g['count']} - {g['message']}")
                examples = self.violations.filter(
                    (pl.col("table") == table) & (pl.col("rule") == g["rule"])
                    & pl.col("column").eq_missing(g["column"]) & pl.col("row").is_not_null()
                ).head(max_per_rule)
                for ex in examples.iter_rows(named=True):
                    lines.append(f"          row {ex['row']}: {ex['value']!r}")
                if g["count"] > examples.height and examples.height:
                    lines.append(f"          ... and {g['count'] - examples.height} more")
        return "\n".join(lines)

    def print_summary(self, max_per_rule: int = 5) -> None:
        print(self.to_text(max_per_rule))
