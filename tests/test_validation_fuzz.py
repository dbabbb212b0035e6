"""Garbage in, a report out: the validator never crashes on what a registry export may hold."""
from __future__ import annotations

import csv
import datetime as dt
import io
import shutil
import tempfile
from pathlib import Path

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rxpredict.registry import validate_registry
from rxpredict.schemas import load_contract
from rxpredict.validation import ValidationReport, validate_tables
from tests.conftest import EXAMPLE, TODAY

CONTRACT = load_contract()
TABLES = CONTRACT.table_names
FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])  # example count: conftest profiles

cells = st.one_of(
    st.none(),
    st.text(max_size=12),
    st.sampled_from(["NA", "", " ", "None", "-1", "999", "1e400", "nan", "-0", "２８", "true", "2021-02-30",
                     "2020-01-01", "0x1F", "١٢", "'; DROP TABLE visits; --", "<script>x</script>"]),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.dates().map(dt.date.isoformat),
)


@st.composite
def csv_tables(draw) -> tuple[str, str]:
    """A table name and CSV text with a random header (contract and stray names) and random cells."""
    table = draw(st.sampled_from(TABLES))
    known = CONTRACT.tables[table].column_names
    header = draw(st.lists(st.one_of(st.sampled_from(known), st.text(min_size=1, max_size=8)),
                           min_size=1, max_size=len(known) + 2, unique=True))
    rows = draw(st.lists(st.lists(cells, min_size=len(header), max_size=len(header)), max_size=8))
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows([["" if c is None else c for c in r] for r in rows])
    return table, buf.getvalue()


def _validate_with(table: str, content: bytes) -> ValidationReport:
    with tempfile.TemporaryDirectory() as tmp:
        reg = Path(tmp) / "reg"
        shutil.copytree(EXAMPLE, reg)
        (reg / f"{table}.csv").write_bytes(content)
        result = validate_registry(reg, today=TODAY)
    for name, schema in CONTRACT.tables.items():
        assert result.tables[name].select(schema.column_names).schema == schema.polars_schema
    return result.report


@FUZZ
@given(csv_tables())
def test_structured_garbage_csv_gives_a_report(table_and_text):
    table, text = table_and_text
    report = _validate_with(table, text.encode("utf-8"))
    assert isinstance(report, ValidationReport)
    report.to_text(), report.to_json()


@FUZZ
@given(st.sampled_from(TABLES), st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_arbitrary_bytes_give_a_report(table, content):
    report = _validate_with(table, content)
    assert isinstance(report, ValidationReport)


native_columns = st.one_of(
    st.lists(st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)), min_size=3, max_size=3).map(
        lambda v: pl.Series(v, dtype=pl.Int64)),
    st.lists(st.one_of(st.none(), st.floats()), min_size=3, max_size=3).map(lambda v: pl.Series(v, dtype=pl.Float64)),
    st.lists(st.one_of(st.none(), st.booleans()), min_size=3, max_size=3).map(lambda v: pl.Series(v, dtype=pl.Boolean)),
    st.lists(st.one_of(st.none(), st.dates()), min_size=3, max_size=3).map(lambda v: pl.Series(v, dtype=pl.Date)),
    st.lists(st.one_of(st.none(), st.text(max_size=6)), min_size=3, max_size=3).map(
        lambda v: pl.Series(v, dtype=pl.String)),
    st.just(pl.Series([None, None, None])),
    st.just(pl.Series([[1], [], None], dtype=pl.List(pl.Int64))),
)


@FUZZ
@given(st.data())
def test_frames_of_any_dtype_give_a_report(data):
    raw = {}
    for name in data.draw(st.lists(st.sampled_from(TABLES), unique=True, max_size=len(TABLES))):
        cols = data.draw(st.lists(st.sampled_from(CONTRACT.tables[name].column_names), unique=True))
        raw[name] = pl.DataFrame([data.draw(native_columns).alias(c) for c in cols]) if cols else pl.DataFrame()
    result = validate_tables(raw, today=TODAY)
    assert isinstance(result.report, ValidationReport)
    for name, frame in result.tables.items():
        assert frame.select(CONTRACT.tables[name].column_names).schema == CONTRACT.tables[name].polars_schema
