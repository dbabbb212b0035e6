"""Synthetic Apple Health exports, for the tests and the import benchmark.

:func:`record` writes one ``<Record>`` line as the Health app does and
:func:`export_text` / :func:`write_export` wrap records into a document, so a
test can state exactly the records (and broken ones) it needs.
:func:`write_synthetic_export` streams a realistic export of any size to
disk (per-minute steps from a watch, coarser steps from a phone, exercise
minutes, resting heart rate, sleep stages, heart-rate samples that are not
imported) and returns the days a correct importer must produce; with
``repeat_every`` it also writes some records twice, as a phone restore does.

>>> import datetime as dt
>>> line = record("HKQuantityTypeIdentifierStepCount", "2024-03-10 07:15:00 -0800",
...               "2024-03-10 07:16:00 -0800", 42, "count")
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl

STEPS = "HKQuantityTypeIdentifierStepCount"
EXERCISE = "HKQuantityTypeIdentifierAppleExerciseTime"
RESTING_HR = "HKQuantityTypeIdentifierRestingHeartRate"
SLEEP = "HKCategoryTypeIdentifierSleepAnalysis"
HEART_RATE = "HKQuantityTypeIdentifierHeartRate"
ASLEEP_CORE, ASLEEP_DEEP, ASLEEP_REM = (f"HKCategoryValueSleepAnalysisAsleep{s}" for s in ("Core", "Deep", "REM"))
AWAKE, IN_BED = "HKCategoryValueSleepAnalysisAwake", "HKCategoryValueSleepAnalysisInBed"
WATCH, PHONE = "Sam’s Apple Watch", "Sam’s iPhone"
_DEVICE = {
    WATCH: "&lt;&lt;HKDevice: 0x283f8e3f0&gt;, name:Apple Watch, manufacturer:Apple Inc., model:Watch, "
           "hardware:Watch6,2, software:10.3&gt;",
    PHONE: "&lt;&lt;HKDevice: 0x283f8e990&gt;, name:iPhone, manufacturer:Apple Inc., model:iPhone, "
           "hardware:iPhone14,5, software:17.3&gt;",
}

HEADER = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE HealthData [
<!-- HealthKit Export Version: 14 -->
<!ELEMENT HealthData (ExportDate,Me,(Record|Correlation|Workout|ActivitySummary)*)>
<!ATTLIST HealthData
  locale CDATA #REQUIRED
>
<!ELEMENT ExportDate EMPTY>
<!ATTLIST ExportDate
  value CDATA #REQUIRED
>
<!ELEMENT Me EMPTY>
<!ATTLIST Me
  HKCharacteristicTypeIdentifierDateOfBirth         CDATA #REQUIRED
  HKCharacteristicTypeIdentifierBiologicalSex       CDATA #REQUIRED
>
<!ELEMENT Record ((MetadataEntry|HeartRateVariabilityMetadataList)*)>
<!ATTLIST Record
  type          CDATA #REQUIRED
  unit          CDATA #IMPLIED
  value         CDATA #IMPLIED
  sourceName    CDATA #REQUIRED
  sourceVersion CDATA #IMPLIED
  device        CDATA #IMPLIED
  creationDate  CDATA #IMPLIED
  startDate     CDATA #REQUIRED
  endDate       CDATA #REQUIRED
>
<!ELEMENT MetadataEntry EMPTY>
<!ATTLIST MetadataEntry
  key   CDATA #REQUIRED
  value CDATA #REQUIRED
>
]>
<HealthData locale="en_US">
 <ExportDate value="2025-01-01 09:00:00 +0000"/>
 <Me HKCharacteristicTypeIdentifierDateOfBirth="" HKCharacteristicTypeIdentifierBiologicalSex="HKBiologicalSexNotSet"/>
"""
FOOTER = "</HealthData>\n"


def timestamp(moment: dt.datetime) -> str:
    """An aware datetime as the export writes it: ``2024-03-10 07:15:00 -0800``."""
    return moment.strftime("%Y-%m-%d %H:%M:%S %z")


