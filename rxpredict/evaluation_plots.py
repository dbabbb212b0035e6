"""Evaluation plots of a trained bundle, drawn on its held-out patients: what the app's Models page shows.

- ``calibration.png``: reliability diagram of P(response at 24 weeks) at the
  option each held-out patient received, by tenth of the predictions
  (:class:`rxpredict.metrics.CalibrationDisplay`).
- ``retention.png``, ``progression.png``: the Kaplan-Meier curve of the
  held-out episodes at the option each received, with its 95 % band, against
  the mean of the survival model's predicted curves for the same episodes and
  options (:class:`ObservedPredictedDisplay`). Where the two part, the model
  is miscalibrated at that time. Drawn only where survival models were fitted
  and some held-out episode has that outcome's time.

Figures are made on the Agg canvas outside pyplot (nothing is shown, any
backend is left alone) and returned as PNG bytes: :func:`draw_plots`.
:func:`bundle_plots` reads them back from a bundle, checked against its
manifest.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from rxpredict.bundle import MANIFEST
from rxpredict.exceptions import BundleError
from rxpredict.figures import agg_figure, png_bytes
from rxpredict.metrics import CalibrationDisplay
from rxpredict.survival.descriptives import kaplan_meier, outcome_data
from rxpredict.survival.plots import LABELS, TITLES

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from rxpredict.models.response import ResponseModel
    from rxpredict.survival.persist import SurvivalModels
    from rxpredict.survival.progression import ProgressionModel
    from rxpredict.survival.retention import RetentionModel

#: The plot files a bundle may hold, each with what it shows (captions for the page).
PLOTS = {
    "calibration.png": "Calibration of P(response at 24 weeks) at the option each held-out patient received: the "
                       "observed share of responders against the mean prediction, by tenth of the predictions. "
                       "On the diagonal, predictions mean what they say.",
    "retention.png": "Drug retention of the held-out episodes: Kaplan-Meier (observed, 95 % band) against the mean "
                     "predicted curve at the option each received.",
    "progression.png": "Freedom from rapid radiographic progression of the held-out episodes with radiographs: "
                       "Kaplan-Meier (observed, 95 % band) against the mean predicted curve at the option each "
                       "received.",
}
#: The predicted-curve column of each survival outcome.
CURVE_COLUMNS = {"retention": "retention", "progression": "rrp_free"}
KEY = ["patient_id", "index_date", "therapy"]


def calibration_display(model: ResponseModel, cohort: pl.DataFrame) -> CalibrationDisplay:
    """The reliability diagram of P(response) at the option given, on the labelled episodes of ``cohort``."""
    episodes = cohort.filter(pl.col("therapy").is_not_null() & pl.col("baseline_visit_date").is_not_null()
                             & pl.col("response").is_not_null())
    given = model.predict_options(episodes).join(episodes.select(*KEY, "response"), on=KEY)
    return CalibrationDisplay.from_predictions(given["response"].cast(pl.Int64).to_numpy(),
                                               given["p_response"].to_numpy(), n_bins=10, strategy="quantile",
                                               name=f"{given.height} held-out episodes")


class ObservedPredictedDisplay:
    """Kaplan-Meier curve of episodes at the option each received against the mean of a model's predicted curves.

    Build it with :meth:`from_model`, draw it with :meth:`plot`, which returns the axes and keeps ``figure_``.
    """

    def __init__(self, observed: pl.DataFrame, predicted: pl.DataFrame, outcome: str, episodes: int,
                 events: int) -> None:
        self.observed = observed
        self.predicted = predicted
        self.outcome = outcome
        self.episodes = episodes
        self.events = events

    @classmethod
    def from_model(cls, cohort: pl.DataFrame, model: RetentionModel | ProgressionModel,
                   outcome: str) -> ObservedPredictedDisplay:
        """The curves of ``cohort``'s episodes with a time for ``outcome`` ("retention" or "progression");
        ValueError where there is none."""
        rows = outcome_data(cohort, outcome)
        observed = kaplan_meier(rows.with_columns(pl.lit("observed").alias("therapy")), outcome)
        predicted = (model.predict_curves(rows)
                     .join(rows.select(KEY), on=KEY, how="semi")
                     .group_by("time_days")
                     .agg(pl.col(CURVE_COLUMNS[outcome]).mean().alias("survival"))
                     .sort("time_days"))
        return cls(observed, predicted, outcome, rows.height, int(rows["event"].sum()))

    def plot(self, ax: Axes | None = None) -> Axes:
        """Draw the observed step curve with its band and the mean predicted curve; return the axes."""
        ax = ax if ax is not None else agg_figure((7, 4.5)).add_subplot()
        lower = next(c for c in self.observed.columns if c.startswith("lower_"))
        t = self.observed["time_days"].to_numpy()
        (line,) = ax.step(t, self.observed["survival"].to_numpy(), where="post",
                          label=f"Observed (Kaplan-Meier): {self.episodes} episodes, {self.events} events")
        ax.fill_between(t, self.observed[lower].to_numpy(), self.observed[lower.replace("lower_", "upper_")].to_numpy(),
                        step="post", alpha=0.15, color=line.get_color(), linewidth=0)
        ax.plot(self.predicted["time_days"].to_numpy(), self.predicted["survival"].to_numpy(), linestyle="--",
                label="Predicted (mean over the same episodes)")
        ax.set(ylim=(0, 1.02), xlim=(0, float(np.max(self.predicted["time_days"].to_numpy()))),
               xlabel="Days since start", ylabel=LABELS[self.outcome])
        ax.set_title(f"{TITLES[self.outcome]}: held-out patients, {lower.split('_')[1]}% band", fontsize=10)
        ax.legend(loc="lower left", fontsize=8)
        self.ax_, self.figure_ = ax, ax.figure
        return ax


def draw_plots(model: ResponseModel, held_out: pl.DataFrame,
               survival: SurvivalModels | None = None) -> dict[str, bytes]:
    """The plots of :data:`PLOTS` that can be drawn on the ``held_out`` cohort rows, file name -> PNG bytes."""
    calibration = calibration_display(model, held_out)
    calibration.plot(agg_figure((5.5, 5)).add_subplot())
    calibration.ax_.set_title("P(response at 24 weeks) at the option given", fontsize=10)
    calibration.ax_.legend(loc="lower right")
    plots = {"calibration.png": png_bytes(calibration.figure_)}
    if survival is None:
        return plots
    for outcome, fitted in (("retention", survival.retention), ("progression", survival.progression)):
        if outcome_data(held_out, outcome).height:
            plots[f"{outcome}.png"] = png_bytes(ObservedPredictedDisplay.from_model(held_out, fitted, outcome)
                                             .plot().figure)
    return plots


def bundle_plots(directory: str | Path) -> dict[str, bytes]:
    """The plots of :data:`PLOTS` that the bundle in ``directory`` holds, file name -> PNG bytes.

    Raises :class:`~rxpredict.exceptions.BundleError` naming a plot changed after the bundle was written, and
    OSError where a plot its manifest lists is gone.
    """
    directory = Path(directory)
    listed = json.loads((directory / MANIFEST).read_text())["files"]
    plots = {name: (directory / name).read_bytes() for name in PLOTS if name in listed}
    for name, png in plots.items():
        if hashlib.sha256(png).hexdigest() != listed[name]:
            raise BundleError(f"{directory}: {name} was changed after the bundle was written (checksum mismatch)")
    return plots
