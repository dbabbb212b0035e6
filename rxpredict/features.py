"""Model features of treatment episodes, strictly as of each episode's index date.

Four blocks, each a lazy function ``(episodes, registry) -> LazyFrame`` that
left-joins its columns onto the episodes (one row per input episode, every
input column kept, every episode kept even without data):

- ``clinical``: demographics, serology and smoking from ``patients``; the
  baseline visit's components and disease-activity scores.
- ``genetic``: the ``genetics`` table pivoted to one column per marker.
- ``imaging``: Sharp/van der Heijde totals of the latest exam and the
  progression rate between the last two exams.
- ``wearable``: 28-day means and 14-day trends of each wearable stream.

Why "as of": a feature must only use what a clinician could have known when
choosing the therapy. No visit, exam or wearable record dated after
``index_date + 7 days`` (the baseline window of the cohort definition) may
influence a feature; wearables stop the day before the index date. Genetics
are undated and static. Each block has a ``mask_<block>`` column (Int8, 1
where the block has data); features are Float64, prefixed by their block
(:data:`FEATURE_BLOCKS`) so blocks never collide. Row order is not kept: join
on ``patient_id`` and ``index_date``.

Example
-------
>>> features = build_features(episodes, registry)          # doctest: +SKIP
>>> feature_columns(features)["imaging"][:2]               # doctest: +SKIP
['imaging_erosion', 'imaging_jsn']
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import polars as pl

from rxpredict.asof import DAY_SPAN, asof_by_patient, patient_day_key
from rxpredict.clinical import svdh_totals, visit_scores
from rxpredict.registry import Registry
from rxpredict.schemas import load_contract

#: Block name -> prefix of its feature columns.
FEATURE_BLOCKS: dict[str, str] = {
    "clinical": "clinical_",
    "genetic": "genetic_",
    "imaging": "imaging_",
    "wearable": "wearable_",
}
#: Block name -> its mask column (1 where the block has data for the episode).
MASK_COLUMNS: dict[str, str] = {block: f"mask_{block}" for block in FEATURE_BLOCKS}

#: Default days after the index date whose records still count (the cohort's ``CohortRules.leakage_after``,
#: which the cohort builder passes; kept here only as the default of direct calls).
LOOKAHEAD_DAYS = 7
#: Derived visit scores taken from :func:`rxpredict.clinical.visit_scores`.
VISIT_SCORES = ("das28_esr", "das28_crp", "cdai", "sdai")
WEARABLE_WINDOW_DAYS = 28
WEARABLE_TREND_DAYS = 14
#: Fewer days with wearable data than this in the window masks the block.
WEARABLE_MIN_DAYS = 7
DAYS_PER_YEAR = 365.25

_MASK_DTYPE = pl.Int8


def _numeric_columns(table: str) -> list[str]:
    """The contract's integer and number columns of a table, in schema order."""
    return [f.name for f in load_contract().tables[table].fields if f.type in ("integer", "number")]


def _cutoff(lookahead_days: int) -> pl.Expr:
    """The last record date that may inform an episode's features."""
    return pl.col("index_date") + pl.duration(days=lookahead_days)


def years_between(later: pl.Expr, earlier: pl.Expr) -> pl.Expr:
    """Years (of 365.25 days) between two dates."""
    return (later - earlier).dt.total_days() / DAYS_PER_YEAR


def _mask(present: pl.Expr, block: str) -> pl.Expr:
    """The block's mask: 1 where ``present`` (a join marker or condition) is true, else 0."""
    return present.fill_null(False).cast(_MASK_DTYPE).alias(MASK_COLUMNS[block])


def _feature(expr: pl.Expr, name: str) -> pl.Expr:
    """A feature column: Float64 whatever the source dtype, so training and scoring frames agree."""
    return expr.cast(pl.Float64).alias(name)


def _with_pid(episodes: pl.LazyFrame, registry: Registry) -> pl.LazyFrame:
    """The episodes with ``_pid`` (the registry's integer patient number; see :mod:`rxpredict.asof`)."""
    if "_pid" in episodes.collect_schema().names():
        return episodes
    return episodes.join(registry.keyed("patients").select("patient_id", "_pid"), on="patient_id", how="left")


