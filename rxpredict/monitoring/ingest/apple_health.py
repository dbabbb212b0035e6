"""Read an Apple Health export (``export.xml``, or the ``export.zip`` holding it) into one row per day.

The file is parsed as a stream by expat, whose callback sees each start tag
with its line number; only per-day totals are kept (one entry per measure,
day and device, plus the night's sleep records until they are joined into
sessions, and a 28-byte fingerprint of each counted record), so memory
grows little with the file. A file that is not well-formed XML raises
:class:`ImportFileError` with its line: nothing of it is imported. Every
record that breaks a rule is logged with its line.

How a day is made (the rules are data in data_schemas/apple_health.json):
- the local day is the date written in the record's own timestamp, whose
  UTC offset is the one in force where and when it was recorded, so time
  zones and daylight-saving changes need no conversion;
- steps, exercise minutes and resting heart rate count on the day a record
  starts (a step record spanning midnight counts on the day it began);
- asleep records of one device that follow one another (gaps up to
  ``session_gap_min``) form a sleep session, which counts on the day it ends;
- where several devices (``sourceName``) recorded a measure on a day, the one
  with the most records that day is kept (ties: the name first in code-point
  order) and the others are set aside, so nothing is counted twice; records of
  the kept device are summed (or averaged, for resting heart rate);
- a record that repeats an earlier one exactly (same type, source, unit,
  dates and value, as after a phone restore) is counted once and the repeat
  is logged (``duplicate_record``) with the line of the first.
"""
from __future__ import annotations

import datetime as dt
import math
import os
import zipfile
import zlib
from array import array
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO
from xml.parsers import expat

import numpy as np
import polars as pl
from tqdm import tqdm

from rxpredict.monitoring.ingest.days import EARLIEST_DAY, LINE, checked_days, latest_day
from rxpredict.monitoring.ingest.errors import ImportFileError
from rxpredict.monitoring.ingest.mapping import AppleMapping, AppleMeasure, load_apple_mapping, measure_columns
from rxpredict.monitoring.ingest.report import OTHER_LINE, ProblemLog, WearableImport
from rxpredict.schemas import load_contract

CHUNK_BYTES = 1 << 20
EXPORT_NAME = "export.xml"
TIMESTAMP_FORM = "YYYY-MM-DD hh:mm:ss +hhmm"


def parse_timestamp(text: str | None) -> dt.datetime | None:
    """An export timestamp (``2024-03-10 07:15:00 -0800``) as an aware datetime; None unless exactly that form."""
    if text is None or len(text) != 25 or text[10] != " " or text[19] != " " or text[20] not in "+-":
        return None
    try:
        return dt.datetime.fromisoformat(text[:19] + text[20:])
    except ValueError:
        return None


@contextmanager
def open_export(path: Path) -> Iterator[tuple[IO[bytes], int]]:
    """The export.xml bytes and their size, from the file itself or from the export.zip holding it."""
    try:
        if not zipfile.is_zipfile(path):
            with open(path, "rb") as f:
                yield f, os.fstat(f.fileno()).st_size
            return
        with zipfile.ZipFile(path) as z:
            found = [i for i in z.infolist() if i.filename.rsplit("/", 1)[-1] == EXPORT_NAME]
            if len(found) != 1:
                raise ImportFileError(path, f"the zip file holds {len(found)} files named {EXPORT_NAME}, not one")
            with z.open(found[0]) as f:
                yield f, found[0].file_size
    except (OSError, zipfile.BadZipFile) as e:
        raise ImportFileError(path, f"cannot be read: {type(e).__name__}") from None


