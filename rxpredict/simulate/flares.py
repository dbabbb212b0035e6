"""Flares between visits: onsets with a state-dependent hazard, a lead-up, a flare visit, a decay.

In the maintenance phase of each course (course.py gives the span) flare
onsets come with the daily hazard

    h(d) = flare_rate_per_year / 365.25 * frailty * flare_seropositive_hr^[RF or ACPA]
           * exp(flare_das28_log_hr * (min(course DAS28(d), 5.1) - 3.2)) * flare_failing_hr^[losing response]
           * (1 + (flare_taper_hr - 1) * escalation courses stopped within the last flare_taper_days)

(``hazard`` is the product without the taper term; course.py folds the frailty
and seropositivity into a per-patient scale). The DAS28 term stops growing at
high activity (5.1): a course that active is no stable state for a flare to
break, and its flare visits would hit the DAS28 ceiling. No new flare begins
while one is under way: from a flare's onset until ``flare_refractory_days``
after its visit the hazard is 0.

A flare's intensity rises linearly from 0 at onset to its peak at the
unscheduled flare visit L days later, then halves every half-life (faster when
the visit escalated to a glucocorticoid course) until the next course's
baseline absorbs what is left.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from rxpredict.simulate.scenario import Scenario

#: Days fit below this, so (key, day) pairs pack into one int64.
DAY_SPAN = 1 << 16
#: Course DAS28 at which the hazard is the reference rate (the low/moderate activity border), and above
#: which it grows no more (the moderate/high border).
REFERENCE_DAS28, HIGH_DAS28 = 3.2, 5.1
#: Horizon of the flare label; the refractory period must cover it for the flare oracle to be exact.
FLARE_HORIZON = 28
ONGOING = np.iinfo(np.int64).max
#: What is known of each flare (simulate_flares adds the course row, course.py the patient and the cut day).
FLARE_COLUMNS = {"onset": np.int64, "visit": np.int64, "peak": np.float64, "half_life": np.float64,
                 "escalated": np.bool_, "gc_stop": np.int64}


def no_flares(*keys: str) -> dict[str, np.ndarray]:
    """No flares: empty flare columns, plus empty int64 columns ``keys``."""
    return {**{k: np.empty(0, dtype=np.int64) for k in keys},
            **{k: np.empty(0, dtype=t) for k, t in FLARE_COLUMNS.items()}}


def day_key(key: np.ndarray, day: np.ndarray) -> np.ndarray:
    """One int64 per (key, day) pair, ordered like the pairs."""
    return np.asarray(key, dtype=np.int64) * DAY_SPAN + np.asarray(day, dtype=np.int64)


def hazard(das28: np.ndarray, scale: np.ndarray, failing: np.ndarray, scenario: Scenario) -> np.ndarray:
    """Daily flare hazard without the taper term, for a course DAS28, a patient scale and a failing course."""
    return (scale * np.exp(scenario.flare_das28_log_hr * (np.minimum(das28, HIGH_DAS28) - REFERENCE_DAS28))
            * np.where(failing, scenario.flare_failing_hr, 1.0))


def lead_cdf(days: np.ndarray, scenario: Scenario) -> np.ndarray:
    """P(lead-up L <= days) for L uniform on whole days ``flare_lead_days``."""
    lo, hi = scenario.flare_lead_days
    return np.clip((np.floor(days) - lo + 1) / (hi - lo + 1), 0.0, 1.0)


def simulate_flares(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray,
                    base_hazard: Callable[[np.ndarray, np.ndarray], np.ndarray],
                    scenario: Scenario) -> dict[str, np.ndarray]:
    """Flares of each course (row) with onsets from day ``lo`` and flare visits by day ``hi``.

    ``base_hazard(rows, day)`` is the daily hazard without the taper term; it
    must not fall within a span (the course DAS28 is flat or rising there).
    The courses advance together, one candidate onset each per step, by
    thinning a bound that holds until the next flare (the taper term and the
    refractory period make each flare depend on those before). An onset whose
    visit would come after ``hi`` is dropped: no flare, no refractory period.
    Returns row, onset, visit, peak, half_life, escalated and gc_stop (-1
    where not escalated), one entry per flare.
    """
    if scenario.flare_refractory_days < FLARE_HORIZON:
        raise ValueError(f"flare_refractory_days must be at least {FLARE_HORIZON}, the flare label's horizon")
    lead_min, lead_max = scenario.flare_lead_days
    last_onset = hi - lead_min
    extra, taper_days = scenario.flare_taper_hr - 1, scenario.flare_taper_days
    stops = np.full((lo.size, 2), -ONGOING // 2)  # stop days of each course's last two escalation courses
    clock = lo.astype(float)  # the next onset comes after this (continuous) time
    found = [no_flares("row")]
    live = np.flatnonzero(clock < last_onset + 1)
    while live.size:
        # The taper windows not yet over bound the taper term until the next flare.
        top = base_hazard(live, last_onset[live]) * (1 + extra * (stops[live] + taper_days > clock[live, None]).sum(1))
        clock[live] += rng.exponential(1.0, live.size) / top
        stay = clock[live] < last_onset[live] + 1
        live, top = live[stay], top[stay]
        day = np.floor(clock[live]).astype(np.int64)
        since = day[:, None] - stops[live]
        h = base_hazard(live, day) * (1 + extra * ((since >= 0) & (since < taper_days)).sum(1))
        hit = rng.random(live.size) * top < h
        row, onset = live[hit], day[hit]
        visit = onset + rng.integers(lead_min, lead_max + 1, row.size)
        ok = visit <= hi[row]
        row, onset, visit = row[ok], onset[ok], visit[ok]
        escalated = rng.random(row.size) < scenario.flare_escalation
        gc_stop = np.where(escalated, visit + rng.integers(scenario.flare_gc_days[0], scenario.flare_gc_days[1] + 1,
                                                           row.size), -1)
        found.append({
            "row": row, "onset": onset, "visit": visit, "peak": rng.uniform(*scenario.flare_peak, row.size),
            "half_life": np.where(escalated, scenario.flare_escalated_half_life_days, scenario.flare_half_life_days),
            "escalated": escalated, "gc_stop": gc_stop,
        })
        stops[row[escalated]] = np.column_stack([stops[row[escalated], 1], gc_stop[escalated]])
        clock[row] = visit + scenario.flare_refractory_days
        live = live[clock[live] < last_onset[live] + 1]
    return {k: np.concatenate([f[k] for f in found]) for k in found[0]}


def _pairs(query_key: np.ndarray, flare_key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (query, flare) index pair with equal keys."""
    order = np.argsort(flare_key, kind="stable")
    sorted_key = flare_key[order]
    lo = np.searchsorted(sorted_key, query_key, side="left")
    count = np.searchsorted(sorted_key, query_key, side="right") - lo
    qi = np.repeat(np.arange(query_key.size), count)
    within = np.arange(qi.size) - np.repeat(np.cumsum(count) - count, count)
    return qi, order[np.repeat(lo, count) + within]


