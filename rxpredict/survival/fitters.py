"""One time-to-event regression with its proportional-hazards check, and a remedy where PH fails.

:class:`HazardModel` fits a penalised, weighted lifelines ``CoxPHFitter``,
then tests proportional hazards with lifelines' own
``proportional_hazard_test`` (scaled Schoenfeld residuals against the rank
of time). Where the terms that compare therapy options (indicators and
option x covariate interactions) break PH (Bonferroni-adjusted p below
``ph_alpha``), one hazard ratio per option would average an effect that
changes over time, and a remedy is fitted:
- ``"stratify"`` (default; lifelines' advice for a categorical covariate
  that breaks PH): a Cox model stratified by option, so every option has its
  own baseline hazard of any shape, the covariates and interactions still
  shared and penalised;
- ``"weibull_aft"``: a Weibull AFT model whose shape parameter also depends on
  the option (a Weibull with one shape is itself a PH model). Its hazard is
  monotone, so it cannot follow a hazard that peaks early (stops for primary
  inefficacy), and it predicted worse in our benchmark (docs/survival.md).
Before that, where ``interaction_scales`` offers more than one, the
shrinkage of the option x covariate interactions is chosen on held-out
patients: a few hundred events cannot carry 30 interactions at a fixed
prior (our benchmark: interactions cost 0.005-0.008 of progression C-index),
but a registry where an option's effect really depends on a covariate keeps
them. Each scale multiplies the interactions' penalty; the one with the best
held-out partial log-likelihood (Cox, fitted on the other patients) is kept.
A failed test says the Cox model is misspecified, not that the remedy
predicts better, so the two are then compared on a fifth of the patients left
out (IPCW Brier score at ``check_days``, both fitted on the rest) and the
better one is refitted on everything. The choice and the reason are kept in
``choice_`` and ``reason_``; the test of the unstratified model in
``ph_test_``.

Predictions come from an array predictor built from the fitted lifelines
model (rxpredict/survival/predictor.py), the same whether the model was
fitted in this session or loaded from a bundle, which holds no pickle.

Two lifelines steps are O(n^2) in Python loops and take minutes on a
registry of 30,000 episodes: the robust (sandwich) variance and the
Schoenfeld residuals. Neither changes a prediction. The residuals are
computed here in O(n) with cumulative sums (Efron ties, checked against
lifelines in the tests) and handed to lifelines' test; the variance is the
model-based one (``robust`` switches lifelines' sandwich on for small data).
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
import polars as pl
from lifelines import CoxPHFitter, WeibullAFTFitter
from lifelines.exceptions import ConvergenceError, StatisticalWarning
from lifelines.statistics import proportional_hazard_test

from rxpredict.survival.evaluation import brier_at
from rxpredict.survival.predictor import predictor_from

#: What a HazardModel may end up as (``choice_``), and the remedies it may try where PH fails.
CHOICES = ("cox", "cox_stratified", "weibull_aft")
REMEDIES = ("stratify", "weibull_aft")


def _held_out(groups: np.ndarray) -> np.ndarray:
    """Per row, whether its patient is in the fixed fifth of patients held out for the model's own choices."""
    patients = np.unique(groups)
    rng = np.random.default_rng(0)
    return np.isin(groups, rng.choice(patients, size=max(1, len(patients) // 5), replace=False))


def scaled_schoenfeld(fitter: CoxPHFitter, X: pd.DataFrame, duration: np.ndarray, event: np.ndarray,
                      weights: np.ndarray) -> pd.DataFrame:
    """lifelines' scaled Schoenfeld residuals (one row per event, in time order) in O(n d).

    At each event time the residual is x minus the risk set's weighted mean
    of x (Efron's average over tied events), times n_events x the variance.
    """
    columns = list(fitter.params_.index)
    order = np.argsort(duration, kind="stable")
    T, E = duration[order], event[order].astype(bool)
    Xs = X[columns].to_numpy(dtype=float)[order]
    phi = weights[order] * np.exp(Xs @ fitter.params_.to_numpy())
    risk = phi[::-1].cumsum()[::-1]
    risk_x = (Xs * phi[:, None])[::-1].cumsum(axis=0)[::-1]
    first = np.r_[0, np.flatnonzero(np.diff(T)) + 1]  # first row of each distinct time
    group = np.repeat(np.arange(len(first)), np.diff(np.r_[first, len(T)]))
    ties = np.bincount(group, weights=E)
    tie_phi = np.bincount(group, weights=phi * E)
    tie_x = np.zeros((len(first), Xs.shape[1]))
    np.add.at(tie_x, group[E], (Xs * phi[:, None])[E])
    mean = np.zeros_like(tie_x)
    d = np.maximum(ties, 1)
    for l in range(int(ties.max())):  # Efron: the l-th of d tied events sees the risk set less l/d of the ties
        active = ties > l
        frac = (l / d)[active, None]
        mean[active] += ((risk_x[first][active] - frac * tie_x[active])
                         / (risk[first][active, None] - frac * tie_phi[active, None])) / d[active, None]
    residuals = Xs[E] - mean[group[E]]
    scaled = E.sum() * residuals @ fitter.variance_matrix_.to_numpy()
    return pd.DataFrame(scaled, columns=columns)


class HazardModel:
    """A penalised, weighted survival regression that checks proportional hazards before it is trusted.

    Parameters
    ----------
    penalties : per design column L2 penalty on the standardised coefficients, as a fixed prior (like
        scikit-learn's 1/C): lifelines scales its penalty per observation, so it is handed ``penalties / rows``;
        the shrinkage fades as data accrue and is strong where they are few
    option_terms : the design columns that compare therapy options (tested for PH)
    ph_alpha : family-wise level of the PH test over ``option_terms`` (Bonferroni)
    ph_remedy : "stratify" or "weibull_aft", the model tried where the option terms break PH
    check_days : the time at which Cox and remedy are compared on held-out patients
    interaction_scales : factors on the penalty of the interactions (option terms with ``_x_``); with more than
        one, the best on held-out patients is used
    robust : lifelines' sandwich variance (O(n^2): only for small data)

    Attributes
    ----------
    fitter_ : the fitted lifelines CoxPHFitter or WeibullAFTFitter (only after ``fit``, not on a loaded model)
    predictor_ : CoxPredictor or WeibullAFTPredictor, the fitter's numbers, which every prediction uses
    choice_ : "cox", "cox_stratified" or "weibull_aft"
    reason_ : str, why
    ph_test_ : polars frame, per design column: test statistic, p and whether it compares options
    n_events_ : int
    interaction_scale_ : float, the factor on the interactions' penalty that was used
    lifelines_penalties_ : array, the penalties as handed to lifelines
    """

    def __init__(self, penalties: np.ndarray, option_terms: list[str], ph_alpha: float = 0.01,
                 ph_remedy: str = "stratify", check_days: float = 365.0,
                 interaction_scales: Sequence[float] = (1.0,), robust: bool = False) -> None:
        self.penalties = penalties
        self.option_terms = option_terms
        self.ph_alpha = ph_alpha
        self.ph_remedy = ph_remedy
        self.check_days = check_days
        self.interaction_scales = interaction_scales
        self.robust = robust

    def fit(self, X: pd.DataFrame, duration: np.ndarray, event: np.ndarray, weights: np.ndarray,
            stratum: np.ndarray, groups: np.ndarray) -> "HazardModel":
        """Fit on the design ``X`` with weights; ``stratum`` is each row's option (the strata of the remedy),
        ``groups`` its patient (held-out patients for the comparison with the remedy)."""
        if self.ph_remedy not in REMEDIES:
            raise ValueError(f"ph_remedy must be one of {', '.join(REMEDIES)}, got {self.ph_remedy!r}")
        self.n_events_ = int(np.sum(event))
        if self.n_events_ < 5:
            raise ValueError(f"only {self.n_events_} events: too few to fit a survival model")
        data = X.assign(_duration=duration, _event=event.astype(int), _weight=weights, _stratum=stratum)
        held = _held_out(groups)
        shrinkage = self._choose_interaction_scale(X, data, held)
        cox = self._fit(data, "cox")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", StatisticalWarning)
            residuals = scaled_schoenfeld(cox, X, duration, event, weights)
            test = proportional_hazard_test(cox, data.drop(columns="_stratum"), time_transform="rank",
                                            precomputed_residuals=residuals)
        summary = test.summary
        self.ph_test_ = pl.DataFrame({
            "term": [str(i[0]) if isinstance(i, tuple) else str(i) for i in summary.index],
            "statistic": summary["test_statistic"].to_numpy(), "p": summary["p"].to_numpy(),
        }).with_columns(pl.col("term").is_in(self.option_terms).alias("compares_options"))
        tested = self.ph_test_.filter("compares_options")
        if tested.height == 0:
            self._keep(cox, "cox")
            self.reason_ = shrinkage + "no option terms to test (one option in training): Cox"
            return self
        worst = tested.sort("p").row(0, named=True)
        adjusted = min(1.0, worst["p"] * tested.height)
        if adjusted >= self.ph_alpha:
            self._keep(cox, "cox")
            self.reason_ = (f"{shrinkage}proportional hazards hold for the {tested.height} option terms (smallest p "
                            f"{worst['p']:.2g} for {worst['term']}, Bonferroni-adjusted {adjusted:.2g} >= "
                            f"{self.ph_alpha}): penalised Cox")
            return self
        failed = (f"{shrinkage}proportional hazards fail for option term {worst['term']} (p {worst['p']:.2g}, "
                  f"Bonferroni-adjusted {adjusted:.2g} < {self.ph_alpha})")
        remedy = "cox_stratified" if self.ph_remedy == "stratify" else "weibull_aft"
        scored = held & np.isin(stratum, np.unique(stratum[~held]))  # a stratum needs training rows
        brier = {}
        for choice in ("cox", remedy):
            predictor = predictor_from(self._fit(data[~held], choice))
            at_check = predictor.survival(X[scored], np.array([self.check_days]), stratum[scored])
            brier[choice] = brier_at(duration[scored], event[scored], at_check[:, 0], self.check_days)
        compared = (f"held-out Brier at {self.check_days:g} days: Cox {brier['cox']:.4f}, "
                    f"{remedy} {brier[remedy]:.4f}")
        if brier[remedy] < brier["cox"]:
            self._keep(self._fit(data, remedy), remedy)
            self.reason_ = f"{failed}; {compared}: {remedy}"
        else:
            self._keep(cox, "cox")
            self.reason_ = f"{failed}; {compared}: penalised Cox kept (the remedy does not predict better)"
        return self

    def _choose_interaction_scale(self, X: pd.DataFrame, data: pd.DataFrame, held: np.ndarray) -> str:
        """Set ``interaction_scale_`` and ``lifelines_penalties_``; the reason's opening words where a choice
        was made ("" where ``interaction_scales`` has one value)."""
        base = np.asarray(self.penalties, dtype=float) / len(data)
        interaction = np.array(["_x_" in c and c in self.option_terms for c in X.columns])
        scales = [float(s) for s in self.interaction_scales]
        if not scales or min(scales) <= 0:
            raise ValueError(f"interaction_scales must be positive factors, got {self.interaction_scales!r}")
        fit_rows = data[~held]
        scored = data[held].drop(columns="_stratum")
        likelihood = {}
        for scale in scales if len(scales) > 1 and interaction.any() and held.any() else ():
            self.lifelines_penalties_ = np.where(interaction, base * scale, base)
            try:
                likelihood[scale] = float(self._fit(fit_rows, "cox").score(scored, scoring_method="log_likelihood"))
            except ConvergenceError:  # too few events in four fifths of the patients: this candidate is out
                continue
        self.interaction_scale_ = max(likelihood, key=likelihood.get) if likelihood else scales[0]
        self.lifelines_penalties_ = np.where(interaction, base * self.interaction_scale_, base)
        if not likelihood:
            return ""
        told = ", ".join(f"x{s:g} {v:.4f}" for s, v in likelihood.items())
        return (f"interactions' penalty x{self.interaction_scale_:g} (held-out partial log-likelihood per "
                f"episode: {told}); ")

    def _keep(self, fitter: CoxPHFitter | WeibullAFTFitter, choice: str) -> None:
        """Make ``fitter`` the model: it, its array predictor and the choice's name."""
        self.fitter_, self.predictor_, self.choice_ = fitter, predictor_from(fitter), choice

    def _fit(self, data: pd.DataFrame, choice: str) -> CoxPHFitter | WeibullAFTFitter:
        """One lifelines fitter on ``data`` (design, _duration, _event, _weight, _stratum)."""
        indicators = [t for t in self.option_terms if t.startswith("option_")]
        covariates = [c for c in data.columns if not c.startswith("_")]
        with warnings.catch_warnings():
            # Non-integer (inverse-propensity) weights are intended; lifelines suggests robust=True for them.
            warnings.simplefilter("ignore", StatisticalWarning)
            if choice == "cox":
                return CoxPHFitter(penalizer=self.lifelines_penalties_).fit(
                    data.drop(columns="_stratum"), "_duration", "_event", weights_col="_weight", robust=self.robust)
            if choice == "cox_stratified":  # the option indicators are absorbed by the strata
                kept = [j for j, c in enumerate(covariates) if c not in indicators]
                return CoxPHFitter(penalizer=self.lifelines_penalties_[kept], strata=["_stratum"]).fit(
                    data.drop(columns=indicators), "_duration", "_event", weights_col="_weight", robust=self.robust)
            return WeibullAFTFitter(penalizer=float(np.median(self.lifelines_penalties_))).fit(
                data.drop(columns="_stratum"), "_duration", "_event", weights_col="_weight",
                ancillary=data[indicators] if indicators else None, robust=self.robust)

    def survival(self, X: pd.DataFrame, times: np.ndarray, stratum: np.ndarray) -> np.ndarray:
        """Shape (rows, times): the predicted probability of no event by each time (``stratum``: each row's
        option, read by a stratified Cox model)."""
        if not hasattr(self, "predictor_"):
            raise RuntimeError("this HazardModel is not fitted yet: call fit() first")
        return self.predictor_.survival(X, times, stratum)
