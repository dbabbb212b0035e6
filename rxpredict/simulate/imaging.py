"""Sharp/van der Heijde scores per joint area, at therapy starts and a year later.

Exams (for the imaging subset of patients): one at each therapy start, up to 4
weeks before it, and one 344-365 days after that, unless the next therapy
starts within 6 months (then its own start exam replaces the year exam, and
no progression label exists for the first therapy); after the year exam,
routine exams about yearly while the therapy runs. The SvdH units gained
between a start exam and its year exam are negative-binomial with the mean of
the therapy started (intention to treat), so a cohort's "rapid radiographic
progression" (>= 5 units per year between the two) is exactly the oracle's
event (>= 5 units in the first year: 344 days or more make a rate of 5/yr
need 5 units).
"""
from __future__ import annotations

import numpy as np

from rxpredict.schemas import load_contract
from rxpredict.simulate.population import YEAR
from rxpredict.simulate.scenario import Scenario

#: Where damage tends to appear (relative weights per area; both sides alike).
EROSION_WEIGHT = {
    "hand_mcp1": 1.0, "hand_mcp2": 2.0, "hand_mcp3": 2.0, "hand_mcp4": 1.2, "hand_mcp5": 1.0,
    "hand_pip2": 1.0, "hand_pip3": 1.0, "hand_pip4": 0.8, "hand_pip5": 0.6, "hand_ip1": 0.6, "hand_cmc1": 0.3,
    "hand_trapezium": 0.3, "hand_scaphoid": 0.8, "hand_lunate": 0.6, "hand_radius": 0.6, "hand_ulna": 1.2,
    "foot_mtp1": 1.0, "foot_mtp2": 0.8, "foot_mtp3": 0.8, "foot_mtp4": 1.0, "foot_mtp5": 2.0, "foot_ip1": 0.5,
}
JSN_WEIGHT = {
    "hand_mcp1": 0.8, "hand_mcp2": 1.5, "hand_mcp3": 1.5, "hand_mcp4": 1.0, "hand_mcp5": 0.8,
    "hand_pip2": 1.0, "hand_pip3": 1.0, "hand_pip4": 0.8, "hand_pip5": 0.6, "hand_cmc3": 0.4, "hand_cmc4": 0.4,
    "hand_cmc5": 0.5, "hand_scaphoid_trapezium": 0.5, "hand_capitate_scaphoid_lunate": 0.8,
    "hand_radiocarpal": 0.7, "foot_mtp1": 0.8, "foot_mtp2": 0.6, "foot_mtp3": 0.6, "foot_mtp4": 0.8,
    "foot_mtp5": 1.2, "foot_ip1": 0.4,
}
SIX_MONTHS = 182


def initial_damage(rng: np.random.Generator, pop: dict[str, np.ndarray], entry_day: np.ndarray) -> np.ndarray:
    """Total SvdH score at registry entry: damage accrued since diagnosis, for every patient."""
    years = np.clip((entry_day - pop["diagnosis"]) / YEAR, 0.05, None)
    rate = np.exp(0.85 + 0.55 * pop["acpa"] + 0.25 * pop["rf"] + 0.20 * pop["se"] + 0.35 * pop["severity"])
    mean = rate * years * 0.5
    k = 1.2
    return rng.negative_binomial(k, k / (k + mean))


class _Layout:
    """The scored features (joint area x erosion/JSN) as columns of a damage matrix."""

    def __init__(self) -> None:
        areas = load_contract().joint_areas
        self.joints = [a.name for a in areas]
        feats = [(i, "erosion", a.erosion_max, EROSION_WEIGHT[a.area]) for i, a in enumerate(areas) if a.erosion_max]
        feats += [(i, "jsn", a.jsn_max, JSN_WEIGHT[a.area]) for i, a in enumerate(areas) if a.jsn_max]
        self.joint_of = np.array([f[0] for f in feats])
        self.is_erosion = np.array([f[1] == "erosion" for f in feats])
        self.maximum = np.array([f[2] for f in feats])
        self.weight = np.array([f[3] for f in feats], dtype=float)
        self.erosion_scored = np.array([a.erosion_max is not None for a in areas])
        self.jsn_scored = np.array([a.jsn_max is not None for a in areas])

    def add(self, rng: np.random.Generator, damage: np.ndarray, units: np.ndarray) -> np.ndarray:
        """Spread ``units`` (one count per row) over the features with room left, respecting maxima."""
        damage = damage.copy()
        todo = units.astype(np.int64)
        for _ in range(6):
            rows = np.flatnonzero(todo > 0)
            if rows.size == 0:
                break
            room = self.maximum[None, :] - damage[rows]
            p = self.weight[None, :] * (room > 0)
            total = p.sum(axis=1, keepdims=True)
            full = total[:, 0] == 0
            p = np.where(total > 0, p / np.where(total > 0, total, 1), 0)
            p[full, 0] = 1.0
            drawn = rng.multinomial(np.where(full, 0, todo[rows]), p)
            placed = np.minimum(drawn, room)
            damage[rows] += placed
            todo[rows] = np.where(full, 0, (drawn - placed).sum(axis=1))
        return damage


