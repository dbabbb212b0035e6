"""Daily wearable streams for a subset of patients, driven by their disease activity.

A patient's latent DAS28 between visits is interpolated from the visits
(flare visits included, so activity falls and pain rises in the days before a
flare visit). Each stream has a personal level, a weekly rhythm and day-to-day
noise; on non-wear days the device streams are missing while the self reports
may still be there.
"""
from __future__ import annotations

import numpy as np

from rxpredict.simulate.scenario import Scenario


def simulate_wearables(rng: np.random.Generator, pop: dict[str, np.ndarray], visit_patient: np.ndarray,
                       visit_day: np.ndarray, visit_das28: np.ndarray, scenario: Scenario) -> dict[str, np.ndarray]:
    """One row per patient-day over the last ``wearables_days`` days of follow-up."""
    who = np.flatnonzero(pop["has_wearables"])
    order = np.lexsort((visit_day, visit_patient))
    vp, vd, vx = visit_patient[order], visit_day[order], visit_das28[order]
    lo, hi = np.searchsorted(vp, who, side="left"), np.searchsorted(vp, who, side="right")
    who, lo, hi = who[hi > lo], lo[hi > lo], hi[hi > lo]
    n_days = scenario.wearables_days
    days = pop["followup_end"][who][:, None] - np.arange(n_days)[::-1][None, :]
    das = np.vstack([np.interp(days[i], vd[lo[i]:hi[i]], vx[lo[i]:hi[i]]) for i in range(who.size)]) \
        if who.size else np.zeros((0, n_days))
    shape = das.shape
    level = rng.normal(0.0, 1.0, (who.size, 1))
    weekend = ((days + 3) % 7 >= 5).astype(float)  # 1970-01-01 was a Thursday

    def ar1(sd: float, phi: float = 0.6) -> np.ndarray:
        e = rng.normal(0.0, sd, shape)
        for t in range(1, shape[1]):
            e[:, t] += phi * e[:, t - 1]
        return e

    steps = np.exp(9.0 + 0.25 * level - 0.14 * (das - 3.0) - 0.15 * weekend + ar1(0.25))
    active = steps / 180.0 * np.exp(rng.normal(0.0, 0.3, shape))
    sleep = 430.0 + 15 * level - 12.0 * (das - 3.0) + 20 * weekend + ar1(30.0)
    hr = 64.0 + 3.0 * level + 1.4 * (das - 3.0) + ar1(2.0)
    pain = 1.3 * (das - 1.5) + ar1(0.8)
    stiffness = np.exp(1.0 + 0.5 * das + ar1(0.4)) * (das >= 2.6)
    worn = rng.random(shape) >= scenario.wearables_nonwear
    reported = rng.random(shape) >= 0.2

    def device(x: np.ndarray, lo_: float, hi_: float) -> np.ndarray:
        return np.where(worn, np.clip(np.rint(x), lo_, hi_), np.nan).ravel()

    return {
        "patient": np.repeat(who, n_days), "day": days.ravel(),
        "steps": device(steps, 0, 100000), "active_min": device(active, 0, 1440),
        "sleep_min": device(sleep, 0, 1440), "resting_hr_bpm": device(hr, 25, 220),
        "pain_0_10": np.where(reported, np.clip(np.round(pain, 1), 0, 10), np.nan).ravel(),
        "stiffness_min": np.where(reported, np.clip(np.rint(stiffness), 0, 1440), np.nan).ravel(),
    }