def record(type_: str, start: str | dt.datetime, end: str | dt.datetime, value: object = None,
           unit: str | None = None, source: str = WATCH, metadata: dict[str, str] | None = None) -> str:
    """One ``<Record>`` line; strings are written as given, so a test can write broken dates or values."""
    start, end = (timestamp(t) if isinstance(t, dt.datetime) else t for t in (start, end))
    attrs = [f"type={quoteattr(type_)}", f"sourceName={quoteattr(source)}", 'sourceVersion="10.3"']
    attrs += [f'device="{_DEVICE[source]}"'] if source in _DEVICE else []
    attrs += [f"unit={quoteattr(unit)}"] if unit is not None else []
    attrs += [f"creationDate={quoteattr(end)}", f"startDate={quoteattr(start)}", f"endDate={quoteattr(end)}"]
    attrs += [f"value={quoteattr(str(value))}"] if value is not None else []
    if not metadata:
        return f" <Record {' '.join(attrs)}/>\n"
    entries = "".join(f"  <MetadataEntry key={quoteattr(k)} value={quoteattr(v)}/>\n" for k, v in metadata.items())
    return f" <Record {' '.join(attrs)}>\n{entries} </Record>\n"


def export_text(records: Iterable[str]) -> str:
    """A whole export.xml holding ``records``."""
    return HEADER + "".join(records) + FOOTER


def write_export(path: str | Path, records: Iterable[str]) -> Path:
    """Stream an export.xml holding ``records`` to ``path`` (records are never all in memory)."""
    path = Path(path)
    with open(path, "w", encoding="utf-8") as f:
        f.write(HEADER)
        f.writelines(records)
        f.write(FOOTER)
    return path


@dataclass
class SyntheticExport:
    """A written export and what a correct import of it yields."""

    path: Path
    bytes: int
    records: int
    #: date, steps, active_min, sleep_min, resting_hr_bpm: the watch's totals (it records more than the phone).
    expected: pl.DataFrame
    #: Records written a second time (each counts once in ``expected``).
    repeated: int = 0


def counted(text: str) -> bool:
    """Whether an import counts a record written by :func:`record`: a measure's type, and only asleep for sleep."""
    type_ = text.split('"', 2)[1]  # record() writes the type first
    return type_ in (STEPS, EXERCISE, RESTING_HR) or (type_ == SLEEP and AWAKE not in text and IN_BED not in text)


