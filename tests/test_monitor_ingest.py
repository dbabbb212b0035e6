"""Wearables import: Apple Health exports, daily CSVs with a mapping, our own format, and `rxpredict monitor import`.

Exports are built record by record (rxpredict.monitoring.ingest.synthetic) so each test states the records it
needs; every rejected record must come back with its line and rule, and a failed import must leave the registry's
files byte for byte as they were.
"""
from __future__ import annotations

import datetime as dt
import json
import multiprocessing
import sys
import time
import types
import zipfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import jsonschema
import polars as pl
import pytest
from click.testing import CliRunner
from polars.testing import assert_frame_equal

from rxpredict.cli import main
from rxpredict.monitoring.ingest import (ImportFileError, MappingError, PatientNotFoundError, StoredTableError,
                                         TableLockedError, detect_format, import_wearables, load_apple_mapping,
                                         load_csv_mapping, measure_columns, read_apple_health, read_daily_csv,
                                         read_daily_parquet)
from rxpredict.monitoring.ingest import merge as merge_module
from rxpredict.monitoring.ingest.synthetic import (ASLEEP_CORE, ASLEEP_DEEP, AWAKE, EXERCISE, HEART_RATE, IN_BED,
                                                   PHONE, RESTING_HR, SLEEP, STEPS, WATCH, export_text, record,
                                                   write_export, write_synthetic_export)
from rxpredict.registry import read_registry, write_registry
from rxpredict.schemas import schema_dir
from tests.conftest import TODAY

PATIENT = "EX001"
MEASURES = ["steps", "active_min", "sleep_min", "resting_hr_bpm"]


def steps(start: str, end: str | None = None, value: object = 100, unit: str | None = "count",
          source: str = WATCH) -> str:
    return record(STEPS, start, end or start, value, unit, source)


