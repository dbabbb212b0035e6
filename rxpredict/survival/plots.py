"""Drawings of survival data: cohort Kaplan-Meier curves, and one patient's predicted curves per option.

Display objects in the scikit-learn manner (as rxpredict.metrics.CalibrationDisplay):
build from data with ``from_*``, draw with ``plot(ax=None)``, which returns
the axes and keeps ``figure_``. Without ``ax`` a figure is made on the Agg
canvas outside pyplot, so nothing is shown and any backend is left alone.
:func:`save_figure` writes PNG or SVG.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from rxpredict.figures import DPI, agg_figure
from rxpredict.survival.descriptives import kaplan_meier, logrank, number_at_risk

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from rxpredict.survival.progression import ProgressionModel
    from rxpredict.survival.retention import RetentionModel

FORMATS = (".png", ".svg")
LABELS = {"retention": "Still on the drug", "progression": "Free of rapid radiographic progression"}
TITLES = {"retention": "Drug retention (no stop for inefficacy or an adverse event)",
          "progression": "Freedom from rapid radiographic progression"}


def _new_axes(n: int = 1, size: tuple[float, float] = (7, 5)) -> list[Axes]:
    return list(agg_figure(size).subplots(1, n, squeeze=False)[0])


def save_figure(figure: Figure, path: str | Path) -> Path:
    """Write ``figure`` as PNG or SVG, chosen by the file suffix."""
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise ValueError(f"{path.name}: the suffix must be one of {', '.join(FORMATS)}")
    figure.savefig(path, dpi=DPI)
    return path


class KaplanMeierDisplay:
    """Kaplan-Meier curves per option with their bands, numbers at risk under the axis and the log-rank p."""

    def __init__(self, curves: pl.DataFrame, at_risk: pl.DataFrame, outcome: str,
                 test: dict[str, object] | None = None) -> None:
        self.curves = curves
        self.at_risk = at_risk
        self.outcome = outcome
        self.test = test

    @classmethod
    def from_cohort(cls, cohort: pl.DataFrame, outcome: str = "retention", alpha: float = 0.05,
                    times: Sequence[float] = (0, 182, 365, 730, 1095)) -> "KaplanMeierDisplay":
        """Curves, numbers at risk at ``times`` and the log-rank test of a cohort frame."""
        curves = kaplan_meier(cohort, outcome, alpha)
        test = logrank(cohort, outcome) if curves["therapy"].n_unique() > 1 else None
        return cls(curves, number_at_risk(curves, times), outcome, test)

    def plot(self, ax: Axes | None = None, table_ax: Axes | None = None) -> Axes:
        """Draw step curves with shaded bands and, in ``table_ax``, the numbers at risk; return the curves' axes.

        Without ``ax`` a figure is made with both panels; with ``ax`` only, the table is left out.
        """
        if ax is None:
            rows = self.at_risk.height
            figure = agg_figure((8, 5.5 + 0.22 * rows))
            ax, table_ax = figure.subplots(2, 1, height_ratios=[5, 0.6 + 0.22 * rows])
        lower = next(c for c in self.curves.columns if c.startswith("lower_"))
        upper = lower.replace("lower_", "upper_")
        for (option,), part in self.curves.group_by("therapy", maintain_order=True):
            t = part["time_days"].to_numpy()
            (line,) = ax.step(t, part["survival"].to_numpy(), where="post", label=option)
            ax.fill_between(t, part[lower].to_numpy(), part[upper].to_numpy(), step="post", alpha=0.15,
                            color=line.get_color(), linewidth=0)
        times = [float(c) for c in self.at_risk.columns if c != "therapy"]
        ax.set(ylim=(0, 1.02), xlim=(0, max(times)), xlabel="Days since start", ylabel=LABELS[self.outcome],
               xticks=times)
        title = f"{TITLES[self.outcome]} by option, {lower.split('_')[1]}% bands"
        if self.test is not None:
            title += f"; log-rank p = {self.test['p']:.2g}"
        ax.set_title(title, fontsize=10)
        ax.legend(loc="lower left", fontsize=8)
        if table_ax is not None:
            cells = [[str(r[c]) for c in self.at_risk.columns if c != "therapy"]
                     for r in self.at_risk.iter_rows(named=True)]
            table_ax.axis("off")
            table = table_ax.table(cellText=cells, rowLabels=self.at_risk["therapy"].to_list(),
                                   colLabels=[f"{t:g} d" for t in times], loc="center", bbox=[0.12, 0.0, 0.88, 1.0])
            table.set_fontsize(8)
            table_ax.set_title("Number at risk", fontsize=9, loc="left")
        self.ax_, self.figure_ = ax, ax.figure
        return ax


class PatientCurvesDisplay:
    """One episode's predicted curves under every option: retention and, if given, freedom from RRP."""

    def __init__(self, retention: pl.DataFrame, progression: pl.DataFrame | None, support: dict[str, str],
                 title: str) -> None:
        self.retention = retention
        self.progression = progression
        self.support = support
        self.title = title

    @classmethod
    def from_models(cls, row: pl.DataFrame, retention: RetentionModel,
                    progression: ProgressionModel | None = None) -> "PatientCurvesDisplay":
        """The curves of the single episode in ``row`` (a one-row cohort frame) from fitted models."""
        if row.height != 1:
            raise ValueError(f"pass exactly one episode (one cohort row), got {row.height}")
        support = dict(retention.predict_options(row).select("therapy", "support").iter_rows())
        title = f"Patient {row['patient_id'][0]}, start {row['index_date'][0]}"
        return cls(retention.predict_curves(row), progression.predict_curves(row) if progression else None,
                   support, title)

    def plot(self, axes: Sequence[Axes] | None = None) -> list[Axes]:
        """Draw one panel per outcome; options without support are dashed and say so. Returns the axes."""
        panels = [("retention", self.retention, "retention")]
        if self.progression is not None:
            panels.append(("progression", self.progression, "rrp_free"))
        axes = list(axes) if axes is not None else _new_axes(len(panels), (6 * len(panels), 4.5))
        for ax, (outcome, curves, column) in zip(axes, panels):
            for (option,), part in curves.group_by("therapy", maintain_order=True):
                flag = self.support.get(option, "ok")
                label = option if flag == "ok" else f"{option} (support: {flag})"
                ax.plot(part["time_days"].to_numpy(), part[column].to_numpy(), label=label,
                        linestyle="-" if flag == "ok" else "--")
            ax.set(ylim=(0, 1.02), xlabel="Days since start", ylabel=LABELS[outcome])
            ax.legend(loc="lower left", fontsize=7)
        axes[0].figure.suptitle(self.title, fontsize=10)
        self.axes_, self.figure_ = axes, axes[0].figure
        return axes
