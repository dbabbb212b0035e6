"""Radiographic progression per therapy option: rapid progression in the first year, and time to it.

:class:`ProgressionModel` fits, on episodes with a baseline radiograph and a
later one, the time to rapid radiographic progression (the first radiograph
at which the SvdH units gained since baseline reach 5 a year; else censored
at the last radiograph) with a penalised Cox model, lifelines' PH test and
the remedy of rxpredict/survival/fitters.py. Every training episode has a
radiograph, but most episodes scored do not: imputing the imaging features
would score them as an average imaged patient with clinical effects learnt
*given* the damage seen, so a second model without the imaging covariates
(a missing-pattern submodel) scores episodes without a baseline radiograph.
From each option's RRP-free curve S:
- ``p_rrp`` = 1 - S(first_exam_days_): RRP by the first follow-up
  radiograph. ``first_exam_days_`` is learnt from the registry (the 95th
  percentile of days from start to the radiograph that labels the first
  year), so a registry whose year radiographs come at day 380 is read at
  day 380, not at 365;
- ``p_rrp_2y`` = 1 - S(730) and the median time to RRP where it is reached.
Covariates (issue 7): baseline damage (erosions and joint-space narrowing
apart), the prior progression rate, ACPA, RF, shared epitope, CRP, DAS28,
disease duration, smoking, age, with option x (prior rate, erosions, CRP,
ACPA) interactions. Confounding: stabilised inverse-propensity weights,
as in the response model but clipped at 3 (see RetentionModel), on top of
the covariate adjustment.
"""
from __future__ import annotations

import numpy as np
import polars as pl

from rxpredict.models.design import feature_matrix
from rxpredict.models.overlap import _check_fitted
from rxpredict.survival.base import OptionSurvivalModel, crossing_time, time_grid
from rxpredict.survival.data import progression_label_data, progression_time_data
from rxpredict.survival.design import SurvivalDesign
from rxpredict.survival.fitters import HazardModel

TWO_YEARS = 730
#: Where the first follow-up radiograph is read when no labelled episode says (the contract's "a year").
DEFAULT_FIRST_EXAM_DAYS = 365.0
PREDICTIONS = ("p_rrp", "p_rrp_2y", "median_days_to_rrp")


