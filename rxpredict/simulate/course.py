"""Treatment courses and visits: each patient's lines of therapy, one line at a time for all patients.

For every therapy start (an *episode*) the simulator draws the option the
rheumatologist picks (effects.prescribing_probabilities), the observed 24-week
DAS28 improvement under it, and the times to stop for an adverse event, for
inefficacy and for other reasons; then it lays out the visits and their latent
DAS28. Timing rules keep the recorded data faithful to the truth (see
docs/simulator.md, "Why the oracle is exact"):
- the only visit between weeks 18 and 30 after a start is the week-24 visit;
- a course stops for inefficacy before week 18 only if its observed improvement
  would make it a EULAR non-responder (so "stopped for inefficacy" and the
  visit-based label never disagree);
- switches, add-ons and loss of response come after week 33, and the next
  course's baseline visit comes after the stop that ends a course (so an
  adverse-event stop in weeks 18-30 leaves no later visit in that window);
- flares (flares.py) have onsets from week 30 + 1 day and flare visits no later
  than the last day a regular visit may take, so they never reach the week 18-30
  window, the window kept free before the next start's baseline visit, or a
  day within 14 days of a DMARD start; what is left of their bump at the next
  baseline visit is part of that baseline's DAS28.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rxpredict.simulate import effects, flares
from rxpredict.simulate.components import DAS_MAX, solve_components
from rxpredict.simulate.effects import ADVANCED, OPTIONS
from rxpredict.simulate.population import YEAR, year_of
from rxpredict.simulate.scenario import Scenario

#: Drugs of each option with their market shares in registry practice.
DRUG_SHARES = {
    "csdmard_mtx": {"methotrexate": 1.0},
    "csdmard_other": {"leflunomide": 0.40, "sulfasalazine": 0.35, "hydroxychloroquine": 0.25},
    "tnfi": {"adalimumab": 0.38, "etanercept": 0.30, "infliximab": 0.12, "certolizumab_pegol": 0.08,
             "golimumab": 0.12},
    "il6i": {"tocilizumab": 0.75, "sarilumab": 0.25},
    "abatacept": {"abatacept": 1.0},
    "rituximab": {"rituximab": 1.0},
    "jaki": {"tofacitinib": 0.35, "baricitinib": 0.35, "upadacitinib": 0.22, "filgotinib": 0.08},
}
ADVANCED_IDX = np.array([o in ADVANCED for o in OPTIONS])
MTX, TNF = OPTIONS.index("csdmard_mtx"), OPTIONS.index("tnfi")

WEEK = 7
EARLY_STOP = (70, 119)  # weeks 10-17: stop for primary inefficacy, before the outcome window
SWITCH = (235, 308)  # weeks 34-44: switch or add-on after an inadequate response at week 24
LOSS_OF_RESPONSE_FROM = 245  # secondary failure only after week 35
ONGOING = flares.ONGOING
FOLLOWUP_DAY, FOLLOWUP_JITTER = 168, 14
FLARES_FROM = 30 * WEEK + 1  # first day of a course's maintenance phase, after the week 18-30 window
FAILING_WEEKS, FAILING_RISE = 12, 1.6  # a course losing response rises by 1.6 DAS28 over its last 12 weeks


@dataclass
class Chunk:
    """What one chunk of patients produced, as flat arrays (days since 1970-01-01)."""

    episodes: dict[str, np.ndarray] = field(default_factory=dict)
    treatments: dict[str, np.ndarray] = field(default_factory=dict)
    visits: dict[str, np.ndarray] = field(default_factory=dict)
    flares: dict[str, np.ndarray] = field(default_factory=dict)


class _Collector:
    """Appends arrays per key and concatenates them once."""

    def __init__(self) -> None:
        self.parts: dict[str, list[np.ndarray]] = {}

    def add(self, **arrays: np.ndarray) -> None:
        for k, v in arrays.items():
            self.parts.setdefault(k, []).append(np.asarray(v))

    def result(self) -> dict[str, np.ndarray]:
        return {k: np.concatenate(v) for k, v in self.parts.items()}


def _pick(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One category per row of a probability matrix."""
    u = rng.random(probs.shape[0])[:, None]
    return np.minimum((probs.cumsum(axis=1) < u).sum(axis=1), probs.shape[1] - 1)


