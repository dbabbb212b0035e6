"""The therapy comparison: every option for a patient at a date, side by side, best first, with what to weigh.

One place builds what ``rxpredict compare`` prints and the app's comparison
page shows: the response model's calibrated probabilities with their
intervals, the survival models' risk of rapid radiographic progression,
stopping within a year and median retention, the ``support`` and ``ood``
flags, the clinical reference's safety flags (shown, never used to drop an
option), and what the model could not see.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

import polars as pl

from rxpredict.models.response import ResponseModel
from rxpredict.registry import Registry
from rxpredict.safety import safety_flags
from rxpredict.survival.persist import SurvivalModels

if TYPE_CHECKING:  # shap is imported only where an option is explained
    import shap

#: One prediction's key.
KEY = ["patient_id", "index_date", "therapy"]
RESPONSE_COLUMNS = ["p_response", "p_response_low", "p_response_high", "p_good", "p_good_low", "p_good_high",
                    "p_remission", "p_remission_low", "p_remission_high", "expected_das28_change"]
SURVIVAL_COLUMNS = ["p_rrp", "p_stop_1y", "median_retention_days"]
FLAG_COLUMNS = ["support", "ood"]
#: The blocks besides the clinical one whose absence a comparison states, and how a reader names their data.
UNSEEN = {"genetic": "genetic markers", "imaging": "radiographs (SvdH scores)", "wearable": "wearable data"}


def scoring_rows(registry: Registry, pairs: pl.DataFrame, markers: list[str]) -> pl.DataFrame:
    """One cohort row per (patient_id, index_date) of ``pairs``, built as the model's training cohort was.

    An unknown patient or a date before the patient's data is a ValueError from the cohort builder, naming it.
    """
    from rxpredict.cohort import build_cohort

    cohort = build_cohort(registry, episodes=pairs, markers=markers).frame
    return cohort.unique(["patient_id", "index_date"], keep="first", maintain_order=True)


def predict_comparison(model: ResponseModel, survival: SurvivalModels | None, rows: pl.DataFrame) -> pl.DataFrame:
    """One row per (episode, option): response columns, survival columns (where ``survival`` is given), support and
    ood; within an episode best first (highest P(response))."""
    pred = model.predict_options(rows)
    columns = KEY + RESPONSE_COLUMNS
    if survival is not None:
        stops = survival.retention.predict_options(rows).select(*KEY, "p_stop_1y", "median_retention_days")
        rrp = survival.progression.predict_options(rows).select(*KEY, "p_rrp")
        pred = pred.join(rrp, on=KEY, how="left").join(stops, on=KEY, how="left")
        columns += SURVIVAL_COLUMNS
    return pred.select(columns + FLAG_COLUMNS).sort(["patient_id", "index_date", "p_response"],
                                                     descending=[False, False, True], maintain_order=True)


@dataclass(frozen=True)
class Comparison:
    """Every therapy option for one patient at one date.

    Attributes
    ----------
    patient_id, index_date : whom and when
    row : the patient's cohort row (one row: what the models saw; explanations start from it)
    options : one row per option, best first (see :func:`predict_comparison`)
    flags : safety flags (therapy, flag, kind, message), cautions first
    unseen : the data blocks the model had nothing of (genetic, imaging, wearable)
    baseline_visit : whether a visit in the 90 days before the date gave the clinical block
    retention_curves : per option and day, the probability of still being on the drug (None without survival models)
    """

    patient_id: str
    index_date: dt.date
    row: pl.DataFrame
    options: pl.DataFrame
    flags: pl.DataFrame
    unseen: tuple[str, ...]
    baseline_visit: bool
    retention_curves: pl.DataFrame | None

    def notices(self) -> list[str]:
        """What the reader must know before the numbers: an old or missing visit, data the model did not see."""
        out = []
        if not self.baseline_visit:
            out.append("No visit in the 90 days before this date: the predictions rest on older data only.")
        if self.unseen:
            out.append("The model did not see: " + ", ".join(UNSEEN[b] for b in self.unseen)
                       + " (none recorded for this patient).")
        return out


def compare_patient(model: ResponseModel, survival: SurvivalModels | None, registry: Registry, patient_id: str,
                    at: dt.date | None = None) -> Comparison:
    """The comparison for ``patient_id`` on ``at`` (default today) from the patient's data in ``registry``."""
    at = at or dt.date.today()
    markers = getattr(model, "markers_", None)  # a bundle's; a model fitted here reads its genetic columns
    if markers is None:
        markers = [c.removeprefix("genetic_") for c in model.columns_ if c.startswith("genetic_")]
    rows = scoring_rows(registry, pl.DataFrame({"patient_id": [patient_id], "index_date": [at]}), markers)
    features = rows.row(0, named=True)
    curves = None
    if survival is not None:
        curves = survival.retention.predict_curves(rows).select("therapy", "time_days", "retention")
    return Comparison(
        patient_id=patient_id, index_date=at, row=rows, options=predict_comparison(model, survival, rows),
        flags=safety_flags(features), unseen=tuple(b for b in UNSEEN if not features.get(f"mask_{b}")),
        baseline_visit=bool(features.get("mask_clinical")), retention_curves=curves)


@dataclass(frozen=True)
class OptionExplanation:
    """Why the model expects what it does for one option (or one option against another) for the compared patient.

    Attributes
    ----------
    therapy, versus, output : what was explained (``versus`` None: one option alone)
    explanation : the SHAP values (one row), for shap's plots
    reasons : the top three reasons in plain language
    by_modality : per data block: whether it is missing, the SHAP sum of what was recorded, the absent effect
    """

    therapy: str
    versus: str | None
    output: str
    explanation: shap.Explanation
    reasons: list[str]
    by_modality: pl.DataFrame


def explain_option(model: ResponseModel, comparison: Comparison, therapy: str, versus: str | None = None,
                   output: str = "p_response") -> OptionExplanation:
    """The SHAP explanation of ``output`` for ``therapy`` (or of its difference from ``versus``) for the patient."""
    from rxpredict.explain import explain_contrast, explain_options
    from rxpredict.explain.modality import by_modality
    from rxpredict.explain.reasons import top_reasons

    explanation = (explain_options(model, comparison.row, therapy, output) if versus is None
                   else explain_contrast(model, comparison.row, therapy, versus, output))
    reasons = top_reasons(explanation, model, therapy=therapy, versus=versus, output=output)
    return OptionExplanation(therapy=therapy, versus=versus, output=output, explanation=explanation[0],
                             reasons=[r.sentence for r in reasons],
                             by_modality=by_modality(explanation, model).drop("row"))
