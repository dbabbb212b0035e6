"""Tests of rxpredict.clinical against hand-computed values of clinical-reference.md.

Expected numbers are literals worked out by hand (calculator), never by the
formulas under test. Boundary categories are tested on literal scores, and
CDAI/SDAI boundaries also from integer inputs, which the module computes exactly.
"""
from __future__ import annotations

from datetime import date
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from rxpredict import clinical as c
from rxpredict.schemas import load_contract

APPROX = {"abs": 1e-3}


def one(expr: pl.Expr, **columns: Any) -> Any:
    """Evaluate an expression on a one-row frame built from keyword columns."""
    return pl.DataFrame({k: [v] for k, v in columns.items()}).select(expr).item()


# --- disease activity scores -------------------------------------------------

@pytest.mark.parametrize(
    ("tjc", "sjc", "esr", "ptga", "expected"),
    [
        (0, 0, 1.0, 0.0, 0.0),          # all zero counts, ln(1) = 0
        (0, 0, 0.0, 0.0, 0.0),          # ESR 0 treated as 1
        (4, 1, 0.0, 50.0, 2.1),         # 1.12 + 0.28 + 0 + 0.70
        (9, 16, 0.5, 0.0, 2.8),         # 1.68 + 1.12, ESR 0.5 treated as 1
        (4, 4, 20.0, 50.0, 4.477013),   # 1.12 + 0.56 + 0.70*2.995732 + 0.70
        (16, 9, 50.0, 30.0, 6.238416),  # 2.24 + 0.84 + 0.70*3.912023 + 0.42
        (2, 3, 35.0, 45.0, 4.395678),   # 0.791960 + 0.484974 + 0.70*3.555348 + 0.63
        (28, 28, 100.0, 100.0, 9.068482),
    ],
)
def test_das28_esr(tjc: int, sjc: int, esr: float, ptga: float, expected: float) -> None:
    cols = dict(tjc28=tjc, sjc28=sjc, esr_mm_h=esr, patient_global_0_100=ptga)
    assert one(c.das28_esr(), **cols) == pytest.approx(expected, **APPROX)
    assert one(c.esr_floored(), **cols) is (esr < 1)


@pytest.mark.parametrize(
    ("tjc", "sjc", "crp", "ptga", "expected"),
    [
        (0, 0, 0.0, 0.0, 0.96),         # all zero: only the constant
        (4, 1, 0.0, 50.0, 3.06),        # 1.12 + 0.28 + 0 + 0.70 + 0.96
        (4, 4, 9.0, 50.0, 4.168931),    # 1.12 + 0.56 + 0.36*ln(10) + 0.70 + 0.96
        (2, 3, 4.5, 45.0, 3.480643),    # 0.791960 + 0.484974 + 0.36*1.704748 + 0.63 + 0.96
        (9, 16, 19.0, 20.0, 5.118464),  # 1.68 + 1.12 + 0.36*2.995732 + 0.28 + 0.96
        (28, 28, 99.0, 100.0, 8.462724),
    ],
)
def test_das28_crp(tjc: int, sjc: int, crp: float, ptga: float, expected: float) -> None:
    cols = dict(tjc28=tjc, sjc28=sjc, crp_mg_l=crp, patient_global_0_100=ptga)
    assert one(c.das28_crp(), **cols) == pytest.approx(expected, **APPROX)


@pytest.mark.parametrize(
    ("tjc", "sjc", "ptga", "phga", "crp", "cdai", "sdai"),
    [
        (0, 0, 0.0, 0.0, 0.0, 0.0, 0.0),
        (4, 1, 50.0, 40.0, 9.0, 14.0, 14.9),
        (0, 0, 15.0, 13.0, 5.0, 2.8, 3.3),
        (3, 2, 45.0, 35.0, 12.5, 13.0, 14.25),
        (10, 5, 25.0, 30.0, 60.0, 20.5, 26.5),
        (28, 28, 100.0, 100.0, 100.0, 76.0, 86.0),
    ],
)
def test_cdai_sdai(tjc: int, sjc: int, ptga: float, phga: float, crp: float, cdai: float, sdai: float) -> None:
    cols = dict(tjc28=tjc, sjc28=sjc, patient_global_0_100=ptga, physician_global_0_100=phga, crp_mg_l=crp)
    assert one(c.cdai(), **cols) == pytest.approx(cdai, **APPROX)
    assert one(c.sdai(), **cols) == pytest.approx(sdai, **APPROX)


