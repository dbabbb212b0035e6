"""How close the radiograph scorer comes to a reader: score errors, agreement and landmark errors.

Plain functions in the scikit-learn manner, ``metric(truth, predicted)``. Score
tables are polars frames in the RA2-DREAM CSV layout (one row per patient:
``Patient_ID``, the ``Overall_*`` totals and one column per joint area and
kind, see :mod:`rxpredict.imaging.layout`); the reader's scores are the truth
and the model's may be whole or expected (decimal) scores. Columns outside the
layout are ignored. Two frames that do not describe the same patients and
columns raise ``ValueError`` naming what differs, so an error is never
averaged over a silently smaller set.

Landmarks are, per film, joint area -> ``(x, y)`` pixel centres; their error
is also given relative to the film's joint spacing, so films of any
resolution and magnification compare.

Example
-------
>>> per_joint(reader, model).filter(pl.col("rmse_over_sd") > 0.5)   # doctest: +SKIP
>>> summary(reader, model)["rmse_joint"]                               # doctest: +SKIP
"""
from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from itertools import pairwise
from typing import Literal, TypeAlias

import numpy as np
import polars as pl

from rxpredict.imaging.layout import ra2_dream_mapping

ArrayLike: TypeAlias = Sequence[float] | np.ndarray | pl.Series
Point: TypeAlias = tuple[float, float]
Landmarks: TypeAlias = Mapping[str, Point]

#: The RA2-DREAM patient weight bins on the true ``Overall_Tol``: a patient
#: whose total is below ``_WEIGHT_EDGES[i]`` (and not below the edge before)
#: weighs ``_WEIGHTS[i]``; 149 and above weigh the last. From the challenge's
#: own scoring code (Sage-Bionetworks-Challenges/ra2-analysis,
#: ``calculate_weight`` in ``analysis/determine-top-performers.Rmd``).
_WEIGHT_EDGES = (1, 2, 4, 8, 21, 56, 149)
_WEIGHTS = (1.0, 2.0, 2.143547, 3.863745, 8.0, 16.0, 32.0, 64.0)

#: The joints whose adjacent centres define a film's joint spacing, per region.
SPACING_CHAINS = {"hand": ("mcp2", "mcp3", "mcp4", "mcp5"), "foot": ("mtp1", "mtp2", "mtp3", "mtp4", "mtp5")}


# --- score errors -------------------------------------------------------------------------------------------------


def _score_columns() -> pl.DataFrame:
    """The layout's score columns with their joint, kind, side-free area, maximum and position."""
    columns = ra2_dream_mapping().columns
    return pl.DataFrame({
        "column": [c.column for c in columns],
        "joint": [c.joint for c in columns],
        "kind": [c.score for c in columns],
        "area": [c.joint.split("_", 1)[1] for c in columns],
        "maximum": [c.maximum for c in columns],
        "_order": list(range(len(columns))),
    })


def _check_frames(truth: pl.DataFrame, predicted: pl.DataFrame) -> None:
    """Both frames have every layout column without nulls, unique IDs and the same patients; else ValueError."""
    mapping = ra2_dream_mapping()
    frames = {"truth": truth, "predicted": predicted}
    problems = []
    for name, frame in frames.items():
        missing = [c for c in mapping.csv_columns if c not in frame.columns]
        if missing:
            problems.append(f"{name} lacks column(s) {', '.join(missing)}")
            continue
        nulls = [c for c in mapping.csv_columns if frame[c].null_count()]
        if nulls:
            problems.append(f"{name} has empty values in {', '.join(nulls)}")
        repeated = frame[mapping.id_column].cast(pl.String).filter(frame[mapping.id_column].is_duplicated())
        if len(repeated):
            problems.append(f"{name} repeats patient(s) {', '.join(sorted(set(repeated)))}")
    if problems:
        raise ValueError("; ".join(problems))
    ids = {name: set(frame[mapping.id_column].cast(pl.String)) for name, frame in frames.items()}
    only_truth, only_predicted = sorted(ids["truth"] - ids["predicted"]), sorted(ids["predicted"] - ids["truth"])
    if only_truth or only_predicted:
        raise ValueError(f"patients differ: only in truth {only_truth or 'none'}, "
                         f"only in predicted {only_predicted or 'none'}")


