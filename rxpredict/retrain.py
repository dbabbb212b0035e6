"""Train a model bundle on a registry, saying how far it has got: what ``rxpredict train`` and the app's
training worker (:mod:`rxpredict.store.worker`) run.

:func:`train_bundle` holds out a share of the patients, fits the response
model on the rest and evaluates it on the held-out ones, fits and evaluates
the survival models (drug retention, radiographic progression) where the
registry is large enough, draws the evaluation plots on the held-out
patients (:mod:`rxpredict.evaluation_plots`: calibration, and observed against
predicted retention and progression) and writes one bundle with its model card
and plots.

``report(stage, fraction)`` hears one line per stage ("training the response
model: member 3 of 10", again after every epoch) with the share of the whole
run done, rising from 0 to exactly 1 at the end. The share of each step
(:data:`STEPS`) was measured on the default model. A line that begins with
:data:`WARNING` is a warning, not an error: a registry too small for the
survival models gives a bundle without them, and held-out patients too few to
evaluate them give a bundle without their figures.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import polars as pl

from rxpredict.bundle import save_bundle
from rxpredict.cohort import build_cohort
from rxpredict.evaluation import evaluate_response
from rxpredict.evaluation_plots import draw_plots
from rxpredict.exceptions import BundleError
from rxpredict.models.response import ResponseModel
from rxpredict.models.training import EpochCallback, epoch_listener
from rxpredict.registry import Registry
from rxpredict.survival import ProgressionModel, RetentionModel, evaluate_survival
from rxpredict.survival.persist import SurvivalModels

#: ``report(stage, fraction)``: a stage line and the share of the whole run done.
Report = Callable[[str, float], None]
#: How a warning line begins.
WARNING = "warning: "
#: Steps of a run and the share of its time each takes, adding up to 1 (default model on 2,000 and 5,000
#: simulated patients, 2 cores; the response model's share grows when other processes compete for the cores).
STEPS = {"cohort": 0.05, "response": 0.82, "evaluate response": 0.005, "retention": 0.07, "progression": 0.005,
         "evaluate survival": 0.01, "plots": 0.03, "write": 0.01}


class _Progress:
    """Turns (step, share of the step done) into the share of the whole run done, which never goes back."""

    def __init__(self, report: Report | None) -> None:
        self.starts = dict(zip(STEPS, itertools.accumulate(STEPS.values(), initial=0.0)))
        self.report, self.fraction = report, 0.0

    def __call__(self, step: str, stage: str, done: float = 0.0) -> None:
        self._tell(stage, self.starts[step] + STEPS[step] * done)

    def finished(self) -> None:
        self._tell("done", 1.0)

    def _tell(self, stage: str, fraction: float) -> None:
        self.fraction = max(self.fraction, min(fraction, 1.0))
        if self.report is not None:
            self.report(stage, self.fraction)


def each_stage(say: Callable[[str], None]) -> Report:
    """A report for people: ``say`` hears each new stage line once (a stage is reported again after every epoch)."""
    last = None

    def report(stage: str, _fraction: float) -> None:
        nonlocal last
        if stage != last:
            say(stage)
            last = stage
    return report


def _member_listener(progress: _Progress, members: int) -> EpochCallback:
    """An epoch listener that reports which ensemble member trains and how far the ensemble has got.

    A network's first epoch starts the next member. Early stopping usually ends a network long before its
    most epochs, so a member's share is paced by the mean length of the members before it (the first by the
    most epochs); one stopped early jumps to the next member's share.
    """
    lengths: list[int] = []  # epochs run by each member so far, the last one still training

    def heard(_description: str, epoch: int, epochs: int) -> None:
        if epoch == 1:
            lengths.append(0)
        lengths[-1] = epoch
        expected = sum(lengths[:-1]) / (len(lengths) - 1) if len(lengths) > 1 else epochs
        progress("response", f"training the response model: member {len(lengths)} of {members}",
                 (len(lengths) - 1 + min(epoch / expected, 1.0)) / members)

    return heard


def _held_out(cohort: pl.DataFrame, holdout: float, seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The episodes to fit on and those of a seeded ``holdout`` share of the patients, kept out to evaluate."""
    held = cohort["patient_id"].unique().sort().sample(fraction=holdout, seed=seed).implode()
    return cohort.filter(~pl.col("patient_id").is_in(held)), cohort.filter(pl.col("patient_id").is_in(held))


