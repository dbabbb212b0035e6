"""Choices for the treatments on the visit form: drugs by therapy option, stop reasons, courses still open."""
from __future__ import annotations

import polars as pl

from rxpredict.schemas import load_contract


def drug_groups() -> dict[str, tuple[str, ...]]:
    """Drug names grouped under their therapy option's title, in vocabulary order.

    Drugs of no therapy option (glucocorticoids, concomitant only) are grouped
    under their role.
    """
    contract = load_contract()
    titles = {o.name: o.title for o in contract.therapy_options}
    groups: dict[str, list[str]] = {}
    for d in contract.drugs:
        groups.setdefault(titles.get(d.therapy_option or "", d.role), []).append(d.name)
    return {title: tuple(drugs) for title, drugs in groups.items()}


def stop_reasons() -> tuple[str, ...]:
    """Why a course may stop: the treatments schema's ``stop_reason`` enum."""
    return load_contract().tables["treatments"].field("stop_reason").enum or ()


def ongoing_courses(treatments: pl.DataFrame) -> list[dict]:
    """The courses a visit may stop (no stop date yet), oldest first: patient_id, drug, start_date."""
    return (
        treatments.filter(pl.col("stop_date").is_null())
        .sort("start_date", "drug")
        .select("patient_id", "drug", "start_date")
        .to_dicts()
    )
