"""Reading and writing registry directories: formats, dtypes, table-level problems, all-or-nothing writes."""
from __future__ import annotations

import datetime as dt
import shutil

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from rxpredict.exceptions import RegistryReadError, RegistryValidationError
from rxpredict.registry import read_registry, validate_registry, write_registry
from rxpredict.schemas import load_contract
from rxpredict.validation import validate_tables
from tests.conftest import TODAY

CONTRACT = load_contract()


def _rules(report, table=None):
    v = report.violations if table is None else report.violations.filter(pl.col("table") == table)
    return set(v.select("severity", "rule", "column").iter_rows())


def test_read_registry_gives_schema_dtypes(example_dir):
    reg = read_registry(example_dir, today=TODAY)
    assert reg.report.ok
    for name, schema in CONTRACT.tables.items():
        assert reg[name].schema == schema.polars_schema, name
    assert reg["visits"].height == 12 and reg.has("imaging")


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_round_trip_keeps_rows_types_and_nulls(example_dir, tmp_path, fmt):
    before = read_registry(example_dir, today=TODAY)
    write_registry(before, tmp_path, format=fmt, today=TODAY)
    after = read_registry(tmp_path, today=TODAY)
    for name in CONTRACT.tables:
        assert_frame_equal(before[name], after[name])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{n}.{fmt}" for n in CONTRACT.tables)


def test_invalid_write_writes_nothing_and_keeps_what_was_there(example_dir, tmp_path):
    shutil.copytree(example_dir, tmp_path / "reg")
    before = {p.name: p.read_bytes() for p in (tmp_path / "reg").iterdir()}
    reg = read_registry(example_dir, today=TODAY)
    bad = dict(reg.tables, visits=reg["visits"].with_columns(pl.lit(40).alias("tjc28")))
    with pytest.raises(RegistryValidationError) as err:
        write_registry(bad, tmp_path / "reg", format="parquet", today=TODAY)
    assert err.value.report.n_errors == 12
    assert {p.name: p.read_bytes() for p in (tmp_path / "reg").iterdir()} == before


def test_strict_read_raises_with_full_report(example_dir, tmp_path):
    shutil.copytree(example_dir, tmp_path / "reg")
    visits = tmp_path / "reg" / "visits.csv"
    visits.write_text(visits.read_text().replace("EX001,2021-04-12,4,", "EX001,2021-04-12,44,"))
    with pytest.raises(RegistryValidationError) as err:
        read_registry(tmp_path / "reg", today=TODAY)
    assert ("error", "maximum", "tjc28") in _rules(err.value.report)
    lax = read_registry(tmp_path / "reg", strict=False, today=TODAY)
    assert lax["visits"].get_column("tjc28").null_count() == 1  # the bad cell is read as null


def test_missing_required_and_optional_tables(example_dir, tmp_path):
    shutil.copytree(example_dir, tmp_path / "reg")
    (tmp_path / "reg" / "treatments.csv").unlink()
    (tmp_path / "reg" / "genetics.csv").unlink()
    result = validate_registry(tmp_path / "reg", today=TODAY)
    assert _rules(result.report) == {("error", "missing_table", None)}
    assert result.report.violations.item(0, "table") == "treatments"
    assert result.tables["genetics"].is_empty()
    assert result.tables["genetics"].schema == CONTRACT.tables["genetics"].polars_schema


def test_unreadable_directory_raises(tmp_path):
    with pytest.raises(RegistryReadError):
        validate_registry(tmp_path / "absent")
    (tmp_path / "file").write_text("x")
    with pytest.raises(RegistryReadError):
        validate_registry(tmp_path / "file")


