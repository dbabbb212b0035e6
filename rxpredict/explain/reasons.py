"""The top reasons of one explanation in plain language, with the data dictionary's titles and units.

"CRP 45 mg/L raises the chance of response to IL-6 inhibitor by 8 points":
a feature's SHAP value on the explained scale (the ensemble-mean probability
before calibration, or the progression model's probability) in percentage
points. A block the patient has no data for is one reason ("No imaging
data ..."), the values of what it lacks summed.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shap

from rxpredict.explain.modality import FeatureLayout, block_columns, recorded
from rxpredict.schemas import load_contract

#: Features that are not a copy of one contract column: (title, unit).
DERIVED = {
    "clinical_female": ("Female sex", None), "clinical_smoking_current": ("Current smoker", None),
    "clinical_smoking_former": ("Former smoker", None), "clinical_age": ("Age", "years"),
    "clinical_disease_years": ("Disease duration", "years"), "clinical_das28_esr": ("DAS28-ESR", None),
    "clinical_das28_crp": ("DAS28-CRP", None), "clinical_cdai": ("CDAI", None), "clinical_sdai": ("SDAI", None),
    "clinical_n_prior_advanced": ("Prior advanced therapies", None),
    "clinical_n_prior_failures": ("Prior therapy failures", None),
    "clinical_concomitant_mtx": ("Concomitant methotrexate", None),
    "clinical_concomitant_gc": ("Concomitant glucocorticoids", None),
    "clinical_years_since_failure": ("Time since the last therapy failure", "years"),
    "imaging_total": ("Total Sharp/van der Heijde score", "SvdH units"),
    "imaging_progression_per_year": ("Radiographic progression", "SvdH units/year"),
    "imaging_days_since_exam": ("Time since the last radiograph", "days"),
    "wearable_days28": ("Days with wearable data in the last 28", "days"),
}
#: Contract columns behind features named differently: feature -> (table, column).
RENAMED = {"clinical_rf": ("patients", "rf_positive"), "clinical_acpa": ("patients", "acpa_positive")}
#: Yes/no features (besides the prior-option flags and masks).
BINARY = {"clinical_female", "clinical_rf", "clinical_acpa", "clinical_smoking_current", "clinical_smoking_former",
          "clinical_concomitant_mtx", "clinical_concomitant_gc"}
#: Explained probabilities -> (what they are the chance of, the preposition before the option).
OUTCOMES = {"p_response": ("the chance of response", "to"), "p_good": ("the chance of good response", "to"),
            "p_remission": ("the chance of remission", "to"),
            "p_rrp": ("the risk of rapid radiographic progression", "under"),
            "p_rrp_2y": ("the risk of rapid radiographic progression within 2 years", "under")}
#: Outcomes to avoid: an option that raises them is the worse one.
HARMFUL = {"p_rrp", "p_rrp_2y"}
#: How a missing block reads (the clinical mask marks the baseline visit; demographics exist without it).
ABSENT = {"clinical": "No baseline visit", "genetic": "No genetic data", "imaging": "No imaging data",
          "wearable": "No wearable data"}


@dataclass(frozen=True)
class Reason:
    """One reason: the feature (or ``block:<name>`` for a missing block), its effect and the sentence."""

    feature: str
    description: str
    effect: float
    sentence: str


def option_title(option: str) -> str:
    """The contract's title of a therapy option ("il6i" -> "IL-6 inhibitor")."""
    return next((o.title for o in load_contract().therapy_options if o.name == option), option)


def feature_label(column: str) -> tuple[str, str | None]:
    """(title, unit) of a feature column, from the data contract where the feature is one of its columns."""
    contract = load_contract()
    block, _, rest = column.partition("_")
    if column in DERIVED:
        return DERIVED[column]
    if column in RENAMED:
        field = contract.tables[RENAMED[column][0]].field(RENAMED[column][1])
        return field.title, field.unit
    if block == "mask":
        return f"{rest.capitalize()} data available", None
    if column.startswith(("clinical_prior_", "clinical_failures_")):
        kind, _, option = rest.partition("_")
        return (f"Prior {option_title(option)}", None) if kind == "prior" else (
            f"Failures of {option_title(option)}", None)
    if block == "clinical" and rest in contract.tables["visits"].column_names:
        field = contract.tables["visits"].field(rest)
        return field.title, field.unit
    if block == "imaging":
        score, _, site = rest.partition("_")
        field = contract.tables["imaging"].field(score)
        return f"{field.title}{f' ({site})' if site else ''}", field.unit
    if block == "wearable":
        stream, _, window = rest.rpartition("_")
        field = contract.tables["wearables"].field(stream)
        return f"{field.title} ({'28-day mean' if window == 'mean28' else '14-day trend'})", field.unit
    if block == "genetic":
        return f"Genetic marker {rest}", None
    return column, None


def describe(column: str, value: float) -> str:
    """A feature and its value as a clinician reads it ("CRP 45 mg/L", "ACPA positive: yes")."""
    title, unit = feature_label(column)
    if np.isnan(value):
        return f"{title} not recorded"
    if column in BINARY or column.startswith(("clinical_prior_", "mask_")):
        return f"{title}: {'yes' if value >= 0.5 else 'no'}"
    number = f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"
    return f"{title} {number}{f' {unit}' if unit else ''}"


def _sentence(what: str, effect: float, output: str, therapy: str, versus: str | None) -> str:
    if output == "das28_change":
        target = option_title(therapy) if versus is None else f"{option_title(therapy)} versus {option_title(versus)}"
        return f"{what} changes the expected DAS28 change under {target} by {effect:+.2f}"
    points = abs(effect) * 100
    size = f"{points:.0f}" if points >= 1 else f"{points:.1f}"
    size += " point" if size == "1" else " points"
    outcome, preposition = OUTCOMES[output]
    if versus is None:
        verb = "raises" if effect > 0 else "lowers"
        return f"{what} {verb} {outcome} {preposition} {option_title(therapy)} by {size}"
    better, worse = (therapy, versus) if (effect > 0) != (output in HARMFUL) else (versus, therapy)
    return f"{what} favours {option_title(better)} over {option_title(worse)} by {size} ({outcome})"


def top_reasons(explanation: shap.Explanation, model: FeatureLayout, *, therapy: str, versus: str | None = None,
                output: str = "p_response", row: int = 0, n: int = 3) -> list[Reason]:
    """The ``n`` features (or missing blocks) that moved row ``row``'s prediction most, largest first.

    ``therapy``, ``versus`` and ``output`` must be those the explanation was
    made with; they word the sentences. Effects are on the explained scale:
    probabilities before calibration (a sentence says percentage points), or DAS28 units.
    """
    if output not in (*OUTCOMES, "das28_change"):
        raise ValueError(f"output {output!r} cannot be worded; choose one of {', '.join([*OUTCOMES, 'das28_change'])}")
    values, data = np.atleast_2d(explanation.values)[row], np.atleast_2d(explanation.data)[row]
    seen = recorded(explanation, model)[row]
    candidates = []
    for block, cols in block_columns(model).items():
        unseen = [i for i in cols if not seen[i]]
        if np.nan_to_num(data[cols[-1]]) == 0:  # a missing block: what it lacks is one reason
            candidates.append((f"block:{block}", ABSENT[block], float(values[unseen].sum())))
            cols = [i for i in cols if seen[i]]
        candidates += [(model.columns_[i], describe(model.columns_[i], data[i]), float(values[i])) for i in cols]
    candidates.sort(key=lambda c: -abs(c[2]))
    return [Reason(f, what, effect, _sentence(what, effect, output, therapy, versus))
            for f, what, effect in candidates[:n]]
