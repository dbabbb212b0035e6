"""The visit form's state as a visits row, its scores as the user types, and its validation messages per field.

The form state is one flat mapping: visits columns by name (``esr_mm_h``,
``visit_date`` ...), the joint tick boxes by :func:`joint_key`
(``tender_left_wrist`` -> True), and the HAQ-DI items and aids by their
``haq_di.json`` names. Where the form has tick boxes, ``tjc28``/``sjc28`` are
their counts; where it has HAQ-DI items answered, ``haq_di`` is scored from
them. Neither :func:`live_scores` nor :func:`validate_visit_form` ever raises,
whatever they are given: a wrong value is a message, not an exception.
"""
from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

import polars as pl

from rxpredict.clinical import score_visit
from rxpredict.forms.fields import as_number, is_yes_no
from rxpredict.forms.haq import haq_answered, haq_problems, haq_score
from rxpredict.forms.joints import JOINT_COUNT_COLUMNS, das28_joints, joint_key
from rxpredict.schemas import Field, load_contract
from rxpredict.validation.records import as_text, check_records, problems_by_column

#: Visits columns that feed the disease-activity scores.
SCORE_INPUTS = ("tjc28", "sjc28", "esr_mm_h", "crp_mg_l", "patient_global_0_100", "physician_global_0_100")


def _joint_counts(form: Mapping[str, Any]) -> dict[str, int]:
    """tjc28/sjc28 counted from the tick boxes the form has (a kind with no tick box in the form is not counted)."""
    counts = {}
    for kind, column in JOINT_COUNT_COLUMNS.items():
        keys = [joint_key(kind, j.name) for j in das28_joints()]
        if any(k in form for k in keys):
            counts[column] = sum(form.get(k) is True for k in keys)
    return counts


def _haq_items_given(form: Mapping[str, Any]) -> bool:
    return any(form.get(i) is not None for k in load_contract().haq.categories for i in k.items)


def visit_values(form: Any) -> dict[str, Any]:
    """The visits row the form saves: every visits column, counts from tick boxes and HAQ-DI from items where given."""
    form = form if isinstance(form, Mapping) else {}
    row = {c: form.get(c) for c in load_contract().tables["visits"].column_names}
    row.update(_joint_counts(form))
    if _haq_items_given(form):
        row["haq_di"] = haq_score(form)
    return row


def _number(f: Field, value: Any) -> float | int | None:
    """A score input as a number, or None when it is missing, not a number, not finite or outside the schema range."""
    x = as_number(value)
    if x is None or not math.isfinite(x) or (f.minimum is not None and x < f.minimum) or (f.maximum is not None and x > f.maximum):
        return None
    if f.type == "integer":
        return int(x) if x.is_integer() else None
    return x


def live_scores(form: Any) -> dict[str, Any]:
    """DAS28-ESR/CRP, CDAI, SDAI and their categories from the form as it stands; None where an input is missing.

    Also ``tjc28``, ``sjc28`` and ``haq_di`` as the form gives or derives them
    (for showing next to the tick boxes and items), and ``esr_floored``. An
    input that is not a valid number in its schema range counts as missing.
    """
    row = visit_values(form)
    visits = load_contract().tables["visits"]
    inputs = {c: _number(visits.field(c), row[c]) for c in SCORE_INPUTS}
    scores = score_visit(inputs)
    return {"tjc28": inputs["tjc28"], "sjc28": inputs["sjc28"],
            "haq_di": _number(visits.field("haq_di"), row["haq_di"]), **scores}


def _patient_frame(patient: Mapping[str, Any]) -> pl.DataFrame:
    """A stored patient as the validator's context (text cells, read by the validator like a registry file)."""
    columns = load_contract().tables["patients"].column_names
    return pl.DataFrame({c: [as_text(patient.get(c))] for c in columns}, schema={c: pl.String for c in columns})


def _derived_messages(form: Mapping[str, Any], row: Mapping[str, Any]) -> dict[str, list[str]]:
    """Form-only problems: tick boxes that are not yes/no, HAQ-DI items off the scale or too few, typed totals
    that disagree with the ticked joints or the scored items."""
    visits = load_contract().tables["visits"]
    out: dict[str, list[str]] = {}
    for kind, column in JOINT_COUNT_COLUMNS.items():
        for j in das28_joints():
            if not is_yes_no(form.get(joint_key(kind, j.name))):
                out[joint_key(kind, j.name)] = ["tick or untick this joint"]
        typed = form.get(column)
        if column in _joint_counts(form) and typed is not None and _number(visits.field(column), typed) != row[column]:
            out.setdefault(column, []).append(f"{row[column]} {kind} joints are ticked: enter the count or tick the "
                                              "joints, not both")
    out.update(haq_problems(form))
    if _haq_items_given(form):
        haq = load_contract().haq
        answered = haq_answered(form)
        if answered < haq.min_categories:
            out.setdefault("haq_di", []).append(
                f"HAQ-DI needs answers in at least {haq.min_categories} of {len(haq.categories)} categories "
                f"({answered} answered): answer more items or clear them all")
        elif form.get("haq_di") is not None and _number(visits.field("haq_di"), form.get("haq_di")) != row["haq_di"]:
            out.setdefault("haq_di", []).append(f"the items score {row['haq_di']:g}: enter the total or the items, "
                                                "not both")
    return out


def validate_visit_form(form: Any, *, patient: Mapping[str, Any] | None = None,
                        today: dt.date | None = None) -> dict[str, list[str]]:
    """Why the form cannot be saved, as messages keyed by form field ("" for the form as a whole); {} when it can.

    The visits row (:func:`visit_values`) is checked with the registry
    validator's rules (:func:`~rxpredict.validation.records.check_records`),
    against ``patient`` (the stored patient row) where given: a visit long
    before the diagnosis, or for another patient, is then caught too. Without
    ``patient`` the rules that need the patient row are left to the save.
    Tick boxes and HAQ-DI items get their own messages under their keys.
    """
    if not isinstance(form, Mapping):
        return {"": ["the form's values are missing"]}
    row = visit_values(form)
    if isinstance(patient, Mapping):
        if row["patient_id"] is None:
            row["patient_id"] = patient.get("patient_id")
        problems = check_records({"visits": [row]}, context={"patients": _patient_frame(patient)}, today=today)
    else:
        problems = [p for p in check_records({"visits": [row]}, today=today) if p.rule != "foreign_key"]
    messages = problems_by_column(problems, "visits")
    for key, texts in _derived_messages(form, row).items():
        messages.setdefault(key, []).extend(texts)
    return messages
