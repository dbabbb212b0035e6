"""Feature blocks against hand-computed values, the as-of-index rules, leakage and a simulated registry."""
from __future__ import annotations

import datetime as dt
import math
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from rxpredict.features import (
    FEATURE_BLOCKS,
    build_features,
    clinical_block,
    feature_columns,
    genetic_block,
    imaging_block,
    wearable_block,
)
from rxpredict.registry import Registry
from rxpredict.schemas import load_contract
from rxpredict.simulate import simulate
from rxpredict.validation import validate_tables

TODAY = dt.date(2026, 11, 23)
INDEX = dt.date(2024, 3, 1)           # patient A's main episode
EARLY = dt.date(2022, 6, 1)           # patient A's earlier episode (one exam before it)
INDEX_B = dt.date(2024, 6, 1)         # patient B: no baseline visit, genetics, imaging or wearables
KEYS = ["patient_id", "index_date"]


def day(offset: int, index: dt.date = INDEX) -> dt.date:
    return index + dt.timedelta(days=offset)


def table(name: str, rows: list[dict[str, Any]]) -> pl.DataFrame:
    """A registry table in its contract dtypes; keys missing from a row are null."""
    return pl.DataFrame(rows, schema=load_contract().tables[name].polars_schema)


def make_registry(**tables: pl.DataFrame) -> Registry:
    result = validate_tables(tables, today=TODAY)
    assert result.report.ok, result.report
    return Registry(tables=result.tables, report=result.report, contract_version=load_contract().version)


PATIENTS = table("patients", [
    {"patient_id": "A", "sex": "F", "birth_year": 1970, "diagnosis_date": dt.date(2020, 3, 1),
     "rf_positive": True, "acpa_positive": False, "smoking": "current"},
    {"patient_id": "B", "sex": "M", "birth_year": 1980, "diagnosis_date": dt.date(2023, 3, 1)},
])
BASELINE = {"tjc28": 4, "sjc28": 1, "esr_mm_h": 20.0, "crp_mg_l": 9.0, "patient_global_0_100": 50.0,
            "physician_global_0_100": 40.0, "pain_0_100": 45.0, "haq_di": 1.0, "morning_stiffness_min": 60}
VISITS = table("visits", [
    {"patient_id": "A", "visit_date": dt.date(2023, 1, 10), "tjc28": 8, "sjc28": 6, "bmi_kg_m2": 31.0},
    {"patient_id": "A", "visit_date": day(-10), **BASELINE},                      # baseline, no BMI
    {"patient_id": "A", "visit_date": day(7), "tjc28": 2, "sjc28": 0, "bmi_kg_m2": 28.0},   # counts
    {"patient_id": "A", "visit_date": day(8), "tjc28": 1, "sjc28": 0, "bmi_kg_m2": 26.0},   # too late
    {"patient_id": "B", "visit_date": dt.date(2024, 5, 1), "tjc28": 3, "sjc28": 2, "bmi_kg_m2": 22.5},
])
TREATMENTS = table("treatments", [])
GENETICS = table("genetics", [
    {"patient_id": "A", "marker": "HLA-DRB1_SE", "value": 2.0},
    {"patient_id": "A", "marker": "rs2476601", "value": 1.0},
    {"patient_id": "A", "marker": "PRS_RA", "value": -0.5},
])
IMAGING = table("imaging", [
    {"patient_id": "A", "exam_date": dt.date(2022, 3, 1), "joint": j, "erosion": e, "jsn": n, "source": "reader"}
    for j, e, n in [("left_hand_mcp2", 2, 0), ("left_foot_mtp1", 0, 1)]      # erosion 2, jsn 1, total 3
] + [
    {"patient_id": "A", "exam_date": dt.date(2023, 3, 1), "joint": j, "erosion": e, "jsn": n, "source": "reader"}
    for j, e, n in [("left_hand_mcp2", 3, 0), ("left_hand_mcp3", 0, 2), ("right_foot_mtp5", 4, 0)]  # total 9
] + [
    {"patient_id": "A", "exam_date": day(8), "joint": "left_hand_mcp2", "erosion": 5, "jsn": 4, "source": "model"},
])
# Days index-28 .. index-16 step 1000, index-14 .. index-2 step 2000; index-15 has a row of nulls,
# index-1 no row; index-30 and the index date itself fall outside the window.
WEARABLES = table("wearables", [
    {"patient_id": "A", "date": day(-30), "steps": 5000, "pain_0_10": 9.0},
    *({"patient_id": "A", "date": day(d), "steps": 1000} for d in range(-28, -15)),
    {"patient_id": "A", "date": day(-15)},
    *({"patient_id": "A", "date": day(d), "steps": 2000} for d in range(-14, -1)),
    {"patient_id": "A", "date": day(0), "steps": 99999, "pain_0_10": 10.0},
    {"patient_id": "A", "date": day(3), "steps": 99999, "sleep_min": 1000},
]).with_columns(
    pain_0_10=pl.when(pl.col("date") == day(-20)).then(4.0).when(pl.col("date") == day(-5)).then(6.0)
    .otherwise("pain_0_10"),
    sleep_min=pl.when(pl.col("date") == day(-28)).then(400).when(pl.col("date") == day(-27)).then(500)
    .otherwise("sleep_min"),
)
EPISODES = pl.LazyFrame({
    "patient_id": ["A", "A", "B"],
    "index_date": [INDEX, EARLY, INDEX_B],
    "baseline_visit_date": [day(-10), None, None],
    "therapy": ["tnfi", "csdmard_mtx", "jaki"],
})


