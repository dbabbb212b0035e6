"""Patients: demographics, serology, genetics, latent severity and registry follow-up.

Dates are whole days since 1970-01-01 (numpy int64) until the tables are written.
"""
from __future__ import annotations

import datetime as dt

import numpy as np

from rxpredict.simulate.scenario import Scenario

EPOCH = dt.date(1970, 1, 1)
YEAR = 365.25

#: Genetic markers written to the genetics table. The last two have no effect
#: on anything in the simulator: a model should learn to ignore them.
MARKERS = ("HLA-DRB1_SE", "rs2476601", "PRS_RA", "rs10488631", "rs7574865")


def day(d: str | dt.date) -> int:
    """Days since 1970-01-01."""
    d = dt.date.fromisoformat(d) if isinstance(d, str) else d
    return (d - EPOCH).days


def year_of(days: np.ndarray) -> np.ndarray:
    return days.astype("datetime64[D]").astype("datetime64[Y]").astype(int) + 1970


def draw_patients(rng: np.random.Generator, n: int, scenario: Scenario) -> dict[str, np.ndarray]:
    """One row per patient: everything the simulator knows about them from the start."""
    female = rng.random(n) < 0.72
    # Shared epitope and PTPN22 raise the odds of ACPA; smoking too (gene-environment interaction).
    se = rng.binomial(2, 0.38, n)
    ptpn22 = rng.binomial(2, 0.12, n)
    prs = rng.normal(0.0, 1.0, n)
    smoking = rng.choice(np.array(["never", "former", "current"]), n, p=[0.45, 0.35, 0.20])
    smoker_ever = smoking != "never"
    acpa = rng.random(n) < 1 / (1 + np.exp(-(-0.45 + 0.65 * se + 0.45 * ptpn22 + 0.45 * prs + 0.35 * smoker_ever)))
    rf = np.where(acpa, rng.random(n) < 0.80, rng.random(n) < 0.25)
    severity = rng.normal(0.0, 1.0, n)

    start, end = day(f"{scenario.start_year}-01-01"), day(scenario.end_date)
    entry = rng.integers(start, end - 120, n)
    prevalent = rng.random(n) < scenario.prevalent_fraction
    disease_before_entry = np.where(prevalent, rng.uniform(0.5, 10.0, n) * YEAR, rng.uniform(0, 60, n))
    diagnosis = (entry - disease_before_entry).astype(np.int64)
    age_at_diagnosis = np.clip(rng.normal(55.0, 13.0, n), 18.0, 88.0)
    birth_year = year_of(diagnosis) - np.floor(age_at_diagnosis).astype(int)
    followed = rng.exponential(1.0 / scenario.loss_to_follow_up_per_year, n) * YEAR
    followup_end = np.minimum(entry + followed, end).astype(np.int64)

    return {
        "female": female, "birth_year": birth_year, "diagnosis": diagnosis, "entry": entry,
        "followup_end": followup_end, "prevalent": prevalent, "smoking": smoking,
        "smoker_current": smoking == "current", "bmi": np.clip(rng.lognormal(np.log(26.5), 0.18, n), 16.0, 60.0),
        "se": se, "ptpn22": ptpn22, "prs": prs, "acpa": acpa, "rf": rf, "severity": severity,
        # DAS28-ESR runs above DAS28-CRP by a patient-specific, non-negative offset.
        "esr_offset": np.clip(rng.normal(0.35, 0.2, n), 0.0, None),
        "has_genetics": rng.random(n) < scenario.genetics_fraction,
        "has_imaging": rng.random(n) < scenario.imaging_fraction,
        "has_wearables": rng.random(n) < scenario.wearables_fraction,
        # Markers without effect, drawn like real SNP dosages.
        "rs10488631": rng.binomial(2, 0.10, n), "rs7574865": rng.binomial(2, 0.22, n),
    }