def joint_errors(truth: pl.DataFrame, predicted: pl.DataFrame) -> pl.DataFrame:
    """One row per patient and score column: patient, column, joint, kind, area, maximum, truth, predicted.

    ``area`` is the joint without its side (``hand_mcp2``), so both sides pool.
    The long table every other score metric is computed from.
    """
    _check_frames(truth, predicted)
    mapping = ra2_dream_mapping()
    columns = [c.column for c in mapping.columns]

    def long(frame: pl.DataFrame, name: str) -> pl.DataFrame:
        return (frame.select(pl.col(mapping.id_column).cast(pl.String).alias("patient"),
                             pl.col(columns).cast(pl.Float64))
                .unpivot(index="patient", variable_name="column", value_name=name))

    return (long(truth, "truth").join(long(predicted, "predicted"), on=["patient", "column"])
            .join(_score_columns(), on="column")
            .sort("patient", "_order")
            .select("patient", "column", "joint", "kind", "area", "maximum", "truth", "predicted"))


def per_joint(truth: pl.DataFrame, predicted: pl.DataFrame, by: Literal["column", "area"] = "column") -> pl.DataFrame:
    """Error per score column (``by="column"``) or per side-free area and kind (``by="area"``, both sides pooled).

    Columns: the keys, n, rmse, sd (of the truth), rmse_over_sd, mean_truth,
    mean_predicted. ``sd`` is the population SD (divisor n), the RMSE of
    always predicting the mean, so ``rmse_over_sd`` is 1 for that trivial
    model and the acceptance "RMSE at most half the SD" reads
    ``rmse_over_sd <= 0.5``. It is null where the truth does not vary.
    """
    keys = {"column": ["column", "joint", "kind", "area", "maximum"], "area": ["area", "kind", "maximum"]}
    if by not in keys:
        raise ValueError(f"by must be 'column' or 'area', not {by!r}")
    error = pl.col("predicted") - pl.col("truth")
    return (
        joint_errors(truth, predicted)
        .group_by(keys[by], maintain_order=True)
        .agg(pl.len().cast(pl.Int64).alias("n"), (error ** 2).mean().sqrt().alias("rmse"),
             pl.col("truth").std(ddof=0).alias("sd"), pl.col("truth").mean().alias("mean_truth"),
             pl.col("predicted").mean().alias("mean_predicted"))
        .with_columns(pl.when(pl.col("sd") > 0).then(pl.col("rmse") / pl.col("sd")).alias("rmse_over_sd"))
        .select(*keys[by], "n", "rmse", "sd", "rmse_over_sd", "mean_truth", "mean_predicted")
    )


def per_patient(truth: pl.DataFrame, predicted: pl.DataFrame) -> pl.DataFrame:
    """Per patient: n, the RMSE over all its joint scores, and each true and predicted ``Overall_*`` total.

    Totals are named ``<total>_truth`` and ``<total>_predicted``; shows which
    patients (films) the scorer gets wrong, beside how damaged they are.
    """
    mapping = ra2_dream_mapping()
    error = pl.col("predicted") - pl.col("truth")
    rows = (joint_errors(truth, predicted).group_by("patient", maintain_order=True)
            .agg(pl.len().cast(pl.Int64).alias("n"), (error ** 2).mean().sqrt().alias("rmse")))
    for name, frame in (("truth", truth), ("predicted", predicted)):
        totals = frame.select(pl.col(mapping.id_column).cast(pl.String).alias("patient"),
                              *(pl.col(t).cast(pl.Float64).alias(f"{t}_{name}") for t in mapping.totals))
        rows = rows.join(totals, on="patient")
    return rows


def _paired_totals(truth: pl.DataFrame, predicted: pl.DataFrame, total: str) -> tuple[np.ndarray, np.ndarray]:
    """The true and predicted ``total`` of each patient, in the same patient order."""
    mapping = ra2_dream_mapping()
    if total not in mapping.totals:
        raise ValueError(f"total must be one of {', '.join(mapping.totals)}, not {total!r}")
    _check_frames(truth, predicted)
    pairs = (truth.select(pl.col(mapping.id_column).cast(pl.String), pl.col(total).cast(pl.Float64).alias("t"))
             .join(predicted.select(pl.col(mapping.id_column).cast(pl.String),
                                    pl.col(total).cast(pl.Float64).alias("p")), on=mapping.id_column))
    return pairs["t"].to_numpy(), pairs["p"].to_numpy()