@pytest.mark.parametrize("score", [c.das28_esr, c.das28_crp, c.cdai, c.sdai])
def test_scores_null_when_any_input_is_null(score: Any) -> None:
    expr = score()
    inputs = expr.meta.root_names()
    frame = pl.DataFrame({k: [3.0] for k in inputs})
    for column in inputs:
        assert frame.with_columns(pl.lit(None, pl.Float64).alias(column)).select(expr).item() is None, column


def test_esr_floored_null_esr_is_false() -> None:
    frame = pl.DataFrame({"esr_mm_h": [None, 0.0, 0.99, 1.0]}, schema={"esr_mm_h": pl.Float64})
    assert frame.select(c.esr_floored())["esr_floored"].to_list() == [False, True, True, False]


def test_scores_accept_expressions() -> None:
    frame = pl.DataFrame({"t": [9], "s": [16], "g": [10.0], "e": [0.0]})
    out = frame.select(c.das28_esr(pl.col("t"), "s", pl.col("e"), pl.col("g") * 10))
    assert out.item() == pytest.approx(4.2, **APPROX)  # 1.68 + 1.12 + 0 + 1.4


# --- activity categories ------------------------------------------------------

@pytest.mark.parametrize(
    ("index", "score", "expected"),
    [
        ("das28", 0.0, "remission"), ("das28", 2.59, "remission"), ("das28", 2.6, "low"),
        ("das28", 3.2, "low"), ("das28", 3.21, "moderate"), ("das28", 5.1, "moderate"),
        ("das28", 5.11, "high"), ("das28", 9.0, "high"),
        ("cdai", 0.0, "remission"), ("cdai", 2.8, "remission"), ("cdai", 2.81, "low"),
        ("cdai", 10.0, "low"), ("cdai", 10.1, "moderate"), ("cdai", 22.0, "moderate"),
        ("cdai", 22.1, "high"), ("cdai", 76.0, "high"),
        ("sdai", 3.3, "remission"), ("sdai", 3.31, "low"), ("sdai", 11.0, "low"),
        ("sdai", 11.01, "moderate"), ("sdai", 26.0, "moderate"), ("sdai", 26.01, "high"),
        ("das28", None, None), ("cdai", None, None), ("sdai", None, None),
    ],
)
def test_activity_category(index: Any, score: float | None, expected: str | None) -> None:
    frame = pl.DataFrame({"score": [score]}, schema={"score": pl.Float64})
    out = frame.select(c.activity_category("score", index))
    assert out.columns == ["score_category"]
    assert out.item() == expected


@pytest.mark.parametrize(
    ("tjc", "sjc", "ptga", "phga", "crp", "cdai", "sdai"),
    [
        (0, 0, 15.0, 13.0, 5.0, "remission", "remission"),  # CDAI 2.8, SDAI 3.3
        (0, 0, 1.0, 27.0, 0.0, "remission", "remission"),   # 0.1 + 2.7 would sum to 2.8000000000000003
        (0, 0, 6.0, 0.0, 27.0, "remission", "remission"),   # SDAI 0.6 + 2.7 = 3.3
        (0, 0, 3.0, 98.0, 9.0, "moderate", "low"),          # CDAI 10.1, SDAI 11
        (5, 3, 10.0, 10.0, 10.0, "low", "low"),             # CDAI 10, SDAI 11
        (10, 10, 10.0, 10.0, 40.0, "moderate", "moderate"), # CDAI 22, SDAI 26
        (10, 10, 11.0, 10.0, 40.0, "high", "high"),         # CDAI 22.1, SDAI 26.1
    ],
)
def test_cdai_sdai_boundaries_from_inputs(tjc: int, sjc: int, ptga: float, phga: float, crp: float,
                                          cdai: str, sdai: str) -> None:
    frame = pl.DataFrame(dict(tjc28=[tjc], sjc28=[sjc], patient_global_0_100=[ptga],
                              physician_global_0_100=[phga], crp_mg_l=[crp]))
    out = frame.select(c.activity_category(c.cdai(), "cdai"), c.activity_category(c.sdai(), "sdai"))
    assert out.row(0) == (cdai, sdai)


def test_activity_category_rejects_unknown_index() -> None:
    with pytest.raises(ValueError, match="index"):
        c.activity_category("score", "das44")  # type: ignore[arg-type]


# --- EULAR response -----------------------------------------------------------

