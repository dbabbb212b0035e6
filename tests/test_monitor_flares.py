"""Flare events and the 28-day flare label, pinned on hand-made registries."""
from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from rxpredict.monitoring.flares import flare_events, flare_labels
from rxpredict.monitoring.windows import context_features
from rxpredict.registry import Registry
from tests.conftest import TODAY

START = dt.date(2021, 1, 1)
QUIET = dict(tjc=2, sjc=1, crp=3.0, ptga=20.0)


def day(n: int) -> dt.date:
    return START + dt.timedelta(days=n)


def visit(at: int, tjc: int, sjc: int, crp: float | None, ptga: float, esr: float | None = 20.0) -> dict:
    return {"patient_id": "A", "visit_date": day(at), "tjc28": tjc, "sjc28": sjc, "crp_mg_l": crp, "esr_mm_h": esr,
            "patient_global_0_100": ptga, "physician_global_0_100": 20.0}


def course(drug: str, start: int, stop: int | None = None) -> dict:
    return {"patient_id": "A", "drug": drug, "start_date": day(start), "stop_date": None if stop is None else day(stop),
            "stop_reason": None if stop is None else "other"}


def registry(visits: list[dict], courses: list[dict], wear_days: int = 0) -> Registry:
    tables = {
        "patients": pl.DataFrame({"patient_id": ["A"], "sex": "F", "birth_year": 1960, "diagnosis_date": dt.date(2015, 1, 1),
                                  "rf_positive": True, "acpa_positive": True, "smoking": "never"}),
        "visits": pl.DataFrame(visits),
        "treatments": pl.DataFrame(courses, schema_overrides={"stop_date": pl.Date, "stop_reason": pl.String}),
    }
    if wear_days:
        tables["wearables"] = pl.DataFrame({"patient_id": "A", "date": [day(i) for i in range(wear_days)],
                                            "steps": 5000})
    return Registry.from_tables(tables, today=TODAY)


def das28_rise_cases() -> list[tuple[dict, dict, bool]]:
    low = dict(tjc=1, sjc=0, crp=2.0, ptga=10.0)  # DAS28-CRP 2.06: below 3.2, so it needs a rise over 1.2
    high = dict(tjc=6, sjc=4, crp=15.0, ptga=50.0)  # 4.59: from 3.2 up, a rise over 0.6 is a flare
    return [
        (low, dict(tjc=4, sjc=1, crp=2.0, ptga=20.0), False),  # +0.98 from low
        (low, dict(tjc=6, sjc=2, crp=8.0, ptga=30.0), True),  # +1.88 from low
        (high, dict(tjc=9, sjc=5, crp=25.0, ptga=60.0), True),  # +0.69 from high
        (high, dict(tjc=7, sjc=4, crp=16.0, ptga=55.0), False),  # +0.2 from high
    ]


@pytest.mark.parametrize(("before", "after", "flare"), das28_rise_cases())
def test_das28_flare_thresholds_depend_on_the_previous_visit(before, after, flare):
    reg = registry([visit(0, **before), visit(90, **after)], [course("methotrexate", -400)])
    events = flare_events(reg)
    assert (events.height == 1) is flare
    if flare:
        assert events.row(0, named=True) == {"patient_id": "A", "date": day(90), "kind": "das28"}


def test_esr_version_is_used_where_crp_is_missing_at_either_visit():
    # CRP is missing at the second visit; ESR rose from 10 to 80 mm/h: DAS28-ESR up by 0.70 * ln 8 = 1.46.
    reg = registry([visit(0, 1, 0, 2.0, 10.0, esr=10.0), visit(90, 1, 0, None, 10.0, esr=80.0)],
                   [course("methotrexate", -400)])
    assert flare_events(reg)["date"].to_list() == [day(90)]


def test_glucocorticoid_without_a_dmard_start_is_an_escalation_but_bridging_is_not():
    courses = [course("adalimumab", 0), course("prednisolone", 10, 60),  # bridging: 10 days from a DMARD start
               course("prednisone", 200, 240),  # escalation
               course("prednisolone", 400, 430), course("tofacitinib", 414)]  # 14 days apart: still bridging
    reg = registry([visit(0, **QUIET)], courses)
    events = flare_events(reg)
    assert events.to_dicts() == [{"patient_id": "A", "date": day(200), "kind": "escalation"}]


def test_label_is_a_flare_within_the_next_28_days_and_null_without_follow_up():
    visits = [visit(0, **QUIET), visit(100, 8, 6, 30.0, 70.0), visit(200, **QUIET)]  # a flare at day 100
    reg = registry(visits, [course("methotrexate", -400)], wear_days=150)
    days = pl.DataFrame({"patient_id": "A", "date": [day(n) for n in (50, 71, 72, 99, 100, 150, 172, 173, 190)]})
    got = flare_labels(days, reg)  # follow-up ends at the last visit, day 200
    assert got["flare"].to_list() == [False, False, True, True, False, False, False, None, None]
    assert got["next_flare"].to_list()[:5] == [day(100)] * 4 + [None]


def test_flare_history_counts_the_past_year_and_the_days_since_the_latest_flare():
    courses = [course("methotrexate", -400), course("prednisone", 0, 30), course("prednisone", 300, 330)]
    reg = registry([visit(-10, **QUIET)], courses)  # escalations (flares) on days 0 and 300
    keys = pl.DataFrame({"patient_id": "A", "date": [day(-1), day(0), day(299), day(320), day(400)]})
    history = context_features(keys, reg).select("flares_past_year", "days_since_flare")
    assert history.to_dicts() == [
        {"flares_past_year": 0.0, "days_since_flare": None},  # nothing yet: no time since a flare
        {"flares_past_year": 1.0, "days_since_flare": 0.0},  # the flare day itself is known on the day
        {"flares_past_year": 1.0, "days_since_flare": 299.0},
        {"flares_past_year": 2.0, "days_since_flare": 20.0},
        {"flares_past_year": 1.0, "days_since_flare": 100.0},  # day 0 is over a year before day 400
    ]
