"""The oracle: every episode's true outcome probabilities under every therapy option, in closed form.

The observed 24-week DAS28 improvement under option a is normal,
N(mu_a(x), sd^2) (effects.py); the follow-up DAS28 is the baseline minus it.
Each outcome is then one tail of that normal:
- EULAR good or moderate  <=> improvement > min(1.2, max(0.6, baseline - 5.1))
- EULAR good              <=> improvement > max(1.2, baseline - 3.2)
- DAS28 remission (< 2.6) <=> improvement > baseline - 2.6
on DAS28-CRP, or on DAS28-ESR (the baseline plus the patient's ESR offset) where
CRP is missing at baseline or, with a known probability, at follow-up.
Rapid radiographic progression is P(NegBin >= 5) for the year's SvdH count, and
a stop within a year combines the inefficacy process of course.py with the
adverse-event hazard. The flare oracle (``flare_oracle``) gives, for each
wearable patient-day, the probability of the registry's 28-day flare label.
"""
from __future__ import annotations

import numpy as np
from scipy import special, stats

from rxpredict.simulate import effects, flares
from rxpredict.simulate.course import EARLY_STOP, FAILING_WEEKS, LOSS_OF_RESPONSE_FROM, SWITCH, WEEK
from rxpredict.simulate.effects import ADVANCED, OPTIONS
from rxpredict.simulate.flares import FLARE_HORIZON
from rxpredict.simulate.population import YEAR
from rxpredict.simulate.scenario import Scenario

RRP_UNITS = 5
#: The flare label (clinical-reference.md, "Flare"): a DAS28 rise of more than 1.2 from the previous visit,
#: or more than 0.6 where that visit's DAS28 was >= 3.2, or an escalation, within (t, t + 28 days].
FLARE_RISE, FLARE_RISE_ACTIVE, ACTIVE_DAS28 = 1.2, 0.6, 3.2


def _above(threshold: np.ndarray, mu: np.ndarray, sd: float) -> np.ndarray:
    """P(N(mu, sd^2) > threshold)."""
    return special.ndtr((mu - threshold) / sd)


def _eular_probabilities(mu: np.ndarray, sd: float, baseline: np.ndarray) -> dict[str, np.ndarray]:
    b = baseline[:, None]
    return {
        "p_response": _above(np.minimum(1.2, np.maximum(0.6, b - 5.1)), mu, sd),
        "p_good": _above(np.maximum(1.2, b - 3.2), mu, sd),
        "p_remission": _above(b - 2.6, mu, sd),
    }


def esr_followup_weight(scenario: Scenario) -> float:
    """P(the follow-up label uses DAS28-ESR | a follow-up DAS28 exists): CRP missing, ESR present."""
    c, e = scenario.crp_missing, scenario.esr_missing
    return c * (1 - e) / (1 - c * e)


def response_oracle(mu: np.ndarray, das28_crp: np.ndarray, das28_esr: np.ndarray, baseline_crp_missing: np.ndarray,
                    baseline_esr_missing: np.ndarray, scenario: Scenario) -> dict[str, np.ndarray]:
    """p_response, p_good, p_remission and expected_das28_change, shape (n, options).

    Given that a label exists: DAS28-ESR is used where CRP is missing at
    baseline; DAS28-CRP only where ESR is missing at baseline; otherwise ESR
    with the probability that CRP is missing (and ESR present) at follow-up.
    """
    sd = effects.improvement_sd(scenario)
    crp = _eular_probabilities(mu, sd, das28_crp)
    esr = _eular_probabilities(mu, sd, das28_esr)
    w = np.where(baseline_crp_missing, 1.0, np.where(baseline_esr_missing, 0.0, esr_followup_weight(scenario)))[:, None]
    out = {k: (1 - w) * crp[k] + w * esr[k] for k in crp}
    out["expected_das28_change"] = -mu
    return out


def rrp_oracle(rate: np.ndarray, scenario: Scenario) -> np.ndarray:
    """P(at least 5 SvdH units in the first year) for a negative-binomial count with mean ``rate``."""
    k = scenario.progression_dispersion
    return stats.nbinom.sf(RRP_UNITS - 1, k, k / (k + rate))


