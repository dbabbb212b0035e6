"""The cohort's windows and thresholds, in one object the builder and its docs share."""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class CohortRules:
    """Every window of the cohort definition, in days (defaults: the data contract's).

    baseline_before, baseline_after : the baseline visit is the latest within
        [index - 90, index + 7].
    leakage_after : no record dated after index + 7 influences a feature.
    followup_day, followup_tolerance : the 24-week visit is the one nearest
        index + 168 within +/- 42 days (18-30 weeks); ties go to the earlier.
    exam_before : the baseline radiograph is the latest within [index - 180, index].
    progression_min, progression_max : the next radiograph counts for rapid
        progression when it is 6-24 months after the baseline one.
    rrp_units_per_year : rapid radiographic progression threshold (SvdH units a year).
    """

    baseline_before: int = 90
    baseline_after: int = 7
    leakage_after: int = 7
    followup_day: int = 168
    followup_tolerance: int = 42
    exam_before: int = 180
    progression_min: int = 182
    progression_max: int = 730
    rrp_units_per_year: float = 5.0

    def to_dict(self) -> dict[str, float]:
        return asdict(self)
