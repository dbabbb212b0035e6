"""Build a cohort: one row per treatment episode with its features as of the index date and its outcomes."""
from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from rxpredict.cohort.episodes import EPISODE_KEY, history_features, treatment_episodes, with_baseline_visit
from rxpredict.cohort.outcomes import progression_outcomes, response_outcomes, retention_outcomes
from rxpredict.cohort.rules import CohortRules
from rxpredict.features import exam_totals, feature_blocks, feature_columns, genetic_markers
from rxpredict.registry import Registry

#: Polars engine for the cohort: the in-memory engine runs these as-of joins several times faster.
ENGINE = "in-memory"

#: Outcome columns and the status column that explains a missing label.
OUTCOME_STATUS = {"response": "response_status", "rrp": "rrp_status", "retention": "retention_event"}


@dataclass
class Cohort:
    """Episodes with features and outcomes.

    Attributes
    ----------
    frame : pl.DataFrame
        One row per episode (patient_id, index_date, therapy), features by
        block (``clinical_*``, ``genetic_*``, ``imaging_*``, ``wearable_*`` with
        ``mask_*``), and outcomes with their status columns.
    rules : CohortRules
        The windows used.
    blocks : dict[str, list[str]]
        Feature columns of each block.
    markers : list of str
        The genetic markers behind the ``genetic_*`` columns.
    """

    frame: pl.DataFrame
    rules: CohortRules
    blocks: dict[str, list[str]] = field(default_factory=dict)
    #: Genetic markers the cohort has columns for (a model stores them to score with the same columns).
    markers: list[str] = field(default_factory=list)

    def summary(self) -> pl.DataFrame:
        """How many episodes each rule left without a baseline or an outcome label, per outcome."""
        f = self.frame
        rows = [pl.DataFrame({"outcome": "baseline_visit", "status": "found" if ok else "no_baseline_visit",
                              "episodes": n}) for ok, n in
                f.group_by(pl.col("baseline_visit_date").is_not_null()).len().iter_rows()]
        for outcome, col in OUTCOME_STATUS.items():
            counts = f.group_by(col).len().rename({col: "status", "len": "episodes"})
            rows.append(counts.select(pl.lit(outcome).alias("outcome"), pl.col("status").cast(pl.String), "episodes"))
        return pl.concat([r.cast({"episodes": pl.Int64}) for r in rows]).sort("outcome", "status", nulls_last=True)

    def print_summary(self) -> None:
        f = self.frame
        print(f"{f.height} episodes of {f['patient_id'].n_unique()} patients; rules: {self.rules.to_dict()}")
        with pl.Config(tbl_rows=-1):
            print(self.summary())

def _requested_episodes(registry: Registry, pairs: pl.DataFrame) -> pl.LazyFrame:
    """Treatment starts at the requested (patient_id, index_date) pairs, and a therapy-less episode for
    each pair where nothing started (scoring a patient on a chosen date)."""
    unknown = pairs.join(registry["patients"], on="patient_id", how="anti")
    if unknown.height:
        raise ValueError(f"episodes name {unknown.height} patient(s) not in the registry, "
                         f"e.g. {unknown['patient_id'][0]!r}")
    pairs = (
        pairs.lazy()
        .select("patient_id", pl.col("index_date").cast(pl.Date))
        .unique()
        .join(registry.keyed("patients").select("patient_id", "_pid"), on="patient_id")
    )
    starts = treatment_episodes(registry).join(pairs, on=["patient_id", "index_date"], how="semi")
    virtual = pairs.join(starts, on=["patient_id", "index_date"], how="anti").with_columns(
        pl.lit(None, dtype=pl.String).alias("therapy"), pl.lit(None, dtype=pl.String).alias("drug"),
        pl.lit(None, dtype=pl.Date).alias("course_stop_date"), pl.lit(None, dtype=pl.String).alias("course_stop_reason"))
    return pl.concat([starts, virtual.select(starts.collect_schema().names())], how="vertical")


def build_cohort(registry: Registry, *, rules: CohortRules | None = None, episodes: pl.DataFrame | None = None,
                 markers: list[str] | None = None) -> Cohort:
    """Episodes, features as of each index date, and outcomes, from a validated registry.

    Parameters
    ----------
    registry : Registry
        From :func:`rxpredict.registry.read_registry`.
    rules : CohortRules, optional
        Windows and thresholds; the data contract's by default.
    episodes : DataFrame with patient_id and index_date, optional
        Restrict to these pairs; a pair with no therapy start becomes an
        episode with features only (``therapy`` null), which is how one
        patient is scored on a chosen date.
    markers : list of str, optional
        Genetic marker columns to produce (a trained model's), instead of the registry's.
    """
    rules = rules or CohortRules()
    markers = genetic_markers(registry) if markers is None else list(markers)
    eps = treatment_episodes(registry) if episodes is None else _requested_episodes(registry, episodes)
    # The episode table is the boundary: collected once, then every feature block and outcome reads it,
    # all computed together (one plan per block would recompute the episodes for each).
    skeleton = with_baseline_visit(history_features(eps, registry, rules), registry, rules).collect(engine=ENGINE)
    dates = skeleton.lazy().select("patient_id", "_pid", "index_date", "baseline_visit_date").unique()
    exams = exam_totals(registry).collect(engine=ENGINE).lazy()  # shared by the imaging block and progression
    blocks = feature_blocks(dates, registry, markers=markers, lookahead_days=rules.leakage_after, exams=exams)
    outcomes = [response_outcomes(skeleton.lazy(), registry, rules),
                progression_outcomes(skeleton.lazy(), registry, rules, exams=exams),
                retention_outcomes(skeleton.lazy(), registry)]
    done = pl.collect_all(blocks + outcomes, engine=ENGINE)
    frame = skeleton
    for part in done[: len(blocks)]:
        frame = frame.join(part.drop("baseline_visit_date", "_pid", strict=False), on=["patient_id", "index_date"],
                           how="left")
    for part in done[len(blocks):]:
        new = [c for c in part.columns if c not in frame.columns and c != "_pid"]
        frame = frame.join(part.select(*EPISODE_KEY, *new), on=EPISODE_KEY, how="left", nulls_equal=True)
    frame = frame.drop("_pid").sort(EPISODE_KEY, nulls_last=True)
    return Cohort(frame=frame, rules=rules, blocks=feature_columns(frame), markers=markers)