def stop_oracle(mu: np.ndarray, das28_crp: np.ndarray, ae_hazard: np.ndarray, scenario: Scenario) -> np.ndarray:
    """P(stop for inefficacy or an adverse event within 365 days), shape (n, options).

    Non-responders (on DAS28-CRP) stop early, switch after week 24 or, on an
    advanced therapy, stay and lose it like responders do; csDMARD
    non-responders who do not switch get an add-on instead of a stop.
    """
    sd = effects.improvement_sd(scenario)
    p_non = 1 - _eular_probabilities(mu, sd, das28_crp)["p_response"]
    advanced = np.array([o in ADVANCED for o in OPTIONS])[None, :]
    q_early = scenario.early_inefficacy_stop
    q_late = np.where(advanced, scenario.late_inefficacy_switch, scenario.late_inefficacy_switch / 2)
    loss = 1 - np.exp(-scenario.secondary_failure_per_year * (365 - LOSS_OF_RESPONSE_FROM) / YEAR)
    assert EARLY_STOP[1] < 365 and SWITCH[1] < 365
    stay = np.where(advanced, (1 - q_early) * (1 - q_late), 0.0)
    p_inefficacy = p_non * (q_early + (1 - q_early) * q_late + stay * loss) + (1 - p_non) * loss
    p_ae = 1 - np.exp(-ae_hazard * (2 * 91 + (365 - 91)) / YEAR)
    return 1 - (1 - p_inefficacy) * (1 - p_ae)


