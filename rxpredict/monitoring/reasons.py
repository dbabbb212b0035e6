"""Why a patient's flare risk is what it is: SHAP values by stream and context feature, and plain reasons.

**SHAP.** The network reads 56 days x 12 channels plus ~50 tabular inputs;
per-input attributions would be unreadable. The players are therefore
*groups*: each stream (its daily deviations, masks and summary trends
together) and each clinical-context feature. A group is "absent" when its
inputs come from a background patient-day of the training data
(interventional SHAP with an independent masker), and shap's permutation
explainer gives values that add up exactly to the log-odds minus the
background mean (the base value). Each window is explained with the
permutation explainer seeded afresh (:data:`SHAP_SEED`), so a patient-day
gets the same values whenever it is scored and whichever patients are scored
with it.

**Reasons**, in the words of the clinic (:func:`group_label`): for each
stream, how far its last 7 days moved against the patient's own baseline
("Steps: 7-day mean 4,100 vs usual 7,900 (-48 %)"), kept when the move is at
least one scale unit, largest first; then the groups that moved the risk most,
in percentage points of the calibrated risk, in note form ("Resting heart
rate: raises the risk by 1.2 percentage points": without its SHAP value the
patient's risk would be that much lower). The stored SHAP JSON keeps the
values on the log-odds, by group name.
"""
from __future__ import annotations

import json

import numpy as np
import polars as pl
import shap

from rxpredict.explain.reasons import option_title
from rxpredict.monitoring.baselines import streams
from rxpredict.monitoring.model import FlareRiskModel
from rxpredict.monitoring.windows import Windows
from rxpredict.schemas import load_contract

#: A stream moved when its 7-day mean is this many scale units from the baseline.
MOVED = 1.0
BACKGROUND_SIZE = 64
#: Seed of the permutation explainer's order of the groups, the same for every window.
SHAP_SEED = 0
#: A SHAP group is a reason when it moves the risk by this many percentage points (0.1 once rounded) or more.
MIN_POINTS = 0.05
#: The clinical context inputs (:func:`rxpredict.monitoring.windows.context_features`) as the clinic reads them.
CONTEXT_LABELS = {
    "last_das28": "last visit's DAS28",
    "last_das28_change": "change in DAS28 at the last visit",
    "days_since_visit": "time since the last visit",
    "days_since_start": "time on the current therapy",
    "days_since_glucocorticoid_stop": "time since glucocorticoids were stopped",
    "days_since_flare": "time since the last flare",
    "flares_past_year": "flares in the past year",
    "age": "age",
    "female": "sex",
    "seropositive": "seropositivity (RF or ACPA)",
}


def group_label(name: str) -> str:
    """A SHAP group in words: a stream's title in the data contract, a context input's label, a therapy flag
    ``on_<option>`` as "<therapy> use", else the name with spaces for underscores."""
    if name in streams():
        return load_contract().tables["wearables"].field(name).title
    if name in CONTEXT_LABELS:
        return CONTEXT_LABELS[name]
    if name.startswith("on_"):
        return f"{option_title(name.removeprefix('on_'))} use"
    return name.replace("_", " ")


def _groups(model: FlareRiskModel, sequence_names: list[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Group name -> (its sequence channels, its encoded tabular columns)."""
    feature_of = model.feature_of_
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
    """SHAP values of the log-odds per group (streams, context features) for each window; the same inputs give
    the same values."""
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
    masker = shap.maskers.Independent(base, max_samples=n_bg)
    # shap's seed seeds numpy's global generator once, and each row draws its order from it: an explainer per
    # window keeps a window's values apart from the others scored with it. The caller's generator is restored.
    state = np.random.get_state()
    try:
        out = [shap.PermutationExplainer(f, masker, feature_names=names, seed=SHAP_SEED)(
            row[None], max_evals=2 * len(names) + 1, silent=True) for row in explained]
    finally:
        np.random.set_state(state)
    return shap.Explanation(values=np.concatenate([o.values for o in out]),
                            base_values=np.concatenate([o.base_values for o in out]), data=None, feature_names=names)


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def risk_points(model: FlareRiskModel, explanation: shap.Explanation) -> np.ndarray:
    """Per window and group, how many percentage points of calibrated risk the group's SHAP value adds: the
    window's risk minus its risk with the log-odds less that value (negative where the group lowers it)."""
    log_odds = (explanation.base_values + explanation.values.sum(axis=1))[:, None]
    return 100 * (model.risk(log_odds) - model.risk(log_odds - explanation.values))


def stream_reasons(summary: dict[str, float | None]) -> list[dict[str, object]]:
    """The streams whose last 7 days moved at least one scale unit from the baseline, largest move first."""
    out = []
    for s in streams():
        dev, usual, mean7 = summary.get(f"{s}_dev7"), summary.get(f"{s}_baseline"), summary.get(f"{s}_mean7")
        if dev is None or usual is None or mean7 is None or abs(dev) < MOVED:
            continue
        change = None if usual == 0 else 100 * (mean7 - usual) / abs(usual)
        label = group_label(s)
        text = f"{label}: 7-day mean {mean7:,.0f} vs usual {usual:,.0f}" if abs(usual) >= 20 else \
            f"{label}: 7-day mean {mean7:.1f} vs usual {usual:.1f}"
        if change is not None:
            text += f" ({change:+.0f} %)"
        out.append({"stream": s, "deviation_sd": round(dev, 2), "last7": mean7, "usual": usual, "text": text})
    return sorted(out, key=lambda r: -abs(r["deviation_sd"]))


def reasons_frame(model: FlareRiskModel, windows: Windows, background: tuple[np.ndarray, np.ndarray],
                  top: int = 3) -> pl.DataFrame:
    """Per window: the moved streams' reasons and the ``top`` SHAP groups that move the risk by
    :data:`MIN_POINTS` or more, as text; and every SHAP value (log-odds) by group name as JSON."""
    explanation = risk_shap(model, windows, background)
    names = np.array(explanation.feature_names)
    points = risk_points(model, explanation)
    rows = []
    for i, summary in enumerate(windows.summary.iter_rows(named=True)):
        values = explanation.values[i]
        order = [j for j in np.argsort(-np.abs(points[i]))[:top] if abs(points[i, j]) >= MIN_POINTS]
        moved = [r["text"] for r in stream_reasons(summary)]
        drivers = [f"{_capitalised(group_label(names[j]))}: {'raises' if points[i, j] > 0 else 'lowers'} the risk "
                   f"by {abs(points[i, j]):.1f} percentage points" for j in order]
        rows.append({"reasons": "; ".join(moved + drivers),
                     "shap": json.dumps({str(names[j]): round(float(values[j]), 4) for j in range(len(names))})})
    return pl.DataFrame(rows, schema={"reasons": pl.String, "shap": pl.String})