def clinical_block(episodes: pl.LazyFrame, registry: Registry, lookahead_days: int = LOOKAHEAD_DAYS) -> pl.LazyFrame:
    """Demographics, serology, smoking and the baseline visit of each episode.

    The baseline visit is the patient's visit on ``baseline_visit_date``
    (ignored if that date is after index + 7 days); its components are
    ``clinical_<contract column>`` and its DAS28-ESR, DAS28-CRP, CDAI and SDAI
    come from :func:`rxpredict.clinical.visit_scores`. BMI, rarely recorded,
    falls back to the latest BMI of any visit up to index + 7 days.
    ``mask_clinical`` is 1 where a baseline visit exists; demographics are
    filled either way.
    """
    visit_features = [*_numeric_columns("visits"), *VISIT_SCORES]
    baseline = (
        registry.keyed("visits")
        .with_columns(e for e in visit_scores() if e.meta.output_name() in VISIT_SCORES)
        .select(
            "_pid",
            pl.col("visit_date").alias("_baseline_date"),
            *(_feature(pl.col(c), f"clinical_{c}") for c in visit_features),
            pl.lit(True).alias("_has_baseline"),
        )
    )
    latest_bmi = (
        registry.keyed("visits")
        .filter(pl.col("bmi_kg_m2").is_not_null())
        .select("_pid", pl.col("visit_date").alias("_bmi_date"), pl.col("bmi_kg_m2").alias("_bmi_latest"))
    )
    patients = (
        registry.keyed("patients")
        .select(
            "_pid",
            pl.col("birth_year").alias("_birth_year"),
            pl.col("diagnosis_date").alias("_diagnosis_date"),
            _feature(pl.col("sex") == "F", "clinical_female"),
            _feature(pl.col("rf_positive"), "clinical_rf"),
            _feature(pl.col("acpa_positive"), "clinical_acpa"),
            _feature(pl.col("smoking") == "current", "clinical_smoking_current"),
            _feature(pl.col("smoking") == "former", "clinical_smoking_former"),
        )
    )
    return (
        _with_pid(episodes, registry)
        .with_columns(
            pl.when(pl.col("baseline_visit_date") <= _cutoff(lookahead_days)).then("baseline_visit_date")
            .alias("_baseline_date"),
        )
        .join(patients, on="_pid", how="left")
        .join(baseline, on=["_pid", "_baseline_date"], how="left")
        .pipe(asof_by_patient, latest_bmi, left_on=_cutoff(lookahead_days), right_on="_bmi_date")
        .with_columns(
            _feature(pl.col("index_date").dt.year() - pl.col("_birth_year"), "clinical_age"),
            _feature(years_between(pl.col("index_date"), pl.col("_diagnosis_date")), "clinical_disease_years"),
            pl.coalesce("clinical_bmi_kg_m2", "_bmi_latest").alias("clinical_bmi_kg_m2"),
            _mask(pl.col("_has_baseline"), "clinical"),
        )
        .drop("_baseline_date", "_birth_year", "_diagnosis_date", "_has_baseline", "_bmi_date", "_bmi_latest")
    )


def genetic_column(marker: str) -> str:
    """The feature column of a genetic marker: ``genetic_`` + the name with non-alphanumerics as ``_``."""
    return "genetic_" + re.sub(r"[^0-9A-Za-z]", "_", marker)


def genetic_markers(registry: Registry) -> list[str]:
    """The distinct markers of the registry's genetics table, sorted (a small collect).

    A model stores this list at training and passes it as ``markers=`` when
    scoring, so that both see the same columns.
    """
    return (
        registry.lazy("genetics")
        .select(pl.col("marker").unique().sort())
        .collect()
        .to_series()
        .to_list()
    )


def genetic_block(episodes: pl.LazyFrame, registry: Registry, markers: Sequence[str] | None = None) -> pl.LazyFrame:
    """One ``genetic_<marker>`` column per marker and ``mask_genetic`` (1 where the patient has any genetics row).

    ``markers`` fixes the columns (a trained model's list): markers the
    registry lacks become null columns, markers it has beyond the list are
    dropped. By default every marker of the registry (:func:`genetic_markers`).
    """
    markers = genetic_markers(registry) if markers is None else list(dict.fromkeys(markers))
    columns = {m: genetic_column(m) for m in markers}
    uses = Counter(columns.values())
    if clashes := sorted(m for m, c in columns.items() if uses[c] > 1):
        raise ValueError(f"genetic markers {clashes} map to the same column name")
    per_patient = (
        registry.lazy("genetics")
        .pivot(on="marker", on_columns=markers, index="patient_id", values="value")
        .rename(columns)
        .with_columns(pl.lit(True).alias("_has_genetics"))
    )
    return (
        episodes
        .join(per_patient, on="patient_id", how="left")
        .with_columns(_mask(pl.col("_has_genetics"), "genetic"))
        .drop("_has_genetics")
    )