def day(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def line_of(path: Path, fragment: str) -> int:
    """The 1-based line of the only line of ``path`` holding ``fragment``."""
    found = [i for i, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if fragment in text]
    assert len(found) == 1, (fragment, found)
    return found[0]


def repeats_in(path: Path) -> set[tuple[int, int]]:
    """(line, line of the first occurrence) of each <Record> line that repeats an earlier one verbatim."""
    first, found = {}, set()
    for i, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if text.startswith(" <Record"):
            if text in first:
                found.add((i, first[text]))
            else:
                first[text] = i
    return found


def reported_repeats(result) -> set[tuple[int, int]]:
    """(line, first line named in the message) of each duplicate_record problem."""
    found = result.problems.filter(pl.col("rule") == "duplicate_record")
    return set(found.select("line", pl.col("message").str.extract(r"record at line (\d+)").cast(pl.Int64))
               .iter_rows())


def read(path: Path, **kw):
    return read_apple_health(path, PATIENT, today=TODAY, **kw)


def value(result, date: str, column: str):
    row = result.days.filter(pl.col("date") == day(date))
    return row.get_column(column).item() if row.height else None


def rejected(result) -> set[tuple[int, str, str]]:
    return set(result.problems.filter(pl.col("severity") == "error").select("line", "rule", "column").iter_rows())


# --- Apple Health: whole synthetic exports ------------------------------------------------------------------

@pytest.mark.parametrize(("change", "tz"), [
    ("2024-03-10", "America/Los_Angeles"),  # spring forward: a 23-hour day
    ("2024-11-03", "America/Los_Angeles"),  # fall back: a 25-hour day
    ("2024-03-31", "Europe/Berlin"),        # +0100 -> +0200
])
def test_synthetic_export_round_trips_across_daylight_saving_changes(tmp_path, change, tz):
    first_day = day(change) - dt.timedelta(days=2)
    made = write_synthetic_export(tmp_path / "export.xml", size_mb=2.2, first_day=first_day, tz=tz)
    assert made.expected.get_column("date").to_list()[:4] == [first_day + dt.timedelta(days=i) for i in range(4)]
    result = read(made.path)
    assert result.n_rejected == 0 and result.records_read == made.records
    assert_frame_equal(result.days.select("date", *MEASURES), made.expected)
    assert result.days.get_column("pain_0_10").is_null().all()
    assert result.days.get_column("patient_id").eq(PATIENT).all()
    assert result.set_aside["other_source"] > 0 and result.set_aside["other_type"] > 0
    assert result.set_aside["not_asleep"] > 0


def test_repeated_records_in_a_synthetic_export_count_once_and_are_each_reported(tmp_path):
    made = write_synthetic_export(tmp_path / "export.xml", size_mb=1.2, repeat_every=7)
    result = read(made.path)
    assert_frame_equal(result.days.select("date", *MEASURES), made.expected)
    repeats = repeats_in(made.path)
    assert len(repeats) == made.repeated > 400 and result.records_read == made.records
    assert reported_repeats(result) == repeats and result.n_rejected == made.repeated
    assert set(result.problems.get_column("column")) >= {"steps", "active_min", "sleep_min"}


def test_zip_export_reads_like_the_xml(tmp_path):
    made = write_synthetic_export(tmp_path / "export.xml", size_mb=0.6)
    with zipfile.ZipFile(tmp_path / "export.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.write(made.path, "apple_health_export/export.xml")
        z.writestr("apple_health_export/export_cda.xml", "<ClinicalDocument/>")
    assert_frame_equal(read(tmp_path / "export.zip").days, read(made.path).days)
    damaged = bytearray((tmp_path / "export.zip").read_bytes())
    damaged[len(damaged) // 2: len(damaged) // 2 + 64] = bytes(64)
    (tmp_path / "damaged.zip").write_bytes(bytes(damaged))
    with pytest.raises(ImportFileError, match="cannot be read|malformed XML"):  # whichever shows first
        read(tmp_path / "damaged.zip")
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as z:
        z.writestr("notes.txt", "no export here")
    with pytest.raises(ImportFileError, match="holds 0 files named export.xml"):
        read(tmp_path / "other.zip")


def test_empty_export_gives_no_rows(tmp_path):
    result = read(write_export(tmp_path / "export.xml", []))
    assert result.days.is_empty() and result.problems.is_empty() and result.records_read == 0
    assert result.days.columns == ["patient_id", "date", *measure_columns()]
    assert "0 records read, 0 days" in result.to_text()


# --- Apple Health: day assignment, units, devices -----------------------------------------------------------

def test_local_day_is_the_records_own_date_whatever_its_offset(tmp_path):
    path = write_export(tmp_path / "export.xml", [
        steps("2024-06-01 23:30:00 +0200", value=10),   # 21:30 UTC on June 1
        steps("2024-06-02 00:30:00 +0200", value=20),   # 22:30 UTC on June 1, but June 2 where the patient was
        steps("2024-06-02 08:00:00 -0700", value=40),   # the patient flew to California: still June 2
        steps("2024-06-01 23:50:00 +0200", "2024-06-02 00:10:00 +0200", value=5),  # spans midnight: counts by start
    ])
    result = read(path)
    assert (value(result, "2024-06-01", "steps"), value(result, "2024-06-02", "steps")) == (15, 60)


def test_sleep_counts_on_the_day_it_ends_across_midnight_and_daylight_saving(tmp_path):
    sleep = lambda s, e, v=ASLEEP_CORE, src=WATCH: record(SLEEP, s, e, v, source=src)  # noqa: E731
    path = write_export(tmp_path / "export.xml", [
        # one night across midnight, in stages with an awake spell: 80 + 30 + 370 min asleep, all on March 2
        sleep("2024-03-01 22:30:00 +0100", "2024-03-01 23:50:00 +0100"),
        sleep("2024-03-01 23:50:00 +0100", "2024-03-02 00:20:00 +0100", ASLEEP_DEEP),
        sleep("2024-03-02 00:20:00 +0100", "2024-03-02 00:30:00 +0100", AWAKE),
        sleep("2024-03-02 00:30:00 +0100", "2024-03-02 06:40:00 +0100"),
        sleep("2024-03-01 22:00:00 +0100", "2024-03-02 07:00:00 +0100", IN_BED, PHONE),
        sleep("2024-03-02 14:00:00 +0100", "2024-03-02 14:45:00 +0100"),  # an afternoon nap: another session, same day
        # 23:00 PST to 07:00 PDT is 7 hours; 23:00 PDT to 07:00 PST is 9 hours
        sleep("2024-03-09 23:00:00 -0800", "2024-03-10 07:00:00 -0700"),
        sleep("2024-11-02 23:00:00 -0700", "2024-11-03 07:00:00 -0800"),
    ])
    result = read(path)
    assert value(result, "2024-03-01", "sleep_min") is None
    assert value(result, "2024-03-02", "sleep_min") == 80 + 30 + 370 + 45
    assert (value(result, "2024-03-10", "sleep_min"), value(result, "2024-11-03", "sleep_min")) == (420, 540)
    assert result.set_aside["not_asleep"] == 2 and result.n_rejected == 0


def test_mixed_units_are_converted(tmp_path):
    t = "2024-05-01 18:00:00 +0000"
    path = write_export(tmp_path / "export.xml", [
        record(EXERCISE, t, t, 30, "min"), record(EXERCISE, t, t, 600, "s"), record(EXERCISE, t, t, 0.5, "hr"),
        record(RESTING_HR, t, t, 1, "count/s"), record(RESTING_HR, t, t, 62, "count/min"),
    ])
    result = read(path)
    assert value(result, "2024-05-01", "active_min") == 70
    assert value(result, "2024-05-01", "resting_hr_bpm") == 61  # mean of 60 and 62


def test_two_devices_on_one_day_keep_the_one_with_more_records(tmp_path):
    path = write_export(tmp_path / "export.xml", [
        *(steps(f"2024-05-01 08:0{i}:00 +0000", value=100) for i in range(3)),          # watch: 3 records, 300
        *(steps(f"2024-05-01 09:0{i}:00 +0000", value=500, source=PHONE) for i in range(2)),  # phone: 2, 1000
        steps("2024-05-02 08:00:00 +0000", value=7), steps("2024-05-02 09:00:00 +0000", value=9, source=PHONE),
    ])
    result = read(path)
    assert value(result, "2024-05-01", "steps") == 300  # not 1300: never summed across devices
    # a tie goes to the source name first in code-point order: "Sam’s Apple Watch" < "Sam’s iPhone"
    assert value(result, "2024-05-02", "steps") == 7
    assert result.set_aside["other_source"] == 3
    assert any("more than one device" in n for n in result.notes)


def test_exact_repeats_count_once_and_name_the_first_line(tmp_path):
    t = "2024-05-01 08:00:00 +0000"
    night = record(SLEEP, "2024-05-01 00:30:00 +0000", "2024-05-01 06:30:00 +0000", ASLEEP_CORE)
    rest, exercise = record(RESTING_HR, t, t, 60, "count/min"), record(EXERCISE, t, t, 30, "min")
    phone = [steps(f"2024-05-01 09:0{i}:00 +0000", value=500, source=PHONE) for i in range(2)]
    path = write_export(tmp_path / "export.xml", [
        steps(t, value=100), steps("2024-05-01 08:01:00 +0000", value=100),  # equal values, other times: both count
        *(steps(f"2024-05-01 10:0{i}:00 +0000", value=10) for i in range(3)),
        rest, exercise, night, *phone,
        steps(t, value=100),                # a repeat
        steps(t, value=101),                # same times, another value: an overlap, not a repeat; counts
        steps(t, value=100, source=PHONE),  # same record from another source: not a repeat
        # repeats; were they counted, the phone's 8 step records would outnumber the watch's 7
        rest, exercise, night, *phone, *phone, steps(t, value=100, source=PHONE),
    ])
    result = read(path)
    assert {c: value(result, "2024-05-01", c) for c in MEASURES} == {
        "steps": 331, "active_min": 30, "sleep_min": 360, "resting_hr_bpm": 60}
    assert result.set_aside["other_source"] == 3  # the phone's three distinct records, each once
    assert reported_repeats(result) == repeats_in(path) and len(repeats_in(path)) == 9
    assert set(result.problems.get_column("rule")) == {"duplicate_record"}
    line, first = min(repeats_in(path))
    problem = result.problems.row(0, named=True)
    assert problem["line"] == line
    assert problem["message"] == f"an exact repeat of the record at line {first}; counted once"
    assert "duplicate_record steps: 6" in result.to_text()


def test_metadata_children_do_not_shift_line_numbers(tmp_path):
    t = "2024-05-01 08:00:00 +0000"
    path = write_export(tmp_path / "export.xml", [
        record(HEART_RATE, t, t, 80, "count/min", metadata={"a": "1", "b": "2"}),
        steps(t, value=-3),
    ])
    assert rejected(read(path)) == {(line_of(path, 'value="-3"'), "negative_value", "steps")}


# --- Apple Health: every rejected record, by line and rule ------------------------------------------------

def test_every_rejected_record_is_reported_with_its_line_and_rule(tmp_path):
    ok = "2024-05-01 08:00:00 +0000"
    bad = {
        steps(ok, value=-5): "negative_value",
        steps(ok, value="abc"): "bad_value",
        steps(ok, value=None): "bad_value",
        steps(ok, value="inf"): "bad_value",
        steps(ok, unit="furlong", value=11): "unknown_unit",
        steps(ok, unit=None, value=12): "unknown_unit",
        steps("2024-02-30 08:00:00 +0000", value=13): "bad_date",
        steps("2024-05-01 25:00:00 +0000", value=14): "bad_date",
        steps("2024-05-01T08:00:00 +0000", value=15): "bad_date",
        steps("2024-05-01 08:00:00", value=16): "bad_date",
        steps("1899-12-31 08:00:00 +0000", value=17): "date_out_of_range",
        steps("2031-01-01 08:00:00 +0000", value=18): "date_out_of_range",
        steps("2024-05-01 09:00:00 +0000", "2024-05-01 08:00:00 +0000", value=19): "end_before_start",
        record(RESTING_HR, ok, ok, 300, "count/min"): "maximum",
        record(SLEEP, ok, ok, "HKCategoryValueSleepAnalysisDreaming"): "unknown_value",
    }
    good = [steps(ok, value=1000), record(RESTING_HR, ok, ok, 60, "count/min")]
    path = write_export(tmp_path / "export.xml", [*good, *bad])
    result = read(path)
    column = {STEPS: "steps", RESTING_HR: "resting_hr_bpm", SLEEP: "sleep_min"}
    expected = set()
    for text, rule in bad.items():
        line = line_of(path, text.strip())
        expected.add((line, rule, column[next(t for t in column if f'"{t}"' in text)]))
    assert rejected(result) == expected and result.n_rejected == len(bad)
    assert value(result, "2024-05-01", "steps") == 1000 and value(result, "2024-05-01", "resting_hr_bpm") == 60
    text = result.to_text()
    assert "rejected: 15" in text and "unknown_unit steps: 2" in text and "furlong" in text


def test_day_total_out_of_range_is_rejected_at_the_days_first_line(tmp_path):
    path = write_export(tmp_path / "export.xml", [
        steps("2024-05-01 08:00:00 +0000", value=60000), steps("2024-05-01 09:00:00 +0000", value=50000),
        record(EXERCISE, "2024-05-01 08:00:00 +0000", "2024-05-01 08:00:00 +0000", 30, "min"),
    ])
    result = read(path)
    assert rejected(result) == {(line_of(path, 'value="60000"'), "maximum", "steps")}
    assert value(result, "2024-05-01", "steps") is None and value(result, "2024-05-01", "active_min") == 30


@pytest.mark.parametrize(("tail", "after", "problem"), [
    (' <Record type="x" startDate="a"\n', 1, "unclosed token"),                          # cut inside a tag
    (' <Record type="x" a="1" a="2"/>\n</HealthData>\n', 1, "duplicate attribute"),
    (' <Record type="x" startDate="a"/>\n <Oops>\n', 3, "no element found"),             # never closed
    ("</HealthData>\n<more/>\n", 2, "junk after document element"),
])
def test_malformed_xml_is_an_error_with_its_line_and_imports_nothing(tmp_path, tail, after, problem):
    path = tmp_path / "export.xml"
    path.write_text(export_text([steps("2024-05-01 08:00:00 +0000")]).replace("</HealthData>\n", "") + tail)
    with pytest.raises(ImportFileError, match=f"line {line_of(path, 'StepCount') + after}: malformed XML: {problem}"):
        read(path)


def test_not_an_export_or_entity_tricks_are_refused(tmp_path):
    (tmp_path / "other.xml").write_text('<?xml version="1.0"?>\n<html><body/></html>\n')
    with pytest.raises(ImportFileError, match="not an Apple Health export"):
        read(tmp_path / "other.xml")
    bomb = '<?xml version="1.0"?>\n<!DOCTYPE HealthData [\n<!ENTITY a "aaaaaaaaaa">\n]>\n<HealthData>&a;</HealthData>\n'
    (tmp_path / "bomb.xml").write_text(bomb)
    with pytest.raises(ImportFileError, match="entity") as e:
        read(tmp_path / "bomb.xml")
    assert e.value.line == 3


# --- mapping files ------------------------------------------------------------------------------------------

def test_apple_mapping_is_read_from_data_schemas():
    mapping = load_apple_mapping()
    assert {m.column for m in mapping.measures} == set(MEASURES)
    exercise = mapping.by_type[EXERCISE]
    assert exercise.factors == {"s": 1 / 60, "min": 1.0, "hr": 60.0}


def test_a_broken_apple_mapping_names_its_place(tmp_path):
    doc = json.loads((schema_dir() / "apple_health.json").read_text())
    doc["measures"][1]["unit"] = "fortnight"
    (tmp_path / "apple_health.json").write_text(json.dumps(doc))
    with pytest.raises(MappingError, match=r"measures\[1\]\.unit: 'fortnight' is not among its units"):
        load_apple_mapping(tmp_path / "apple_health.json")


MAPPING = {
    "date": {"column": "Day", "format": "%d/%m/%Y"},
    "patient_column": "Subject",
    "delimiter": ";",
    "columns": {"Steps": {"to": "steps"}, "Sleep (h)": {"to": "sleep_min", "factor": 60},
                "Pain": {"to": "pain_0_10"}},
}
BAD_MAPPINGS = [
    ({**MAPPING, "columns": {"Steps": {"to": "stepz"}}}, r"columns\.Steps\.to: 'stepz' is not one of"),
    ({**MAPPING, "columns": {"A": {"to": "steps", "factor": 0}}}, r"columns\.A\.factor: must be a positive number"),
    ({**MAPPING, "columns": {}}, "maps no column"),
    ({**MAPPING, "colour": "red"}, "unknown key"),
    ({"columns": MAPPING["columns"]}, "date: is missing"),
    ({**MAPPING, "delimiter": ";;"}, "single character"),
]


def test_csv_mapping_schema_and_loader_agree():
    schema = json.loads((schema_dir() / "daily_csv_mapping.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["properties"]["columns"]["additionalProperties"]["properties"]["to"]["enum"] == measure_columns()
    jsonschema.validate(MAPPING, schema)
    assert load_csv_mapping(MAPPING).delimiter == ";"
    for doc, message in BAD_MAPPINGS:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(doc, schema)
        with pytest.raises(MappingError, match=message):
            load_csv_mapping(doc)
    # what JSON Schema cannot say: one target per source column
    with pytest.raises(MappingError, match="more than one source column goes to steps"):
        load_csv_mapping({**MAPPING, "columns": {"A": {"to": "steps"}, "B": {"to": "steps"}}})


def test_mapping_file_that_is_not_json(tmp_path):
    (tmp_path / "m.json").write_text("{ not json")
    with pytest.raises(MappingError, match="not valid JSON"):
        load_csv_mapping(tmp_path / "m.json")


# --- daily CSV and our own format ---------------------------------------------------------------------------

def test_generic_csv_with_a_mapping(tmp_path):
    path = tmp_path / "daily.csv"
    path.write_text("Subject;Day;Steps;Sleep (h);Pain;Calories\n"
                    "EX001;01/05/2024;8000;7.5;3.5;2100\n"
                    "EX001;02/05/2024;;7.33;;2000\n"
                    "EX002;03/05/2024;9000;8;2;1900\n"
                    "EX001;31/02/2024;9000;8;2;1900\n"
                    "EX001;04/05/2024;lots;-1;11;1800\n")
    result = read_daily_csv(path, PATIENT, mapping=load_csv_mapping(MAPPING), today=TODAY)
    assert result.days.select("date", "steps", "sleep_min", "pain_0_10").rows() == [
        (day("2024-05-01"), 8000, 450, 3.5), (day("2024-05-02"), None, 440, None)]
    assert rejected(result) == {(4, "other_patient", "patient_id"), (5, "bad_date", "date"),
                                (6, "type", "steps"), (6, "minimum", "sleep_min"), (6, "maximum", "pain_0_10")}
    assert result.set_aside["no_value"] == 1  # line 6 had nothing valid left
    assert "columns not imported: Calories" in result.notes


def test_own_format_csv_duplicated_days_and_sentinels(tmp_path):
    path = tmp_path / "wearables.csv"
    path.write_text("date,steps,resting_hr_bpm,stiffness_min,note\n"
                    "2024-05-01,5000,60,30,x\n"
                    "2024-05-02,5100,NA,,x\n"
                    "2024-05-01,5200,61,,x\n"
                    "2024-05-03,12.5,999,20,x\n"
                    "1850-01-01,1,60,,x\n")
    result = read_daily_csv(path, PATIENT, today=TODAY)
    assert result.days.select("date", "steps", "resting_hr_bpm", "stiffness_min").rows() == [
        (day("2024-05-02"), 5100, None, None), (day("2024-05-03"), None, None, 20)]
    assert rejected(result) == {(2, "duplicate_day", "date"), (4, "duplicate_day", "date"),
                                (3, "sentinel", "resting_hr_bpm"), (5, "type", "steps"),
                                (5, "sentinel", "resting_hr_bpm"), (6, "date_out_of_range", "date")}
    assert "columns not imported: note" in result.notes


def test_own_format_parquet_reports_rows(tmp_path):
    frame = pl.DataFrame({"patient_id": ["EX001", "EX001"], "date": [day("2024-05-01"), day("2024-05-02")],
                          "steps": [4000, -2], "pain_0_10": [2.5, 3.0]})
    frame.write_parquet(tmp_path / "w.parquet")
    result = read_daily_parquet(tmp_path / "w.parquet", PATIENT, today=TODAY)
    assert result.location == "row" and rejected(result) == {(2, "minimum", "steps")}
    assert result.days.get_column("pain_0_10").to_list() == [2.5, 3.0]


def test_csv_that_cannot_be_parsed_names_its_line(tmp_path):
    path = tmp_path / "w.csv"
    path.write_text("date,steps\n2024-05-01,1\n2024-05-02,2,3,4\n")
    with pytest.raises(ImportFileError, match="line 3: cannot be parsed as CSV"):
        read_daily_csv(path, PATIENT, today=TODAY)
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ImportFileError, match="empty"):
        read_daily_csv(tmp_path / "empty.csv", PATIENT, today=TODAY)
    (tmp_path / "x.csv").write_text("when,steps\n2024-05-01,1\n")
    with pytest.raises(ImportFileError, match="has no column 'date'"):
        read_daily_csv(tmp_path / "x.csv", PATIENT, today=TODAY)


def test_format_detection(tmp_path):
    (tmp_path / "a").write_bytes(b"PAR1....")
    (tmp_path / "b").write_bytes(b"<?xml version='1.0'?>")
    (tmp_path / "c").write_bytes(b"date,steps\n")
    assert [detect_format(tmp_path / n) for n in "abc"] == ["parquet", "apple", "csv"]
    assert detect_format("x/export.ZIP") == "apple"


# --- the registry and the command line ----------------------------------------------------------------------

@pytest.fixture()
def registry(tmp_path, example_dir) -> Path:
    """The example registry as Parquet: patients EX001-EX004, EX001 and EX002 with wearables in January 2021."""
    out = tmp_path / "registry"
    write_registry(read_registry(example_dir, today=TODAY), out, today=TODAY)
    return out


def stored_day(registry: Path, date: str, patient: str = PATIENT) -> dict | None:
    rows = pl.read_parquet(registry / "wearables.parquet").filter(
        (pl.col("patient_id") == patient) & (pl.col("date") == day(date)))
    return rows.row(0, named=True) if rows.height else None


def invoke(*args: str) -> object:
    return CliRunner().invoke(main, ["monitor", "import", *map(str, args)])


def test_cli_imports_an_export_and_a_second_run_changes_nothing(registry, tmp_path):
    made = write_synthetic_export(tmp_path / "export.xml", size_mb=0.6, first_day=dt.date(2024, 5, 1))
    before = read_registry(registry, today=TODAY)["wearables"]
    (registry / "wearables.parquet").chmod(0o640)
    out = invoke("--registry", registry, "--patient", PATIENT, made.path)
    assert out.exit_code == 0, out.output
    assert f"{made.expected.height} days added" in out.output
    after = read_registry(registry, today=TODAY)["wearables"]  # still a valid registry
    assert after.height == before.height + made.expected.height
    assert_frame_equal(after.filter(pl.col("patient_id") != PATIENT), before.filter(pl.col("patient_id") != PATIENT))
    assert stored_day(registry, "2024-05-01")["steps"] == made.expected.row(0, named=True)["steps"]
    assert (registry / "wearables.parquet").stat().st_mode & 0o777 == 0o640  # not the temporary file's 0o600
    # no device name and no value is ever printed
    assert "Sam" not in out.output and str(made.expected.row(0, named=True)["steps"]) not in out.output
    data = (registry / "wearables.parquet").read_bytes()
    again = invoke("--registry", registry, "--patient", PATIENT, made.path)
    assert again.exit_code == 0 and "nothing to write" in again.output
    assert (registry / "wearables.parquet").read_bytes() == data


def test_cli_creates_the_table_when_absent(registry, tmp_path):
    (registry / "wearables.parquet").unlink()
    path = write_export(tmp_path / "export.xml", [steps("2024-05-01 08:00:00 +0000", value=1234)])
    out = invoke("--registry", registry, "--patient", "EX003", path)
    assert out.exit_code == 0, out.output
    assert stored_day(registry, "2024-05-01", "EX003")["steps"] == 1234


def test_cli_conflicts_are_kept_unless_replace_and_missing_values_are_filled(registry, tmp_path):
    stored = stored_day(registry, "2021-01-04")
    path = tmp_path / "wearables.csv"
    path.write_text("date,steps,active_min,pain_0_10\n"
                    f"2021-01-04,{stored['steps'] + 1},{stored['active_min']},{stored['pain_0_10']}\n"
                    "2024-06-01,100,,\n")
    kept = invoke("--registry", registry, "--patient", PATIENT, path)
    assert kept.exit_code == 0, kept.output
    assert "conflict steps: 1" in kept.output and "line 2" in kept.output and "kept as stored" in kept.output
    assert "1 days added" in kept.output
    assert stored_day(registry, "2021-01-04") == stored
    replaced = invoke("--registry", registry, "--patient", PATIENT, "--replace", path)
    assert replaced.exit_code == 0 and "replaced by the file's" in replaced.output
    assert stored_day(registry, "2021-01-04") == {**stored, "steps": stored["steps"] + 1}
    # a stored day lacking a value gets it from the file; the values it has stay
    registry_frame = pl.read_parquet(registry / "wearables.parquet")
    registry_frame.with_columns(pl.when(pl.col("date") == day("2021-01-05")).then(None)
                                .otherwise(pl.col("sleep_min")).alias("sleep_min")).write_parquet(
        registry / "wearables.parquet")
    fill = tmp_path / "fill.csv"
    fill.write_text("date,sleep_min\n2021-01-05,400\n")
    out = invoke("--registry", registry, "--patient", PATIENT, fill)
    assert out.exit_code == 0 and "1 stored days updated" in out.output
    assert stored_day(registry, "2021-01-05")["sleep_min"] == 400


def test_cli_failures_leave_the_table_byte_identical(registry, tmp_path, monkeypatch):
    table = registry / "wearables.parquet"
    data = table.read_bytes()
    broken = tmp_path / "export.xml"
    broken.write_text(export_text([steps("2024-05-01 08:00:00 +0000")]).replace("/>", ">", 1))
    out = invoke("--registry", registry, "--patient", PATIENT, broken)
    assert out.exit_code == 1 and "malformed XML" in out.output and "nothing was imported" in out.output
    assert table.read_bytes() == data
    # a write that fails half-way: the table is as it was and no temporary file is left
    good = write_export(tmp_path / "good.xml", [steps("2024-05-01 08:00:00 +0000")])

    def fail_half_way(self, path, **kw):
        Path(path).write_bytes(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(pl.DataFrame, "write_parquet", fail_half_way)
    out = invoke("--registry", registry, "--patient", PATIENT, good)
    assert out.exit_code == 1 and "could not be written" in out.output
    assert table.read_bytes() == data and sorted(p.name for p in registry.iterdir() if p.name.startswith(".")) == []


def test_cli_exit_codes_for_bad_arguments_and_rejected_files(registry, tmp_path):
    export = write_export(tmp_path / "export.xml", [steps("2024-05-01 08:00:00 +0000")])
    mapping = tmp_path / "m.json"
    mapping.write_text(json.dumps(MAPPING))
    assert invoke("--registry", registry, "--patient", "NOBODY", export).exit_code == 2
    assert invoke("--registry", tmp_path / "nowhere", "--patient", PATIENT, export).exit_code == 2
    assert invoke("--registry", registry, "--patient", PATIENT, "--mapping", mapping, export).exit_code == 2
    mapping.write_text("[]")
    csv = tmp_path / "d.csv"
    csv.write_text("Day;Steps\n")
    assert invoke("--registry", registry, "--patient", PATIENT, "--mapping", mapping, csv).exit_code == 2
    all_bad = write_export(tmp_path / "bad.xml", [steps("2024-05-01 08:00:00 +0000", value=-1)])
    out = invoke("--registry", registry, "--patient", PATIENT, all_bad)
    assert out.exit_code == 1 and "1 records were rejected and no day was left" in out.output
    some_bad = write_export(tmp_path / "some.xml", [steps("2024-05-01 08:00:00 +0000", value=-1),
                                                    steps("2024-05-02 08:00:00 +0000", value=5)])
    out = invoke("--registry", registry, "--patient", PATIENT, some_bad)
    assert out.exit_code == 0 and "negative_value steps: 1" in out.output and "warning: 1 records" in out.output


def test_library_errors_before_anything_is_read(registry, tmp_path):
    export = write_export(tmp_path / "export.xml", [])
    with pytest.raises(PatientNotFoundError):
        import_wearables(registry, "NOBODY", export, today=TODAY)
    pl.DataFrame({"patient_id": [PATIENT], "date": ["not a date"]}).write_parquet(registry / "wearables.parquet")
    with pytest.raises(StoredTableError, match="breaks the data contract"):
        import_wearables(registry, PATIENT, export, today=TODAY)


def test_cli_with_a_mapping_on_a_csv_registry(tmp_path, example_dir):
    registry = tmp_path / "registry"
    write_registry(read_registry(example_dir, today=TODAY), registry, format="csv", today=TODAY)
    mapping = tmp_path / "m.json"
    mapping.write_text(json.dumps(MAPPING))
    path = tmp_path / "daily.csv"
    path.write_text("Subject;Day;Steps;Sleep (h);Pain\nEX002;01/05/2024;8000;7.5;3.5\n")
    out = invoke("--registry", registry, "--patient", "EX002", "--mapping", mapping, path)
    assert out.exit_code == 0, out.output
    assert not (registry / "wearables.parquet").exists()
    stored = read_registry(registry, today=TODAY)["wearables"].filter(pl.col("date") == day("2024-05-01"))
    assert stored.select("patient_id", "steps", "sleep_min", "pain_0_10").rows() == [("EX002", 8000, 450, 3.5)]


# --- imports at once into one registry ----------------------------------------------------------------------

needs_flock = pytest.mark.skipif(merge_module.fcntl is None, reason="no fcntl: imports are not locked here")
_start = None


def _start_together_and_merge_slowly(barrier) -> None:
    """Worker set-up: every import waits for the others, and merging takes 0.3 s, so unlocked imports overlap."""
    global _start
    _start = barrier
    merge_days = merge_module.merge_days

    def slow_merge(*args, **kw):
        time.sleep(0.3)
        return merge_days(*args, **kw)

    merge_module.merge_days = slow_merge


def _import_at_once(registry: Path, patient: str, path: Path) -> int:
    _start.wait(timeout=120)
    return import_wearables(registry, patient, path, today=TODAY).added


@needs_flock
def test_imports_at_once_into_one_registry_keep_every_patients_days(registry, tmp_path, monkeypatch):
    # A spawned worker re-runs the parent's __main__ file: after the app's page tests that is app/main.py.
    monkeypatch.setitem(sys.modules, "__main__", types.ModuleType("__main__"))
    patients = ["EX001", "EX002", "EX003", "EX004"]
    exports = [write_export(tmp_path / f"{p}.xml", [steps(f"2024-06-0{d} 08:00:00 +0000", value=1000 * i + d)
                                                    for d in range(1, 6)]) for i, p in enumerate(patients)]
    before = pl.read_parquet(registry / "wearables.parquet")
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(len(patients), mp_context=spawn, initializer=_start_together_and_merge_slowly,
                             initargs=(spawn.Barrier(len(patients)),)) as pool:
        assert list(pool.map(_import_at_once, [registry] * len(patients), patients, exports)) == [5] * len(patients)
    after = pl.read_parquet(registry / "wearables.parquet")
    assert after.height == before.height + 5 * len(patients)
    for i, p in enumerate(patients):
        mine = after.filter((pl.col("patient_id") == p) & (pl.col("date") >= day("2024-06-01"))).sort("date")
        assert mine.get_column("steps").to_list() == [1000 * i + d for d in range(1, 6)], p
    assert_frame_equal(after.filter(pl.col("date") < day("2024-06-01")), before, check_row_order=False)


@needs_flock
def test_an_import_waiting_too_long_for_the_lock_stops_with_a_clear_error(registry, tmp_path):
    table = registry / "wearables.parquet"
    data = table.read_bytes()
    export = write_export(tmp_path / "export.xml", [steps("2024-05-01 08:00:00 +0000", value=1234)])
    with merge_module.table_lock(registry):  # another import, holding the table
        with pytest.raises(TableLockedError, match="another import has held the wearables table for more than 0.2 s"):
            import_wearables(registry, PATIENT, export, today=TODAY, lock_timeout=0.2)
    assert table.read_bytes() == data
    assert issubclass(TableLockedError, StoredTableError)  # the command line's exit 1, registry unchanged
    assert import_wearables(registry, PATIENT, export, today=TODAY).added == 1  # released