def _above_sd(threshold: np.ndarray, mu: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """P(N(mu, sd^2) > threshold), with sd 0 allowed (a point mass)."""
    return np.where(sd > 0, special.ndtr((mu - threshold) / np.where(sd > 0, sd, 1.0)), mu > threshold)


def _bvn_cdf(h: np.ndarray, k: np.ndarray, rho: np.ndarray) -> np.ndarray:
    """P(X <= h, Y <= k) for standard normals X, Y with correlation rho (|rho| < 1), by Owen's T function."""
    h, k = np.where(h == 0, 1e-12, h), np.where(k == 0, 1e-12, k)
    r = np.sqrt(1 - rho * rho)
    return (0.5 * (special.ndtr(h) + special.ndtr(k)) - special.owens_t(h, (k - rho * h) / (h * r))
            - special.owens_t(k, (h - rho * k) / (k * r)) - np.where(h * k < 0, 0.5, 0.0))


def _rise_probability(mu: np.ndarray, sd: np.ndarray, prev_mu: np.ndarray, prev_sd: np.ndarray,
                      offset: np.ndarray) -> np.ndarray:
    """P(C - P > the flare threshold at P) for a visit C ~ N(mu, sd^2) and the previous one P ~ N(prev_mu, prev_sd^2).

    The threshold is 0.6 where P + offset >= 3.2, else 1.2 (offset: the ESR
    offset where the label uses DAS28-ESR). In closed form: one normal tail
    where P is known (prev_sd 0); P(P < C - 0.6, P >= k) + P(P < min(C - 1.2, k))
    where C is; else, with A = C - P, P(A > 0.6) + P(A <= 0.6, P < k) - P(A <= 1.2, P < k).
    """
    k = ACTIVE_DAS28 - offset
    known = _above_sd(prev_mu + np.where(prev_mu >= k, FLARE_RISE_ACTIVE, FLARE_RISE), mu, sd)
    ps = np.where(prev_sd > 0, prev_sd, 1.0)
    fixed = (np.maximum(special.ndtr((mu - FLARE_RISE_ACTIVE - prev_mu) / ps) - special.ndtr((k - prev_mu) / ps), 0.0)
             + special.ndtr((np.minimum(mu - FLARE_RISE, k) - prev_mu) / ps))
    sa = np.sqrt(sd * sd + ps * ps)
    gap, rho, kk = mu - prev_mu, np.maximum(-ps / sa, -1 + 1e-9), (k - prev_mu) / ps
    both = (special.ndtr((gap - FLARE_RISE_ACTIVE) / sa) + _bvn_cdf((FLARE_RISE_ACTIVE - gap) / sa, kk, rho)
            - _bvn_cdf((FLARE_RISE - gap) / sa, kk, rho))
    return np.where(prev_sd == 0, known, np.where(sd == 0, fixed, both))


def _peak_rise_probability(gap: np.ndarray, usable: np.ndarray, scenario: Scenario) -> np.ndarray:
    """P(U + gap + tau Z > 0) for a uniform flare peak U and visit noise tau Z (0 where not ``usable``)."""
    a, b = scenario.flare_peak
    tau = scenario.visit_noise_sd
    if tau == 0:
        p = np.clip((b + gap) / (b - a), 0.0, 1.0)
    else:
        p = tau / (b - a) * (_ndtr_integral((b + gap) / tau) - _ndtr_integral((a + gap) / tau))
    return np.where(usable, p, 0.0)


def _ndtr_integral(z: np.ndarray) -> np.ndarray:
    """The integral of the standard normal CDF from -inf to z: z Phi(z) + phi(z)."""
    return z * special.ndtr(z) + np.exp(-z * z / 2) / np.sqrt(2 * np.pi)


def _first_flare_in_window(days: np.ndarray, course: np.ndarray, episode: np.ndarray, pat: np.ndarray,
                           ep: dict[str, np.ndarray], fl: dict[str, np.ndarray], n_lab: int,
                           scenario: Scenario) -> np.ndarray:
    """F(t): the chance that the first flare with onset after day t has its visit by t + 28.

    F(t) = sum_s S(s) (1 - exp(-he(s))) P(L <= t + 28 - s | L <= span end - s) over onset days s
    after t, with he the hazard of onsets whose visit comes by the span's end and S the chance of no
    such onset in (t, s). Exact, because a flare blocks all later onsets past the window.
    """
    lead_min = scenario.flare_lead_days[0]
    losing = ep["failing"][episode] & (days - ep["start"][episode] >= ep["stop_after"][episode] - FAILING_WEEKS * WEEK)
    until = ep["flare_until"][episode]
    tapers = flares.tapers_at(pat, days, fl["patient"], fl, scenario).reshape(days.shape)
    by_end = flares.lead_cdf(until - days, scenario)
    he = np.where((days >= ep["flare_from"][episode]) & (days <= until - lead_min),
                  flares.hazard(course, ep["flare_scale"][episode], losing, scenario)
                  * (1 + (scenario.flare_taper_hr - 1) * tapers) * by_end, 0.0)
    stay, start = np.exp(-he), -np.expm1(-he)
    with np.errstate(divide="ignore"):
        per_by_end = 1.0 / by_end
    # Onsets wait until flare_refractory_days after the visit of the latest flare begun by day t.
    order = np.lexsort((fl["onset"], fl["patient"]))
    key = np.concatenate([[-1], flares.day_key(fl["patient"][order], fl["onset"][order])])
    latest = np.searchsorted(key, flares.day_key(pat[:, :n_lab], days[:, :n_lab]), side="right") - 1  # 0: none
    free_from = np.where(np.concatenate([[-1], fl["patient"][order]])[latest] == pat[:, :n_lab],
                         np.concatenate([[-1], fl["visit"][order] + scenario.flare_refractory_days])[latest], -1)
    first, none_yet = np.zeros((days.shape[0], n_lab)), np.ones((days.shape[0], n_lab))
    for k in range(1, FLARE_HORIZON - lead_min + 1):
        s = slice(k, k + n_lab)
        free = days[:, s] >= free_from
        in_window = np.minimum(flares.lead_cdf(np.float64(FLARE_HORIZON - k), scenario) * per_by_end[:, s], 1.0)
        first += np.where(free, none_yet * start[:, s] * in_window, 0.0)
        none_yet *= np.where(free, stay[:, s], 1.0)
    return first


def _flare_visit_label_chance(days: np.ndarray, course: np.ndarray, pat: np.ndarray, v: dict[str, np.ndarray],
                              fl: dict[str, np.ndarray], esr_offset: np.ndarray, n_lab: int,
                              scenario: Scenario) -> np.ndarray:
    """q(t): the chance that the visit of a flare with onset after t gives the label.

    It escalates with probability flare_escalation; otherwise it shows a DAS28
    flare against the last visit recorded by t (its DAS28 and labs known, the
    flare visit's labs missing at the scenario's rates), the flare visit
    taken at the course DAS28 plus the known bumps two weeks after t, plus a
    uniform peak and visit noise.
    """
    t_pat, t_day = pat[:, :n_lab].ravel(), days[:, :n_lab].ravel()
    last = np.searchsorted(flares.day_key(v["patient"], v["day"]), flares.day_key(t_pat, t_day), side="right") - 1
    lp = np.maximum(last, 0)
    has_last = (last >= 0) & (v["patient"][lp] == t_pat) & v["patient_global_0_100"][lp]
    ahead = np.arange(n_lab) + FLARE_HORIZON // 2
    mid = course[:, ahead].ravel() + flares.bump_at(t_pat, days[:, ahead], fl["patient"], fl, scenario, known_at=t_day)
    x = v["das28"][lp]
    crp = v["crp_mg_l"][lp] * (1 - scenario.crp_missing)
    esr = v["esr_mm_h"][lp] * (1 - scenario.esr_missing) * (1 - crp)
    rise = np.zeros(t_pat.size)
    for weight, offset in ((crp, 0.0), (esr, esr_offset[t_pat])):
        thr = np.where(x + offset >= ACTIVE_DAS28, FLARE_RISE_ACTIVE, FLARE_RISE)
        rise += weight * _peak_rise_probability(mid - x - thr, has_last, scenario)
    p_esc = scenario.flare_escalation
    return (p_esc + (1 - p_esc) * (1 - scenario.global_missing) * rise).reshape(-1, n_lab)


def _no_known_visit_flare(days: np.ndarray, grid_patient: np.ndarray, v: dict[str, np.ndarray],
                          fl: dict[str, np.ndarray], esr_offset: np.ndarray, n_lab: int,
                          scenario: Scenario) -> np.ndarray:
    """prod_v (1 - p_v(t)) over the visits in (t, t + 28] known on day t, taken as independent.

    Known: scheduled visits, and flare visits whose onset has come. p_v is the
    chance of a DAS28 flare against the previous visit known on day t (its
    record once it has happened, else its planned DAS28 plus the known bumps
    and visit noise); a flare visit adds its escalation.
    """
    tau, p_esc = scenario.visit_noise_sd, scenario.flare_escalation
    iv = np.repeat(np.arange(v["patient"].size), FLARE_HORIZON)
    t = v["day"][iv] - np.tile(np.arange(1, FLARE_HORIZON + 1), v["patient"].size)
    w = np.searchsorted(grid_patient, v["patient"][iv])
    j = t - days[w, 0]
    keep = (j >= 0) & (j < n_lab) & (v["flare_onset"][iv] <= t)
    iv, t, w, j = iv[keep], t[keep], w[keep], j[keep]
    # The previous visit as known on day t: flare visits with a later onset are not known yet.
    prev = iv - 1
    while True:
        unknown = (prev >= 0) & (v["patient"][np.maximum(prev, 0)] == v["patient"][iv]) & (
            v["flare_onset"][np.maximum(prev, 0)] > t)
        if not unknown.any():
            break
        prev = np.where(unknown, prev - 1, prev)
    up = np.maximum(prev, 0)

    def known(i: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and SD of visit i's DAS28 as known on day t."""
        bump = flares.bump_at(v["patient"][i], v["day"][i], fl["patient"], fl, scenario, known_at=t)
        past = v["day"][i] <= t
        noisy = (v["kind"][i] != 0) & (v["kind"][i] != 2)  # baseline and week-24 visits record the plan exactly
        return np.where(past, v["das28"][i], v["das28_planned"][i] + bump), np.where(past | ~noisy, 0.0, tau)

    both = {c: v[c][iv] & v[c][up] for c in ("crp_mg_l", "esr_mm_h", "patient_global_0_100")}
    usable = ((prev >= 0) & (v["patient"][up] == v["patient"][iv]) & both["patient_global_0_100"]
              & (both["crp_mg_l"] | both["esr_mm_h"]))
    offset = np.where(both["crp_mg_l"], 0.0, esr_offset[v["patient"][iv]])
    p = np.where(usable, _rise_probability(*known(iv), *known(up), offset), 0.0)
    p = np.where(v["kind"][iv] == 4, 1 - (1 - p_esc) * (1 - p), p)
    with np.errstate(divide="ignore"):
        log_none = np.bincount(w * n_lab + j, weights=np.log1p(-p), minlength=days.shape[0] * n_lab)
    return np.exp(log_none).reshape(-1, n_lab)


def flare_oracle(grid_patient: np.ndarray, days: np.ndarray, course: np.ndarray, episode: np.ndarray,
                 ep: dict[str, np.ndarray], visits: dict[str, np.ndarray], fl: dict[str, np.ndarray],
                 esr_offset: np.ndarray, scenario: Scenario) -> np.ndarray:
    """P(the 28-day flare label is 1) on each grid day, given what the simulator knows at its end.

    ``days`` holds consecutive days per wearer (the sorted ``grid_patient``),
    ending on the last day of follow-up; ``course`` and ``episode`` are their
    course DAS28 and episode (course.course_path). Known on day t: the course
    plan (scheduled visits, their planned DAS28 and missing values), the
    hazard path, the visits recorded so far and the flares with onset by t.
    The label is 1 when a visit in (t, t + 28] shows a DAS28 flare against its
    previous visit, or an escalation starts there:

        P(label) = 1 - (1 - q(t) F(t)) * prod_v (1 - p_v(t))

    F(t): the first flare with onset after t has its visit in the window;
    q(t): that visit gives the label; p_v(t): a known visit in the window
    does. NaN on the last 28 days (unlabelled).
    """
    n_lab = max(days.shape[1] - FLARE_HORIZON, 0)  # days followed for the whole horizon
    pat = np.broadcast_to(grid_patient[:, None], days.shape)
    wearer = np.flatnonzero(np.isin(visits["patient"], grid_patient))
    order = wearer[np.lexsort((visits["day"][wearer], visits["patient"][wearer]))]
    v = {c: visits[c][order] for c in ("patient", "day", "kind", "das28", "das28_planned", "flare_onset")}
    v.update({c: ~np.isnan(visits[c][order]) for c in ("crp_mg_l", "esr_mm_h", "patient_global_0_100")})
    first = _first_flare_in_window(days, course, episode, pat, ep, fl, n_lab, scenario)
    q = _flare_visit_label_chance(days, course, pat, v, fl, esr_offset, n_lab, scenario)
    none = _no_known_visit_flare(days, grid_patient, v, fl, esr_offset, n_lab, scenario)
    out = np.full(days.shape, np.nan)
    out[:, :n_lab] = 1 - (1 - q * first) * none
    return out
