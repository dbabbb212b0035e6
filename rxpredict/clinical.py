"""Clinical scores of rheumatoid arthritis as polars expressions.

Disease activity (DAS28-ESR, DAS28-CRP, CDAI, SDAI) and its categories, the
EULAR and ACR20/50/70 responses, the HAQ-DI and the Sharp/van der Heijde
totals, exactly as ``clinical-reference.md`` defines them. Every score is a
function returning a ``pl.Expr`` so that cohort and feature pipelines can
combine them in one lazy ``with_columns``; column names default to the data
contract's, and anything that is data (HAQ-DI items, joint areas) comes from
:func:`rxpredict.schemas.load_contract`.

Example
-------
>>> import polars as pl
>>> visits = pl.DataFrame({"tjc28": [4], "sjc28": [1], "esr_mm_h": [20.0],
...                        "crp_mg_l": [9.0], "patient_global_0_100": [50.0],
...                        "physician_global_0_100": [40.0]})
>>> visits.with_columns(visit_scores())["cdai_category"].to_list()
['moderate']
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeAlias, TypeVar

import polars as pl

from rxpredict.schemas import load_contract

ExprLike: TypeAlias = str | pl.Expr
Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)

#: Disease-activity categories, mildest first (an ordered polars Enum).
ACTIVITY_CATEGORIES = pl.Enum(["remission", "low", "moderate", "high"])
#: EULAR response levels, best first.
EULAR_RESPONSES = pl.Enum(["good", "moderate", "none"])

#: (remission, low, moderate) upper bounds per index; above the last is high.
ACTIVITY_THRESHOLDS: dict[str, tuple[float, float, float]] = {
    "das28": (2.6, 3.2, 5.1),
    "cdai": (2.8, 10.0, 22.0),
    "sdai": (3.3, 11.0, 26.0),
}

#: ACR components: both core counts must improve, and at least
#: ``ACR_MIN_OTHERS`` of the others (the acute-phase reactant included).
ACR_CORE = ("tjc28", "sjc28")
ACR_OTHERS = ("patient_global_0_100", "physician_global_0_100", "pain_0_100", "haq_di")
ACR_MIN_OTHERS = 3
ACR_LEVELS = (20, 50, 70)

#: Decimals an improvement is rounded to before it meets a EULAR boundary:
#: far below clinical precision, enough to absorb float subtraction error.
_EULAR_DECIMALS = 9


def _col(x: ExprLike) -> pl.Expr:
    return pl.col(x) if isinstance(x, str) else x


def _das28_joints_and_global(tjc: ExprLike, sjc: ExprLike, ptga: ExprLike) -> pl.Expr:
    """The DAS28 terms that ESR and CRP versions share."""
    return 0.56 * _col(tjc).sqrt() + 0.28 * _col(sjc).sqrt() + 0.014 * _col(ptga)


def das28_esr(
    tjc: ExprLike = "tjc28",
    sjc: ExprLike = "sjc28",
    esr: ExprLike = "esr_mm_h",
    ptga: ExprLike = "patient_global_0_100",
) -> pl.Expr:
    """DAS28-ESR = 0.56*sqrt(TJC) + 0.28*sqrt(SJC) + 0.70*ln(ESR) + 0.014*PtGA.

    ESR below 1 mm/h is raised to 1, since ln(0) is undefined (see
    :func:`esr_floored`). Null when any input is null.
    """
    esr_used = _col(esr).clip(lower_bound=1.0)
    return (_das28_joints_and_global(tjc, sjc, ptga) + 0.70 * esr_used.log()).alias("das28_esr")


def esr_floored(esr: ExprLike = "esr_mm_h") -> pl.Expr:
    """True where an ESR below 1 was raised to 1 for DAS28-ESR, so reports can say so.

    False where ESR is null: nothing was raised (DAS28-ESR is null there).
    """
    return (_col(esr) < 1).fill_null(False).alias("esr_floored")


def das28_crp(
    tjc: ExprLike = "tjc28",
    sjc: ExprLike = "sjc28",
    crp: ExprLike = "crp_mg_l",
    ptga: ExprLike = "patient_global_0_100",
) -> pl.Expr:
    """DAS28-CRP = 0.56*sqrt(TJC) + 0.28*sqrt(SJC) + 0.36*ln(CRP mg/L + 1) + 0.014*PtGA + 0.96."""
    return (_das28_joints_and_global(tjc, sjc, ptga) + 0.36 * (_col(crp) + 1).log() + 0.96).alias("das28_crp")


def _cdai_times_10(tjc: ExprLike, sjc: ExprLike, ptga: ExprLike, phga: ExprLike) -> pl.Expr:
    """10*(TJC + SJC) + PtGA + PhGA (globals 0-100): ten times the CDAI.

    CDAI and SDAI divide this once by 10, so integer-valued inputs give the
    exact decimal score (2.8, not 2.8000000000000003) and boundary values land
    in the category the reference table says.
    """
    return 10 * (_col(tjc) + _col(sjc)) + _col(ptga) + _col(phga)


def cdai(
    tjc: ExprLike = "tjc28",
    sjc: ExprLike = "sjc28",
    ptga: ExprLike = "patient_global_0_100",
    phga: ExprLike = "physician_global_0_100",
) -> pl.Expr:
    """CDAI = TJC + SJC + PtGA/10 + PhGA/10 (globals stored 0-100, CDAI uses 0-10); range 0-76."""
    return (_cdai_times_10(tjc, sjc, ptga, phga) / 10).alias("cdai")


def sdai(
    tjc: ExprLike = "tjc28",
    sjc: ExprLike = "sjc28",
    ptga: ExprLike = "patient_global_0_100",
    phga: ExprLike = "physician_global_0_100",
    crp: ExprLike = "crp_mg_l",
) -> pl.Expr:
    """SDAI = CDAI + CRP in mg/dL (CRP mg/L / 10)."""
    return ((_cdai_times_10(tjc, sjc, ptga, phga) + _col(crp)) / 10).alias("sdai")


def activity_category(score: ExprLike, index: Literal["das28", "cdai", "sdai"]) -> pl.Expr:
    """Disease-activity category of a score: remission, low, moderate or high.

    DAS28 remission is strictly below 2.6; CDAI and SDAI remission, and every
    other upper bound, include the boundary. Null score gives null. The result
    is an ordered Enum (:data:`ACTIVITY_CATEGORIES`) named ``<score>_category``.
    """
    if index not in ACTIVITY_THRESHOLDS:
        raise ValueError(f"index must be one of {sorted(ACTIVITY_THRESHOLDS)}, not {index!r}")
    remission, low, moderate = ACTIVITY_THRESHOLDS[index]
    s = _col(score)
    in_remission = s < remission if index == "das28" else s <= remission
    name = s.meta.output_name(raise_if_undetermined=False) or index
    return (
        pl.when(in_remission).then(pl.lit("remission"))
        .when(s <= low).then(pl.lit("low"))
        .when(s <= moderate).then(pl.lit("moderate"))
        .when(s > moderate).then(pl.lit("high"))
        .cast(ACTIVITY_CATEGORIES)
        .alias(f"{name}_category")
    )


def eular_response(baseline: ExprLike, followup: ExprLike) -> pl.Expr:
    """EULAR response (good, moderate, none) from DAS28 at baseline and follow-up.

    improvement = baseline - follow-up; the reference table, row by follow-up DAS28:
    <= 3.2: good if improvement > 1.2, moderate if > 0.6, else none;
    <= 5.1: moderate if improvement > 0.6, else none;
    > 5.1: moderate if improvement > 1.2, else none.
    The improvement is rounded to 9 decimals first so that, e.g., 4.4 -> 3.2
    is an improvement of exactly 1.2 (moderate), not 1.2000000000000002.
    Null where either DAS28 is null.
    """
    b, f = _col(baseline), _col(followup)
    improvement = (b - f).round(_EULAR_DECIMALS)
    return (
        pl.when(improvement.is_null()).then(pl.lit(None, dtype=pl.String))
        .when((f <= 3.2) & (improvement > 1.2)).then(pl.lit("good"))
        .when((f <= 5.1) & (improvement > 0.6)).then(pl.lit("moderate"))
        .when(improvement > 1.2).then(pl.lit("moderate"))
        .otherwise(pl.lit("none"))
        .cast(EULAR_RESPONSES)
        .alias("eular_response")
    )


def _acr_improved(column: str, level: int, baseline_prefix: str, followup_prefix: str) -> pl.Expr:
    """(baseline - follow-up) / baseline >= level %, False where baseline is 0 or either is null.

    Compared as 100*(b - f) >= level*b, which is exact for counts and HAQ-DI steps.
    """
    b, f = pl.col(baseline_prefix + column), pl.col(followup_prefix + column)
    return ((b > 0) & (100 * (b - f) >= level * b)).fill_null(False)


def acr_response(level: int, baseline_prefix: str = "baseline_", followup_prefix: str = "") -> pl.Expr:
    """ACR20/50/70 met (boolean) between a baseline and a follow-up visit on one row.

    Met when TJC28 and SJC28 both improve by at least ``level`` %, and at least
    3 of 5 others do: patient global, physician global, pain, HAQ-DI and the
    acute-phase reactant (CRP where present at both visits, else ESR).
    Improvement is (baseline - follow-up) / baseline. A component whose
    baseline is 0 (no room to improve by a percentage) or with a null value at
    either visit counts as not met, so missing data never makes a responder
    and the result is never null. Columns are ``<prefix><contract name>``.
    """
    if level not in ACR_LEVELS:
        raise ValueError(f"ACR level must be one of {ACR_LEVELS}, not {level!r}")

    def improved(column: str) -> pl.Expr:
        return _acr_improved(column, level, baseline_prefix, followup_prefix)

    crp_at_both = pl.all_horizontal(pl.col(p + "crp_mg_l").is_not_null() for p in (baseline_prefix, followup_prefix))
    acute_phase = pl.when(crp_at_both).then(improved("crp_mg_l")).otherwise(improved("esr_mm_h"))
    others_met = pl.sum_horizontal([improved(c).cast(pl.Int32) for c in ACR_OTHERS] + [acute_phase.cast(pl.Int32)])
    core_met = pl.all_horizontal([improved(c) for c in ACR_CORE])
    return (core_met & (others_met >= ACR_MIN_OTHERS)).alias(f"acr{level}")


def acr_level(baseline_prefix: str = "baseline_", followup_prefix: str = "") -> pl.Expr:
    """Highest ACR response met: 70, 50, 20, or 0 for none (Int64); see :func:`acr_response`."""
    expr = pl.lit(0)
    for level in ACR_LEVELS:
        expr = pl.when(acr_response(level, baseline_prefix, followup_prefix)).then(pl.lit(level)).otherwise(expr)
    return expr.cast(pl.Int64).alias("acr_level")


def haq_di(round_to_step: bool = True) -> pl.Expr:
    """HAQ-DI from the 20 item columns (0-3, null = unanswered) and 8 aid columns (null = no aid).

    A category scores its worst answered item, raised to ``aid_score`` (2)
    where its aid is used; an aid never lowers a 3, and a category with no
    answered item stays unanswered whatever the aid. HAQ-DI is the mean of the
    answered categories, null unless at least ``min_categories`` (6) are.
    With 6 or 7 categories the exact mean is k/6 or k/7, not a multiple of
    0.125, while the data contract stores HAQ-DI in steps of 0.125; with
    ``round_to_step`` it is rounded to the nearest step (k/6 and k/7 are never
    exactly halfway between two steps, so no tie rule is needed).
    """
    haq = load_contract().haq
    categories = []
    for cat in haq.categories:
        worst = pl.max_horizontal([pl.col(i) for i in cat.items])
        aid = pl.col(cat.aid_column).fill_null(False)
        categories.append(pl.when(aid & (worst < haq.aid_score)).then(pl.lit(haq.aid_score)).otherwise(worst))
    answered = pl.sum_horizontal([c.is_not_null() for c in categories])
    mean = pl.mean_horizontal(categories)
    if round_to_step:
        mean = (mean / haq.step).round() * haq.step
    return pl.when(answered >= haq.min_categories).then(mean).alias("haq_di")


def visit_scores() -> list[pl.Expr]:
    """Derived columns of a visits frame: ``visits.with_columns(visit_scores())``.

    das28_esr, das28_crp, cdai, sdai, their four ``*_category`` columns and
    esr_floored, all from the data contract's column names.
    """
    return [
        das28_esr(),
        das28_crp(),
        cdai(),
        sdai(),
        activity_category(das28_esr(), "das28"),
        activity_category(das28_crp(), "das28"),
        activity_category(cdai(), "cdai"),
        activity_category(sdai(), "sdai"),
        esr_floored(),
    ]


def score_visit(record: Mapping[str, Any]) -> dict[str, Any]:
    """The :func:`visit_scores` of one visit given as a dict (the app scores as the user types).

    Missing keys count as null; categories come back as strings.
    """
    exprs = visit_scores()
    dtypes = load_contract().tables["visits"].polars_schema
    inputs = sorted({name for e in exprs for name in e.meta.root_names()})
    row = pl.DataFrame([{c: record.get(c) for c in inputs}], schema={c: dtypes[c] for c in inputs})
    return row.select(exprs).row(0, named=True)


def svdh_totals(imaging: Frame, by: Sequence[str] = ("patient_id", "exam_date")) -> Frame:
    """Sharp/van der Heijde totals per exam from an imaging table (one row per joint area).

    One row per (patient_id, exam_date): erosion_total, jsn_total, svdh_total,
    erosion_hands, erosion_feet, jsn_hands, jsn_feet, n_areas (rows present)
    and complete: every joint area of the contract present, with every
    feature it is scored for non-null. Null scores add nothing to a sum; such
    an exam is not complete. Lazy in, lazy out. ``by`` names the exam key
    (the cohort builder groups by its integer patient number instead).
    """
    areas = load_contract().joint_area_frame
    # Each joint's position in the vocabulary (a small integer; null if unknown) finds its area row in a
    # 56-row table: far cheaper than joining tens of millions of rows on the joint name.
    names = areas.get_column("joint").to_list()
    area_rows = areas.lazy().select(
        pl.int_range(pl.len(), dtype=pl.UInt32).alias("_code"),
        pl.col("erosion_max").is_not_null().alias("_erosion_scored"),
        pl.col("jsn_max").is_not_null().alias("_jsn_scored"),
        (pl.col("region") == "hand").cast(pl.Int64).alias("_hand"),
        (pl.col("region") == "foot").cast(pl.Int64).alias("_foot"),
    )
    scored = (
        pl.col("_code").is_not_null()
        & (~pl.col("_erosion_scored") | pl.col("erosion").is_not_null())
        & (~pl.col("_jsn_scored") | pl.col("jsn").is_not_null())
    )
    out = (
        imaging.lazy()
        .with_columns(pl.col("joint").cast(pl.Enum(names), strict=False).to_physical().cast(pl.UInt32).alias("_code"))
        .join(area_rows, on="_code", how="left")
        # Per row, before grouping, so that the groups only add up.
        .with_columns(
            (pl.col("erosion") * pl.col("_hand")).alias("erosion_hands"),
            (pl.col("erosion") * pl.col("_foot")).alias("erosion_feet"),
            (pl.col("jsn") * pl.col("_hand")).alias("jsn_hands"),
            (pl.col("jsn") * pl.col("_foot")).alias("jsn_feet"),
            scored.alias("_scored"),
        )
        .group_by(*by)
        .agg(
            pl.col("erosion").sum().alias("erosion_total"),
            pl.col("jsn").sum().alias("jsn_total"),
            pl.col("erosion_hands", "erosion_feet", "jsn_hands", "jsn_feet").sum(),
            pl.len().alias("n_areas"),
            # Joint areas are unique per exam (the imaging table's key), so a count is a distinct count.
            (pl.col("_scored").sum() == areas.height).alias("complete"),
        )
        .with_columns((pl.col("erosion_total") + pl.col("jsn_total")).alias("svdh_total"))
        .select(
            *by, "erosion_total", "jsn_total", "svdh_total",
            "erosion_hands", "erosion_feet", "jsn_hands", "jsn_feet", "n_areas", "complete",
        )
        .sort(*by)
    )
    return out.collect() if isinstance(imaging, pl.DataFrame) else out