def tables(**changes: pl.DataFrame) -> dict[str, pl.DataFrame]:
    base = {"patients": PATIENTS, "visits": VISITS, "treatments": TREATMENTS, "genetics": GENETICS,
            "imaging": IMAGING, "wearables": WEARABLES}
    return {**base, **changes}


@pytest.fixture(scope="module")
def registry() -> Registry:
    return make_registry(**tables())


def collect(frame: pl.LazyFrame, columns: list[str]) -> pl.DataFrame:
    return frame.select(*KEYS, *columns).collect().sort(KEYS)


def test_clinical_block_hand_computed(registry: Registry) -> None:
    out = collect(clinical_block(EPISODES, registry), [
        "clinical_age", "clinical_female", "clinical_disease_years", "clinical_rf", "clinical_acpa",
        "clinical_smoking_current", "clinical_smoking_former", "clinical_tjc28", "clinical_esr_mm_h",
        "clinical_haq_di", "clinical_morning_stiffness_min", "clinical_bmi_kg_m2", "clinical_das28_esr",
        "clinical_das28_crp", "clinical_cdai", "clinical_sdai", "mask_clinical",
    ])
    joints_and_global = 0.56 * 2 + 0.28 * 1 + 0.014 * 50
    expected = pl.DataFrame({
        "patient_id": ["A", "A", "B"],
        "index_date": [EARLY, INDEX, INDEX_B],
        "clinical_age": [52.0, 54.0, 44.0],
        "clinical_female": [1.0, 1.0, 0.0],
        "clinical_disease_years": [822 / 365.25, 1461 / 365.25, 458 / 365.25],
        "clinical_rf": [1.0, 1.0, None],
        "clinical_acpa": [0.0, 0.0, None],
        "clinical_smoking_current": [1.0, 1.0, None],
        "clinical_smoking_former": [0.0, 0.0, None],
        "clinical_tjc28": [None, 4.0, None],
        "clinical_esr_mm_h": [None, 20.0, None],
        "clinical_haq_di": [None, 1.0, None],
        "clinical_morning_stiffness_min": [None, 60.0, None],
        # The baseline lacks BMI: the latest up to index+7 (28.0 on day 7, not 26.0 on day 8);
        # B has no baseline visit, yet its latest BMI counts. A had no BMI before EARLY.
        "clinical_bmi_kg_m2": [None, 28.0, 22.5],
        "clinical_das28_esr": [None, joints_and_global + 0.70 * math.log(20), None],
        "clinical_das28_crp": [None, joints_and_global + 0.36 * math.log(10) + 0.96, None],
        "clinical_cdai": [None, 14.0, None],
        "clinical_sdai": [None, 14.9, None],
        "mask_clinical": pl.Series([0, 1, 0], dtype=pl.Int8),
    })
    assert_frame_equal(out, expected)


def test_clinical_block_has_every_visit_component(registry: Registry) -> None:
    components = [f.name for f in load_contract().tables["visits"].fields if f.type in ("integer", "number")]
    columns = feature_columns(clinical_block(EPISODES, registry))["clinical"]
    assert {f"clinical_{c}" for c in components} <= set(columns)