def total_rmse(truth: pl.DataFrame, predicted: pl.DataFrame, total: str = "Overall_Tol") -> float:
    """Plain RMSE of a patient total (default the SvH total ``Overall_Tol``), in score points."""
    t, p = _paired_totals(truth, predicted, total)
    return float(np.sqrt(np.mean((p - t) ** 2)))


def challenge_weights(overall_tol: ArrayLike) -> np.ndarray:
    """The RA2-DREAM weight of each patient from its true SvH total (``Overall_Tol``).

    0 -> 1, 1 -> 2, 2-3 -> 2.143547, 4-7 -> 3.863745, 8-20 -> 8, 21-55 -> 16,
    56-148 -> 32, 149 and more -> 64: roughly doubling per bin so that the
    rarer damaged patients count as much as the many undamaged ones. The bins
    are the challenge's (``calculate_weight`` in the RA2-DREAM analysis code,
    Sage-Bionetworks-Challenges/ra2-analysis; Sun et al., JAMA Netw Open
    2022;5(8):e2227423). Totals are whole numbers; a decimal falls in the
    bin whose lower edge it has passed.
    """
    x = np.asarray(overall_tol, dtype=float)
    return np.asarray(_WEIGHTS)[np.searchsorted(_WEIGHT_EDGES, x, side="right")]


def weighted_total_rmse(truth: pl.DataFrame, predicted: pl.DataFrame, total: str = "Overall_Tol") -> float:
    """Challenge-style weighted RMSE of a patient total: sqrt(sum w (p - t)^2 / sum w), in score points.

    ``w`` is :func:`challenge_weights` of the patient's *true* ``Overall_Tol``
    (whatever ``total`` is scored), as in the RA2-DREAM challenge. The
    challenge itself ranked the total (its subchallenge 1) by the weighted
    mean absolute error of log2(total + 1), see :func:`challenge_scores`; this
    is the same weighting on the squared error of the raw total, which keeps
    score points as the unit.
    """
    t, p = _paired_totals(truth, predicted, total)
    svh, _ = _paired_totals(truth, predicted, "Overall_Tol")
    w = challenge_weights(svh)
    return float(np.sqrt(np.sum(w * (p - t) ** 2) / np.sum(w)))


def challenge_scores(truth: pl.DataFrame, predicted: pl.DataFrame) -> dict[str, float]:
    """The three RA2-DREAM challenge scores, lower is better, as its scoring code computes them.

    Predictions are clipped at 0, scores compared as log2(score + 1) and each
    patient weighted by :func:`challenge_weights` of its true ``Overall_Tol``:

    * ``sc1_weighted_abs_error``: sum w |log2(p+1) - log2(t+1)| / sum w over
      patients, on ``Overall_Tol``;
    * ``sc2_jsn_weighted_rmse`` / ``sc3_erosion_weighted_rmse``: per patient
      the RMSE of log2(score+1) over its JSN (erosion) columns, then the
      w-weighted mean of those patient RMSEs.
    """
    t, p = _paired_totals(truth, predicted, "Overall_Tol")
    w = challenge_weights(t)
    sc1 = float(np.sum(w * np.abs(np.log2(np.clip(p, 0, None) + 1) - np.log2(t + 1))) / np.sum(w))
    mapping = ra2_dream_mapping()
    weights = pl.DataFrame({"patient": truth[mapping.id_column].cast(pl.String).to_list(),
                            "weight": challenge_weights(truth["Overall_Tol"].cast(pl.Float64).to_numpy())})
    log_error = (pl.col("predicted").clip(lower_bound=0) + 1).log(2) - (pl.col("truth") + 1).log(2)
    patients = (joint_errors(truth, predicted).group_by("patient", "kind")
                .agg((log_error ** 2).mean().sqrt().alias("rmse")).join(weights, on="patient"))
    kind = {k: patients.filter(pl.col("kind") == k) for k in ("jsn", "erosion")}
    weighted = {k: float((f["weight"] * f["rmse"]).sum() / f["weight"].sum()) for k, f in kind.items()}
    return {"sc1_weighted_abs_error": sc1, "sc2_jsn_weighted_rmse": weighted["jsn"],
            "sc3_erosion_weighted_rmse": weighted["erosion"]}


# --- agreement with a reader --------------------------------------------------------------------------------------