def simulate_imaging(rng: np.random.Generator, pop: dict[str, np.ndarray], episodes: dict[str, np.ndarray],
                     rate: np.ndarray, damage0: np.ndarray, scenario: Scenario) -> tuple[dict, np.ndarray]:
    """Exams of the imaging subset; returns joint-area rows and each episode's first-year SvdH gain (or -1).

    ``rate`` is the expected yearly SvdH gain of each episode under the option it started.
    """
    lay = _Layout()
    k = scenario.progression_dispersion
    n_ep = episodes["patient"].shape[0]
    first_year_gain = np.full(n_ep, -1, dtype=np.int64)
    imaged = pop["has_imaging"][episodes["patient"]]
    order = np.lexsort((episodes["start"], episodes["patient"]))
    order = order[imaged[order]]
    patients = episodes["patient"][order]
    rank = np.arange(order.size) - np.searchsorted(patients, patients, side="left")

    n = pop["entry"].shape[0]
    damage = np.zeros((n, lay.maximum.size), dtype=np.int64)
    has = pop["has_imaging"]
    damage[has] = lay.add(rng, damage[has], damage0[has])
    last_exam = np.full(n, -1, dtype=np.int64)
    last_rate = np.zeros(n)
    pending_ep = np.full(n, -1, dtype=np.int64)  # episode whose year exam is scheduled
    pending_day = np.full(n, -1, dtype=np.int64)
    base_day = np.full(n, -1, dtype=np.int64)
    last_start = np.full(n, np.iinfo(np.int64).min // 2, dtype=np.int64)
    exams: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (patient, day, damage)

    def exam(who: np.ndarray, day: np.ndarray, year_mean: np.ndarray | None = None) -> np.ndarray:
        """Record exams on ``day``; units since the last exam at the interval's rate; returns the units."""
        years = np.where(last_exam[who] >= 0, (day - last_exam[who]) / YEAR, 0.0)
        mean = last_rate[who] * years if year_mean is None else year_mean
        units = np.where(last_exam[who] >= 0, rng.negative_binomial(k, k / (k + np.maximum(mean, 1e-9))), 0)
        damage[who] = lay.add(rng, damage[who], units)
        last_exam[who] = day
        exams.append((who, day, damage[who].copy()))
        return units

    def year_exams(who: np.ndarray) -> None:
        """Hold the pending year exams of ``who`` (if still followed) and record the first-year gain."""
        who = who[(pending_ep[who] >= 0) & (pending_day[who] <= pop["followup_end"][who])]
        if who.size:
            ep = pending_ep[who]
            first_year_gain[ep] = exam(who, pending_day[who], year_mean=rate[ep])
        pending_ep[who] = -1

    def yearly_until(who: np.ndarray, until: np.ndarray) -> None:
        """Routine yearly exams after the year exam, at the pace of the therapy running, up to ``until``."""
        while who.size:
            day = last_exam[who] + 365 - rng.integers(0, 22, who.size)
            due = (last_exam[who] >= 0) & (pending_ep[who] < 0) & (day < until) & (day <= pop["followup_end"][who])
            who, day, until = who[due], day[due], until[due]
            if who.size:
                exam(who, day)

    for r in range(int(rank.max()) + 1 if rank.size else 0):
        ep = order[rank == r]
        who = episodes["patient"][ep]
        s = episodes["start"][ep]
        pending = (pending_ep[who] >= 0) & (pending_day[who] > s)
        keep_year = pending & (s - base_day[who] >= SIX_MONTHS)  # this start gets no exam of its own
        cancel = pending & ~keep_year
        pending_ep[who[cancel]] = -1
        year_exams(who[~pending])  # year exams that fell before this start
        yearly_until(who[~pending], s[~pending] - 28)
        year_exams(who[keep_year])  # still pending but kept: held now, dated a few months ahead
        last_rate[who[keep_year]] = rate[ep[keep_year]]  # after the year exam, the new therapy sets the pace
        # No baseline radiograph for a start that a held year exam (dated after it) already follows.
        take = ~keep_year & (last_exam[who] <= s)
        t_who, t_ep, t_s = who[take], ep[take], s[take]
        # A radiograph from the last 4 weeks (a year exam, say) serves as this start's baseline; else take one.
        # Never the baseline of the therapy this start cut short: each therapy has its own start radiograph.
        # And always dated after the previous therapy's start, or it would become that therapy's baseline.
        recent = (last_exam[t_who] >= t_s - 28) & (last_exam[t_who] > last_start[t_who]) & ~cancel[take]
        earliest = np.maximum(last_exam[t_who], last_start[t_who]) + 1
        day = np.where(recent, last_exam[t_who], np.maximum(t_s - rng.integers(0, 29, t_who.size), earliest))
        exam(t_who[~recent], day[~recent])
        last_rate[t_who] = rate[t_ep]
        base_day[t_who] = day
        pending_ep[t_who] = t_ep
        pending_day[t_who] = day + 365 - rng.integers(0, 22, t_who.size)
        last_start[who] = s
    last = np.flatnonzero(pending_ep >= 0)
    year_exams(last)
    followed = np.flatnonzero(has & (last_exam >= 0))
    yearly_until(followed, pop["followup_end"][followed] + 1)

    if not exams:
        return {}, first_year_gain
    who = np.concatenate([e[0] for e in exams])
    day = np.concatenate([e[1] for e in exams])
    dmg = np.concatenate([e[2] for e in exams])
    n_exam, n_joint = who.size, len(lay.joints)
    erosion = np.zeros((n_exam, n_joint), dtype=np.int64)
    jsn = np.zeros((n_exam, n_joint), dtype=np.int64)
    erosion[:, lay.joint_of[lay.is_erosion]] = dmg[:, lay.is_erosion]
    jsn[:, lay.joint_of[~lay.is_erosion]] = dmg[:, ~lay.is_erosion]
    rows = {
        "patient": np.repeat(who, n_joint), "day": np.repeat(day, n_joint),
        "joint": np.tile(np.array(lay.joints, dtype=object), n_exam),
        "erosion": np.where(np.tile(lay.erosion_scored, n_exam), erosion.ravel(), -1),
        "jsn": np.where(np.tile(lay.jsn_scored, n_exam), jsn.ravel(), -1),
    }
    return rows, first_year_gain