@pytest.mark.parametrize(("offset", "counts"), [(7, True), (8, False)])
def test_records_up_to_index_plus_7_days_count(offset: int, counts: bool) -> None:
    visits = table("visits", [
        {"patient_id": "A", "visit_date": day(offset), **BASELINE, "bmi_kg_m2": 28.0},
    ])
    imaging = table("imaging", [{"patient_id": "A", "exam_date": day(offset), "joint": "left_hand_mcp2",
                                 "erosion": 1, "jsn": 1, "source": "reader"}])
    reg = make_registry(**tables(visits=visits, imaging=imaging))
    episodes = pl.LazyFrame({"patient_id": ["A"], "index_date": [INDEX], "baseline_visit_date": [day(offset)]})
    out = build_features(episodes, reg).collect()
    assert out["mask_clinical"].to_list() == [int(counts)]          # baseline visit dated after index+7 ignored
    assert out["clinical_bmi_kg_m2"].to_list() == [28.0 if counts else None]
    assert out["mask_imaging"].to_list() == [int(counts)]
    assert out["imaging_total"].to_list() == [2.0 if counts else None]
    assert out["imaging_days_since_exam"].to_list() == [-float(offset) if counts else None]


def test_genetic_block_pivots_every_marker(registry: Registry) -> None:
    out = genetic_block(EPISODES, registry).collect().sort(KEYS)
    assert feature_columns(out)["genetic"] == ["genetic_HLA_DRB1_SE", "genetic_PRS_RA", "genetic_rs2476601"]
    expected = pl.DataFrame({
        "patient_id": ["A", "A", "B"],
        "index_date": [EARLY, INDEX, INDEX_B],
        "genetic_HLA_DRB1_SE": [2.0, 2.0, None],
        "genetic_PRS_RA": [-0.5, -0.5, None],
        "genetic_rs2476601": [1.0, 1.0, None],
        "mask_genetic": pl.Series([1, 1, 0], dtype=pl.Int8),
    })
    assert_frame_equal(out.select(expected.columns), expected)


def test_genetic_markers_argument_fixes_the_columns(registry: Registry) -> None:
    out = genetic_block(EPISODES, registry, markers=["rs2476601", "APOE-e4"]).collect().sort(KEYS)
    assert feature_columns(out)["genetic"] == ["genetic_rs2476601", "genetic_APOE_e4"]
    assert out["genetic_rs2476601"].to_list() == [1.0, 1.0, None]
    assert out["genetic_APOE_e4"].dtype == pl.Float64
    assert out["genetic_APOE_e4"].null_count() == 3
    assert out["mask_genetic"].to_list() == [1, 1, 0]


def test_genetic_markers_whose_columns_collide_are_refused(registry: Registry) -> None:
    with pytest.raises(ValueError, match="same column"):
        genetic_block(EPISODES, registry, markers=["HLA-DRB1", "HLA_DRB1"])


def test_imaging_block_latest_exam_and_progression(registry: Registry) -> None:
    out = collect(imaging_block(EPISODES, registry), [
        "imaging_erosion", "imaging_jsn", "imaging_total", "imaging_erosion_hands", "imaging_erosion_feet",
        "imaging_jsn_hands", "imaging_jsn_feet", "imaging_days_since_exam", "imaging_progression_per_year",
        "mask_imaging",
    ])
    expected = pl.DataFrame({
        "patient_id": ["A", "A", "B"],
        "index_date": [EARLY, INDEX, INDEX_B],
        "imaging_erosion": [2.0, 7.0, None],
        "imaging_jsn": [1.0, 2.0, None],
        "imaging_total": [3.0, 9.0, None],
        "imaging_erosion_hands": [2.0, 3.0, None],
        "imaging_erosion_feet": [0.0, 4.0, None],
        "imaging_jsn_hands": [0.0, 2.0, None],
        "imaging_jsn_feet": [1.0, 0.0, None],
        "imaging_days_since_exam": [92.0, 366.0, None],     # the exam on index+8 is not seen
        "imaging_progression_per_year": [None, 6 / (365 / 365.25), None],   # one exam: no rate
        "mask_imaging": pl.Series([1, 1, 0], dtype=pl.Int8),
    })
    assert_frame_equal(out, expected)


