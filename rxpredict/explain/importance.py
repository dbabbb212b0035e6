"""Importance over a cohort (mean |SHAP| per feature) and shap's own beeswarm, bar and waterfall plots, as PNG.

Beeswarm and bar plots are drawn on the Agg canvas outside pyplot's figure
manager, so nothing is shown and the caller's matplotlib backend is left
alone. shap draws a waterfall only on pyplot's current figure: that figure is
made for it and closed again at once.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import polars as pl
import shap

from rxpredict.explain.reasons import feature_label
from rxpredict.figures import DPI, agg_figure, png_bytes

#: The plots :func:`plot_png` draws.
PLOTS = ("beeswarm", "bar", "waterfall")


def global_importance(explanation: shap.Explanation) -> pl.DataFrame:
    """Mean |SHAP| per feature over the explanation's rows, largest first, with each feature's title and rank."""
    values = np.atleast_2d(explanation.values)
    return (pl.DataFrame({"feature": list(explanation.feature_names),
                          "title": [feature_label(c)[0] for c in explanation.feature_names],
                          "mean_abs_shap": np.abs(values).mean(axis=0)})
            .sort("mean_abs_shap", descending=True)
            .with_row_index("rank", offset=1))


def plot_png(explanation: shap.Explanation, kind: str = "beeswarm", max_display: int = 12) -> bytes:
    """shap's ``kind`` plot as PNG bytes: "beeswarm" over a cohort, "bar" (mean |SHAP|, or one patient's values) or
    "waterfall" (one patient: from the base value to the prediction, feature by feature).

    Features are labelled with their data-dictionary titles.
    """
    if kind not in PLOTS:
        raise ValueError(f"plot kind {kind!r}: choose one of {', '.join(PLOTS)}")
    titled = shap.Explanation(values=explanation.values, base_values=explanation.base_values, data=explanation.data,
                              feature_names=[feature_label(c)[0] for c in explanation.feature_names])
    if kind == "beeswarm" and np.ndim(titled.values) != 2:
        raise ValueError("a beeswarm needs several patients; use kind='bar' for one")
    if kind == "waterfall":
        return _waterfall_png(titled, max_display)
    figure = agg_figure((9, 1.2 + 0.45 * max_display))
    ax = figure.subplots()
    if kind == "beeswarm":
        shap.plots.beeswarm(titled, max_display=max_display, ax=ax, show=False, plot_size=None)
    else:
        shap.plots.bar(titled, max_display=max_display, ax=ax, show=False)
    return png_bytes(figure)


def _waterfall_png(titled: shap.Explanation, max_display: int) -> bytes:
    import matplotlib.pyplot as plt

    if np.ndim(titled.values) != 1:
        if len(titled.values) != 1:
            raise ValueError("a waterfall explains one patient; pass explanation[i]")
        titled = titled[0]
    data = np.asarray(titled.data, dtype=float)  # a missing value reads "not recorded", not "nan"
    titled = shap.Explanation(values=titled.values, base_values=titled.base_values, feature_names=titled.feature_names,
                              data=np.array([v if not np.isnan(v) else "not recorded" for v in data], dtype=object))
    figure = plt.figure()
    try:
        shap.plots.waterfall(titled, max_display=max_display, show=False)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    finally:
        plt.close(figure)
    return buffer.getvalue()


def save_plot(explanation: shap.Explanation, path: str | Path, kind: str = "beeswarm",
              max_display: int = 12) -> Path:
    """Write :func:`plot_png`'s plot to ``path`` (a .png file)."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"{path.name}: plots are written as PNG, give a .png file")
    path.write_bytes(plot_png(explanation, kind, max_display))
    return path
