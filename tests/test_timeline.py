"""A patient's timeline: frames computed from the patient's tables, and interactive charts of them."""
from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from polars.testing import assert_frame_equal, assert_series_equal

from rxpredict.clinical import svdh_totals, visit_scores
from rxpredict.monitoring.baselines import personal_baselines, streams
from rxpredict.registry import read_registry
from rxpredict.schemas import load_contract
from rxpredict.simulate import Scenario, simulate
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
    assert charts[WEARABLES].to_dict()["facet"]["row"]["header"]["labelOrient"] == "top"


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


# --- wearable streams against the personal baseline, with alerts ------------------------------------------------

BASELINE = "Wearables against the personal baseline"


@pytest.fixture(scope="module")
def wearer():
    """One simulated patient's tables, with 180 days of wearable data."""
    frames = simulate(6, seed=3, scenario=Scenario.default().replace(wearables_fraction=1.0), progress=False)
    patient = frames["wearables"].get_column("patient_id")[0]
    return one_patient({n: frames[n] for n in ("patients", "visits", "treatments", "imaging", "wearables")}, patient)


def test_each_stream_per_day_beside_the_personal_baseline(wearer):
    t = patient_timeline(wearer)
    days = (wearer["wearables"]["date"].max() - wearer["wearables"]["date"].min()).days + 1
    assert t.baselines.columns == ["date", "stream", "value", "baseline", "low", "high"]
    assert t.baselines.height == days * len(streams())
    grid = personal_baselines(wearer["wearables"]).collect()
    steps = t.baselines.filter(pl.col("stream") == "steps")
    assert steps["date"].to_list() == grid["date"].to_list()
    assert_series_equal(steps["value"], grid["steps"].cast(pl.Float64), check_names=False)  # null when not worn
    assert steps.filter(pl.col("value").is_null()).height == grid.filter(~pl.col("worn")).height > 0
    assert_series_equal(steps["baseline"], grid["steps_baseline"], check_names=False)
    banded = steps.with_columns(grid["steps_scale"].alias("scale")).drop_nulls("baseline")
    assert banded.height > 100
    assert_series_equal(banded["low"], (banded["baseline"] - banded["scale"]).clip(0), check_names=False)
    assert_series_equal(banded["high"], banded["baseline"] + banded["scale"], check_names=False)
    assert steps.filter(pl.col("baseline").is_null()).select("low", "high").drop_nulls().is_empty()


def test_the_band_stays_within_each_streams_range_in_the_data_contract():
    """Morning stiffness mostly 0 (usual 0, give or take 15 minutes) and pain mostly 10: the band stops at 0 and
    at 10."""
    wearables = load_contract().tables["wearables"]
    days = pl.date_range(dt.date(2025, 1, 1), dt.date(2025, 3, 31), eager=True)
    cycle = lambda values: [values[i % len(values)] for i in range(len(days))]  # noqa: E731
    wear = pl.DataFrame({"patient_id": "W1", "date": days, "steps": cycle([5000, 6500, 8000]), "active_min": 30,
                         "sleep_min": 420, "resting_hr_bpm": 60, "pain_0_10": cycle([9, 10, 10, 10, 4]),
                         "stiffness_min": cycle([0, 0, 0, 20, 40])}).cast(dict(wearables.polars_schema))
    bands = patient_timeline({"wearables": wear}).baselines.drop_nulls("baseline")
    for s in streams():
        band, field = bands.filter(pl.col("stream") == s), wearables.field(s)
        assert band.height > 0 and band["low"].min() >= field.minimum and band["high"].max() <= field.maximum
    stiffness, pain = (bands.filter(pl.col("stream") == s) for s in ("stiffness_min", "pain_0_10"))
    assert (stiffness["baseline"] == 0).all() and (stiffness["low"] == 0).all() and (stiffness["high"] > 10).all()
    assert (pain["baseline"] == 10).all() and (pain["high"] == 10).all() and (pain["low"] < 10).all()


def test_the_baseline_chart_replaces_the_weekly_means_and_marks_the_alerts(wearer):
    last = wearer["wearables"]["date"].max()
    alerts = pl.DataFrame({"id": [7, 8], "date": [last, last - dt.timedelta(days=30)], "p_flare_28d": [0.2, 0.3],
                           "status": ["open", "dismissed"]})
    t = patient_timeline(wearer, alerts)
    assert t.alerts.rows() == [(last - dt.timedelta(days=30), 0.3, "dismissed"), (last, 0.2, "open")]
    charts = timeline_charts(t)
    assert BASELINE in charts and WEARABLES not in charts
    spec = charts[BASELINE].to_dict()  # validates against the Vega-Lite schema
    band, usual, values, rules = spec["spec"]["layer"]
    assert (band["mark"]["type"], band["encoding"]["y"]["field"], band["encoding"]["y2"]["field"]) == (
        "area", "low", "high")
    assert usual["encoding"]["y"]["field"] == "baseline" and usual["mark"]["strokeDash"]
    assert values["mark"]["invalid"] == "break-paths-show-domains"  # an unworn day is a gap, never a zero
    assert rules["mark"]["type"] == "rule" and rules["encoding"]["color"]["field"] == "status"
    assert {t["field"] for t in rules["encoding"]["tooltip"]} == {"date", "p_flare_28d", "status"}
    rows = spec["datasets"][spec["data"]["name"]]
    marked = [r for r in rows if r["kind"] == "alert"]
    assert len(marked) == 2 * len(streams())  # every stream's panel shows both alerts
    assert spec["params"][0]["bind"] == "scales" and spec["resolve"]["scale"]["y"] == "independent"
    header = spec["facet"]["row"]["header"]  # each stream's title above its panel, not rotated beside it
    assert (header["labelOrient"], header["labelAngle"]) == ("top", 0) and band["encoding"]["y"]["title"] is None


def test_without_alerts_no_rules_and_too_few_days_for_a_baseline_keep_the_weekly_means(wearer, example):
    assert len(timeline_charts(patient_timeline(wearer))[BASELINE].to_dict()["spec"]["layer"]) == 3
    t = patient_timeline(one_patient(example.tables, "EX001"))  # 14 days: a baseline needs 14 in the 56 before a week
    assert t.baselines.height == 14 * len(streams()) and t.baselines["baseline"].null_count() == t.baselines.height
    assert BASELINE not in timeline_charts(t) and WEARABLES in timeline_charts(t)