@pytest.mark.parametrize(
    ("baseline", "followup", "expected"),
    [
        # every cell: follow-up 2.0 / 4.0 / 6.0 x improvement 1.5 / 1.0 / 0.3
        (3.5, 2.0, "good"), (3.0, 2.0, "moderate"), (2.3, 2.0, "none"),
        (5.5, 4.0, "moderate"), (5.0, 4.0, "moderate"), (4.3, 4.0, "none"),
        (7.5, 6.0, "moderate"), (7.0, 6.0, "none"), (6.3, 6.0, "none"),
        # improvement boundaries 1.2 / 0.6 (float subtraction is not exact here)
        (3.2, 2.0, "moderate"), (3.21, 2.0, "good"), (2.6, 2.0, "none"), (2.61, 2.0, "moderate"),
        (4.4, 3.2, "moderate"), (4.41, 3.2, "good"), (3.8, 3.2, "none"), (3.81, 3.2, "moderate"),
        # follow-up boundaries 3.2 / 5.1
        (4.5, 3.21, "moderate"), (5.7, 5.1, "none"), (5.71, 5.1, "moderate"), (6.3, 5.1, "moderate"),
        (6.31, 5.11, "none"), (6.32, 5.11, "moderate"), (5.8, 5.11, "none"),
        # worsening, nulls
        (3.0, 4.0, "none"), (None, 3.0, None), (4.0, None, None),
    ],
)
def test_eular_response(baseline: float | None, followup: float | None, expected: str | None) -> None:
    frame = pl.DataFrame({"b": [baseline], "f": [followup]}, schema={"b": pl.Float64, "f": pl.Float64})
    out = frame.select(c.eular_response("b", pl.col("f")))
    assert out.columns == ["eular_response"]
    assert out.item() == expected


# --- ACR20/50/70 --------------------------------------------------------------

BASELINE = dict(tjc28=10, sjc28=10, patient_global_0_100=50.0, physician_global_0_100=50.0,
                pain_0_100=50.0, haq_di=2.0, crp_mg_l=20.0, esr_mm_h=40.0)


def acr_frame(prefix: str = "baseline_", followup_prefix: str = "", **followup: Any) -> pl.DataFrame:
    """One row: the baseline above, and a follow-up equal to it except where given."""
    row = {prefix + k: v for k, v in BASELINE.items()}
    row |= {followup_prefix + k: followup.get(k, v) for k, v in BASELINE.items()}
    return pl.DataFrame({k: [v] for k, v in row.items()}, schema_overrides={k: pl.Float64 for k in row if "28" not in k})


ALL_20 = dict(tjc28=8, sjc28=8, patient_global_0_100=40.0, physician_global_0_100=40.0,
              pain_0_100=40.0, haq_di=1.5, crp_mg_l=16.0, esr_mm_h=32.0)
ALL_50 = dict(tjc28=5, sjc28=5, patient_global_0_100=25.0, physician_global_0_100=25.0,
              pain_0_100=25.0, haq_di=1.0, crp_mg_l=10.0)
ALL_70 = dict(tjc28=3, sjc28=3, patient_global_0_100=15.0, physician_global_0_100=15.0,
              pain_0_100=15.0, haq_di=0.5, crp_mg_l=6.0)


@pytest.mark.parametrize(
    ("followup", "level"),
    [
        (ALL_20, 20),                                   # exactly 20 % everywhere counts
        (dict(ALL_20, tjc28=7), 20),
        (ALL_50, 50),
        (ALL_70, 70),
        (dict(ALL_70, pain_0_100=25.0, haq_di=1.0, crp_mg_l=10.0), 50),  # only 2 of 5 at 70 %
        (dict(ALL_70, sjc28=9), 0),                     # SJC improved 10 % only
        (dict(ALL_70, tjc28=10), 0),                    # TJC unchanged
        (dict(tjc28=8, sjc28=8, patient_global_0_100=40.0, physician_global_0_100=40.0,
              pain_0_100=40.0), 20),                    # exactly 3 of 5
        (dict(tjc28=8, sjc28=8, patient_global_0_100=40.0, physician_global_0_100=40.0), 0),  # 2 of 5
        (dict(ALL_20, patient_global_0_100=None, crp_mg_l=20.0, esr_mm_h=40.0), 20),  # null: 3 left
        (dict(ALL_20, patient_global_0_100=None, haq_di=None, crp_mg_l=20.0, esr_mm_h=40.0), 0),
        (dict(tjc28=8, sjc28=8, patient_global_0_100=40.0, physician_global_0_100=40.0,
              crp_mg_l=None, esr_mm_h=32.0), 20),     # CRP missing: ESR counts
        (dict(tjc28=8, sjc28=8, patient_global_0_100=40.0, physician_global_0_100=40.0,
              crp_mg_l=None), 0),                      # CRP missing, ESR unchanged
        (dict(tjc28=8, sjc28=8, patient_global_0_100=40.0, physician_global_0_100=40.0,
              esr_mm_h=20.0), 0),                      # CRP at both visits wins over ESR
        (dict(tjc28=13, sjc28=12, patient_global_0_100=80.0), 0),  # worsening
    ],
)
def test_acr(followup: dict[str, Any], level: int) -> None:
    frame = acr_frame(**followup)
    out = frame.select(c.acr_level(), c.acr_response(20), c.acr_response(50), c.acr_response(70))
    assert out.row(0) == (level, level >= 20, level >= 50, level >= 70)
    assert out.schema["acr_level"] == pl.Int64