def _fit_survival(cohort: pl.DataFrame, response: ResponseModel, progress: _Progress) -> SurvivalModels | None:
    """Retention (reading ``response``'s P(response) per option) and progression fitted on the training ``cohort``;
    None, with a warning, where it is too small."""
    try:
        progress("retention", "fitting the drug-retention model (stops for inefficacy and adverse events)")
        retention = RetentionModel(progress=False).fit(cohort, efficacy=response)
        progress("progression", "fitting the radiographic-progression model")
        progression = ProgressionModel().fit(cohort)
    except ValueError as e:
        progress("progression", f"{WARNING}the bundle will hold no survival models: {e}", 1.0)
        return None
    return SurvivalModels(progression=progression, retention=retention)


def _survival_figures(test: pl.DataFrame, survival: SurvivalModels, progress: _Progress) -> dict:
    """The survival models' figures on the held-out episodes; none, with a warning, where they are too few."""
    progress("evaluate survival", "evaluating the survival models on the held-out patients")
    try:
        return evaluate_survival(test, survival.progression, survival.retention)
    except (ValueError, ZeroDivisionError) as e:  # lifelines' C-index divides by the comparable pairs
        progress("evaluate survival", f"{WARNING}the bundle holds survival models without figures: too few held-out "
                 f"episodes to evaluate them ({e}); train on a larger registry or hold out more patients", 1.0)
        return {}


def train_bundle(registry: Registry, out: str | Path, *, seed: int = 0, members: int | None = None,
                 epochs: int | None = None, holdout: float = 0.2, overwrite: bool = False,
                 report: Report | None = None) -> dict:
    """Fit the response and survival models on ``registry``, write them to the bundle ``out``; the figures.

    Parameters
    ----------
    registry : a validated registry (:func:`rxpredict.registry.read_registry`).
    out : the bundle folder; one that holds files is refused (BundleError) before anything is fitted,
        unless ``overwrite``.
    seed : seeds the held-out patients and the networks.
    members, epochs : networks in the ensemble and most epochs per network; None: the
        :class:`~rxpredict.models.response.ResponseModel` defaults.
    holdout : share of patients kept out of training to evaluate the models and write the card.
    report : hears ``(stage, fraction)`` as the module docstring says.

    Returns the evaluation figures on the held-out patients (also in the bundle's ``metrics.json``): the
    response model's, and ``retention`` and ``progression`` groups where the survival models were fitted.
    The bundle also holds the plots of :data:`rxpredict.evaluation_plots.PLOTS` that could be drawn.
    """
    if not 0 < holdout < 1:
        raise ValueError(f"holdout is a share of the patients, between 0 and 1, not {holdout}")
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise BundleError(f"{out} is not empty; pass overwrite=True to replace it")
    progress = _Progress(report)
    progress("cohort", "building the cohort")
    cohort = build_cohort(registry)
    fit_on, test = _held_out(cohort.frame, holdout, seed)
    chosen = {"n_members": members, "epochs": epochs}
    model = ResponseModel(seed=seed, progress=False, **{k: v for k, v in chosen.items() if v is not None})
    with epoch_listener(_member_listener(progress, model.n_members)):
        model.fit(fit_on)
    progress("evaluate response", "evaluating the response model on the held-out patients")
    figures = evaluate_response(model, test)
    survival = _fit_survival(fit_on, model, progress)
    if survival is not None:
        figures |= _survival_figures(test, survival, progress)
    progress("plots", "drawing the evaluation plots on the held-out patients")
    plots = draw_plots(model, test, survival)
    progress("write", "writing the bundle")
    save_bundle(model, out, cohort=fit_on, markers=cohort.markers, metrics=figures, evaluation=test,
                survival=survival, plots=plots, overwrite=overwrite)
    progress.finished()
    return figures
