"""Daily wearable streams for a subset of patients, driven by their latent disease activity.

The daily latent DAS28 is the course path plus the flare bumps of that day
(course.course_path, flares.bump_at), so activity and sleep fall and pain,
stiffness and resting heart rate rise gradually over a flare's lead-up, before
the flare visit. Each stream has a personal level, a weekly rhythm and
autocorrelated noise. On top of that, what real devices give: non-wear days,
scattered and in runs (charging, forgetting); partial-wear days (worn a couple
of hours: few steps and active minutes, no sleep or resting heart rate);
self reports missing in runs too; and a device change for some wearers, after
which steps, resting heart rate and sleep sit at another level.
"""
from __future__ import annotations

import numpy as np

from rxpredict.simulate.scenario import Scenario


def wearable_grid(pop: dict[str, np.ndarray], episode_patient: np.ndarray,
                  scenario: Scenario) -> tuple[np.ndarray, np.ndarray]:
    """Wearers with at least one treatment episode, and their days (the last ``wearables_days`` of follow-up)."""
    who = np.flatnonzero(pop["has_wearables"] & np.isin(np.arange(pop["entry"].shape[0]), episode_patient))
    days = pop["followup_end"][who][:, None] - np.arange(scenario.wearables_days)[::-1][None, :]
    return who, days


def _missing_days(rng: np.random.Generator, shape: tuple[int, int], share: float, in_runs: float,
                  run_days: tuple[int, int]) -> np.ndarray:
    """Days missed, ``share`` of them on average: scattered days and runs of ``run_days`` days.

    Runs start as a Poisson process (also before the window, so its first days
    are covered like any other), at the rate that makes them cover
    1 - (1 - share)^in_runs of the days; scattered days make up the rest.
    """
    n, n_days = shape
    lo, hi = run_days
    run_share = 1 - (1 - share) ** in_runs
    rate = -np.log1p(-run_share) / ((lo + hi) / 2)
    span = n_days + hi - 1
    row = np.repeat(np.arange(n), rng.poisson(rate * span, n))
    begin = rng.integers(-(hi - 1), n_days, row.size)
    end = np.clip(begin + rng.integers(lo, hi + 1, row.size), 0, n_days)
    begin = np.clip(begin, 0, n_days)
    edges = np.zeros((n, n_days + 1))
    np.add.at(edges, (row, begin), 1)
    np.add.at(edges, (row, end), -1)
    in_run = np.cumsum(edges, axis=1)[:, :n_days] > 0
    return in_run | (rng.random(shape) < 1 - (1 - share) ** (1 - in_runs))


def simulate_wearables(rng: np.random.Generator, who: np.ndarray, days: np.ndarray, das28: np.ndarray,
                       scenario: Scenario) -> dict[str, np.ndarray]:
    """One row per patient-day of the grid (``who`` x ``days``), driven by the daily latent ``das28``.

    Besides the contract's columns, ``device_changed`` marks the days after a
    wearer's device change (for tests; not written).
    """
    shape = das28.shape
    n, n_days = shape
    level = rng.normal(0.0, 1.0, (n, 1))
    weekend = ((days + 3) % 7 >= 5).astype(float)  # 1970-01-01 was a Thursday

    def ar1(sd: float, phi: float = 0.6) -> np.ndarray:
        e = rng.normal(0.0, sd, shape)
        for t in range(1, n_days):
            e[:, t] += phi * e[:, t - 1]
        return e

    def per_wearer(bounds: tuple[float, float]) -> np.ndarray:
        return rng.uniform(*bounds, (n, 1))

    # A device change on one day of the window puts steps, heart rate and sleep at another level.
    changed = (rng.random((n, 1)) < scenario.wearables_device_change) & (
        np.arange(n_days)[None, :] >= rng.integers(1, max(n_days, 2), (n, 1)))
    steps = np.exp(9.0 + 0.25 * level - 0.14 * (das28 - 3.0) - 0.15 * weekend + ar1(0.25)) * np.where(
        changed, per_wearer(scenario.wearables_device_steps), 1.0)
    active = steps / 180.0 * np.exp(rng.normal(0.0, 0.3, shape))
    sleep = (430.0 + 15 * level - 12.0 * (das28 - 3.0) + 20 * weekend + ar1(30.0)
             + changed * per_wearer(scenario.wearables_device_sleep))
    hr = 64.0 + 3.0 * level + 1.4 * (das28 - 3.0) + ar1(2.0) + changed * per_wearer(scenario.wearables_device_hr)
    pain = 1.3 * (das28 - 1.5) + ar1(0.8)
    stiffness = np.exp(1.0 + 0.5 * das28 + ar1(0.4)) * (das28 >= 2.6)

    run_days = scenario.wearables_run_days
    worn = ~_missing_days(rng, shape, scenario.wearables_nonwear, scenario.wearables_nonwear_in_runs, run_days)
    partial = worn & (rng.random(shape) < scenario.wearables_partial_wear)
    worn_share = np.where(partial, rng.uniform(0.02, 0.15, shape), 1.0)  # of the day's movement recorded
    reported = ~_missing_days(rng, shape, scenario.wearables_report_missing, scenario.wearables_nonwear_in_runs,
                              run_days)

    def device(x: np.ndarray, lo: float, hi: float, on: np.ndarray) -> np.ndarray:
        return np.where(on, np.clip(np.rint(x), lo, hi), np.nan).ravel()

    return {
        "patient": np.repeat(who, n_days), "day": days.ravel(),
        "steps": device(steps * worn_share, 0, 100000, worn),
        "active_min": device(active * worn_share, 0, 1440, worn),
        "sleep_min": device(sleep, 0, 1440, worn & ~partial), "resting_hr_bpm": device(hr, 25, 220, worn & ~partial),
        "pain_0_10": np.where(reported, np.clip(np.round(pain, 1), 0, 10), np.nan).ravel(),
        "stiffness_min": np.where(reported, np.clip(np.rint(stiffness), 0, 1440), np.nan).ravel(),
        "device_changed": changed.ravel(),
    }