class ProgressionModel(OptionSurvivalModel):
    """P(rapid radiographic progression) and time to it, per therapy option; scikit-learn conventions.

    Parameters
    ----------
    penalizer, interaction_penalizer : L2 penalties (fixed priors, see fitters.HazardModel) of main effects and
        option indicators, and of option x covariate interactions
    interaction_scales : factors on ``interaction_penalizer`` among which each hazard model chooses on held-out
        patients (fitters.HazardModel); (1.0,) fixes it
    max_weight : inverse-propensity weights are clipped to [1/max_weight, max_weight] (3, as RetentionModel)
    ph_alpha, ph_remedy : the proportional-hazards test of the option terms and the remedy tried where it fails
    horizon_days, step_days : the time grid of the RRP-free curves

    Attributes
    ----------
    options_, design_, propensity_, ood_ : as RetentionModel
    time_models_ : dict "with_imaging" / "without_imaging" -> (SurvivalDesign, HazardModel of time to RRP with
        ``predictor_``, ``choice_``, ``reason_``, ``ph_test_``)
    choices_ : {"time_to_rrp, with_imaging": {"fitter": ..., "reason": ...}, "time_to_rrp, without_imaging": ...}
    first_exam_days_ : float, the time at which ``p_rrp`` is read
    times_ : array, the time grid (days)
    n_episodes_ : int
    """

    COVARIATES = (
        "imaging_erosion", "imaging_jsn", "imaging_progression_per_year", "clinical_acpa", "clinical_rf",
        "genetic_HLA_DRB1_SE", "clinical_crp_mg_l", "clinical_das28_crp", "clinical_disease_years",
        "clinical_smoking_current", "clinical_age", "clinical_female", "clinical_haq_di", "clinical_n_prior_failures",
        "mask_genetic", "mask_clinical",
    )
    MODIFIERS = ("imaging_progression_per_year", "imaging_erosion", "clinical_crp_mg_l", "clinical_acpa")
    LOGGED = ("imaging_erosion", "imaging_jsn", "imaging_progression_per_year", "clinical_crp_mg_l",
              "clinical_disease_years")

    def __init__(self, penalizer: float = 5.0, interaction_penalizer: float = 50.0,
                 interaction_scales: tuple[float, ...] = (1.0, 10.0, 100.0), max_weight: float = 3.0,
                 ph_alpha: float = 0.01, ph_remedy: str = "stratify", horizon_days: int = 1095,
                 step_days: int = 7) -> None:
        self.penalizer = penalizer
        self.interaction_penalizer = interaction_penalizer
        self.interaction_scales = interaction_scales
        self.max_weight = max_weight
        self.ph_alpha = ph_alpha
        self.ph_remedy = ph_remedy
        self.horizon_days = horizon_days
        self.step_days = step_days

    def fit(self, cohort: pl.DataFrame) -> "ProgressionModel":
        """Fit on a cohort frame (``rxpredict.cohort.build_cohort(...).frame``): its episodes with radiographs."""
        rows = progression_time_data(cohort)
        if rows.height < 50 or rows["event"].sum() < 5:
            raise ValueError(f"only {rows.height} episodes with a time to rapid radiographic progression "
                             f"({rows['event'].sum()} progressed): too few to fit a progression model")
        weights = self._fit_design(rows, self.max_weight)
        therapy = rows["therapy"].to_numpy()
        self.first_exam_days_ = _first_exam_days(cohort)
        clinical = [c for c in self.COVARIATES if not c.startswith("imaging_")]
        self.time_models_ = {}
        for pattern, design in (("with_imaging", self.design_), ("without_imaging", SurvivalDesign(
                clinical, [c for c in self.MODIFIERS if c in clinical], self.LOGGED).fit(rows, self.options_))):
            option_terms = [c for c in design.columns_ if c.startswith("option_") or "_x_" in c]
            model = HazardModel(design.penalties(self.penalizer, self.interaction_penalizer), option_terms,
                                self.ph_alpha, self.ph_remedy, self.first_exam_days_, self.interaction_scales).fit(
                design.transform(rows, therapy), rows["duration"].to_numpy(), rows["event"].to_numpy(), weights,
                design.stratum(therapy), rows["patient_id"].to_numpy())
            self.time_models_[pattern] = (design, model)
        self.choices_ = {f"time_to_rrp, {p}": {"fitter": m.choice_, "reason": m.reason_}
                         for p, (_, m) in self.time_models_.items()}
        self.times_ = time_grid(self.horizon_days, self.step_days, also=[self.first_exam_days_, TWO_YEARS])
        self.n_episodes_ = rows.height
        return self

    def _free(self, rows: pl.DataFrame) -> np.ndarray:
        """Option-major RRP-free curves on ``times_``, from the submodel of each row's imaging pattern."""
        _check_fitted(self, "time_models_")
        stacked, _, _ = self._expanded(rows)
        therapy = np.repeat(np.array(self.options_, dtype=object), rows.height)
        has_imaging = self.has_imaging(stacked)
        free = np.empty((len(therapy), len(self.times_)))
        for pattern, rows_of in (("with_imaging", has_imaging), ("without_imaging", ~has_imaging)):
            if rows_of.any():
                design, model = self.time_models_[pattern]
                part = stacked.filter(pl.Series(rows_of))
                free[rows_of] = model.survival(design.transform(part, therapy[rows_of]), self.times_,
                                               design.stratum(therapy[rows_of]))
        return free

    def has_imaging(self, rows: pl.DataFrame) -> np.ndarray:
        """Per row, whether it is scored by the ``with_imaging`` submodel (any imaging covariate recorded)."""
        _check_fitted(self, "time_models_")
        imaging = [c for c in self.time_models_["with_imaging"][0].covariates_ if c.startswith("imaging_")]
        if not imaging:
            return np.zeros(rows.height, dtype=bool)
        return ~np.isnan(feature_matrix(rows, imaging)).all(axis=1)

    def predict_options(self, rows: pl.DataFrame) -> pl.DataFrame:
        """One row per (episode, option): ``p_rrp`` (by the first follow-up radiograph), ``p_rrp_2y``,
        ``median_days_to_rrp`` (null where not reached within ``horizon_days``), ``support``, ``ood``.
        Episodes without imaging are scored with the imaging block missing.
        """
        free = self._free(rows)
        at = lambda days: free[:, int(np.searchsorted(self.times_, days))]  # noqa: E731
        values = (1 - at(self.first_exam_days_), 1 - at(TWO_YEARS), crossing_time(self.times_, free))
        return self._frame(rows, dict(zip(PREDICTIONS, values))).with_columns(
            pl.col("median_days_to_rrp").fill_nan(None))

    def predict_curves(self, rows: pl.DataFrame) -> pl.DataFrame:
        """Each episode's RRP-free curve per option on ``times_`` (column ``rrp_free``)."""
        return self._curves_frame(rows, self.times_, {"rrp_free": self._free(rows)})

    def summary(self) -> pl.DataFrame:
        """The time-to-RRP submodels: what was fitted, on how many episodes, and why."""
        _check_fitted(self, "time_models_")
        return pl.DataFrame([{"outcome": f"time_to_rrp, {p}", "fitter": m.choice_, "episodes": self.n_episodes_,
                              "events": m.n_events_, "first_exam_days": self.first_exam_days_, "reason": m.reason_}
                             for p, (_, m) in self.time_models_.items()])


def _first_exam_days(cohort: pl.DataFrame) -> float:
    """The 95th percentile of days from start to the radiograph labelling the first year (observed labels)."""
    labelled = progression_label_data(cohort)
    if "progression_exam_date" not in labelled.columns or labelled.height < 20:
        return DEFAULT_FIRST_EXAM_DAYS
    days = (labelled["progression_exam_date"] - labelled["index_date"]).dt.total_days().drop_nulls()
    return float(np.quantile(days.to_numpy(), 0.95)) if days.len() else DEFAULT_FIRST_EXAM_DAYS
