"""Checks generated from the schema files: one boolean expression per rule, True where broken.

Every check runs over a table's typed frame (see casting.py) that carries a
``__row`` column; rules that look into another table join what they need onto
that frame first. No column name, range or enum is written here: all of it comes
from :mod:`rxpredict.schemas`.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

from rxpredict.schemas import Contract, Field, Rule, TableSchema

ROW = "__row"


@dataclass(frozen=True)
class Check:
    """One rule on one column: ``mask`` is True on the rows that break it.

    ``value`` optionally builds the value to report (e.g. a composite key);
    by default the report shows the raw cell of ``column``. ``nulls_cell``
    marks checks of a single value (a range, an enum ...): the typed table
    then holds null there, so that a bad value never reaches a score. Checks
    of a relation (keys, date order) leave the values as they are.
    """

    rule: str
    column: str | None
    message: str
    mask: pl.Expr
    value: pl.Expr | None = None
    severity: str = "error"
    nulls_cell: bool = False
    #: Evaluated on the rows ``mask`` flagged (in table order): keeps the true violations. Lets ``mask``
    #: be a cheap superset on huge tables (a hash) with the exact test run on the few candidates.
    refine: pl.Expr | None = None


def _fmt(x: float) -> str:
    return f"{x:g}"


def field_checks(field: Field, today: dt.date) -> list[Check]:
    """Constraints on the values of one column: ranges, enum, length, pattern, step, uniqueness."""
    c = pl.col(field.name)
    out: list[Check] = []

    def value_check(rule: str, message: str, mask: pl.Expr) -> None:
        out.append(Check(rule, field.name, message, mask, nulls_cell=True))

    if field.minimum is not None:
        value_check("minimum", f"below the minimum {_fmt(field.minimum)}", c < field.minimum)
    if field.maximum is not None:
        value_check("maximum", f"above the maximum {_fmt(field.maximum)}", c > field.maximum)
    if field.dynamic_maximum == "today":
        value_check("maximum", f"in the future (after {today.isoformat()})", c > pl.lit(today))
    elif field.dynamic_maximum == "current_year":
        value_check("maximum", f"after the current year {today.year}", c > today.year)
    elif field.dynamic_maximum is not None:
        raise ValueError(f"{field.name}: unknown x-maximum {field.dynamic_maximum!r}")
    if field.enum is not None:
        allowed = ", ".join(field.enum) if len(field.enum) <= 8 else f"the {len(field.enum)} values of the vocabulary"
        value_check("enum", f"not one of {allowed}", c.is_not_null() & ~c.is_in(list(field.enum)))
    if field.min_length is not None:
        value_check("min_length", f"shorter than {field.min_length} character(s)", c.str.len_chars() < field.min_length)
    if field.pattern is not None:
        value_check("pattern", f"does not match {field.pattern}", ~c.str.contains(f"^(?:{field.pattern})$"))
    if field.multiple_of is not None:
        steps = c / field.multiple_of
        value_check("multiple_of", f"not a multiple of {_fmt(field.multiple_of)}", (steps - steps.round(0)).abs() > 1e-9)
    if field.unique:
        out.append(Check("unique", field.name, "duplicate of an earlier row",
                         c.is_not_null() & ~c.is_first_distinct()))
    return out


def primary_key_check(table: TableSchema) -> list[Check]:
    """Rows repeating the key of an earlier row (e.g. two visits of one patient on one date)."""
    pk = list(table.primary_key)
    if len(pk) < 2:  # a single-column key is covered by the field's own unique constraint
        return []
    complete = pl.all_horizontal(pl.col(k).is_not_null() for k in pk)
    # Rows whose key hash repeats are candidates (8 bytes a row to find); the exact key decides among them.
    return [Check(
        "duplicate_key", ",".join(pk), f"the same ({', '.join(pk)}) appears in an earlier row",
        complete & pl.struct(pk).hash().is_duplicated(),
        value=pl.concat_str([pl.col(k).cast(pl.String) for k in pk], separator=" | "),
        refine=~pl.struct(pk).is_first_distinct(),
    )]


def foreign_key_checks(table: TableSchema, typed: dict[str, pl.DataFrame]) -> list[Check]:
    """Values that do not exist in the referenced table (a visit for an unknown patient)."""
    out = []
    for fk in table.foreign_keys:
        ref = typed.get(fk.resource)
        if ref is None or len(fk.fields) != 1:
            continue  # a missing required table is reported by itself
        col, ref_col = fk.fields[0], fk.reference_fields[0]
        known = ref.get_column(ref_col).drop_nulls().unique()
        out.append(Check("foreign_key", col, f"not found in {fk.resource}.{ref_col}",
                         pl.col(col).is_not_null() & ~pl.col(col).is_in(known.implode())))
    return out


def _date_order(rule: Rule, table: TableSchema, contract: Contract,
                typed: dict[str, pl.DataFrame]) -> tuple[list[tuple[pl.DataFrame, str]], Check]:
    ref = rule.params["notBefore"]
    joins: list[tuple[pl.DataFrame, str]] = []
    if "resource" in ref:  # the bound lives in another table, reached through a key
        other, via = ref["resource"], ref["via"]
        ref_col = f"__ref_{rule.id}"
        frame = typed.get(other, contract.tables[other].empty())
        joins.append((frame.select(pl.col(via), pl.col(ref["field"]).alias(ref_col)).unique(via, keep="first"), via))
        ref_type = contract.tables[other].field(ref["field"]).type
    else:
        ref_col = ref["field"]
        ref_type = table.field(ref_col).type
    col = pl.col(rule.column)
    bound = pl.col(ref_col)
    if ref_type == "integer":  # a year: the date may not fall in an earlier year
        broken = col.dt.year() < bound
    else:
        if years := ref.get("offsetYears"):
            bound = bound.dt.offset_by(f"{int(years)}y")
        broken = col < bound
    return joins, Check(rule.id, rule.column, rule.description, broken.fill_null(False))


def rule_checks(table: TableSchema, contract: Contract,
                typed: dict[str, pl.DataFrame]) -> tuple[list[tuple[pl.DataFrame, str]], list[Check]]:
    """The table's ``x-rules``; returns the frames to left-join (on a key) and the checks."""
    joins: list[tuple[pl.DataFrame, str]] = []
    out: list[Check] = []
    for rule in table.rules:
        col = pl.col(rule.column)
        if rule.kind == "date_order":
            j, chk = _date_order(rule, table, contract, typed)
            joins += j
            out.append(chk)
        elif rule.kind == "null_unless":
            out.append(Check(rule.id, rule.column, rule.description,
                             col.is_not_null() & pl.col(rule.params["unless"]).is_null()))
        elif rule.kind == "vocabulary_max":
            vocab = contract.vocabulary_frame(rule.params["vocabulary"])
            # The key's position in the vocabulary (a small integer) picks its maximum: no per-row strings.
            code = pl.col(rule.params["key"]).cast(pl.Enum(vocab.get_column(rule.params["key"]).to_list()),
                                                   strict=False).to_physical()
            area_max = pl.lit(vocab.get_column(rule.params["max"])).gather(code)
            broken = col.is_not_null() & code.is_not_null() & (area_max.is_null() | (col > area_max))
            out.append(Check(rule.id, rule.column, rule.description, broken.fill_null(False), nulls_cell=True))
        elif rule.kind == "range_when":
            when = rule.params["when"]
            applies = pl.col(when["column"]).str.contains(when["pattern"])
            broken = applies & ((col < rule.params["minimum"]) | (col > rule.params["maximum"]))
            out.append(Check(rule.id, rule.column, rule.description, broken.fill_null(False), nulls_cell=True))
        else:
            raise ValueError(f"{table.name}: unknown rule kind {rule.kind!r} in x-rules")
    return joins, out


def table_checks(table: TableSchema, contract: Contract, typed: dict[str, pl.DataFrame],
                 today: dt.date) -> tuple[pl.LazyFrame, list[Check]]:
    """All value-level checks of one table, with the frame (joins applied) they run on."""
    joins, rules = rule_checks(table, contract, typed)
    checks = [c for f in table.fields for c in field_checks(f, today)]
    checks += primary_key_check(table) + foreign_key_checks(table, typed) + rules
    lf = typed[table.name].lazy()
    for frame, on in joins:
        lf = lf.join(frame.lazy(), on=on, how="left", maintain_order="left")
    return lf, checks
