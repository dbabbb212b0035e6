"""Why a patient's flare risk is what it is: SHAP values by stream and context feature, and plain reasons.

**SHAP.** The network reads 56 days x 12 channels plus ~50 tabular inputs;
per-input attributions would be unreadable. The players are therefore
*groups*: each stream (its daily deviations, masks and summary trends
together) and each clinical-context feature. A group is "absent" when its
inputs come from a background patient-day of the training data
(interventional SHAP with an independent masker), and shap's permutation
explainer gives values that add up exactly to the log-odds minus the
background mean (the base value). Computed on the network's log-odds: the
Platt map on top is monotone, so the reasons' order is that of the risk.

**Reasons.** For each stream, how far its last 7 days moved against the
patient's own baseline ("steps: 7-day mean 4,100 vs usual 7,900 (-48 %)"),
kept when the move is at least one scale unit, largest first.
"""
from __future__ import annotations

import json

import numpy as np
import polars as pl
import shap

from rxpredict.monitoring.baselines import streams
from rxpredict.monitoring.model import FlareRiskModel
from rxpredict.monitoring.windows import Windows

#: A stream moved when its 7-day mean is this many scale units from the baseline.
MOVED = 1.0
BACKGROUND_SIZE = 64


def _groups(model: FlareRiskModel, sequence_names: list[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Group name -> (its sequence channels, its encoded tabular columns)."""
    feature_of = model.encoder_.feature_of_
    columns_of = {n: np.flatnonzero(feature_of == i) for i, n in enumerate(model.tabular_names_)}
    out = {}
    for s in streams():
        channels = np.array([i for i, n in enumerate(sequence_names) if n.startswith(f"{s}_")])
        mine = [cols for n, cols in columns_of.items() if n.startswith(f"{s}_")]
        out[s] = (channels, np.concatenate(mine) if mine else np.array([], dtype=int))
    for n, cols in columns_of.items():
        if not any(n.startswith(f"{s}_") for s in streams()):
            out[n] = (np.array([], dtype=int), cols)
    return out


def background_sample(model: FlareRiskModel, windows: Windows, size: int = BACKGROUND_SIZE,
                      seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A seeded draw of training windows that stands for "a typical patient-day" in SHAP: (sequence, tabular)."""
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(windows), size=min(size, len(windows)), replace=False))
    drawn = windows.take(rows)
    return drawn.sequence, model.tabular(drawn)


def risk_shap(model: FlareRiskModel, windows: Windows, background: tuple[np.ndarray, np.ndarray]) -> shap.Explanation:
    """SHAP values of the log-odds per group (streams, context features) for each window."""
    groups = _groups(model, windows.sequence_names)
    seq = np.concatenate([background[0], windows.sequence])
    tab = np.concatenate([background[1], model.tabular(windows)])
    n_bg, names = len(background[0]), list(groups)

    def f(codes: np.ndarray) -> np.ndarray:
        rows = codes.astype(int)
        s, t = seq[rows[:, 0]].copy(), tab[rows[:, 0]].copy()
        for g, (channels, columns) in enumerate(groups.values()):
            if channels.size:
                s[:, :, channels] = seq[rows[:, g]][:, :, channels]
            if columns.size:
                t[:, columns] = tab[rows[:, g]][:, columns]
        return model.log_odds(s, t)

    base = np.repeat(np.arange(n_bg, dtype=float)[:, None], len(names), axis=1)
    explained = np.repeat(np.arange(n_bg, n_bg + len(windows), dtype=float)[:, None], len(names), axis=1)
    explainer = shap.PermutationExplainer(f, shap.maskers.Independent(base, max_samples=n_bg), feature_names=names)
    out = explainer(explained, max_evals=2 * len(names) + 1, silent=True)
    return shap.Explanation(values=out.values, base_values=out.base_values, data=None, feature_names=names)


def stream_reasons(summary: dict[str, float | None]) -> list[dict[str, object]]:
    """The streams whose last 7 days moved at least one scale unit from the baseline, largest move first."""
    out = []
    for s in streams():
        dev, usual, mean7 = summary.get(f"{s}_dev7"), summary.get(f"{s}_baseline"), summary.get(f"{s}_mean7")
        if dev is None or usual is None or mean7 is None or abs(dev) < MOVED:
            continue
        change = None if usual == 0 else 100 * (mean7 - usual) / abs(usual)
        text = f"{s}: 7-day mean {mean7:,.0f} vs usual {usual:,.0f}" if abs(usual) >= 20 else \
            f"{s}: 7-day mean {mean7:.1f} vs usual {usual:.1f}"
        if change is not None:
            text += f" ({change:+.0f} %)"
        out.append({"stream": s, "deviation_sd": round(dev, 2), "last7": mean7, "usual": usual, "text": text})
    return sorted(out, key=lambda r: -abs(r["deviation_sd"]))


def reasons_frame(model: FlareRiskModel, windows: Windows, background: tuple[np.ndarray, np.ndarray],
                  top: int = 3) -> pl.DataFrame:
    """Per window: the moved streams' reasons and the ``top`` SHAP groups as text, and every SHAP value as JSON."""
    explanation = risk_shap(model, windows, background)
    names = np.array(explanation.feature_names)
    rows = []
    for i, summary in enumerate(windows.summary.iter_rows(named=True)):
        values = explanation.values[i]
        order = np.argsort(-np.abs(values))[:top]
        moved = [r["text"] for r in stream_reasons(summary)]
        drivers = [f"{names[j]} {'raises' if values[j] > 0 else 'lowers'} the risk ({values[j]:+.2f} log-odds)"
                   for j in order]
        rows.append({"reasons": "; ".join(moved + drivers),
                     "shap": json.dumps({str(names[j]): round(float(values[j]), 4) for j in range(len(names))})})
    return pl.DataFrame(rows, schema={"reasons": pl.String, "shap": pl.String})
