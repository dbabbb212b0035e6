"""The clinic app's forms, built from the data contract: fields, the 28-joint grid, HAQ-DI items, live scores,
validation messages per field, treatment choices and SvdH entry or upload.

A page draws widgets from these and calls these; it holds no labels, ranges,
scores or rules of its own.

Example
-------
>>> from rxpredict.forms import field_specs, live_scores
>>> [s.label for s in field_specs("visits")][2]
'Tender joints (28) [joints]'
>>> live_scores({"tjc28": 2, "sjc28": 1, "patient_global_0_100": 40, "physician_global_0_100": 30})["cdai"]
10.0
"""
from rxpredict.forms.fields import FieldSpec, field_spec, field_specs
from rxpredict.forms.haq import HaqSection, haq_from_items, haq_sections
from rxpredict.forms.joints import JOINT_COUNT_COLUMNS, count_joints, das28_joints, joint_grid, joint_key
from rxpredict.forms.svdh import SVDH_CSV_COLUMNS, SvdhArea, parse_svdh_csv, svdh_areas, svdh_rows
from rxpredict.forms.treatments import drug_groups, ongoing_courses, stop_reasons
from rxpredict.forms.visit import live_scores, validate_visit_form, visit_values

__all__ = [
    "JOINT_COUNT_COLUMNS", "SVDH_CSV_COLUMNS", "FieldSpec", "HaqSection", "SvdhArea", "count_joints", "das28_joints",
    "drug_groups", "field_spec", "field_specs", "haq_from_items", "haq_sections", "joint_grid", "joint_key",
    "live_scores", "ongoing_courses", "parse_svdh_csv", "stop_reasons", "svdh_areas", "svdh_rows",
    "validate_visit_form", "visit_values",
]
