"""The registry data contract, read from ``data_schemas/``.

``data_schemas/`` holds one Frictionless Table Schema per registry table, a
``datapackage.json`` tying them together, and the vocabularies (drugs, SvdH
joint areas, HAQ-DI items, DAS28 joints). Everything in rxpredict that needs a
column name, a range, an enum or a unit asks :func:`load_contract` rather than
re-typing it.

Example
-------
>>> from rxpredict.schemas import load_contract
>>> contract = load_contract()
>>> contract.tables["visits"].field("tjc28").maximum
28
>>> contract.therapy_option_of("adalimumab")
'tnfi'
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import polars as pl

from rxpredict.exceptions import ContractError

SCHEMA_DIR_ENV = "RXPREDICT_SCHEMA_DIR"

#: Table Schema field types and the polars dtype a validated column has.
POLARS_DTYPES: dict[str, pl.DataType] = {
    "string": pl.String(),
    "integer": pl.Int64(),
    "number": pl.Float64(),
    "boolean": pl.Boolean(),
    "date": pl.Date(),
}

#: Table Schema defaults for boolean text (the spec's trueValues / falseValues).
DEFAULT_TRUE_VALUES = ("true", "True", "TRUE", "1")
DEFAULT_FALSE_VALUES = ("false", "False", "FALSE", "0")


def schema_dir() -> Path:
    """Where ``data_schemas/`` lives: $RXPREDICT_SCHEMA_DIR, the installed copy, or the source tree."""
    if env := os.environ.get(SCHEMA_DIR_ENV):
        return Path(env)
    installed = Path(__file__).parent / "data_schemas"
    return installed if installed.is_dir() else Path(__file__).resolve().parents[1] / "data_schemas"


@dataclass(frozen=True)
class Field:
    """One column of a registry table, as the schema file describes it."""

    name: str
    type: str
    title: str
    description: str
    unit: str | None
    required: bool = False
    unique: bool = False
    minimum: float | None = None
    maximum: float | None = None
    enum: tuple[str, ...] | None = None
    min_length: int | None = None
    pattern: str | None = None
    multiple_of: float | None = None
    #: "today" or "current_year": a maximum that moves with the calendar.
    dynamic_maximum: str | None = None
    #: "device" or "self_report" for a wearables stream: who recorded it (a device day can be unworn).
    recorded_by: str | None = None
    true_values: tuple[str, ...] = DEFAULT_TRUE_VALUES
    false_values: tuple[str, ...] = DEFAULT_FALSE_VALUES

    @property
    def dtype(self) -> pl.DataType:
        """The polars dtype of this column once validated."""
        return POLARS_DTYPES[self.type]

    @classmethod
    def from_descriptor(cls, d: dict[str, Any], table: str) -> "Field":
        c = d.get("constraints", {})
        missing = [k for k in ("name", "type", "title", "description") if k not in d]
        if missing or "unit" not in d:
            raise ContractError(f"{table}: field {d.get('name', '?')!r} lacks {missing or ['unit']}")
        if d["type"] not in POLARS_DTYPES:
            raise ContractError(f"{table}.{d['name']}: unsupported type {d['type']!r}")
        return cls(
            name=d["name"],
            type=d["type"],
            title=d["title"],
            description=d["description"],
            unit=d["unit"],
            required=bool(c.get("required", False)),
            unique=bool(c.get("unique", False)),
            minimum=c.get("minimum"),
            maximum=c.get("maximum"),
            enum=tuple(c["enum"]) if "enum" in c else None,
            min_length=c.get("minLength"),
            pattern=c.get("pattern"),
            multiple_of=d.get("x-multipleOf"),
            dynamic_maximum=d.get("x-maximum"),
            recorded_by=d.get("x-recordedBy"),
            true_values=tuple(d.get("trueValues", DEFAULT_TRUE_VALUES)),
            false_values=tuple(d.get("falseValues", DEFAULT_FALSE_VALUES)),
        )


@dataclass(frozen=True)
class ForeignKey:
    """Columns of this table that must exist in another table."""

    fields: tuple[str, ...]
    resource: str
    reference_fields: tuple[str, ...]


@dataclass(frozen=True)
class Rule:
    """A rule beyond single columns (date order, vocabulary maxima ...), from ``x-rules``.

    ``id`` names the rule in validation reports; ``kind`` says how to check it;
    ``params`` holds the rest of the descriptor.
    """

    id: str
    kind: str
    column: str
    description: str
    params: dict[str, Any]


@dataclass(frozen=True)
class TableSchema:
    """One registry table: its fields, keys and rules."""

    name: str
    title: str
    description: str
    version: str
    required: bool
    fields: tuple[Field, ...]
    primary_key: tuple[str, ...]
    foreign_keys: tuple[ForeignKey, ...]
    rules: tuple[Rule, ...]

    @property
    def column_names(self) -> list[str]:
        return [f.name for f in self.fields]

    @property
    def polars_schema(self) -> pl.Schema:
        """Column names and dtypes of the validated table, in schema order."""
        return pl.Schema({f.name: f.dtype for f in self.fields})

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"table {self.name!r} has no column {name!r}")

    def empty(self) -> pl.DataFrame:
        """A frame with this table's columns and no rows."""
        return pl.DataFrame(schema=self.polars_schema)