class _Counted:
    """A fingerprint of every record of one type counted so far, to find exact repeats once the file is read.

    A repeat may come anywhere later in the file (an export is not in time
    order), so every counted record is remembered, in flat arrays: 28 bytes
    a record, not a Python object. The fingerprint is a 64-bit hash of the
    record's attributes (two different records of a 1 GB export share one
    with a chance of about 1 in 10 million; the second would be reported as
    a repeat, not dropped silently); ``target`` and ``value`` say what to
    take back for a repeat (see :meth:`_DayTotals.drop_repeats`).
    """

    def __init__(self) -> None:
        self.fingerprints, self.lines, self.targets, self.values = array("q"), array("q"), array("I"), array("d")

    def add(self, attributes: tuple[str | None, ...], line: int, target: int, value: float = 0.0) -> None:
        self.fingerprints.append(hash(attributes))
        self.lines.append(line)
        self.targets.append(target)
        self.values.append(value)

    def repeats(self) -> Iterator[tuple[int, int, int, float]]:
        """(line, line of the first occurrence, target, value) of each record that repeats an earlier one.

        Sorting the fingerprints (stably, so equal ones stay in file order)
        puts each repeat right after the record it repeats, or after another
        repeat of it; the first of such a run is the first occurrence.
        """
        fingerprints = np.frombuffer(self.fingerprints, dtype=np.int64)
        order = np.argsort(fingerprints, kind="stable")
        ordered = fingerprints[order]
        again = np.flatnonzero(ordered[1:] == ordered[:-1]) + 1
        for repeat, first in zip(order[again], order[np.searchsorted(ordered, ordered[again])]):
            yield self.lines[repeat], self.lines[first], self.targets[repeat], self.values[repeat]