def test_wearable_block_means_and_trends(registry: Registry) -> None:
    out = collect(wearable_block(EPISODES, registry), [
        "wearable_days28", "wearable_steps_mean28", "wearable_steps_trend", "wearable_pain_0_10_mean28",
        "wearable_pain_0_10_trend", "wearable_sleep_min_mean28", "wearable_sleep_min_trend",
        "wearable_active_min_mean28", "mask_wearable",
    ])
    expected = pl.DataFrame({
        "patient_id": ["A", "A", "B"],
        "index_date": [EARLY, INDEX, INDEX_B],
        "wearable_days28": [None, 26.0, None],               # the all-null row on index-15 is no data
        "wearable_steps_mean28": [None, 1500.0, None],
        "wearable_steps_trend": [None, 1000.0, None],
        "wearable_pain_0_10_mean28": [None, 5.0, None],
        "wearable_pain_0_10_trend": [None, 2.0, None],
        "wearable_sleep_min_mean28": [None, 450.0, None],
        "wearable_sleep_min_trend": [None, None, None],      # no sleep in the last 14 days
        "wearable_active_min_mean28": [None, None, None],
        "mask_wearable": pl.Series([0, 1, 0], dtype=pl.Int8),
    }, schema_overrides={c: pl.Float64 for c in ["wearable_sleep_min_trend", "wearable_active_min_mean28"]})
    assert_frame_equal(out, expected)


@pytest.mark.parametrize("n_days", [6, 7])
def test_wearable_mask_needs_7_days(n_days: int) -> None:
    rows = [{"patient_id": "A", "date": day(-d), "steps": 100 * d} for d in range(1, n_days + 1)]
    reg = make_registry(**tables(wearables=table("wearables", rows)))
    out = wearable_block(EPISODES.filter(pl.col("index_date") == INDEX), reg).collect()
    enough = n_days >= 7
    assert out["mask_wearable"].to_list() == [int(enough)]
    assert out["wearable_days28"].to_list() == [7.0 if enough else None]
    assert out["wearable_steps_mean28"].to_list() == [400.0 if enough else None]


def test_episodes_without_data_are_kept_with_masks_0() -> None:
    reg = make_registry(**{n: f for n, f in tables().items() if n in ("patients", "visits", "treatments")})
    out = build_features(EPISODES, reg).collect()
    assert out.height == 3
    assert out.select(pl.col("mask_genetic", "mask_imaging", "mask_wearable").sum()).row(0) == (0, 0, 0)
    assert feature_columns(out)["genetic"] == []
    assert out.select(pl.col("^(imaging|wearable)_.*$").null_count()).sum_horizontal().item() == 3 * (9 + 13)


def test_build_features_keeps_episode_columns_and_blocks(registry: Registry) -> None:
    out = build_features(EPISODES, registry)
    schema = out.collect_schema()
    assert list(schema)[:4] == ["patient_id", "index_date", "baseline_visit_date", "therapy"]
    blocks = feature_columns(schema)
    assert list(blocks) == list(FEATURE_BLOCKS)
    assert all(blocks.values())
    assert all(schema[c] == pl.Float64 for cols in blocks.values() for c in cols)
    assert all(schema[f"mask_{b}"] == pl.Int8 for b in FEATURE_BLOCKS)
    assert feature_columns(out) == feature_columns(out.collect()) == blocks
    assert build_features(pl.concat([EPISODES, EPISODES.head(1)]), registry).collect().height == 4
    # An episode column with a block's prefix (the cohort's own history features) is kept as it is.
    with_history = build_features(EPISODES.with_columns(clinical_prior_tnfi=pl.lit(2)), registry).collect_schema()
    assert with_history["clinical_prior_tnfi"] == pl.Int32


def test_records_after_index_plus_7_never_change_features() -> None:
    """Adding or changing any visit, exam or wearable dated after index+7 leaves every feature as it was."""
    before = build_features(EPISODES, make_registry(**tables())).collect().sort(KEYS)
    late_a, late_b = day(8), day(8, INDEX_B)
    visits = pl.concat([
        VISITS.with_columns(   # change the visit already on index+8
            pl.when(pl.col("visit_date") == late_a).then(pl.lit(70.0)).otherwise("bmi_kg_m2").alias("bmi_kg_m2")),
        table("visits", [{"patient_id": p, "visit_date": d + dt.timedelta(days=k), **BASELINE, "bmi_kg_m2": 40.0}
                         for p, d in [("A", late_a), ("B", late_b)] for k in (1, 30)]),
    ])
    imaging = pl.concat([
        IMAGING.with_columns(pl.when(pl.col("exam_date") == late_a).then(0).otherwise("erosion").alias("erosion")),
        table("imaging", [{"patient_id": p, "exam_date": d, "joint": "right_hand_mcp1", "erosion": 5, "jsn": 4,
                           "source": "reader"} for p, d in [("A", day(40)), ("B", late_b)]]),
    ])
    wearables = pl.concat([
        WEARABLES.with_columns(pl.when(pl.col("date") >= INDEX).then(1).otherwise("steps").alias("steps")),
        table("wearables", [{"patient_id": p, "date": d + dt.timedelta(days=k), "steps": 777, "pain_0_10": 9.5}
                            for p, d in [("A", day(4)), ("B", INDEX_B)] for k in range(30)]),
    ])
    after = build_features(EPISODES, make_registry(**tables(visits=visits, imaging=imaging, wearables=wearables)))
    assert_frame_equal(after.collect().sort(KEYS), before)
    # Control: the same kind of exam dated index+7 does change the features.
    on_time = pl.concat([IMAGING, table("imaging", [{"patient_id": "A", "exam_date": day(7), "joint": "right_hand_mcp1",
                                                     "erosion": 1, "jsn": 1, "source": "reader"}])])
    changed = build_features(EPISODES, make_registry(**tables(imaging=on_time))).collect().sort(KEYS)
    assert changed["imaging_total"].to_list() != before["imaging_total"].to_list()