@dataclass(frozen=True)
class TherapyOption:
    name: str
    title: str
    advanced: bool


@dataclass(frozen=True)
class Drug:
    name: str
    therapy_option: str | None
    role: str


@dataclass(frozen=True)
class JointArea:
    """One SvdH joint area on one side, e.g. ``left_hand_mcp2``."""

    name: str
    side: str
    area: str
    region: str
    erosion_max: int | None
    jsn_max: int | None


@dataclass(frozen=True)
class Das28Joint:
    """One of the 28 joints of the DAS28 counts, e.g. ``left_mcp2``, with its place on the form's joint grid."""

    name: str
    side: str
    site: str
    title: str
    row: int
    col: int


#: The DAS28 counts tender and swollen joints over this many joints.
DAS28_JOINT_COUNT = 28


@dataclass(frozen=True)
class HaqCategory:
    name: str
    title: str
    aid_column: str
    items: tuple[str, ...]
    questions: tuple[str, ...]


@dataclass(frozen=True)
class HaqInstrument:
    """The HAQ-DI: categories of items, the aid rule and the validity rule."""

    categories: tuple[HaqCategory, ...]
    item_scale: tuple[tuple[int, str], ...]
    aid_score: int
    min_categories: int
    step: float


@dataclass(frozen=True)
class Contract:
    """The whole data contract: tables, vocabularies and the sentinel policy."""

    version: str
    directory: Path
    tables: dict[str, TableSchema]
    therapy_options: tuple[TherapyOption, ...]
    drugs: tuple[Drug, ...]
    joint_areas: tuple[JointArea, ...]
    das28_joints: tuple[Das28Joint, ...]
    haq: HaqInstrument
    sentinel_strings: tuple[str, ...]
    sentinel_numbers: tuple[float, ...]

    @property
    def table_names(self) -> list[str]:
        return list(self.tables)

    @property
    def required_tables(self) -> list[str]:
        return [n for n, t in self.tables.items() if t.required]

    @property
    def option_names(self) -> list[str]:
        return [o.name for o in self.therapy_options]

    def therapy_option_of(self, drug: str) -> str | None:
        """The therapy option a drug belongs to (None for glucocorticoids)."""
        for d in self.drugs:
            if d.name == drug:
                return d.therapy_option
        raise KeyError(f"{drug!r} is not in the drug vocabulary")

    @cached_property
    def drug_frame(self) -> pl.DataFrame:
        """drug, therapy_option, role, advanced: the vocabulary as a frame to join on."""
        advanced = {o.name: o.advanced for o in self.therapy_options}
        return pl.DataFrame(
            {
                "drug": [d.name for d in self.drugs],
                "therapy_option": [d.therapy_option for d in self.drugs],
                "role": [d.role for d in self.drugs],
                "advanced": [advanced.get(d.therapy_option or "", False) for d in self.drugs],
            }
        )

    @cached_property
    def joint_area_frame(self) -> pl.DataFrame:
        """joint, side, area, region, erosion_max, jsn_max: one row per SvdH joint area."""
        return pl.DataFrame(
            [vars(a) for a in self.joint_areas],
            schema={"name": pl.String, "side": pl.String, "area": pl.String, "region": pl.String,
                    "erosion_max": pl.Int64, "jsn_max": pl.Int64},
        ).rename({"name": "joint"})

    def vocabulary_frame(self, name: str) -> pl.DataFrame:
        """A vocabulary by the name ``x-rules`` use for it."""
        frames = {"svdh_joint_areas": self.joint_area_frame, "drugs": self.drug_frame}
        if name not in frames:
            raise KeyError(f"unknown vocabulary {name!r}; known: {sorted(frames)}")
        return frames[name]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise ContractError(f"data contract file missing: {path}") from e
    except json.JSONDecodeError as e:
        raise ContractError(f"{path} is not valid JSON: {e}") from e


def _table(d: dict[str, Any], required: bool) -> TableSchema:
    name = d["name"]
    fks = []
    for fk in d.get("foreignKeys", []):
        as_tuple = lambda v: (v,) if isinstance(v, str) else tuple(v)  # noqa: E731
        fks.append(ForeignKey(as_tuple(fk["fields"]), fk["reference"]["resource"], as_tuple(fk["reference"]["fields"])))
    rules = tuple(
        Rule(
            id=r["id"],
            kind=r["rule"],
            column=r["column"],
            description=r["description"],
            params={k: v for k, v in r.items() if k not in {"id", "rule", "column", "description"}},
        )
        for r in d.get("x-rules", [])
    )
    return TableSchema(
        name=name,
        title=d["title"],
        description=d["description"],
        version=d["version"],
        required=required,
        fields=tuple(Field.from_descriptor(f, name) for f in d["fields"]),
        primary_key=tuple(d.get("primaryKey", [])),
        foreign_keys=tuple(fks),
        rules=rules,
    )