def bump_at(key: np.ndarray, day: np.ndarray, flare_key: np.ndarray, fl: dict[str, np.ndarray],
            scenario: Scenario, known_at: np.ndarray | None = None) -> np.ndarray:
    """The flares' DAS28 bump on each (key, day): the ramp to the peak, then the decay until ``cut``.

    With ``known_at`` (a day per query) only flares with onset on or before it
    count, and the decay after a flare visit still to come mixes the escalated
    and non-escalated half-lives by the escalation probability.
    """
    key, day = np.ravel(key), np.ravel(day)
    qi, fi = _pairs(key, flare_key)
    d = day[qi]
    onset, visit, peak = fl["onset"][fi], fl["visit"][fi], fl["peak"][fi]
    cut = fl["cut"][fi] if "cut" in fl else ONGOING
    t = np.ravel(known_at)[qi] if known_at is not None else np.full(qi.size, ONGOING)
    since = np.maximum(d - visit, 0)
    p = scenario.flare_escalation
    expected = (p * 0.5 ** (since / scenario.flare_escalated_half_life_days)
                + (1 - p) * 0.5 ** (since / scenario.flare_half_life_days))
    decay = np.where(visit > t, expected, 0.5 ** (since / fl["half_life"][fi]))
    value = peak * np.where(d <= visit, (d - onset) / (visit - onset), decay)
    on = (onset <= d) & (d < cut) & (onset <= t)
    return np.bincount(qi, weights=np.where(on, value, 0.0), minlength=key.size)


def tapers_at(key: np.ndarray, day: np.ndarray, flare_key: np.ndarray, fl: dict[str, np.ndarray],
              scenario: Scenario) -> np.ndarray:
    """Escalation courses stopped within the last ``flare_taper_days`` days of each (key, day)."""
    key, day = np.ravel(key), np.ravel(day)
    qi, fi = _pairs(key, flare_key)
    since = day[qi] - fl["gc_stop"][fi]
    on = fl["escalated"][fi] & (since >= 0) & (since < scenario.flare_taper_days)
    return np.bincount(qi, weights=on.astype(float), minlength=key.size)
