"""The HAQ-DI on the visit form: its 20 items and 8 aid questions as fields, scored by rxpredict.clinical."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl

from rxpredict.clinical import haq_di
from rxpredict.forms.fields import FieldSpec, as_number, is_yes_no
from rxpredict.schemas import load_contract


@dataclass(frozen=True)
class HaqSection:
    """One HAQ-DI category on the form: its items (answered on the item scale) and its aid question."""

    name: str
    title: str
    items: tuple[FieldSpec, ...]
    aid: FieldSpec


def haq_sections() -> list[HaqSection]:
    """The HAQ-DI categories in questionnaire order, with item and aid fields named as ``haq_di.json`` names them."""
    haq = load_contract().haq
    values = tuple(v for v, _ in haq.item_scale)
    labels = tuple(label for _, label in haq.item_scale)
    scale = "; ".join(f"{v} = {label.lower()}" for v, label in haq.item_scale)
    return [
        HaqSection(
            name=k.name,
            title=k.title,
            items=tuple(
                FieldSpec(name=item, label=question, help=f"{k.title}: {scale}.", kind="enum",
                          min=values[0], max=values[-1], step=1, options=values, option_labels=labels)
                for item, question in zip(k.items, k.questions)
            ),
            aid=FieldSpec(name=k.aid_column, label=f"{k.title}: aid, device or help from another person used",
                          help=f"Raises the {k.title.lower()} score to {haq.aid_score} unless it is already higher.",
                          kind="bool", options=(True, False), option_labels=("yes", "no")),
        )
        for k in haq.categories
    ]


def _item_value(value: Any) -> int | None:
    """An item answer on the item scale, or None when it is none (unanswered or not a scale value)."""
    scale = {v for v, _ in load_contract().haq.item_scale}
    number = as_number(value)
    return int(number) if number is not None and number in scale else None


def haq_problems(answers: Mapping[str, Any]) -> dict[str, list[str]]:
    """Messages for item and aid answers that are not on their scale, keyed by the item or aid name."""
    haq = load_contract().haq
    scale = ", ".join(str(v) for v, _ in haq.item_scale)
    out: dict[str, list[str]] = {}
    for k in haq.categories:
        for item in k.items:
            value = answers.get(item)
            if value is not None and _item_value(value) is None:
                out[item] = [f"answer one of {scale}"]
        if not is_yes_no(answers.get(k.aid_column)):
            out[k.aid_column] = ["answer yes or no"]
    return out


def haq_answered(answers: Mapping[str, Any]) -> int:
    """How many HAQ-DI categories have at least one item answered on the scale."""
    return sum(
        any(_item_value(answers.get(i)) is not None for i in k.items) for k in load_contract().haq.categories
    )


def haq_score(answers: Mapping[str, Any]) -> float | None:
    """HAQ-DI of the answers on the scale, ignoring any that are not; None below the minimum categories answered."""
    haq = load_contract().haq
    items = {i: _item_value(answers.get(i)) for k in haq.categories for i in k.items}
    aids = {k.aid_column: answers.get(k.aid_column) is True for k in haq.categories}
    row = pl.DataFrame([{**items, **aids}], schema={**{i: pl.Int64 for i in items}, **{a: pl.Boolean for a in aids}})
    return row.select(haq_di()).item()


def haq_from_items(answers: Mapping[str, Any]) -> float | None:
    """HAQ-DI from the 20 item answers (0-3; None = unanswered) and the 8 aids (True = used), as the clinic scores it.

    Keys are the item and aid names of ``haq_di.json`` (others are ignored).
    None unless at least ``min_categories`` (6) categories are answered; an
    answer off the item scale is an error naming the item.
    """
    if problems := haq_problems(answers):
        raise ValueError(f"HAQ-DI answers off the scale: {sorted(problems)}")
    return haq_score(answers)