def _check_consistency(c: Contract) -> None:
    """Fail loudly where the schema files contradict each other."""
    for t in c.tables.values():
        if t.version != c.version:
            raise ContractError(f"{t.name}.schema.json has version {t.version}, datapackage.json {c.version}")
        names = set(t.column_names)
        for col in [*t.primary_key, *(r.column for r in t.rules)]:
            if col not in names:
                raise ContractError(f"{t.name}: key or rule names unknown column {col!r}")
        for fk in t.foreign_keys:
            if fk.resource not in c.tables:
                raise ContractError(f"{t.name}: foreign key to unknown table {fk.resource!r}")
    drug_enum = c.tables["treatments"].field("drug").enum
    if set(drug_enum or ()) != {d.name for d in c.drugs}:
        raise ContractError("treatments.drug enum and drugs.json disagree")
    joint_enum = c.tables["imaging"].field("joint").enum
    if set(joint_enum or ()) != {a.name for a in c.joint_areas}:
        raise ContractError("imaging.joint enum and svdh_joint_areas.json disagree")
    das28_names = {j.name for j in c.das28_joints}
    if len(das28_names) != len(c.das28_joints) or len({(j.row, j.col) for j in c.das28_joints}) != len(c.das28_joints):
        raise ContractError("das28_joints.json repeats a joint name or a grid position")
    if len(das28_names) != DAS28_JOINT_COUNT:
        raise ContractError(f"das28_joints.json lists {len(das28_names)} joints, not {DAS28_JOINT_COUNT}")
    for count in ("tjc28", "sjc28"):
        if c.tables["visits"].field(count).maximum != DAS28_JOINT_COUNT:
            raise ContractError(f"visits.{count} maximum disagrees with das28_joints.json")
    options = {o.name for o in c.therapy_options}
    for d in c.drugs:
        if d.therapy_option is not None and d.therapy_option not in options:
            raise ContractError(f"drug {d.name!r} names unknown therapy option {d.therapy_option!r}")


@lru_cache(maxsize=4)
def load_contract(directory: str | Path | None = None) -> Contract:
    """Read and cross-check ``data_schemas/``; cached, so call it freely."""
    root = Path(directory) if directory is not None else schema_dir()
    pkg = _read_json(root / "datapackage.json")
    try:
        tables = {
            r["name"]: _table(_read_json(root / r["schema"]), bool(r.get("x-required", False)))
            for r in pkg["resources"]
        }
        vocab = {k: _read_json(root / v) for k, v in pkg["x-vocabularies"].items()}
        drugs_doc, joints_doc, haq_doc = vocab["drugs"], vocab["svdh_joint_areas"], vocab["haq_di"]
        das28_doc = vocab["das28_joints"]
        contract = Contract(
            version=pkg["version"],
            directory=root,
            tables=tables,
            therapy_options=tuple(
                TherapyOption(o["name"], o["title"], bool(o["advanced"])) for o in drugs_doc["therapy_options"]
            ),
            drugs=tuple(Drug(d["name"], d["therapy_option"], d["role"]) for d in drugs_doc["drugs"]),
            joint_areas=tuple(
                JointArea(f"{side}_{a['name']}", side, a["name"], a["region"], a["erosion_max"], a["jsn_max"])
                for side in joints_doc["sides"]
                for a in joints_doc["areas"]
            ),
            das28_joints=tuple(
                Das28Joint(j["name"], j["side"], j["site"], j["title"], int(j["row"]), int(j["col"]))
                for j in das28_doc["joints"]
            ),
            haq=HaqInstrument(
                categories=tuple(
                    HaqCategory(
                        k["name"], k["title"], k["aid_column"],
                        tuple(i["name"] for i in k["items"]), tuple(i["question"] for i in k["items"]),
                    )
                    for k in haq_doc["categories"]
                ),
                item_scale=tuple((s["value"], s["label"]) for s in haq_doc["item_scale"]),
                aid_score=int(haq_doc["aid_score"]),
                min_categories=int(haq_doc["min_categories"]),
                step=float(haq_doc["step"]),
            ),
            sentinel_strings=tuple(pkg["x-sentinels"]["strings"]),
            sentinel_numbers=tuple(float(x) for x in pkg["x-sentinels"]["numbers"]),
        )
    except (KeyError, TypeError) as e:
        raise ContractError(f"malformed data contract in {root}: missing or wrong key {e}") from e
    _check_consistency(contract)
    return contract
