"""Personal baselines: non-wear is missing, not zero; baselines are robust and lag the day by a week."""
from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from rxpredict.monitoring.baselines import (BASELINE_DAYS, BASELINE_GAP_DAYS, MIN_BASELINE_DAYS, SCALE_FLOOR,
                                            personal_baselines, streams)

START = dt.date(2022, 3, 1)


def wear(steps: list[float | None], *, hr: list[float | None] | None = None, pid: str = "A",
         drop: tuple[int, ...] = ()) -> pl.DataFrame:
    n = len(steps)
    hr = hr if hr is not None else [60.0] * n
    rows = [i for i in range(n) if i not in drop]
    return pl.DataFrame({
        "patient_id": pid, "date": [START + dt.timedelta(days=i) for i in rows],
        "steps": [steps[i] for i in rows], "active_min": None, "sleep_min": None,
        "resting_hr_bpm": [hr[i] for i in rows], "pain_0_10": 2.0, "stiffness_min": None,
    }, schema_overrides={"active_min": pl.Float64, "sleep_min": pl.Float64, "stiffness_min": pl.Float64})


def test_streams_come_from_the_schema():
    assert streams() == {"steps": "device", "active_min": "device", "sleep_min": "device",
                         "resting_hr_bpm": "device", "pain_0_10": "self_report", "stiffness_min": "self_report"}


def test_days_without_a_row_are_missing_days_on_the_grid():
    got = personal_baselines(wear([5000.0] * 10, drop=(3, 4))).collect()
    assert got.height == 10
    assert got["steps"].null_count() == 2 and got["worn"].to_list()[3:5] == [False, False]


def test_partial_wear_is_non_wear_but_self_reports_stay():
    steps = [8000.0] * 40 + [600.0] + [8000.0] * 5
    hr: list[float | None] = [60.0] * 46
    hr[40] = None  # an hour on the wrist: no resting heart rate, a handful of steps
    got = personal_baselines(wear(steps, hr=hr)).collect()
    assert got["worn"][40] is False and got["steps"][40] is None and got["pain_0_10"][40] == 2.0
    low_but_worn = personal_baselines(wear(steps)).collect()  # same steps with a heart rate: a bad day, worn
    assert low_but_worn["worn"][40] is True and low_but_worn["steps"][40] == 600


def test_baseline_is_the_median_of_the_56_days_ending_a_week_before():
    rng = np.random.default_rng(0)
    steps = list(rng.normal(7000, 800, 120).round())
    got = personal_baselines(wear(steps)).collect()
    t = 100
    window = steps[t - BASELINE_GAP_DAYS - BASELINE_DAYS + 1: t - BASELINE_GAP_DAYS + 1]
    assert got["steps_baseline"][t] == pytest.approx(np.median(window))
    q75, q25 = np.quantile(window, [0.75, 0.25], method="nearest")
    assert got["steps_scale"][t] == pytest.approx(max((q75 - q25) / 1.349, SCALE_FLOOR["steps"]), rel=0.05)
    first = got["steps_baseline"].is_not_null().arg_true()[0]
    assert first == MIN_BASELINE_DAYS - 1 + BASELINE_GAP_DAYS


def test_a_fall_in_activity_shows_in_the_deviations_not_yet_in_the_baseline():
    steps = [8000.0 + 300 * (i % 3) for i in range(90)] + [4000.0] * 7
    got = personal_baselines(wear(steps)).collect()
    last = got.row(-1, named=True)
    assert last["steps_baseline"] == pytest.approx(8300.0)
    assert last["steps_z"] < -5 and last["steps_dev7"] < -5
    assert last["steps_dev28"] == pytest.approx(last["steps_dev7"] / 4, rel=0.15)
    assert last["steps_slope28"] < 0


def test_outlier_days_do_not_move_a_robust_baseline():
    calm = [7000.0] * 80
    wild = calm.copy()
    for i in range(10, 60, 10):
        wild[i] = 40000.0
    a, b = (personal_baselines(wear(s)).collect()["steps_baseline"][-1] for s in (calm, wild))
    assert a == b == 7000.0


def test_patients_do_not_share_baselines():
    both = pl.concat([wear([3000.0] * 80, pid="A"), wear([12000.0] * 80, pid="B")])
    got = personal_baselines(both).collect()
    per = got.group_by("patient_id").agg(pl.col("steps_baseline").drop_nulls().unique())
    assert dict(zip(per["patient_id"], per["steps_baseline"].to_list())) == {"A": [3000.0], "B": [12000.0]}
