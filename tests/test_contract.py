"""data_schemas/ is a sound, standard, self-consistent contract, and the docs derived from it are current."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from rxpredict.dictionary import render_data_dictionary
from rxpredict.exceptions import ContractError
from rxpredict.schemas import load_contract, schema_dir

ROOT = Path(__file__).resolve().parents[1]


def test_contract_matches_the_data_contract_document():
    c = load_contract()
    assert c.table_names == ["patients", "visits", "treatments", "imaging", "genetics", "wearables"]
    assert c.required_tables == ["patients", "visits", "treatments"]
    assert c.option_names == ["csdmard_mtx", "csdmard_other", "tnfi", "il6i", "abatacept", "rituximab", "jaki"]
    assert c.therapy_option_of("certolizumab_pegol") == "tnfi" and c.therapy_option_of("prednisone") is None
    areas = c.joint_area_frame
    assert areas.height == 56
    assert areas.filter(areas["region"] == "hand")["erosion_max"].drop_nulls().len() == 32  # 16 a side
    assert areas.filter(areas["region"] == "hand")["jsn_max"].drop_nulls().len() == 30  # 15 a side
    assert areas["erosion_max"].sum() == 280 and areas["jsn_max"].sum() == 168
    assert sum(len(k.items) for k in c.haq.categories) == 20 and len(c.haq.categories) == 8


def test_every_column_has_description_unit_and_title():
    for t in load_contract().tables.values():
        for f in t.fields:
            assert f.description and f.title, (t.name, f.name)
    for path in schema_dir().glob("*.schema.json"):
        doc = json.loads(path.read_text())
        assert doc["version"] and all("unit" in f for f in doc["fields"]), path


def test_frictionless_reads_the_contract():
    """Other tools can read data_schemas/: frictionless accepts every schema and the package."""
    frictionless = pytest.importorskip("frictionless")
    for path in sorted(schema_dir().glob("*.schema.json")):
        report = frictionless.Schema.validate_descriptor(str(path))
        assert report.valid, (path.name, [e.message for e in report.errors])
    package = frictionless.Package(str(schema_dir() / "datapackage.json"))
    assert [r.name for r in package.resources] == load_contract().table_names


@pytest.mark.parametrize(
    ("file", "edit", "message"),
    [
        ("visits.schema.json", lambda d: d.update(version="0.9.0"), "version"),
        ("drugs.json", lambda d: d["drugs"].pop(0), "drugs.json disagree"),
        ("svdh_joint_areas.json", lambda d: d["areas"].pop(), "svdh_joint_areas.json disagree"),
        ("treatments.schema.json", lambda d: d["x-rules"][0].update(column="nope"), "unknown column"),
        ("patients.schema.json", lambda d: d["fields"][0].pop("unit"), "lacks"),
    ],
)
def test_contradictory_contract_is_refused(tmp_path, file, edit, message):
    copy = tmp_path / "schemas"
    shutil.copytree(schema_dir(), copy)
    doc = json.loads((copy / file).read_text())
    edit(doc)
    (copy / file).write_text(json.dumps(doc))
    with pytest.raises(ContractError, match=message):
        load_contract(copy)


def test_broken_json_is_refused(tmp_path):
    copy = tmp_path / "schemas"
    shutil.copytree(schema_dir(), copy)
    (copy / "imaging.schema.json").write_text("{not json")
    with pytest.raises(ContractError, match="not valid JSON"):
        load_contract(copy)


def test_data_dictionary_is_current():
    current = (ROOT / "docs" / "data-dictionary.md").read_text(encoding="utf-8")
    assert current == render_data_dictionary(), "stale: run `rxpredict dictionary --out docs/data-dictionary.md`"