class _DayWriter:
    """Records of one local day for a watch and a phone; keeps the watch's totals, which must win.

    Times are counted in elapsed minutes from local midnight and written with
    the UTC offset in force at that instant, so a daylight-saving day has 23
    or 25 hours and every duration in the file is real time.
    """

    def __init__(self, tz: ZoneInfo, rng: np.random.Generator) -> None:
        self.tz, self.rng = tz, rng

    def hours(self, day: dt.date) -> list[tuple[dt.datetime, str]]:
        """Local wall time and UTC offset at each elapsed hour from midnight (offsets change on the hour)."""
        midnight = dt.datetime(day.year, day.month, day.day, tzinfo=self.tz).astimezone(dt.timezone.utc)
        local = [(midnight + dt.timedelta(hours=h)).astimezone(self.tz) for h in range(24)]
        return [(t.replace(tzinfo=None), t.strftime("%z")) for t in local]

    @staticmethod
    def at(hours: list[tuple[dt.datetime, str]], minute: int) -> str:
        wall, offset = hours[minute // 60]
        return f"{(wall + dt.timedelta(minutes=minute % 60)).isoformat(' ')} {offset}"

    def records(self, day: dt.date) -> tuple[list[str], dict[str, int]]:
        rng, hours = self.rng, self.hours(day)

        def at(minute: int) -> str:
            return self.at(hours, minute)

        out: list[str] = []
        # Steps: the watch every minute from 7 to 22 hours after midnight, the phone in 5-minute blocks when carried.
        per_minute = rng.poisson(rng.uniform(5, 20), 900)
        out += [record(STEPS, at(420 + i), at(421 + i), int(n), "count") for i, n in enumerate(per_minute)]
        for block in range(0, 900, 5):
            if rng.random() < 0.5:
                n = int(per_minute[block:block + 5].sum() * rng.uniform(0.6, 1.0))
                out.append(record(STEPS, at(420 + block), at(425 + block), n, "count", PHONE))
        # Heart rate every 5 minutes (not imported), exercise minutes and one resting heart rate from the watch.
        out += [record(HEART_RATE, at(m), at(m), int(rng.integers(55, 120)), "count/min",
                       metadata={"HKMetadataKeyHeartRateMotionContext": "0"}) for m in range(0, 1380, 5)]
        active = int(rng.integers(10, 60))
        out += [record(EXERCISE, at(1080 + m), at(1081 + m), 1, "min") for m in range(active)]
        resting = int(rng.integers(52, 75))
        out.append(record(RESTING_HR, at(0), at(1380), resting, "count/min"))
        # Sleep ending this morning: stages from the watch (awake spells are not counted), in bed from the phone.
        asleep, minute = 0, int(rng.integers(0, 60))  # the night starts within the day's first hour
        start = at(minute)
        for _ in range(int(rng.integers(6, 12))):
            length = int(rng.integers(20, 70))
            stage = rng.choice([ASLEEP_CORE, ASLEEP_DEEP, ASLEEP_REM, AWAKE], p=[0.5, 0.2, 0.2, 0.1])
            out.append(record(SLEEP, at(minute), at(minute + length), stage))
            asleep += length if stage != AWAKE else 0
            minute += length
        out.append(record(SLEEP, start, at(minute), IN_BED, source=PHONE))
        return out, {"steps": int(per_minute.sum()), "active_min": active, "sleep_min": asleep,
                     "resting_hr_bpm": resting}


def synthetic_days(first_day: dt.date, tz: str, seed: int) -> Iterator[tuple[dt.date, list[str], dict[str, int]]]:
    """Endless days of records from ``first_day`` on, with the totals a correct import gives each day."""
    writer = _DayWriter(ZoneInfo(tz), np.random.default_rng(seed))
    day = first_day
    while True:
        out, truth = writer.records(day)
        yield day, out, truth
        day += dt.timedelta(days=1)


def write_synthetic_export(path: str | Path, *, size_mb: float = 1.0, first_day: dt.date = dt.date(2019, 1, 1),
                           tz: str = "America/Los_Angeles", seed: int = 0, repeat_every: int = 0) -> SyntheticExport:
    """Stream whole days of a realistic export to ``path`` until it holds about ``size_mb`` MB.

    A night's sleep is written within the day it ends (it starts shortly
    after midnight), so every expected day is complete. With ``repeat_every``
    n > 0, every n-th record an import counts is written again, verbatim,
    after the next day's records (a phone restore's repeats, away from the
    first); the truth counts it once. Memory stays at two days of records
    whatever the size.
    """
    path = Path(path)
    target = int(size_mb * 1e6)
    written, records, truth, pending, repeated = len(HEADER.encode()), 0, [], [], 0
    with open(path, "w", encoding="utf-8") as f:
        f.write(HEADER)
        for day, out, totals in synthetic_days(first_day, tz, seed):
            text = "".join(out + pending)
            f.write(text)
            written += len(text.encode())
            records += len(out)
            truth.append({"date": day, **totals})
            pending = [r for r in out if counted(r)][::repeat_every] if repeat_every else []
            repeated += len(pending)
            if written >= target:
                break
        f.writelines(pending)
        f.write(FOOTER)
    expected = pl.DataFrame(truth, schema={"date": pl.Date, "steps": pl.Int64, "active_min": pl.Int64,
                                           "sleep_min": pl.Int64, "resting_hr_bpm": pl.Int64})
    return SyntheticExport(path=path, bytes=path.stat().st_size, records=records + repeated,
                           expected=expected, repeated=repeated)
