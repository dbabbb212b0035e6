"""Importance over a cohort (mean |SHAP| per feature) and shap's own beeswarm and bar plots, saved as PNG.

Figures are drawn on the Agg canvas outside pyplot's figure manager, so
nothing is shown and the caller's matplotlib backend is left alone.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import shap

from rxpredict.explain.reasons import feature_label

#: The plots :func:`save_plot` draws.
PLOTS = ("beeswarm", "bar")


def global_importance(explanation: shap.Explanation) -> pl.DataFrame:
    """Mean |SHAP| per feature over the explanation's rows, largest first, with each feature's title and rank."""
    values = np.atleast_2d(explanation.values)
    return (pl.DataFrame({"feature": list(explanation.feature_names),
                          "title": [feature_label(c)[0] for c in explanation.feature_names],
                          "mean_abs_shap": np.abs(values).mean(axis=0)})
            .sort("mean_abs_shap", descending=True)
            .with_row_index("rank", offset=1))


def save_plot(explanation: shap.Explanation, path: str | Path, kind: str = "beeswarm",
              max_display: int = 12) -> Path:
    """Draw shap's ``kind`` plot ("beeswarm" over a cohort, "bar": mean |SHAP|, or one patient's values) as PNG.

    Features are labelled with their data-dictionary titles.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    if kind not in PLOTS:
        raise ValueError(f"plot kind {kind!r}: choose one of {', '.join(PLOTS)}")
    if path.suffix.lower() != ".png":
        raise ValueError(f"{path.name}: plots are written as PNG, give a .png file")
    titled = shap.Explanation(values=explanation.values, base_values=explanation.base_values, data=explanation.data,
                              feature_names=[feature_label(c)[0] for c in explanation.feature_names])
    if kind == "beeswarm" and np.ndim(titled.values) != 2:
        raise ValueError("a beeswarm needs several patients; use kind='bar' for one")
    figure = FigureCanvasAgg(Figure(figsize=(9, 1.2 + 0.45 * max_display), layout="constrained")).figure
    ax = figure.subplots()
    if kind == "beeswarm":
        shap.plots.beeswarm(titled, max_display=max_display, ax=ax, show=False, plot_size=None)
    else:
        shap.plots.bar(titled, max_display=max_display, ax=ax, show=False)
    figure.savefig(path, format="png", dpi=120)
    return path
