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
adverse-event hazard.
"""
from __future__ import annotations

import numpy as np
from scipy import special, stats

from rxpredict.simulate import effects
from rxpredict.simulate.course import EARLY_STOP, LOSS_OF_RESPONSE_FROM, SWITCH
from rxpredict.simulate.effects import ADVANCED, OPTIONS
from rxpredict.simulate.population import YEAR
from rxpredict.simulate.scenario import Scenario

RRP_UNITS = 5


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
