"""The simulator's truth: how each therapy option works for whom, and who gets which.

Every function takes the episode features as a dict of equally long numpy
arrays (see ``FEATURES``) and returns arrays. The forms are smooth and
non-linear on purpose (obesity as a threshold, CRP through tanh), so that a
model has to learn shapes, not just signs. docs/simulator.md explains each
term and where its order of magnitude comes from.
"""
from __future__ import annotations

import numpy as np

from rxpredict.simulate.scenario import Scenario

OPTIONS = ("csdmard_mtx", "csdmard_other", "tnfi", "il6i", "abatacept", "rituximab", "jaki")
ADVANCED = ("tnfi", "il6i", "abatacept", "rituximab", "jaki")

#: Episode features the truth depends on (all known to the simulator at the index date).
FEATURES = (
    "age", "female", "bmi", "smoker_current", "rf", "acpa", "se", "ptpn22", "prs", "severity",
    "duration", "das28", "log_crp", "haq", "n_prior_advanced", "n_prior_failures", "prior_tnf_failure",
    "mtx_naive", "concomitant_mtx", "line", "year",
)

Features = dict[str, np.ndarray]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


def common_improvement(x: Features) -> np.ndarray:
    """The part of the 24-week DAS28 improvement shared by every option.

    More room to improve with higher baseline activity; refractory disease
    (latent severity, prior failures, long duration, disability, old age)
    improves less.
    """
    return (
        1.25
        + 0.32 * (x["das28"] - 5.0)
        - 0.22 * np.minimum(x["n_prior_failures"], 3)
        - 0.18 * x["severity"]
        - 0.12 * np.log1p(x["duration"])
        - 0.15 * (x["haq"] - 1.0)
        - 0.25 * _relu(x["age"] - 65.0) / 10.0
    )


def option_modifiers(x: Features) -> dict[str, np.ndarray]:
    """Patient-level effect modifiers per option (added to the option's base effect)."""
    early = np.exp(-x["duration"] / 1.5)  # the window of opportunity in early disease
    seropositive = np.maximum(x["rf"], x["acpa"])
    return {
        "csdmard_mtx": 0.30 * x["mtx_naive"] - 0.45 * (1 - x["mtx_naive"]) + 0.25 * early
        - 0.30 * x["smoker_current"],
        "csdmard_other": 0.20 * early - 0.10 * np.minimum(x["n_prior_advanced"], 3),
        "tnfi": -0.75 * _sigmoid((x["bmi"] - 30.0) / 1.5) - 0.35 * x["smoker_current"]
        - 0.45 * x["prior_tnf_failure"] + 0.30 * x["concomitant_mtx"] - 0.12 * x["prs"],
        "il6i": 0.50 * np.tanh((x["log_crp"] - 2.3) / 0.8) + 0.15 * x["prior_tnf_failure"],
        "abatacept": 0.50 * x["acpa"] + 0.15 * x["se"],
        "rituximab": 0.80 * seropositive + 0.10 * x["rf"] * x["acpa"] + 0.20 * x["prior_tnf_failure"],
        "jaki": 0.20 * x["prior_tnf_failure"] + 0.20 * x["ptpn22"] - 0.15 * _relu(x["age"] - 70.0) / 5.0,
    }


def expected_improvement(x: Features, scenario: Scenario) -> dict[str, np.ndarray]:
    """Mean observed DAS28 improvement at 24 weeks under every option (the truth behind the oracle)."""
    common = common_improvement(x)
    mods = option_modifiers(x)
    return {
        o: common + scenario.effect_scale * (scenario.option_base_effect[o] + scenario.heterogeneity_scale * mods[o])
        for o in OPTIONS
    }


def improvement_sd(scenario: Scenario) -> float:
    """SD of the observed improvement: true variation plus the follow-up visit's measurement noise."""
    return float(np.hypot(scenario.outcome_sd, scenario.visit_noise_sd))


def progression_rate(x: Features, imaging_erosive: np.ndarray, scenario: Scenario) -> dict[str, np.ndarray]:
    """Expected SvdH units gained in a year under each option.

    The untreated rate rises with autoantibodies, shared epitope, inflammation
    (CRP), existing erosions and latent severity; each option damps it by its
    factor, and effective control of inflammation (a larger expected
    improvement) damps it further.
    """
    untreated = np.exp(
        0.35 + 0.55 * x["acpa"] + 0.25 * x["rf"] + 0.20 * x["se"] + 0.25 * (x["log_crp"] - 2.0)
        + 0.45 * imaging_erosive + 0.35 * x["severity"]
    )
    improvement = expected_improvement(x, scenario)
    return {
        o: untreated * scenario.option_progression_factor[o] * np.exp(-0.15 * np.clip(improvement[o], -1.0, 4.0))
        for o in OPTIONS
    }


