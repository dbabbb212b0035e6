"""Radiographic progression and drug retention per therapy option (issue 7), on lifelines.

- :class:`ProgressionModel`: P(rapid radiographic progression in the first
  year) and time to it, per option (progression.py).
- :class:`RetentionModel`: P(stopping within a year) overall, for inefficacy
  and for an adverse event, median retention and individual curves, per
  option (retention.py).
- Both adjust for confounding by indication with inverse-propensity weights,
  check proportional hazards with lifelines' test (fitters.py) and flag each
  prediction's ``support`` and ``ood`` as the response model does.
- Cohort descriptives: Kaplan-Meier per option, numbers at risk, log-rank
  (descriptives.py), drawn by plots.py; metrics and :func:`evaluate_survival`
  in evaluation.py. docs/survival.md explains the choices.
- Predictions come from array predictors (predictor.py), which is what a
  model bundle stores, without pickle (persist.py).
"""
from rxpredict.survival.descriptives import kaplan_meier, logrank, number_at_risk
from rxpredict.survival.evaluation import (
    brier_at, calibration_error_at, concordance, evaluate_survival, integrated_brier_score,
)
from rxpredict.survival.plots import KaplanMeierDisplay, PatientCurvesDisplay, save_figure
from rxpredict.survival.progression import ProgressionModel
from rxpredict.survival.retention import RetentionModel

__all__ = [
    "KaplanMeierDisplay", "PatientCurvesDisplay", "ProgressionModel", "RetentionModel", "brier_at",
    "calibration_error_at", "concordance", "evaluate_survival", "integrated_brier_score", "kaplan_meier",
    "logrank", "number_at_risk", "save_figure",
]