def icc(a: ArrayLike | Sequence[Sequence[float]] | np.ndarray, b: ArrayLike | None = None) -> float:
    """ICC(2,1): two-way random effects, absolute agreement, single rating (Shrout & Fleiss 1979; McGraw & Wong 1996).

    ``icc(a, b)`` for two raters' ratings of the same n targets, or ``icc(x)``
    for an n targets x k raters array. With BMS, JMS and EMS the between-target,
    between-rater and residual mean squares of the two-way ANOVA,
    ICC = (BMS - EMS) / (BMS + (k - 1) EMS + k (JMS - EMS) / n): a rater's
    systematic offset lowers it, unlike a correlation. NaN where undefined
    (fewer than 2 targets or raters, or no variance at all).
    """
    x = np.asarray(a, dtype=float) if b is None else np.column_stack([np.asarray(a, float), np.asarray(b, float)])
    if x.ndim != 2:
        raise ValueError(f"icc needs an n x k array or two rating vectors, got shape {x.shape}")
    n, k = x.shape
    if n < 2 or k < 2:
        return math.nan
    grand = x.mean()
    ss_rows = k * np.sum((x.mean(axis=1) - grand) ** 2)
    ss_cols = n * np.sum((x.mean(axis=0) - grand) ** 2)
    ss_error = np.sum((x - grand) ** 2) - ss_rows - ss_cols
    bms, jms, ems = ss_rows / (n - 1), ss_cols / (k - 1), ss_error / ((n - 1) * (k - 1))
    denominator = bms + (k - 1) * ems + k * (jms - ems) / n
    return float((bms - ems) / denominator) if denominator > 0 else math.nan


def sdd(a: ArrayLike, b: ArrayLike) -> float:
    """Smallest detectable difference between paired ratings: 1.96 x SD(a - b) / sqrt(2).

    SD is the sample SD (divisor n - 1) of the paired differences, as in a
    Bland-Altman analysis; dividing by sqrt(2) turns the SD of a difference
    of two ratings into the error of one, as for the smallest detectable
    change of radiographic scores in RA (Bruynesteyn et al., Ann Rheum Dis
    2005;64:179-182). A score change below it is within scorer-reader
    disagreement. NaN for fewer than 2 pairs.
    """
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if d.size < 2:
        return math.nan
    return float(1.96 * np.std(d, ddof=1) / math.sqrt(2))


def agreement_by_area(truth: pl.DataFrame, predicted: pl.DataFrame) -> pl.DataFrame:
    """ICC(2,1) and SDD of scorer against reader per side-free area and kind, then per ``Overall_*`` total.

    Columns: area, kind, n, icc, sdd. Both sides of an area pool as separate
    targets (n = 2 x patients). Total rows have the total's name as area and
    its summed kinds (``erosion+jsn``) as kind.
    """
    rows = []
    for (area, kind), group in joint_errors(truth, predicted).group_by("area", "kind", maintain_order=True):
        t, p = group["truth"].to_numpy(), group["predicted"].to_numpy()
        rows.append((area, kind, len(t), icc(t, p), sdd(t, p)))
    for total, kinds in ra2_dream_mapping().totals.items():
        t, p = _paired_totals(truth, predicted, total)
        rows.append((total, "+".join(kinds), len(t), icc(t, p), sdd(t, p)))
    return pl.DataFrame(rows, orient="row",
                        schema={"area": pl.String, "kind": pl.String, "n": pl.Int64, "icc": pl.Float64,
                                "sdd": pl.Float64})


# --- landmarks ----------------------------------------------------------------------------------------------------


def joint_spacing(landmarks: Landmarks, suffix: str) -> float:
    """The film's joint spacing in pixels: mean distance between adjacent MCP (hand) or MTP (foot) centres.

    Hand: mcp2-mcp3, mcp3-mcp4, mcp4-mcp5; foot: mtp1-mtp2 ... mtp4-mtp5, of
    the film's side (``suffix`` LH, RH, LF or RF). Pairs with a centre
    missing are skipped; NaN if none is left. A scale of the film's anatomy,
    so a landmark error can be read in joint widths whatever the resolution.
    """
    part = ra2_dream_mapping().part(suffix)
    names = [f"{part.side}_{part.region}_{j}" for j in SPACING_CHAINS[part.region]]
    distances = [math.dist(landmarks[u], landmarks[v]) for u, v in pairwise(names)
                 if u in landmarks and v in landmarks]
    return float(np.mean(distances)) if distances else math.nan


