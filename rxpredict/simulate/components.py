"""Visit components (joint counts, CRP, ESR, globals, HAQ ...) that add up to a given DAS28.

The simulator thinks in latent DAS28-CRP. A visit's recorded components are
drawn around that value and then solved so that DAS28-CRP computed from the
record equals it (up to rounding CRP to 0.1 mg/L and the patient global to
0.1 mm, which moves DAS28 by less than 0.001), and DAS28-ESR equals it plus the
patient's ESR offset. That is what makes the oracle exact: outcomes derived
from the recorded visits are the latent outcomes.
"""
from __future__ import annotations

import numpy as np

#: DAS28-CRP = 0.56 sqrt(T) + 0.28 sqrt(S) + 0.36 ln(CRP + 1) + 0.014 G + 0.96
DAS_MIN, DAS_MAX = 1.0, 8.6


def _joints(t: np.ndarray, s: np.ndarray) -> np.ndarray:
    return 0.56 * np.sqrt(t) + 0.28 * np.sqrt(s)


def solve_components(rng: np.random.Generator, das28: np.ndarray, esr_offset: np.ndarray,
                     severity: np.ndarray) -> dict[str, np.ndarray]:
    """Recorded components for visits of latent DAS28-CRP ``das28`` (clipped to 1.0-8.6)."""
    n = das28.shape[0]
    d = np.clip(das28, DAS_MIN, DAS_MAX)
    room = d - 0.96
    share = rng.dirichlet([11.0, 4.0, 5.0], n)  # joints, CRP, patient global
    tjc = np.clip(np.rint((room * share[:, 0] / 0.78) ** 2), 0, 28)
    sjc = np.clip(np.rint(tjc * rng.uniform(0.35, 1.0, n)), 0, 28)
    crp = np.clip(np.exp(room * share[:, 1] / 0.36) - 1.0, 0.0, 300.0)
    for _ in range(40):  # move joints and CRP until the patient global closes the gap within 0-100
        g = (d - 0.96 - _joints(tjc, sjc) - 0.36 * np.log1p(crp)) / 0.014
        # ... and ESR stays within 200 mm/h: a higher patient global (CRP lowered to match) and then
        # more swollen and tender joints leave less of DAS28-ESR to it.
        esr_high = (d + esr_offset - _joints(tjc, sjc) - 0.014 * np.clip(g, 0, 100)) > 0.70 * np.log(195.0)
        crp_for_full_global = np.exp((d - 0.96 - _joints(tjc, sjc) - 1.4) / 0.36) - 1.0
        raise_global = esr_high & (g < 99.0) & (crp_for_full_global >= 0.0)
        crp = np.where(raise_global, crp_for_full_global, crp)
        more_joints = esr_high & ~raise_global & ((tjc < 28) | (sjc < 28))
        tjc, sjc = np.where(more_joints, np.minimum(tjc + 1, 28), tjc), np.where(more_joints, np.minimum(sjc + 1, 28), sjc)
        g = (d - 0.96 - _joints(tjc, sjc) - 0.36 * np.log1p(crp)) / 0.014
        high, low = g > 100.0, g < 0.0
        if not (high.any() or low.any() or more_joints.any() or raise_global.any()):
            break
        crp_for_high = np.exp((d - 0.96 - _joints(tjc, sjc) - 1.4) / 0.36) - 1.0
        fixable_high = high & (crp_for_high <= 300.0)
        crp = np.where(fixable_high, crp_for_high, crp)
        tjc = np.where(high & ~fixable_high, np.minimum(tjc + 1, 28), tjc)
        sjc = np.where(high & ~fixable_high, np.minimum(sjc + 1, 28), sjc)
        crp_for_low = np.exp((d - 0.96 - _joints(tjc, sjc) - 0.014 * 5.0) / 0.36) - 1.0
        fixable_low = low & (crp_for_low >= 0.0)
        crp = np.where(fixable_low, crp_for_low, crp)
        tjc = np.where(low & ~fixable_low, np.maximum(tjc - 1, 0), tjc)
        sjc = np.where(low & ~fixable_low, np.minimum(np.maximum(sjc - 1, 0), tjc), sjc)
    # Round CRP to 0.1 mg/L in whichever direction keeps the patient global within 0-100.
    exact_g = (d - 0.96 - _joints(tjc, sjc) - 0.36 * np.log1p(np.round(crp, 1))) / 0.014
    crp = np.where(exact_g > 100.0, np.ceil(crp * 10) / 10, np.where(exact_g < 0.0, np.floor(crp * 10) / 10,
                                                                      np.round(crp, 1)))
    crp = np.clip(crp, 0.0, 500.0)
    ptga = np.clip(np.round((d - 0.96 - _joints(tjc, sjc) - 0.36 * np.log1p(crp)) / 0.014, 1), 0.0, 100.0)
    das_esr = d + esr_offset
    esr = np.clip(np.round(np.exp((das_esr - _joints(tjc, sjc) - 0.014 * ptga) / 0.70), 1), 1.0, 200.0)
    phga = np.clip(np.rint(0.45 * ptga + 1.6 * (tjc + sjc) + rng.normal(0.0, 8.0, n)), 0, 100)
    pain = np.clip(np.rint(ptga + rng.normal(0.0, 10.0, n)), 0, 100)
    haq = np.clip(np.round((0.32 * d - 0.55 + 0.22 * severity + rng.normal(0.0, 0.25, n)) / 0.125) * 0.125, 0.0, 3.0)
    stiffness = np.where(d < 2.6, 0.0, 1.0) * np.rint(np.exp(1.0 + 0.55 * d + rng.normal(0.0, 0.6, n)))
    return {
        "tjc28": tjc.astype(np.int64), "sjc28": sjc.astype(np.int64), "crp_mg_l": crp, "esr_mm_h": esr,
        "patient_global_0_100": ptga.astype(float), "physician_global_0_100": phga.astype(float),
        "pain_0_100": pain.astype(float), "haq_di": haq,
        "morning_stiffness_min": np.clip(stiffness, 0, 1440).astype(np.int64),
    }


def das28_crp(c: dict[str, np.ndarray]) -> np.ndarray:
    """DAS28-CRP of solved components (used to check the solver, not to simulate)."""
    return _joints(c["tjc28"], c["sjc28"]) + 0.36 * np.log1p(c["crp_mg_l"]) + 0.014 * c["patient_global_0_100"] + 0.96
