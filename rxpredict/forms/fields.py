"""Form fields described by the data contract: what widget, label, help, range, step and choices a column gets.

The app draws its widgets from :class:`FieldSpec` objects and never types a
label, unit, range or enum of its own, so a change in ``data_schemas/`` shows
up in the forms without touching the app.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal

from rxpredict.schemas import Contract, Field, load_contract

Kind = Literal["int", "float", "date", "bool", "enum", "text"]

_KINDS: dict[str, Kind] = {"integer": "int", "number": "float", "date": "date", "boolean": "bool", "string": "text"}


@dataclass(frozen=True)
class FieldSpec:
    """One form field: everything a widget needs, read from the schema.

    ``options`` are the values an ``enum`` or ``bool`` field may take and
    ``option_labels`` their display text, in the same order (use
    :meth:`format` as a select box's ``format_func``). ``min`` and ``max`` are
    numbers for ``int``/``float`` fields and dates for ``date`` fields.
    """

    name: str
    label: str
    help: str
    kind: Kind
    required: bool = False
    min: Any = None
    max: Any = None
    step: float | None = None
    options: tuple[Any, ...] = ()
    option_labels: tuple[str, ...] = ()

    def format(self, value: Any) -> str:
        """Display text of an option (the value itself, as text, when it is not one)."""
        for option, label in zip(self.options, self.option_labels):
            if option == value and type(option) is type(value):
                return label
        return "" if value is None else str(value)


def as_number(value: Any) -> float | None:
    """A form value read as a float (text is parsed; bools and other types are not numbers): None when it is none."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return float(value)
    except (ValueError, OverflowError):
        return None


def readable(name: str) -> str:
    """A vocabulary name as text for people: ``certolizumab_pegol`` -> ``certolizumab pegol``."""
    return name.replace("_", " ")


def is_yes_no(value: Any) -> bool:
    """True for a tick box's possible values: True, False or None (not answered)."""
    return value is None or value is True or value is False


def _g(x: float) -> str:
    return f"{x:g}"


def _limits(f: Field, today: dt.date) -> tuple[Any, Any]:
    """The field's minimum and maximum, with a calendar maximum ("today", "current_year") resolved."""
    maximum: Any = f.maximum
    if f.dynamic_maximum == "today":
        maximum = today
    elif f.dynamic_maximum == "current_year":
        maximum = today.year
    return f.minimum, maximum


def _help(f: Field, minimum: Any, maximum: Any) -> str:
    parts = [f.description]
    if minimum is not None or maximum is not None:
        lo = _g(minimum) if minimum is not None else ""
        hi = (maximum.isoformat() if isinstance(maximum, dt.date) else _g(maximum)) if maximum is not None else ""
        parts.append(f"Allowed: {lo}..{hi}{' ' + f.unit if f.unit and f.type != 'date' else ''}.")
    if f.multiple_of:
        parts.append(f"In steps of {_g(f.multiple_of)}.")
    if f.required:
        parts.append("Required.")
    return " ".join(parts)


def _option_labels(table: str, column: str, values: tuple[str, ...], contract: Contract) -> tuple[str, ...]:
    """Display text of an enum's values; drugs also name their therapy option (or role, for glucocorticoids)."""
    if (table, column) == ("treatments", "drug"):
        titles = {o.name: o.title for o in contract.therapy_options}
        group = {d.name: titles.get(d.therapy_option or "", d.role) for d in contract.drugs}
        return tuple(readable(v) if readable(v) == group[v].lower() else f"{readable(v)} ({group[v]})" for v in values)
    return tuple(readable(v) for v in values)


def field_spec(table: str, column: str, *, today: dt.date | None = None) -> FieldSpec:
    """The form field of one column of a registry table."""
    contract = load_contract()
    f = contract.tables[table].field(column)
    minimum, maximum = _limits(f, today or dt.date.today())
    kind: Kind = "enum" if f.enum is not None else _KINDS[f.type]
    options: tuple[Any, ...] = ()
    labels: tuple[str, ...] = ()
    if f.enum is not None:
        options, labels = f.enum, _option_labels(table, f.name, f.enum, contract)
    elif kind == "bool":
        options, labels = (True, False), ("yes", "no")
    step = f.multiple_of if f.multiple_of else (1 if kind == "int" else None)
    return FieldSpec(
        name=f.name,
        label=f"{f.title} [{f.unit}]" if f.unit and kind != "date" else f.title,
        help=_help(f, minimum, maximum),
        kind=kind,
        required=f.required,
        min=minimum,
        max=maximum,
        step=step,
        options=options,
        option_labels=labels,
    )


def field_specs(table: str, *, today: dt.date | None = None) -> list[FieldSpec]:
    """The form fields of a registry table, in schema order (``today`` resolves "not in the future" maxima)."""
    return [field_spec(table, c, today=today) for c in load_contract().tables[table].column_names]