def _suffix_of(film: Hashable, landmarks: Landmarks) -> str:
    """The image part (LH ...) whose side and region prefix every joint name of the film."""
    for part in ra2_dream_mapping().parts:
        if all(j.startswith(f"{part.side}_{part.region}_") for j in landmarks):
            return part.suffix
    raise ValueError(f"film {film!r}: joints {sorted(landmarks)} are not all of one hand or foot")


def _film_name(film: Hashable) -> str:
    return "-".join(map(str, film)) if isinstance(film, tuple) else str(film)


def landmark_errors(true: Mapping[Hashable, Landmarks], predicted: Mapping[Hashable, Landmarks]) -> pl.DataFrame:
    """Per film and joint present in both: film, joint, error_px, spacing_px, error_over_spacing.

    ``error_px`` is the Euclidean distance between the true and predicted
    centre; ``spacing_px`` the :func:`joint_spacing` of the *true* centres
    (the film's part read from its joint names). Film keys are any hashable;
    a tuple such as ``(patient, suffix)`` is shown joined by ``-`` (``P1-LH``),
    anything else as ``str``.
    """
    rows = []
    for film, centres in true.items():
        guessed = predicted.get(film, {})
        common = [j for j in centres if j in guessed]
        if not common:
            continue
        spacing = joint_spacing(centres, _suffix_of(film, centres))
        for joint in common:
            error = math.dist(centres[joint], guessed[joint])
            rows.append((_film_name(film), joint, error, spacing, error / spacing if spacing > 0 else math.nan))
    return pl.DataFrame(rows, orient="row",
                        schema={"film": pl.String, "joint": pl.String, "error_px": pl.Float64,
                                "spacing_px": pl.Float64, "error_over_spacing": pl.Float64})


# --- headline -----------------------------------------------------------------------------------------------------


def _finite(value: float | None) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def summary(truth: pl.DataFrame, predicted: pl.DataFrame, true_landmarks: Mapping[Hashable, Landmarks] | None = None,
            predicted_landmarks: Mapping[Hashable, Landmarks] | None = None) -> dict[str, float | None]:
    """Headline figures for a report or JSON file; None where a figure is undefined.

    ``rmse_joint`` pools every joint score; the SD criterion figures are over
    columns whose truth varies (SD > 0); ``*_total`` are on ``Overall_Tol``;
    ``sc1..sc3`` are :func:`challenge_scores`. Landmark figures are added when
    both landmark mappings are given.
    """
    if (true_landmarks is None) != (predicted_landmarks is None):
        raise ValueError("give both true_landmarks and predicted_landmarks, or neither")
    errors = joint_errors(truth, predicted)
    columns = per_joint(truth, predicted).filter(pl.col("sd") > 0)
    t, p = _paired_totals(truth, predicted, "Overall_Tol")
    out = {
        "rmse_joint": float(np.sqrt(((errors["predicted"] - errors["truth"]) ** 2).mean())),
        "columns_with_sd": float(columns.height),
        "rmse_over_sd_worst": columns["rmse_over_sd"].max() if columns.height else None,
        "share_columns_rmse_le_half_sd": (float((columns["rmse_over_sd"] <= 0.5).mean())
                                          if columns.height else None),
        "rmse_total": total_rmse(truth, predicted),
        "mean_error_total": float(np.mean(p - t)),
        "weighted_rmse_total": weighted_total_rmse(truth, predicted),
        "icc_total": icc(t, p),
        "sdd_total": sdd(t, p),
        "patient_rmse_median": per_patient(truth, predicted)["rmse"].median(),
        **challenge_scores(truth, predicted),
    }
    if true_landmarks is not None:
        marks = landmark_errors(true_landmarks, predicted_landmarks)
        px = marks["error_px"].to_numpy()
        out |= {
            "landmarks": float(len(px)),
            "landmark_error_mean_px": float(px.mean()) if len(px) else None,
            "landmark_error_median_px": float(np.median(px)) if len(px) else None,
            "landmark_error_p95_px": float(np.percentile(px, 95)) if len(px) else None,
            "landmark_error_over_spacing_mean": marks["error_over_spacing"].drop_nans().mean(),
        }
    return {name: _finite(value) for name, value in out.items()}