def exam_totals(registry: Registry) -> pl.LazyFrame:
    """Every radiographic exam, keyed by ``_pid`` and date, with its SvdH totals and completeness."""
    keyed = registry.keyed("imaging").drop("patient_id").with_columns(patient_day_key("exam_date").alias("_key"))
    return (
        svdh_totals(keyed, by=("_key",))  # one integer key groups a million exams far faster than two columns
        .with_columns(
            (pl.col("_key") // DAY_SPAN).cast(pl.UInt32, strict=False).alias("_pid"),
            (pl.col("_key") % DAY_SPAN).cast(pl.Date).alias("exam_date"),
        )
        .drop("_key")
    )


def imaging_block(episodes: pl.LazyFrame, registry: Registry, lookahead_days: int = LOOKAHEAD_DAYS,
                  exams: pl.LazyFrame | None = None) -> pl.LazyFrame:
    """SvdH totals of the latest exam up to index + 7 days, and the progression rate into it.

    ``imaging_progression_per_year`` is the total's change between the last
    two such exams divided by the years between them (null with one exam).
    ``imaging_days_since_exam`` is negative for an exam in the 7 days after
    the index date. ``exams`` (from :func:`exam_totals`) may be passed to
    share the totals with other users.
    """
    exams = exam_totals(registry) if exams is None else exams
    same_patient = pl.col("_pid") == pl.col("_pid").shift(1)
    previous = lambda column: pl.when(same_patient).then(pl.col(column).shift(1))  # noqa: E731
    per_year = (pl.col("svdh_total") - previous("svdh_total")) / years_between(pl.col("exam_date"), previous("exam_date"))
    features = (
        exams.sort("_pid", "exam_date")
        .select(
            "_pid",
            pl.col("exam_date").alias("_exam_date"),
            _feature(pl.col("erosion_total"), "imaging_erosion"),
            _feature(pl.col("jsn_total"), "imaging_jsn"),
            _feature(pl.col("svdh_total"), "imaging_total"),
            _feature(pl.col("erosion_hands"), "imaging_erosion_hands"),
            _feature(pl.col("erosion_feet"), "imaging_erosion_feet"),
            _feature(pl.col("jsn_hands"), "imaging_jsn_hands"),
            _feature(pl.col("jsn_feet"), "imaging_jsn_feet"),
            _feature(per_year, "imaging_progression_per_year"),
        )
    )
    return (
        _with_pid(episodes, registry)
        .pipe(asof_by_patient, features, left_on=_cutoff(lookahead_days), right_on="_exam_date")
        .with_columns(
            _feature((pl.col("index_date") - pl.col("_exam_date")).dt.total_days(), "imaging_days_since_exam"),
            _mask(pl.col("_exam_date").is_not_null(), "imaging"),
        )
        .drop("_exam_date")
    )


#: Anchors of the cumulative wearable sums: days before the index date (exclusive ends of the windows).
_ANCHORS = {"_end": 1, "_mid": 1 + WEARABLE_TREND_DAYS, "_start": 1 + WEARABLE_WINDOW_DAYS}


def _cumulative(anchor: str, column: str) -> pl.Expr:
    """A running total as of an anchor date (0 before the patient's first wearable day)."""
    return pl.col(f"{column}{anchor}").fill_null(0)


def _window_mean(stream: str, first: str, last: str) -> pl.Expr:
    """Mean of a stream over the days after anchor ``first`` up to anchor ``last`` (null without values)."""
    total = _cumulative(last, f"_sum_{stream}") - _cumulative(first, f"_sum_{stream}")
    count = _cumulative(last, f"_n_{stream}") - _cumulative(first, f"_n_{stream}")
    return pl.when(count > 0).then(total / count)


def wearable_block(episodes: pl.LazyFrame, registry: Registry) -> pl.LazyFrame:
    """28-day means and 14-day trends of each wearable stream before the index date.

    For each stream of the contract: ``wearable_<stream>_mean28`` over index-28
    .. index-1 and ``wearable_<stream>_trend``, the mean of the last 14 of
    those days minus the mean of the 14 before; ``wearable_days28`` counts
    days with any value. ``mask_wearable`` is 1 from ``WEARABLE_MIN_DAYS``
    days on; below that every feature of the block is null.

    Why running totals: per patient, cumulative sums and counts by date are
    read by backward as-of joins at index-1, index-15 and index-29 days, and
    window sums are their differences. That is exact whatever the gaps in the
    data, and costs one sort of the wearables and three as-of joins (no cross
    or range join); rolling windows at inserted anchor rows measured 2-3.5x slower.
    """
    streams = _numeric_columns("wearables")
    totals = ["_days", *(f"_sum_{s}" for s in streams), *(f"_n_{s}" for s in streams)]
    running = (
        registry.keyed("wearables")
        .sort("_pid", "date")
        .select(
            "_pid",
            "date",
            pl.any_horizontal(pl.col(s).is_not_null() for s in streams).cast(pl.Int32).cum_sum().over("_pid")
            .alias("_days"),
            *(pl.col(s).fill_null(0).cum_sum().over("_pid").alias(f"_sum_{s}") for s in streams),
            *(pl.col(s).is_not_null().cast(pl.Int32).cum_sum().over("_pid").alias(f"_n_{s}") for s in streams),
        )
    )
    frame = _with_pid(episodes, registry).with_columns(
        pl.col("index_date").dt.offset_by(f"-{days}d").alias(a) for a, days in _ANCHORS.items())
    for anchor in _ANCHORS:
        frame = asof_by_patient(frame, running.rename(lambda c, a=anchor: c if c == "_pid" else f"{c}{a}"),
                                left_on=anchor, right_on=f"date{anchor}")
    days = _cumulative("_end", "_days") - _cumulative("_start", "_days")
    features = {"wearable_days28": days}
    for s in streams:
        features[f"wearable_{s}_mean28"] = _window_mean(s, "_start", "_end")
        features[f"wearable_{s}_trend"] = _window_mean(s, "_mid", "_end") - _window_mean(s, "_start", "_mid")
    enough = days >= WEARABLE_MIN_DAYS
    return (
        frame
        .with_columns(
            *(_feature(pl.when(enough).then(expr), name) for name, expr in features.items()),
            _mask(enough, "wearable"),
        )
        .drop(*_ANCHORS, *(f"{c}{a}" for a in _ANCHORS for c in ["date", *totals]))
    )


def _blocks(registry: Registry, markers: Sequence[str] | None, lookahead_days: int,
            exams: pl.LazyFrame | None) -> list[Callable[[pl.LazyFrame], pl.LazyFrame]]:
    """The four blocks, in block order, with their arguments bound: the one list both entry points use."""
    return [
        lambda e: clinical_block(e, registry, lookahead_days),
        lambda e: genetic_block(e, registry, markers),
        lambda e: imaging_block(e, registry, lookahead_days, exams=exams),
        lambda e: wearable_block(e, registry),
    ]


def feature_blocks(episodes: pl.LazyFrame, registry: Registry, *, markers: Sequence[str] | None = None,
                   lookahead_days: int = LOOKAHEAD_DAYS, exams: pl.LazyFrame | None = None) -> list[pl.LazyFrame]:
    """Each block as its own plan over the same episodes, to be collected together (``pl.collect_all``)."""
    return [block(episodes) for block in _blocks(registry, markers, lookahead_days, exams)]


def build_features(episodes: pl.LazyFrame, registry: Registry, markers: Sequence[str] | None = None, *,
                   lookahead_days: int = LOOKAHEAD_DAYS, exams: pl.LazyFrame | None = None) -> pl.LazyFrame:
    """Every feature block joined onto the episodes (all their columns kept), lazily.

    ``episodes`` needs ``patient_id``, ``index_date`` and
    ``baseline_visit_date``; ``markers`` is passed to :func:`genetic_block`.
    With polars 2 the in-memory engine (``collect(engine="in-memory")``) ran
    this plan faster than the default streaming one in our measurements.
    """
    frame = episodes
    for block in _blocks(registry, markers, lookahead_days, exams):
        frame = block(frame)
    return frame


def feature_columns(frame_or_schema: pl.DataFrame | pl.LazyFrame | Mapping[str, Any]) -> dict[str, list[str]]:
    """Each block's feature columns (masks excluded) present in a frame or schema, in column order."""
    if isinstance(frame_or_schema, (pl.DataFrame, pl.LazyFrame)):
        frame_or_schema = frame_or_schema.collect_schema()
    names = list(frame_or_schema)
    return {block: [c for c in names if c.startswith(prefix)] for block, prefix in FEATURE_BLOCKS.items()}
