"""A patient's timeline: frames computed from the patient's tables, and interactive charts of them."""
from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from rxpredict.clinical import svdh_totals, visit_scores
from rxpredict.registry import read_registry
from rxpredict.simulate import simulate
from rxpredict.timeline import WEARABLE_MEASURES, patient_timeline, timeline_charts

ACTIVITY, SVDH, WEARABLES = "Disease activity and treatments", "Radiographic damage (SvdH)", "Wearables (weekly means)"


@pytest.fixture(scope="module")
def example():
    return read_registry("rxpredict/data/example_registry")


def one_patient(tables, patient_id: str) -> dict[str, pl.DataFrame]:
    return {n: t.filter(pl.col("patient_id") == patient_id) for n, t in tables.items() if "patient_id" in t.columns}


def test_timeline_of_an_example_patient(example):
    tables = one_patient(example.tables, "EX001")
    t = patient_timeline(tables)
    assert t.patient_id == "EX001" and not t.empty
    expected = tables["visits"].sort("visit_date").select("visit_date", *visit_scores()[:-1])
    assert_frame_equal(t.scores, expected)
    assert t.scores.columns == ["visit_date", "das28_esr", "das28_crp", "cdai", "sdai", "das28_esr_category",
                                "das28_crp_category", "cdai_category", "sdai_category"]
    assert_frame_equal(t.svdh, svdh_totals(tables["imaging"]))
    # both courses run on: they end at the last date recorded for EX001 (its second radiograph)
    assert t.courses.select("drug", "option_title", "start_date", "end_date", "ongoing").rows() == [
        ("methotrexate", "Methotrexate", dt.date(2015, 4, 1), dt.date(2022, 1, 17), True),
        ("adalimumab", "TNF inhibitor", dt.date(2021, 1, 18), dt.date(2022, 1, 17), True),
    ]
    first_week = tables["wearables"].filter(pl.col("date") < dt.date(2021, 1, 11))
    assert t.wearables.columns == ["week", "days", *WEARABLE_MEASURES]
    assert t.wearables.row(0, named=True) == {
        "week": dt.date(2021, 1, 4), "days": first_week.height,
        **{m: first_week.get_column(m).mean() for m in WEARABLE_MEASURES},
    }


def test_stopped_courses_and_concomitant_drugs(example):
    courses = patient_timeline(one_patient(example.tables, "EX003")).courses
    pred = courses.filter(pl.col("drug") == "prednisolone").row(0, named=True)
    assert pred["therapy_option"] is None and pred["option_title"] == "glucocorticoid"
    assert pred["ongoing"] is False and pred["end_date"] == dt.date(2020, 8, 3) and pred["stop_reason"] == "other"


def test_an_empty_or_absent_table_gives_an_empty_frame(example):
    t = patient_timeline({"visits": example["visits"].clear()})
    assert t.empty and t.patient_id is None and timeline_charts(t) == {}
    only_courses = patient_timeline({"treatments": one_patient(example.tables, "EX002")["treatments"]})
    assert only_courses.scores.is_empty() and list(timeline_charts(only_courses)) == [ACTIVITY]


def test_a_timeline_is_of_one_patient(example):
    with pytest.raises(ValueError, match="one patient; the tables hold 4"):
        patient_timeline(example.tables)


def test_charts_are_interactive(example):
    charts = timeline_charts(patient_timeline(one_patient(example.tables, "EX001")))
    assert list(charts) == [ACTIVITY, SVDH, WEARABLES]
    activity = charts[ACTIVITY].to_dict()  # validates against the Vega-Lite schema
    panels = activity["vconcat"]
    assert [p["layer"][0]["mark"]["type"] for p in panels] == ["line", "line", "bar"]
    zoom = activity["params"][0]
    assert zoom["bind"] == "scales" and zoom["select"]["encodings"] == ["x"]
    assert zoom["views"] == [p["layer"][0]["name"] for p in panels]  # one zoom drives every panel
    assert activity["resolve"]["scale"]["x"] == "shared"
    assert all("tooltip" in p["layer"][0]["encoding"] for p in panels)
    bars = panels[2]["layer"][0]["encoding"]
    assert bars["x"]["field"] == "start_date" and bars["x2"]["field"] == "end_date"
    for title in (SVDH, WEARABLES):
        spec = charts[title].to_dict()
        assert spec["params"][0]["bind"] == "scales"
        assert "tooltip" in (spec.get("spec") or spec)["encoding"]


def test_timeline_of_a_simulated_patient():
    frames = simulate(12, seed=3, progress=False)
    patient = frames["visits"].get_column("patient_id")[0]
    tables = one_patient({n: frames[n] for n in ("patients", "visits", "treatments", "imaging", "wearables")},
                         patient)
    t = patient_timeline(tables)
    assert t.scores.height == tables["visits"].height and t.scores.get_column("visit_date").is_sorted()
    assert t.courses.height == tables["treatments"].height
    assert (t.courses.get_column("end_date") >= t.courses.get_column("start_date")).all()
    assert t.courses.get_column("ongoing").sum() == tables["treatments"].get_column("stop_date").null_count()
    assert t.wearables.get_column("days").sum() == tables["wearables"].height
    for chart in timeline_charts(t).values():
        chart.to_dict()