def ae_hazard(x: Features, scenario: Scenario) -> dict[str, np.ndarray]:
    """Yearly hazard of stopping for an adverse event, rising with age."""
    age_factor = np.exp(0.025 * (x["age"] - 55.0))
    return {o: scenario.option_ae_hazard[o] * age_factor for o in OPTIONS}


def prescribing_logits(x: Features, scenario: Scenario) -> np.ndarray:
    """Logits of the option started, shape (n, 7): confounding by indication.

    First lines are methotrexate unless a reason speaks against it; later
    lines follow the indications rheumatologists use (IL-6 for high CRP or
    monotherapy, rituximab for seropositive and multi-failure patients,
    abatacept for the old, no JAK inhibitor for the old or smokers after the
    2023 safety advice, TNF cycling discouraged after a TNF failure).
    Options not yet approved in the start year are impossible.
    """
    c = scenario.confounding_scale
    first = x["line"] == 0
    seropositive = np.maximum(x["rf"], x["acpa"])
    crp_high = np.tanh((x["log_crp"] - 2.3) / 0.8)
    old = (x["age"] >= 65).astype(float)
    after_advice = (x["year"] >= 2023).astype(float)
    young_woman = x["female"] * (x["age"] < 40)
    later = {
        "csdmard_mtx": -0.5 + c * (2.5 * x["mtx_naive"] - 2.0 * (1 - x["mtx_naive"])),
        "csdmard_other": -0.9 + c * 0.6 * ((x["n_prior_advanced"] == 0) & (x["line"] <= 2)),
        "tnfi": 1.2 + c * (-1.0 * x["prior_tnf_failure"] - 0.3 * (x["n_prior_advanced"] >= 2) - 0.3 * old),
        "il6i": -0.4 + c * (0.8 * crp_high + 0.7 * (1 - x["concomitant_mtx"]) + 0.4 * x["prior_tnf_failure"]),
        "abatacept": -0.8 + c * (0.06 * (x["age"] - 55.0) + 0.4 * x["prior_tnf_failure"]),
        "rituximab": -1.9 + c * (1.1 * seropositive + 0.5 * x["prior_tnf_failure"]
                                 + 0.4 * np.minimum(x["n_prior_advanced"], 3)),
        "jaki": -0.2 + c * (0.5 * x["prior_tnf_failure"] - 0.6 * old - 1.6 * old * after_advice
                            - 1.0 * x["smoker_current"] * after_advice + 0.4 * (1 - x["concomitant_mtx"])),
    }
    first_line = {
        "csdmard_mtx": np.full_like(x["age"], 2.5),
        "csdmard_other": 0.3 + c * (1.5 * young_woman + 0.6 * (x["das28"] < 4.2)),
        "tnfi": -3.0 + c * (0.5 * (x["das28"] > 6.0) + 0.4 * x["acpa"]),
        "il6i": np.full_like(x["age"], -4.5),
        "abatacept": np.full_like(x["age"], -4.5),
        "rituximab": np.full_like(x["age"], -5.0),
        "jaki": np.full_like(x["age"], -4.5),
    }
    logits = np.column_stack([np.where(first, first_line[o], later[o]) for o in OPTIONS]).astype(float)
    available = np.column_stack([x["year"] >= scenario.option_available_from[o] for o in OPTIONS])
    return np.where(available, logits, -np.inf)


def prescribing_probabilities(x: Features, scenario: Scenario, running: np.ndarray | None = None) -> np.ndarray:
    """Probabilities of each option at a start, shape (n, 7), with the scenario's overlap floor.

    ``running`` (n, 7) marks options with a course still running: those cannot be started again.
    """
    logits = prescribing_logits(x, scenario)
    if running is not None:
        logits = np.where(running, -np.inf, logits)
    logits = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    if scenario.overlap_floor > 0:
        available = np.isfinite(logits)
        p = np.where(available, np.maximum(p, scenario.overlap_floor), 0.0)
        p /= p.sum(axis=1, keepdims=True)
    return p