def test_empty_corrupt_and_ambiguous_files(example_dir, tmp_path):
    reg = tmp_path / "reg"
    shutil.copytree(example_dir, reg)
    (reg / "genetics.csv").write_text("")
    (reg / "wearables.csv").unlink()
    (reg / "wearables.parquet").write_bytes(b"PAR1 this is not parquet")
    read_registry(example_dir, today=TODAY)["imaging"].write_parquet(reg / "imaging.parquet")
    report = validate_registry(reg, today=TODAY).report
    assert _rules(report, "genetics") == {("error", "empty_file", None)}
    assert _rules(report, "wearables") == {("error", "unreadable", None)}
    assert _rules(report, "imaging") == {("warning", "ambiguous_file", None)}


def test_csv_quoted_empty_is_a_sentinel_but_an_empty_field_is_null(example_dir, tmp_path):
    reg = tmp_path / "reg"
    shutil.copytree(example_dir, reg)
    patients = reg / "patients.csv"
    lines = patients.read_text().splitlines()
    lines[1] = lines[1].replace(",former", ',""')  # row 1: quoted empty smoking
    lines[2] = lines[2].replace(",never", ",")  # row 2: empty smoking (null, allowed)
    patients.write_text("\n".join(lines) + "\n")
    errors = validate_registry(reg, today=TODAY).report.errors
    assert errors.select("row", "column", "rule").rows() == [(1, "smoking", "sentinel")]


def test_missing_and_extra_columns(raw_example):
    raw = dict(raw_example, visits=raw_example["visits"].drop("tjc28", "bmi_kg_m2").with_columns(pl.lit("x").alias("note")))
    result = validate_tables(raw, today=TODAY)
    assert _rules(result.report, "visits") == {
        ("error", "missing_column", "tjc28"), ("warning", "missing_column", "bmi_kg_m2"),
        ("warning", "extra_column", "note"),
    }
    assert result.tables["visits"].columns[-1] == "note"  # extra columns are kept
    assert result.tables["visits"].get_column("tjc28").null_count() == 12


def test_native_parquet_dtypes(example_dir):
    typed = read_registry(example_dir, today=TODAY).tables
    visits = typed["visits"].with_columns(
        pl.Series("tjc28", [2.5, 99.0] + [3.0] * 10),  # float for an integer: 3.0 is fine, 2.5 is not
        pl.Series("esr_mm_h", [-1, 5] + [10] * 10),  # a native -1 below a minimum of 0 is a missing-data code
        pl.col("visit_date").cast(pl.Datetime("us")),  # datetimes are read as their date
        pl.Series("pain_0_100", [[1, 2]] + [None] * 11, dtype=pl.List(pl.Int64)),  # nested: a type error
        pl.lit(None).alias("bmi_kg_m2"),  # an all-null column of dtype Null
    )
    result = validate_tables(dict(typed, visits=visits), today=TODAY)
    got = set(result.report.errors.select("row", "column", "rule", "value").iter_rows())
    assert got == {(1, "tjc28", "type", "2.5"), (2, "tjc28", "sentinel", "99.0"),
                   (1, "esr_mm_h", "sentinel", "-1"), (1, "pain_0_100", "type", "[1, 2]")}
    assert result.tables["visits"].schema == CONTRACT.tables["visits"].polars_schema


def test_report_text_json_and_summary(raw_example):
    raw = dict(raw_example, visits=raw_example["visits"].with_columns(pl.lit("31").alias("sjc28")))
    report = validate_tables(raw, today=TODAY, source="demo").report
    text = report.to_text(max_per_rule=2)
    assert "INVALID: demo" in text and "[visits]" in text and "maximum sjc28: 12" in text and "... and 10 more" in text
    d = report.to_dict(max_per_rule=3)
    assert d["n_errors"] == 12 and len(d["violations"]) == 3 and d["counts"][0]["count"] == 12
    assert report.counts_by_rule().rows() == [("error", "maximum", 12)]


def test_dates_after_today_are_judged_against_the_given_today(raw_example):
    later = validate_tables(raw_example, today=dt.date(2015, 1, 1)).report
    assert ("error", "maximum", "diagnosis_date") in _rules(later, "patients")