class _DayTotals:
    """The expat callbacks and what they keep: per (column, day, source) [total, records, first line, index]."""

    def __init__(self, mapping: AppleMapping, today: dt.date, log: ProblemLog, path: Path) -> None:
        self.mapping, self.log, self.path = mapping, log, path
        self.measures = mapping.by_type
        self.latest = latest_day(today)
        self.totals: dict[tuple[str, str, str], list] = {}
        #: (source, start, end as POSIX seconds, local end day, line) of counted sleep records, per column.
        self.asleep: dict[str, list[tuple[str, float, float, str, int] | None]] = {}  # None: a repeat, dropped
        self.day_ok: dict[str, bool] = {}
        self.counted: defaultdict[str, _Counted] = defaultdict(_Counted)  # per record type
        self.records = 0
        self.set_aside: Counter[str] = Counter()
        contract = load_contract().tables["wearables"]
        self.ranges = {m.column: (contract.field(m.column).minimum, contract.field(m.column).maximum)
                       for m in mapping.measures}
        self.parser = expat.ParserCreate()
        self.parser.StartElementHandler = self.root
        self.parser.EntityDeclHandler = self.entity

    def entity(self, *_: object) -> None:
        raise ImportFileError(self.path, "declares an XML entity, which an Apple Health export never does",
                              self.parser.CurrentLineNumber)

    def root(self, name: str, attrs: dict[str, str]) -> None:
        """The first element must be the export's root; then every element goes to :meth:`element`."""
        if name != self.mapping.root_element:
            raise ImportFileError(self.path, f"not an Apple Health export (the root element is not "
                                             f"{self.mapping.root_element})", self.parser.CurrentLineNumber)
        self.parser.StartElementHandler = self.element

    def element(self, name: str, attrs: dict[str, str]) -> None:
        if name != self.mapping.record_element:
            return
        self.records += 1
        m = self.measures.get(attrs.get("type"))
        if m is None:
            self.set_aside["other_type"] += 1
            return
        line = self.parser.CurrentLineNumber
        start_text, end_text = attrs.get("startDate"), attrs.get("endDate")
        start, end = parse_timestamp(start_text), parse_timestamp(end_text)
        if start is None or end is None:
            self.log.add(line, "bad_date", f"startDate or endDate is not a real time of the form {TIMESTAMP_FORM}",
                         m.column)
            return
        if end < start:
            self.log.add(line, "end_before_start", "endDate is before startDate", m.column)
            return
        day = (start_text if m.day == "start" else end_text)[:10]
        ok = self.day_ok.get(day)
        if ok is None:
            ok = self.day_ok[day] = EARLIEST_DAY <= dt.date.fromisoformat(day) <= self.latest
        if not ok:
            self.log.add(line, "date_out_of_range", "before 1900 or in the future", m.column)
            return
        source = attrs.get(self.mapping.source_attribute, "")
        attributes = (source, attrs.get("unit"), start_text, end_text, attrs.get("value"))
        if m.quantity == "duration":
            self.sleep_record(m, attributes, source, start, end, day, line)
            return
        value = self.value(m, attrs, line)
        if value is None:
            return
        total = self.total((m.column, day, source), line)
        total[0] += value
        total[1] += 1
        self.counted[m.type].add(attributes, line, total[3], value)

    def total(self, key: tuple[str, str, str], line: int) -> list:
        """The running [total, records, first line, index] of a (column, day, source); index: its place in totals."""
        total = self.totals.get(key)
        if total is None:
            total = self.totals[key] = [0.0, 0, line, len(self.totals)]
        return total

    def value(self, m: AppleMeasure, attrs: dict[str, str], line: int) -> float | None:
        """The record's value in the column's unit, or None after logging why it cannot be used."""
        unit = attrs.get("unit")
        factor = m.factors.get(unit)
        if factor is None:
            self.log.add(line, "unknown_unit", f"unit {unit!r} is not one of {', '.join(m.factors)}", m.column)
            return None
        try:
            value = float(attrs["value"])
        except (KeyError, ValueError):
            value = math.nan
        if not math.isfinite(value):
            self.log.add(line, "bad_value", "value is missing or not a finite number", m.column)
            return None
        if value < 0:
            self.log.add(line, "negative_value", "value is negative", m.column)
            return None
        value *= factor
        low, high = self.ranges[m.column]
        if m.aggregate == "mean" and low is not None and value < low:
            self.log.add(line, "minimum", f"below the minimum {low:g}", m.column)
            return None
        if m.aggregate == "mean" and high is not None and value > high:
            self.log.add(line, "maximum", f"above the maximum {high:g}", m.column)
            return None
        return value

    def sleep_record(self, m: AppleMeasure, attributes: tuple[str | None, ...], source: str, start: dt.datetime,
                     end: dt.datetime, day: str, line: int) -> None:
        value = attributes[-1]
        if value in m.counted_values:
            held = self.asleep.setdefault(m.column, [])
            self.counted[m.type].add(attributes, line, len(held))
            held.append((source, start.timestamp(), end.timestamp(), day, line))
        elif value in m.ignored_values:
            self.set_aside["not_asleep"] += 1
        else:
            self.log.add(line, "unknown_value", "not a sleep category of data_schemas/apple_health.json", m.column)

    def drop_repeats(self) -> None:
        """Log each exact repeat of a counted record, naming the first's line, and take it back out of the counts.

        A repeat's target is the index of its day total in ``totals``, or for
        sleep its place among the held records, which it leaves as None.
        """
        totals = list(self.totals.values())
        for type_, counted in self.counted.items():
            m = self.measures[type_]
            for line, first_line, target, value in counted.repeats():
                self.log.add(line, "duplicate_record", f"an exact repeat of the record at line {OTHER_LINE}; "
                             "counted once", m.column, other_line=first_line)
                if m.quantity == "duration":
                    self.asleep[m.column][target] = None
                else:
                    totals[target][0] -= value
                    totals[target][1] -= 1
        self.counted.clear()

    def add_sessions(self, m: AppleMeasure) -> None:
        """Join each device's asleep records into sessions and add each to the day it ends."""
        session: list | None = None  # [source, end, day, seconds, records, first line]

        def close() -> None:
            if session is not None:
                total = self.total((m.column, session[2], session[0]), session[5])
                total[0] += session[3] * m.factors["s"]
                total[1] += session[4]
                total[2] = min(total[2], session[5])

        for source, start, end, day, line in sorted(r for r in self.asleep.pop(m.column, []) if r is not None):
            if session is not None and source == session[0] and start <= session[1] + m.session_gap_s:
                session[3] += end - start
                session[4] += 1
                session[5] = min(session[5], line)
                if end > session[1]:
                    session[1], session[2] = end, day
            else:
                close()
                session = [source, end, day, end - start, 1, line]
        close()

    def day_rows(self, patient_id: str) -> tuple[pl.DataFrame, list[str]]:
        """One row per day from the kept device of each measure; notes on days with several devices."""
        self.drop_repeats()
        for m in self.mapping.measures:
            if m.day == "session_end":
                self.add_sessions(m)
        by_day: dict[tuple[str, str], list[tuple[int, str, float, int]]] = {}
        for (column, day, source), (total, n, line, _) in self.totals.items():
            by_day.setdefault((column, day), []).append((-n, source, total, line))
        rows: dict[str, dict[str, float | int]] = {}
        mean = {m.column for m in self.mapping.measures if m.aggregate == "mean"}
        several = 0
        for (column, day), found in by_day.items():
            found.sort()
            minus_n, _, total, line = found[0]
            several += len(found) > 1
            self.set_aside["other_source"] += sum(-f[0] for f in found[1:])
            rows.setdefault(day, {})[column] = total / -minus_n if column in mean else total
            rows[day][f"{LINE}_{column}"] = line
        sources = len({source for _, _, source in self.totals})
        notes = [f"records came from {sources} devices or apps (sourceName)"] if sources > 1 else []
        if several:
            notes.append(f"on {several:,} measure-days more than one device recorded the measure; "
                         "the one with the most records that day was kept")
        return self.frame(rows, patient_id), notes

    def frame(self, rows: dict[str, dict[str, float | int]], patient_id: str) -> pl.DataFrame:
        """Day rows as the frame :func:`checked_days` takes, whole-number columns rounded half up."""
        contract = load_contract().tables["wearables"]
        measures = measure_columns()
        days = list(rows)
        data: dict[str, list] = {c: [rows[d].get(c) for d in days] for c in measures}
        lines = {f"{LINE}_{c}": [rows[d].get(f"{LINE}_{c}") for d in days] for c in measures}
        return (
            pl.DataFrame({"date": days, **data, **lines},
                         schema={"date": pl.String, **{c: pl.Float64 for c in data}, **{c: pl.Int64 for c in lines}})
            .with_columns(
                pl.lit(patient_id, dtype=pl.String).alias("patient_id"),
                pl.col("date").str.to_date(),
                *((pl.col(c) + 0.5).floor() for c in measures if contract.field(c).type == "integer"),
                pl.min_horizontal(*lines).alias(LINE),
            )
        )