def _drugs(rng: np.random.Generator, option: np.ndarray) -> np.ndarray:
    out = np.empty(option.shape[0], dtype=object)
    for i, o in enumerate(OPTIONS):
        m = option == i
        names, shares = zip(*DRUG_SHARES[o].items())
        out[m] = rng.choice(np.array(names, dtype=object), m.sum(), p=np.array(shares))
    return out


def _ae_time(rng: np.random.Generator, hazard: np.ndarray) -> np.ndarray:
    """Days to an adverse-event stop: the yearly hazard, doubled in the first 13 weeks."""
    e = rng.exponential(1.0, hazard.shape[0])
    early_h = 2 * hazard * 91 / YEAR
    return np.where(e < early_h, e / (2 * hazard) * YEAR, 91 + (e - early_h) / hazard * YEAR)


def course_das28(day: np.ndarray, start: np.ndarray, baseline: np.ndarray, delta: np.ndarray,
                  stop_after: np.ndarray, failing: np.ndarray) -> np.ndarray:
    """Latent DAS28 of a course on ``day`` (no visit noise, no flares).

    It falls linearly from the baseline by the improvement over the first 12
    weeks; a course losing response rises again over its last 12 weeks.
    """
    rel = day - start
    d = baseline - delta * np.clip(rel / (12 * WEEK), 0.0, 1.0)
    rise = np.clip((rel - (stop_after - FAILING_WEEKS * WEEK)) / (FAILING_WEEKS * WEEK), 0.0, 1.0) * FAILING_RISE
    return np.where(failing, d + rise, d)