def test_plan_pushes_projections_down(registry: Registry) -> None:
    """Scans read only what a block needs: imaging 5 of its 7 keyed columns (neither ``source`` nor the
    ``patient_id`` strings: lookups use the integer ``_pid``); the BMI look-up 3 of 13 visit columns."""
    plan = build_features(EPISODES, registry).explain()
    imaging_scan = [line for line in plan.splitlines() if 'DF ["patient_id", "exam_date", "joint"' in line]
    assert imaging_scan and all(line.rstrip().endswith("5/7 COLUMNS") for line in imaging_scan)
    assert all('PROJECT["patient_id"' not in line for line in imaging_scan)
    assert 'PROJECT["_pid", "visit_date", "bmi_kg_m2"] 3/13 COLUMNS' in plan


@pytest.fixture(scope="module")
def simulated() -> tuple[Registry, pl.DataFrame]:
    frames = simulate(300, seed=1, progress=False)
    registry = make_registry(**{name: frames[name] for name in load_contract().tables})
    episodes = frames["answer_key"].select("patient_id", "index_date", "baseline_visit_date")
    return registry, episodes


def test_simulated_registry_rows_and_masks(simulated: tuple[Registry, pl.DataFrame]) -> None:
    registry, episodes = simulated
    features = build_features(episodes.lazy(), registry)
    out = features.collect(engine="streaming")
    assert out.height == episodes.height
    assert_frame_equal(features.collect(engine="in-memory"), out, check_row_order=False)

    cutoff = pl.col("index_date") + dt.timedelta(days=7)
    has_genetics = pl.col("patient_id").is_in(registry["genetics"]["patient_id"].implode())
    exams = registry["imaging"].select("patient_id", "exam_date").unique()
    imaged = episodes.join(exams, on="patient_id").filter(pl.col("exam_date") <= cutoff).select(KEYS).unique()
    window = (pl.col("date") >= pl.col("index_date") - dt.timedelta(days=28)) & (pl.col("date") < pl.col("index_date"))
    any_value = pl.any_horizontal(pl.exclude("patient_id", "date", "index_date", "baseline_visit_date").is_not_null())
    worn = (
        episodes.join(registry["wearables"], on="patient_id")
        .filter(window & any_value)
        .group_by(KEYS)
        .agg(pl.len().alias("days"), pl.col("steps").mean().alias("steps_mean28"))
        .filter(pl.col("days") >= 7)
    )
    expected = (
        episodes.select(*KEYS, has_genetics.cast(pl.Int8).alias("mask_genetic"))
        .unique()
        .join(imaged.with_columns(pl.lit(1, pl.Int8).alias("mask_imaging")), on=KEYS, how="left")
        .join(worn.select(*KEYS, pl.lit(1, pl.Int8).alias("mask_wearable")), on=KEYS, how="left")
        .with_columns(pl.col("mask_imaging", "mask_wearable").fill_null(0))
    )
    assert_frame_equal(out.select(expected.columns).unique(), expected, check_row_order=False)
    assert out["mask_clinical"].sum() == episodes["baseline_visit_date"].drop_nulls().len()
    # Running totals read at three anchors agree with a brute-force window over the raw rows.
    both = out.join(worn, on=KEYS)
    assert both.height == worn.height > 0
    assert_frame_equal(both.select(pl.col("wearable_days28").alias("days"), pl.col("wearable_steps_mean28").alias("mean")),
                       both.select(pl.col("days").cast(pl.Float64), pl.col("steps_mean28").alias("mean")))