def _parse(stream: IO[bytes], size: int, totals: _DayTotals, progress: bool) -> None:
    parser = totals.parser
    with tqdm(total=size, unit="B", unit_scale=True, desc="reading export", disable=None if progress else True) as bar:
        try:
            while chunk := stream.read(CHUNK_BYTES):
                parser.Parse(chunk, False)
                bar.update(len(chunk))
            parser.Parse(b"", True)
        except expat.ExpatError as e:
            raise ImportFileError(totals.path, f"malformed XML: {expat.ErrorString(e.code)} (column {e.offset + 1})",
                                  e.lineno) from None
        except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:  # a damaged zip shows when read
            raise ImportFileError(totals.path, f"cannot be read: {type(e).__name__}") from None


def read_apple_health(path: str | Path, patient_id: str, *, mapping: AppleMapping | None = None,
                      today: dt.date | None = None, progress: bool = False) -> WearableImport:
    """Read one patient's Apple Health export into days of the wearables table.

    Parameters
    ----------
    path : str or Path
        ``export.xml``, or the ``export.zip`` the Health app writes.
    patient_id : str
        The registry patient the export belongs to.
    mapping : AppleMapping, optional
        Defaults to data_schemas/apple_health.json.
    today : date, optional
        Days after tomorrow are rejected as in the future.
    progress : bool
        Show a progress bar of bytes read on stderr (where stderr is a terminal).

    Raises ImportFileError (with the line) when the file is not a well-formed
    export; then nothing of it is returned.
    """
    path = Path(path)
    log = ProblemLog()
    today = today or dt.date.today()
    totals = _DayTotals(mapping or load_apple_mapping(), today, log, path)
    with open_export(path) as (stream, size):
        _parse(stream, size, totals, progress)
    frame, notes = totals.day_rows(patient_id)
    days, lines, empty = checked_days(frame, patient_id, log, today=today)
    return WearableImport(
        path=str(path), format="apple", patient_id=patient_id, days=days, lines=lines, problems=log.frame(),
        records_read=totals.records, set_aside=dict(totals.set_aside, no_value=empty), notes=notes,
    )
