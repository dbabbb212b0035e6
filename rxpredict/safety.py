"""Safety flags of the therapy comparison, from the rules in ``data_schemas/safety_flags.json``.

The clinical reference lists, per therapy option, what a prescriber must weigh
(age and smoking for JAK inhibitors, seronegativity for rituximab, ...). Where
the registry records it, the patient's cohort features raise a ``caution``;
where it does not (heart failure, hepatitis B, pregnancy), a ``check`` says
what to ask or screen. Flags are shown beside their option and never hide it.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import polars as pl

from rxpredict.schemas import load_contract, schema_dir

RULES_FILE = "safety_flags.json"
KINDS = ("caution", "check")


@dataclass(frozen=True)
class SafetyRule:
    """One flag: its options, kind, the conditions that must all hold (none: always shown) and the message."""

    id: str
    options: tuple[str, ...]
    kind: str
    when: tuple[dict[str, Any], ...]
    message: str

    def applies(self, row: Mapping[str, Any]) -> bool:
        """Whether every condition holds for the patient's features (an unrecorded feature never raises one)."""
        return all(_holds(condition, row) for condition in self.when)


def _holds(condition: Mapping[str, Any], row: Mapping[str, Any]) -> bool:
    if "any" in condition:
        return any(_holds(c, row) for c in condition["any"])
    value = row.get(condition["feature"])
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    if "at_least" in condition:
        return value >= condition["at_least"]
    return value == condition["equals"]


@cache
def safety_rules() -> tuple[SafetyRule, ...]:
    """The rules of ``data_schemas/safety_flags.json``, checked: known options and kinds, unique ids."""
    raw = json.loads((schema_dir() / RULES_FILE).read_text(encoding="utf-8"))
    options = set(load_contract().option_names)
    rules = tuple(SafetyRule(r["id"], tuple(r["options"]), r["kind"], tuple(r.get("when", ())), r["message"])
                  for r in raw["flags"])
    for rule in rules:
        if rule.kind not in KINDS or not set(rule.options) <= options:
            raise ValueError(f"{RULES_FILE}: flag {rule.id!r} has kind {rule.kind!r} or options {rule.options} "
                             f"outside {KINDS} and {sorted(options)}")
    if len({r.id for r in rules}) != len(rules):
        raise ValueError(f"{RULES_FILE}: flag ids repeat")
    return rules


def safety_flags(row: Mapping[str, Any]) -> pl.DataFrame:
    """The flags of one patient (a cohort row as a dict): columns therapy, flag, kind, message; cautions first."""
    flags = [{"therapy": option, "flag": rule.id, "kind": rule.kind, "message": rule.message.format(**{
        k: v for k, v in row.items() if isinstance(v, (int, float))})}
        for rule in safety_rules() if rule.applies(row) for option in rule.options]
    schema = {"therapy": pl.String, "flag": pl.String, "kind": pl.String, "message": pl.String}
    return pl.DataFrame(flags, schema=schema).sort(pl.col("kind").replace_strict(
        {k: i for i, k in enumerate(KINDS)}), "therapy", maintain_order=True)
