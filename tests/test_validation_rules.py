"""Every rule of every schema, violated once on a copy of the example registry.

The plants are generated from data_schemas/ itself, so a constraint added to a
schema file is tested here without touching this file; `test_every_rule_is_planted`
fails if a rule exists that no plant covers.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl
import pytest

from rxpredict.schemas import Field, load_contract
from rxpredict.validation import validate_tables
from tests.conftest import TODAY

CONTRACT = load_contract()
ROW = 2  # the 1-based record each plant spoils


@dataclass(frozen=True)
class Plant:
    table: str
    column: str
    value: str | None
    rule: str
    row: int = ROW
    cells: tuple[tuple[str, str | None], ...] = ()  # other cells of the same row to set first

    @property
    def id(self) -> str:
        return f"{self.table}.{self.column}:{self.rule}={self.value!r}"


BAD_TEXT = {"integer": "2.5", "number": "abc", "date": "2021-02-30", "boolean": "maybe"}


def _outside(field: Field, bound: float, direction: int) -> str:
    """A value just outside a bound that is not itself a missing-data code."""
    step = 2 if field.type == "integer" else 0.5
    value = bound + direction * step
    assert value not in CONTRACT.sentinel_numbers
    return f"{value:g}"


def field_plants() -> list[Plant]:
    plants = []
    for t in CONTRACT.tables.values():
        for f in t.fields:
            p = lambda value, rule: Plant(t.name, f.name, value, rule)  # noqa: E731
            plants.append(p("NA", "sentinel"))
            if f.required:
                plants.append(p(None, "required"))
            if f.type in BAD_TEXT:
                plants.append(p(BAD_TEXT[f.type], "type"))
            if f.minimum is not None:
                plants.append(p(_outside(f, f.minimum, -1), "minimum"))
            if f.maximum is not None:
                plants.append(p(_outside(f, f.maximum, +1), "maximum"))
            if f.dynamic_maximum == "today":
                plants.append(p((TODAY + dt.timedelta(days=1)).isoformat(), "maximum"))
            if f.dynamic_maximum == "current_year":
                plants.append(p(str(TODAY.year + 1), "maximum"))
            if f.enum is not None:
                plants.append(p("zzz", "enum"))
            if f.multiple_of is not None:
                plants.append(p("0.1", "multiple_of"))
            if f.min_length is not None:
                # The only text shorter than one character is "", a missing-data code: reported as such.
                plants.append(p("", "sentinel"))
    return plants


def key_plants(raw: dict[str, pl.DataFrame]) -> list[Plant]:
    plants = []
    for t in CONTRACT.tables.values():
        first = raw[t.name].row(0, named=True)
        for col in t.column_names:
            if t.field(col).unique:
                plants.append(Plant(t.name, col, first[col], "unique"))
        if len(t.primary_key) > 1:
            cells = tuple((k, first[k]) for k in t.primary_key[:-1])
            last = t.primary_key[-1]
            plants.append(Plant(t.name, ",".join(t.primary_key), first[last], "duplicate_key",
                                cells=cells + ((last, first[last]),)))
        for fk in t.foreign_keys:
            plants.append(Plant(t.name, fk.fields[0], "P-UNKNOWN", "foreign_key"))
    return plants


def _row_of(raw: dict[str, pl.DataFrame], table: str, **match: str) -> int:
    idx = raw[table].with_row_index("i", offset=1).filter(**match).get_column("i")
    return int(idx[0])


def rule_plants(raw: dict[str, pl.DataFrame]) -> list[Plant]:
    """One plant per x-rule; these need knowledge of the rule, so they are written out."""
    hand_area = _row_of(raw, "imaging", joint="left_hand_mcp1")
    jsn_only = _row_of(raw, "imaging", joint="left_hand_cmc3")
    erosion_only = _row_of(raw, "imaging", joint="left_hand_ip1")
    snp = _row_of(raw, "genetics", marker="rs2476601")
    return [
        Plant("patients", "diagnosis_date", "1950-06-01", "diagnosis_before_birth"),  # born 1975
        Plant("visits", "visit_date", "2009-01-01", "visit_long_before_diagnosis"),  # diagnosed 2015-03-02
        Plant("treatments", "stop_date", "2020-01-01", "stop_before_start"),  # started 2021-01-18
        Plant("treatments", "stop_reason", "other", "stop_reason_while_ongoing"),  # row 2 is ongoing
        Plant("imaging", "erosion", "6", "erosion_above_area_max", row=hand_area),  # hand max 5
        Plant("imaging", "erosion", "1", "erosion_above_area_max", row=jsn_only),  # not scored for erosion
        Plant("imaging", "jsn", "1", "jsn_above_area_max", row=erosion_only),  # not scored for JSN
        Plant("genetics", "value", "2.5", "dosage_out_of_range", row=snp),
    ]


def apply(raw: dict[str, pl.DataFrame], plant: Plant) -> dict[str, pl.DataFrame]:
    spoiled = dict(raw)
    frame = spoiled[plant.table]
    at = pl.int_range(pl.len()) == plant.row - 1
    cells = plant.cells or ((plant.column, plant.value),)
    spoiled[plant.table] = frame.with_columns(
        pl.when(at).then(pl.lit(v, dtype=pl.String)).otherwise(pl.col(c)).alias(c) for c, v in cells
    )
    return spoiled


def _all_plants() -> list[Plant]:
    from tests.conftest import EXAMPLE
    from rxpredict.registry import read_raw_tables

    raw, _ = read_raw_tables(EXAMPLE)
    return field_plants() + key_plants(raw) + rule_plants(raw)


PLANTS = _all_plants()


def test_example_registry_is_clean(raw_example):
    report = validate_tables(raw_example, today=TODAY).report
    assert report.ok and report.n_warnings == 0, report.to_text()


@pytest.mark.parametrize("plant", PLANTS, ids=lambda p: p.id)
def test_planted_violation_is_reported_at_its_row_and_column(raw_example, plant):
    report = validate_tables(apply(raw_example, plant), today=TODAY).report
    errors = report.errors
    hit = errors.filter(
        (pl.col("table") == plant.table) & (pl.col("row") == plant.row)
        & (pl.col("column") == plant.column) & (pl.col("rule") == plant.rule)
    )
    assert hit.height == 1, report.to_text()
    if plant.value is not None and plant.rule != "duplicate_key":
        assert hit.item(0, "value") == plant.value
    # Nothing else is blamed, except rows elsewhere that point at a spoiled key.
    elsewhere = errors.filter(
        ~((pl.col("table") == plant.table) & (pl.col("row") == plant.row)) & (pl.col("rule") != "foreign_key")
    )
    assert elsewhere.is_empty(), elsewhere


def test_every_rule_is_planted():
    """Each constraint of every field, each key and each x-rule has at least one plant above."""
    planted = {(p.table, p.column, p.rule) for p in PLANTS}
    needed = set()
    for t in CONTRACT.tables.values():
        for f in t.fields:
            needed.add((t.name, f.name, "sentinel"))
            if f.required:
                needed.add((t.name, f.name, "required"))
            if f.type != "string":
                needed.add((t.name, f.name, "type"))
            for attr, rule in [("minimum", "minimum"), ("maximum", "maximum"), ("dynamic_maximum", "maximum"),
                               ("enum", "enum"), ("multiple_of", "multiple_of"), ("pattern", "pattern")]:
                if getattr(f, attr) is not None:
                    needed.add((t.name, f.name, rule))
            if f.unique:
                needed.add((t.name, f.name, "unique"))
        if len(t.primary_key) > 1:
            needed.add((t.name, ",".join(t.primary_key), "duplicate_key"))
        needed |= {(t.name, fk.fields[0], "foreign_key") for fk in t.foreign_keys}
        needed |= {(t.name, r.column, r.id) for r in t.rules}
    assert needed - planted == set()


def test_all_plants_at_once_are_all_reported(raw_example):
    """Plants in different rows of one registry do not hide each other: the report lists every one."""
    spoiled = raw_example
    rows_used: dict[str, set[int]] = {}
    applied = []
    for p in rule_plants(raw_example):
        if p.row in rows_used.setdefault(p.table, set()):
            continue
        rows_used[p.table].add(p.row)
        spoiled = apply(spoiled, p)
        applied.append(p)
    report = validate_tables(spoiled, today=TODAY).report
    found = set(report.errors.select("table", "row", "rule").iter_rows())
    assert {(p.table, p.row, p.rule) for p in applied} <= found
    assert report.summary().filter(pl.col("severity") == "error").get_column("count").sum() == report.n_errors