def test_acr_zero_baseline_is_not_met_and_prefixes() -> None:
    frame = acr_frame(prefix="bl_", followup_prefix="fu_", **ALL_70)
    assert frame.select(c.acr_level("bl_", "fu_")).item() == 70
    frame = frame.with_columns(pl.lit(0).alias("bl_tjc28"), pl.lit(0).alias("fu_tjc28"))
    assert frame.select(c.acr_level("bl_", "fu_")).item() == 0


def test_acr_rejects_other_levels() -> None:
    with pytest.raises(ValueError, match="ACR level"):
        c.acr_response(30)


# --- HAQ-DI -------------------------------------------------------------------

HAQ = load_contract().haq


def haq_frame(scores: list[int | tuple[int | None, ...] | None], aids: tuple[str, ...] = ()) -> pl.DataFrame:
    """One visit: per category an int (first item, other items 0), item tuple, or None (unanswered)."""
    row: dict[str, Any] = {}
    for cat, score in zip(HAQ.categories, scores, strict=True):
        items = (None,) * len(cat.items) if score is None else score if isinstance(score, tuple) else (score,)
        items = items + (0,) * (len(cat.items) - len(items))
        row |= dict(zip(cat.items, items, strict=True))
        row[cat.aid_column] = True if cat.name in aids else None
    schema = {k: pl.Boolean if k.startswith("haq_aid_") else pl.Int64 for k in row}
    return pl.DataFrame([row], schema=schema)


@pytest.mark.parametrize(
    ("scores", "aids", "rounded", "exact"),
    [
        ([0] * 8, (), 0.0, 0.0),
        ([3] * 8, (), 3.0, 3.0),
        ([1, 2, 0, 1, 3, 0, 1, 0], (), 1.0, 1.0),
        ([1, 1, 1, 1, 1, 2, 2, 2], (), 1.375, 1.375),
        ([(1, 3), 0, 0, 0, 0, 0, 0, 0], (), 0.375, 0.375),             # worst item of a category
        ([(None, 2), 0, 0, 0, 0, 0, 0, 0], (), 0.25, 0.25),            # partly answered category
        ([1, 1, 1, 1, 2, None, None, 1], (), 1.125, 1.166667),         # 6 of 8: 7/6
        ([3, 2, 2, 1, 1, 0, None, 0], (), 1.25, 1.285714),             # 7 of 8: 9/7
        ([1, 1, 1, 1, 1, None, None, None], (), None, None),           # 5 of 8: invalid
        ([0] * 8, ("dressing", "walking"), 0.5, 0.5),                  # aid raises 0 to 2
        ([1] * 8, ("eating",), 1.125, 1.125),                          # aid raises 1 to 2
        ([3, 0, 0, 0, 0, 0, 0, 0], ("dressing",), 0.375, 0.375),       # aid does not lower a 3
        ([0, 0, 0, 0, 0, None, None, None], ("reach",), None, None),   # aid does not answer a category
    ],
)
def test_haq_di(scores: list[Any], aids: tuple[str, ...], rounded: float | None, exact: float | None) -> None:
    frame = haq_frame(scores, aids)
    out = frame.select(c.haq_di().alias("rounded"), c.haq_di(round_to_step=False).alias("exact")).row(0)
    assert out == (pytest.approx(rounded, **APPROX), pytest.approx(exact, **APPROX))
    if rounded is not None:
        assert (rounded / HAQ.step).is_integer()