def course_path(ep: dict[str, np.ndarray], patient: np.ndarray, day: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Latent course DAS28 (no flares) of each (patient, day), and the episode that day belongs to.

    A day belongs to the latest episode whose baseline (``absorb_day``) is not
    after it, or to the patient's first episode before that; after a course
    ends the path runs straight to the next baseline. Every patient asked
    about must have an episode.
    """
    patient, day = np.broadcast_arrays(patient, day)
    order = np.lexsort((ep["absorb_day"], ep["patient"]))
    p_sorted = ep["patient"][order]
    at = np.searchsorted(flares.day_key(p_sorted, ep["absorb_day"][order]), flares.day_key(patient, day),
                         side="right") - 1
    at = np.maximum(at, np.searchsorted(p_sorted, patient))
    e, nxt = order[at], order[np.minimum(at + 1, order.size - 1)]
    end = ep["course_end"][e]
    d = course_das28(np.minimum(day, end), ep["start"][e], ep["das28"][e], ep["delta"][e], ep["stop_after"][e],
                     ep["failing"][e])
    bridge = (at + 1 < order.size) & (ep["patient"][nxt] == patient) & (day > end)
    share = np.clip((day - end) / np.maximum(ep["absorb_day"][nxt] - end, 1), 0.0, 1.0)
    return np.where(bridge, d + share * (ep["das28"][nxt] - d), d), e


def _history_before_entry(rng, pop, scenario) -> dict[str, np.ndarray]:
    """Prevalent patients arrive with methotrexate and sometimes a failed TNF inhibitor behind them."""
    n = pop["entry"].shape[0]
    prev = pop["prevalent"]
    mtx_start = np.where(prev, pop["diagnosis"] + rng.integers(0, 60, n), -1)
    room = pop["entry"] - mtx_start
    status = rng.random(n)
    stopped = prev & (room > 150) & (status < 0.40)
    mtx_stop = np.where(stopped, mtx_start + (rng.random(n) * (room - 120)).astype(np.int64) + 90, -1)
    mtx_reason = np.where(stopped, np.where(status < 0.25, "inefficacy", "adverse_event"), "")
    tnf = prev & (pop["entry"] - pop["diagnosis"] > 2 * YEAR) & (rng.random(n) < 0.30) & (year_of(pop["entry"]) > 2002)
    tnf_stop = pop["entry"] - rng.integers(1, 90, n)
    tnf_start = tnf_stop - rng.integers(200, 600, n)
    tnf_drug = rng.choice(np.array(["adalimumab", "etanercept"], dtype=object), n)
    return {"mtx_start": mtx_start, "mtx_stop": mtx_stop, "mtx_reason": mtx_reason, "tnf": tnf,
            "tnf_start": tnf_start, "tnf_stop": tnf_stop, "tnf_drug": tnf_drug}


def simulate_courses(rng: np.random.Generator, pop: dict[str, np.ndarray], scenario: Scenario) -> Chunk:
    """All episodes, treatment rows, visits (latent DAS28 only) and flares of one chunk of patients."""
    n = pop["entry"].shape[0]
    episodes, treatments, visits, flare_rows = _Collector(), _Collector(), _Collector(), _Collector()
    sd = effects.improvement_sd(scenario)
    tau = scenario.visit_noise_sd

    hist = _history_before_entry(rng, pop, scenario)
    everyone = np.arange(n)
    m = hist["mtx_start"] >= 0
    treatments.add(patient=everyone[m], drug=np.full(m.sum(), "methotrexate", dtype=object),
                   start=hist["mtx_start"][m], stop=hist["mtx_stop"][m], reason=hist["mtx_reason"][m])
    t = hist["tnf"]
    treatments.add(patient=everyone[t], drug=hist["tnf_drug"][t], start=hist["tnf_start"][t],
                   stop=hist["tnf_stop"][t], reason=np.full(t.sum(), "inefficacy", dtype=object))

    # Per-patient state carried from line to line.
    start = pop["entry"] + rng.integers(0, 30, n)
    b = np.clip(rng.normal(5.3 + 0.3 * pop["severity"], 1.0), 3.3, 8.3)
    line = np.where(pop["prevalent"], 1 + t, 0)
    n_adv = t.astype(int)
    n_fail = t.astype(int) + (hist["mtx_reason"] == "inefficacy")
    tnf_fail = t.astype(int)
    mtx_start, mtx_stop = hist["mtx_start"].copy(), hist["mtx_stop"].copy()
    # Last day each option's latest course runs (-1: none; ONGOING: not stopped within follow-up).
    running_until = np.full((n, len(OPTIONS)), -1, dtype=np.int64)
    running_until[m, MTX] = np.where(hist["mtx_stop"][m] >= 0, hist["mtx_stop"][m], ONGOING)
    running_until[t, TNF] = hist["tnf_stop"][t]
    floor = np.maximum(start - 21, pop["entry"] - 30)  # no visit of an episode before this day
    last_seen = np.full(n, np.iinfo(np.int64).min // 2, dtype=np.int64)  # the patient's latest visit so far
    baseline_missing = rng.random(n) < scenario.missing_baseline_visit
    active = start < pop["followup_end"] - 30
    # Flare hazard scale per patient: the reference rate, a gamma frailty (mean 1) and seropositivity.
    frailty = rng.gamma(scenario.flare_frailty_shape, 1.0 / scenario.flare_frailty_shape, n)
    flare_scale = (scenario.flare_rate_per_year / YEAR * frailty
                   * np.where(pop["rf"] | pop["acpa"], scenario.flare_seropositive_hr, 1.0))
    pending = flares.no_flares("patient", "cut")  # the last course's flares, until the next baseline absorbs them

    for _ in range(scenario.max_lines):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        k = idx.size
        s, bb, fu_end = start[idx], b[idx], pop["followup_end"][idx]
        # Baseline visit: up to 3 weeks before the start, never before the previous course's last visit.
        bv_day = np.maximum(s - rng.integers(0, 22, k), floor[idx])
        # A baseline visit is missing only where the patient has no other visit in the 90 days before.
        has_bv = ~baseline_missing[idx] | (last_seen[idx] >= s - 90)
        # What is left of the previous course's flares is part of the new baseline DAS28.
        absorb = np.where(has_bv, bv_day, s)
        cut = np.full(n, ONGOING)
        cut[idx] = absorb
        bb = np.minimum(bb + flares.bump_at(idx, absorb, pending["patient"], pending, scenario), DAS_MAX)
        pending["cut"] = cut[pending["patient"]]
        flare_rows.add(**pending)
        base = solve_components(rng, bb, pop["esr_offset"][idx], pop["severity"][idx])
        bmi = np.clip(pop["bmi"][idx] + rng.normal(0, 0.8, k), 15, 60)
        mtx_on = (mtx_start[idx] >= 0) & (mtx_start[idx] <= s) & ((mtx_stop[idx] < 0) | (mtx_stop[idx] > s))
        x = {
            "age": (s - (pop["birth_year"][idx] - 1970) * YEAR) / YEAR, "female": pop["female"][idx].astype(float),
            "bmi": bmi, "smoker_current": pop["smoker_current"][idx].astype(float),
            "rf": pop["rf"][idx].astype(float), "acpa": pop["acpa"][idx].astype(float),
            "se": pop["se"][idx].astype(float), "ptpn22": pop["ptpn22"][idx].astype(float),
            "prs": pop["prs"][idx], "severity": pop["severity"][idx],
            "duration": (s - pop["diagnosis"][idx]) / YEAR, "das28": bb, "log_crp": np.log1p(base["crp_mg_l"]),
            "haq": base["haq_di"], "n_prior_advanced": n_adv[idx].astype(float),
            "n_prior_failures": n_fail[idx].astype(float), "prior_tnf_failure": tnf_fail[idx].astype(float),
            "mtx_naive": (mtx_start[idx] < 0).astype(float), "concomitant_mtx": mtx_on.astype(float),
            "line": line[idx].astype(float), "year": year_of(s).astype(float),
        }
        mu = np.column_stack(list(effects.expected_improvement(x, scenario).values()))
        probs = effects.prescribing_probabilities(x, scenario, running=running_until[idx] >= s[:, None])
        option = _pick(rng, probs)
        drug = _drugs(rng, option)
        rows = np.arange(k)
        delta = rng.normal(mu[rows, option], sd)
        nonresponder = delta <= np.minimum(1.2, np.maximum(0.6, bb - 5.1))
        advanced = ADVANCED_IDX[option]

        # Times to each kind of stop, in days after the start (inf: not in this life of the course).
        ae = _ae_time(rng, np.column_stack(list(effects.ae_hazard(x, scenario).values()))[rows, option])
        # The week-24 visit is planned now: whether it will be recorded, when, and which of its labs and
        # globals will be missing. An early stop for inefficacy happens only in episodes whose week-24
        # visit would have given a label, so that being labelled never depends on the outcome.
        w24 = s + FOLLOWUP_DAY + rng.integers(-FOLLOWUP_JITTER, FOLLOWUP_JITTER + 1, k)
        planned24 = rng.random(k) >= scenario.missing_followup_visit
        def draw_missing() -> dict[str, np.ndarray]:
            return {"crp_mg_l": rng.random(k) < scenario.crp_missing, "esr_mm_h": rng.random(k) < scenario.esr_missing,
                    "patient_global_0_100": rng.random(k) < scenario.global_missing}

        bl_missing, fu_missing = draw_missing(), draw_missing()
        # A 24-week label needs DAS28 at both visits: on CRP where both have it, else on ESR.
        same_lab = ((~bl_missing["crp_mg_l"] & ~fu_missing["crp_mg_l"]) | (~bl_missing["esr_mm_h"] & ~fu_missing["esr_mm_h"]))
        usable24 = (has_bv & planned24 & same_lab & ~bl_missing["patient_global_0_100"]
                    & ~fu_missing["patient_global_0_100"] & (ae > w24 - s) & (w24 <= fu_end))
        u = rng.random(k)
        q_late = np.where(advanced, scenario.late_inefficacy_switch, scenario.late_inefficacy_switch / 2)
        early_turn = nonresponder & (u < scenario.early_inefficacy_stop)
        early = early_turn & usable24
        switch = nonresponder & ~early & (early_turn | (u < scenario.early_inefficacy_stop
                                                        + (1 - scenario.early_inefficacy_stop) * q_late))
        add_on = nonresponder & ~early & ~switch & ~advanced  # csDMARD kept, an advanced therapy added
        lost = ~early & ~switch & ~add_on  # responders, and non-responders kept on the drug, lose it in time
        inefficacy = np.full(k, np.inf)
        inefficacy[early] = rng.integers(*EARLY_STOP, early.sum())
        inefficacy[switch] = rng.integers(*SWITCH, switch.sum())
        inefficacy[lost] = LOSS_OF_RESPONSE_FROM + rng.exponential(YEAR / scenario.secondary_failure_per_year, lost.sum())
        choice = np.where(advanced, LOSS_OF_RESPONSE_FROM + rng.exponential(YEAR / 0.03, k), np.inf)
        plateau = bb - delta
        remission = np.where(plateau < 2.6, 365 + rng.exponential(YEAR / 0.05, k), np.inf)
        add_on_day = np.where(add_on, rng.integers(*SWITCH, k), np.inf)
        stop_after = np.minimum.reduce([ae, inefficacy, choice, remission])
        reason = np.select([stop_after == ae, stop_after == inefficacy, stop_after == choice],
                           ["adverse_event", "inefficacy", "patient_choice"], "remission").astype(object)
        stop_day = s + np.floor(stop_after)
        stopped = stop_day <= fu_end
        stop_rec = np.where(stopped, stop_day, -1).astype(np.int64)
        treatments.add(patient=idx, drug=drug, start=s, stop=stop_rec, reason=np.where(stopped, reason, ""))

        # Glucocorticoid bridging at some starts, tapered over 2-4 months.
        gc = rng.random(k) < 0.20 + 0.15 * (bb > 5.1)
        gc_stop = s + rng.integers(56, 120, k)
        gc_stopped = gc_stop <= fu_end
        treatments.add(patient=idx[gc], drug=rng.choice(np.array(["prednisolone", "prednisone"], dtype=object), gc.sum()),
                       start=s[gc], stop=np.where(gc_stopped, gc_stop, -1)[gc],
                       reason=np.where(gc_stopped, "other", "")[gc].astype(object))

        # Where the episode's trajectory ends and what comes next.
        episode_end = np.minimum(stop_after, add_on_day)
        restarts = np.isfinite(episode_end) & (reason != "remission") | np.isfinite(add_on_day)
        gap = np.where(np.isfinite(add_on_day) & (add_on_day <= stop_after), 0, rng.integers(7, 57, k))
        next_start = np.where(restarts, s + np.floor(np.where(np.isfinite(episode_end), episode_end, 0)) + gap, -1)
        next_start = np.where(next_start >= fu_end - 30, -1, next_start).astype(np.int64)
        next_missing = rng.random(k) < scenario.missing_baseline_visit
        # Visits of this episode may not reach into the next baseline window, unless the next start has
        # a baseline visit. A week-24 visit is never given up for that: the next baseline visit is kept.
        before_next = np.where(next_start >= 0, next_start - 22, fu_end)
        ok24 = planned24 & (w24 <= np.minimum(before_next, fu_end))
        next_missing &= ~(ok24 & (w24 >= next_start - 90))
        limit = np.minimum(np.where(next_start >= 0, np.where(next_missing, next_start - 91, next_start - 22), fu_end),
                           fu_end)
        end_abs = np.where(np.isfinite(episode_end), s + np.floor(np.where(np.isfinite(episode_end), episode_end, 0)),
                           np.iinfo(np.int64).max)

        failing = (reason == "inefficacy") & lost

        def traj(day: np.ndarray, who: np.ndarray) -> np.ndarray:
            """Latent DAS28 of episode rows ``who`` at absolute ``day`` (without visit noise or flares)."""
            return course_das28(day, s[who], bb[who], delta[who], stop_after[who], failing[who])

        def base_hazard(who: np.ndarray, day: np.ndarray) -> np.ndarray:
            """Daily flare hazard of episode rows ``who`` (without glucocorticoid tapers)."""
            losing = failing[who] & (day - s[who] >= stop_after[who] - FAILING_WEEKS * WEEK)
            return flares.hazard(traj(day, who), flare_scale[idx[who]], losing, scenario)

        # Week 12, week 24, regular, flare and stop visits: planned DAS28, whether visit noise adds to it,
        # and the flare onset (-1 for a scheduled visit).
        v_who, v_day, v_mean, v_noisy, v_kind, v_onset = [], [], [], [], [], []

        def visit(who_: np.ndarray, day: np.ndarray, mean: np.ndarray, kind: int, noisy: bool = True,
                  onset: np.ndarray | int = -1) -> None:
            v_who.append(who_); v_day.append(day); v_mean.append(mean); v_noisy.append(np.full(who_.size, noisy))
            v_kind.append(np.full(who_.size, kind)); v_onset.append(np.broadcast_to(onset, who_.shape))

        w12 = s + 84 + rng.integers(-10, 11, k)
        ok12 = (rng.random(k) < 0.8) & (w12 < end_abs - 7) & (w12 <= limit)
        visit(rows[ok12], w12[ok12], traj(w12[ok12], rows[ok12]), 1)
        ok24 &= w24 < end_abs
        visit(rows[ok24], w24[ok24], plateau[ok24], 2, noisy=False)
        first_regular = s + FOLLOWUP_DAY + 91
        last_regular = np.minimum(np.minimum(limit, end_abs - 14), fu_end)
        n_regular = np.clip((last_regular - first_regular) // 91 + 1, 0, None).astype(int)
        rw = np.repeat(rows, n_regular)
        step = np.arange(n_regular.sum()) - np.repeat(np.cumsum(n_regular) - n_regular, n_regular)
        r_day = np.minimum(first_regular[rw] + 91 * step + rng.integers(-14, 15, rw.size), last_regular[rw])
        # Flares in the maintenance phase, whose visits may lie where regular visits may.
        fl = flares.simulate_flares(rng, s + FLARES_FROM, last_regular, base_hazard, scenario)
        # A flare visit on the day of a regular visit takes its place.
        regular = ~np.isin(flares.day_key(rw, r_day), flares.day_key(fl["row"], fl["visit"]))
        visit(rw[regular], r_day[regular], traj(r_day[regular], rw[regular]), 3)
        visit(fl["row"], fl["visit"], traj(fl["visit"], fl["row"]), 4, onset=fl["onset"])
        # A stop in the first week leaves no visit: the baseline must stay the latest visit up to index + 7.
        stop_visit = stopped & (stop_day <= limit) & (reason != "remission") & (stop_day > s + 7)
        visit(rows[stop_visit], stop_day[stop_visit], traj(stop_day[stop_visit], rows[stop_visit]), 5)
        who, v_day_all, v_kind_all = np.concatenate(v_who), np.concatenate(v_day), np.concatenate(v_kind)
        mean = np.concatenate(v_mean)
        # One latent path: every visit records the flare bumps of its day.
        das = (mean + rng.normal(0.0, tau, who.size) * np.concatenate(v_noisy)
               + flares.bump_at(who, v_day_all, fl["row"], fl, scenario))
        comps = solve_components(rng, das, pop["esr_offset"][idx[who]], pop["severity"][idx[who]])
        # The baseline visit records the very components the truth used above.
        comps = {c: np.concatenate([base[c][has_bv], comps[c]]) for c in comps}
        who = np.concatenate([rows[has_bv], who])
        v_day_all = np.concatenate([bv_day[has_bv], v_day_all])
        v_kind_all = np.concatenate([np.zeros(has_bv.sum(), dtype=int), v_kind_all])
        mean = np.concatenate([bb[has_bv], mean])
        missing = {c: rng.random(who.size) < p for c, p in [
            ("crp_mg_l", scenario.crp_missing), ("esr_mm_h", scenario.esr_missing),
            ("patient_global_0_100", scenario.global_missing), ("physician_global_0_100", scenario.global_missing),
            ("pain_0_100", scenario.global_missing), ("haq_di", scenario.haq_missing),
            ("morning_stiffness_min", scenario.haq_missing)]}
        for kind, planned in ((0, bl_missing), (2, fu_missing)):
            at = v_kind_all == kind
            for c, m in planned.items():
                missing[c][at] = m[who[at]]
        bmi_visit = np.where(rng.random(who.size) < scenario.bmi_missing, np.nan,
                             np.round(bmi[who] + rng.normal(0, 0.3, who.size), 1))
        latent = np.concatenate([bb[has_bv], das])
        visits.add(patient=idx[who], day=v_day_all.astype(np.int64), kind=v_kind_all, bmi_kg_m2=bmi_visit,
                   das28=np.clip(latent, 1.0, 8.6), das28_planned=mean,
                   flare_onset=np.concatenate([np.full(has_bv.sum(), -1), *v_onset]).astype(np.int64),
                   **{c: np.where(missing[c], np.nan, v).astype(float) if c in missing else v for c, v in comps.items()})
        last_visit = np.full(k, -1, dtype=np.int64)
        np.maximum.at(last_visit, who, v_day_all.astype(np.int64))

        episodes.add(
            patient=idx, line=line[idx], start=s, option=option, drug=drug, mu=mu, probs=probs,
            baseline_day=np.where(has_bv, bv_day, -1), das28=bb, das28_esr=bb + pop["esr_offset"][idx],
            crp=base["crp_mg_l"], baseline_crp_missing=bl_missing["crp_mg_l"], baseline_esr_missing=bl_missing["esr_mm_h"],
            delta=delta, nonresponder=nonresponder, stop=stop_rec, stop_reason=np.where(stopped, reason, ""),
            followup_day=np.where(ok24, w24, -1), followup_crp_missing=fu_missing["crp_mg_l"], early_inefficacy=early & stopped,
            days_to_adverse_event=ae, days_to_inefficacy=inefficacy,
            absorb_day=absorb, course_end=np.minimum(end_abs, fu_end), stop_after=stop_after, failing=failing,
            flare_scale=flare_scale[idx], flare_from=s + FLARES_FROM, flare_until=last_regular,
            **{f"x_{k_}": v for k_, v in x.items()},
        )

        # Escalation: a flare visit may start a glucocorticoid course (never near a DMARD start, see above).
        esc = fl["escalated"]
        gc_stopped = fl["gc_stop"] <= fu_end[fl["row"]]
        treatments.add(patient=idx[fl["row"][esc]],
                       drug=rng.choice(np.array(["prednisolone", "prednisone"], dtype=object), esc.sum()),
                       start=fl["visit"][esc], stop=np.where(gc_stopped, fl["gc_stop"], -1)[esc],
                       reason=np.where(gc_stopped, "other", "")[esc].astype(object))
        pending = {"patient": idx[fl.pop("row")], **fl}

        # Carry the state to the next line.
        d_end = np.where(np.isfinite(episode_end), traj(np.minimum(end_abs, fu_end), rows), plateau)
        b[idx] = np.clip(0.5 * (d_end + 0.8) + 0.5 * rng.normal(5.0 + 0.3 * pop["severity"][idx], 0.9), 3.3, 8.3)
        failed = stopped & (reason == "inefficacy")
        n_adv[idx] += advanced
        n_fail[idx] += failed
        tnf_fail[idx] |= failed & (option == TNF)
        new_mtx = option == MTX
        running_until[idx, option] = np.where(stopped, stop_rec, ONGOING)
        mtx_start[idx] = np.where(new_mtx, s, mtx_start[idx])
        mtx_stop[idx] = np.where(new_mtx, stop_rec, mtx_stop[idx])
        line[idx] += 1
        start[idx] = next_start
        # Nothing of the next start within this one's index + 7, and its baseline visit after the stop that ends
        # this course: after an adverse-event stop in weeks 18-30 that visit must not look like a week-24 one.
        ends = stopped & (stop_day <= end_abs)
        floor[idx] = np.maximum.reduce([last_visit + 1, s + 8, np.where(ends, stop_day + 1, 0)])
        last_seen[idx] = np.maximum(last_seen[idx], last_visit)
        baseline_missing[idx] = next_missing
        active[idx] = next_start >= 0

    pending["cut"] = np.full(pending["patient"].size, ONGOING)
    flare_rows.add(**pending)
    return Chunk(episodes=episodes.result(), treatments=treatments.result(), visits=visits.result(),
                 flares=flare_rows.result())