# --- visit scores -------------------------------------------------------------

def test_visit_scores_frame_and_score_visit_agree() -> None:
    record = dict(tjc28=4, sjc28=1, esr_mm_h=0.0, crp_mg_l=9.0, patient_global_0_100=50.0,
                  physician_global_0_100=40.0)
    expected = dict(das28_esr=2.1, das28_crp=3.888931, cdai=14.0, sdai=14.9,  # 1.12+0.28+0.828931+0.70+0.96
                    das28_esr_category="remission", das28_crp_category="moderate",
                    cdai_category="moderate", sdai_category="moderate", esr_floored=True)
    frame = pl.DataFrame([record]).with_columns(c.visit_scores())
    assert frame.columns == [*record, *expected]
    assert frame.row(0, named=True) == {**record, **expected} | {
        k: pytest.approx(v, **APPROX) for k, v in expected.items() if isinstance(v, float)
    }
    assert c.score_visit(record) == frame.select(list(expected)).row(0, named=True)


def test_score_visit_missing_keys_are_null() -> None:
    out = c.score_visit({"tjc28": 2, "sjc28": 0, "esr_mm_h": 25.0, "patient_global_0_100": 30})
    # 0.56*1.414214 + 0 + 0.70*3.218876 + 0.42
    assert out["das28_esr"] == pytest.approx(3.465174, **APPROX)
    assert out["das28_esr_category"] == "moderate"
    assert out["esr_floored"] is False
    for missing_crp_or_phga in ("das28_crp", "cdai", "sdai", "das28_crp_category", "cdai_category", "sdai_category"):
        assert out[missing_crp_or_phga] is None
    assert c.score_visit({})["das28_esr"] is None


# --- Sharp / van der Heijde ---------------------------------------------------

AREAS = load_contract().joint_area_frame


def exam(patient: str, day: int, erosion: pl.Expr, jsn: pl.Expr) -> pl.DataFrame:
    """Every joint area of the contract for one exam, scores given as expressions over the area frame."""
    return AREAS.select(
        pl.lit(patient).alias("patient_id"),
        pl.lit(date(2024, 1, day)).alias("exam_date"),
        "joint",
        erosion.cast(pl.Int64).alias("erosion"),
        jsn.cast(pl.Int64).alias("jsn"),
        pl.lit("reader").alias("source"),
    )


def test_svdh_totals() -> None:
    zero_where_scored = (pl.col("erosion_max") * 0, pl.col("jsn_max") * 0)
    imaging = pl.concat([
        exam("p1", 1, pl.col("erosion_max"), pl.col("jsn_max")),                  # every area at max
        exam("p1", 2, *zero_where_scored).filter(pl.col("joint") != "right_foot_mtp5"),  # area missing
        exam("p2", 1, *zero_where_scored).with_columns(                            # JSN of an MCP null
            pl.when(pl.col("joint") == "left_hand_mcp2").then(None).otherwise(pl.col("jsn")).alias("jsn")),
        pl.DataFrame({                                                             # three areas only
            "patient_id": ["p3"] * 3, "exam_date": [date(2024, 1, 1)] * 3,
            "joint": ["left_hand_mcp2", "right_foot_mtp1", "left_hand_ulna"],
            "erosion": [3, 7, 1], "jsn": [2, 1, None], "source": ["model"] * 3,
        }),
    ], how="vertical_relaxed")
    expected = pl.DataFrame({
        "patient_id": ["p1", "p1", "p2", "p3"],
        "exam_date": [date(2024, 1, d) for d in (1, 2, 1, 1)],
        "erosion_total": [280, 0, 0, 11],
        "jsn_total": [168, 0, 0, 3],
        "svdh_total": [448, 0, 0, 14],
        "erosion_hands": [160, 0, 0, 4],
        "erosion_feet": [120, 0, 0, 7],
        "jsn_hands": [120, 0, 0, 2],
        "jsn_feet": [48, 0, 0, 1],
        "n_areas": [56, 55, 56, 3],
        "complete": [True, False, False, False],
    })
    out = c.svdh_totals(imaging)
    assert isinstance(out, pl.DataFrame)
    assert_frame_equal(out, expected, check_dtypes=False)
    lazy = c.svdh_totals(imaging.lazy())
    assert isinstance(lazy, pl.LazyFrame)
    assert_frame_equal(lazy.collect(), out)
