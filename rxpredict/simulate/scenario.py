"""Scenario: every knob of the registry simulator, in one serialisable object.

The default scenario is the realistic one (docs/simulator.md gives the source of
each order of magnitude); ``Scenario.stress()`` has strong confounding by
indication and poor overlap, for benchmarks that must show what a model does
when the registry barely supports a comparison.

>>> from rxpredict.simulate import Scenario
>>> s = Scenario.default()
>>> s.replace(effect_scale=0.5).effect_scale
0.5
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Mean 24-week DAS28 improvement added by each therapy option before
#: patient-level modifiers (see effects.py); the common part adds ~1.
OPTION_BASE_EFFECT = {
    "csdmard_mtx": 0.0,
    "csdmard_other": -0.15,
    "tnfi": 0.45,
    "il6i": 0.30,
    "abatacept": 0.05,
    "rituximab": -0.20,
    "jaki": 0.40,
}

#: Yearly hazard of stopping for an adverse event, per option (at age 55).
OPTION_AE_HAZARD = {
    "csdmard_mtx": 0.12,
    "csdmard_other": 0.14,
    "tnfi": 0.07,
    "il6i": 0.08,
    "abatacept": 0.05,
    "rituximab": 0.06,
    "jaki": 0.08,
}

#: Radiographic progression under each option, as a factor on the patient's
#: untreated rate of SvdH units per year.
OPTION_PROGRESSION_FACTOR = {
    "csdmard_mtx": 0.55,
    "csdmard_other": 0.80,
    "tnfi": 0.28,
    "il6i": 0.32,
    "abatacept": 0.42,
    "rituximab": 0.38,
    "jaki": 0.32,
}

#: First year each option was available to registry patients (EU approvals).
OPTION_AVAILABLE_FROM = {
    "csdmard_mtx": 1990,
    "csdmard_other": 1990,
    "tnfi": 2000,
    "il6i": 2009,
    "abatacept": 2007,
    "rituximab": 2006,
    "jaki": 2017,
}


@dataclass(frozen=True)
class Scenario:
    """All parameters of a simulated registry. Every field is documented in docs/simulator.md.

    Effects
    -------
    effect_scale : multiplies every option's base effect and every effect modifier.
    heterogeneity_scale : multiplies the patient-level effect modifiers only.
    outcome_sd : SD of the true 24-week DAS28 change around its expectation.
    visit_noise_sd : SD of visit-to-visit DAS28 measurement noise.

    Treatment assignment
    --------------------
    confounding_scale : multiplies every covariate term of the prescribing model
        (0 gives randomised assignment among the available options).
    overlap_floor : smallest probability any available option keeps at a start;
        0 lets strong indications exclude options completely.

    Registry mess
    -------------
    missing_baseline_visit, missing_followup_visit : probability that the
        visit at a start, or near week 24, is not recorded.
    crp_missing, esr_missing, global_missing : per-visit missingness of labs and globals.
    genetics_fraction, imaging_fraction, wearables_fraction : share of patients
        with each optional modality.
    loss_to_follow_up_per_year : yearly hazard of leaving the registry.
    wearables_days : days of wearable streams, the last ones of each wearer's follow-up.
    wearables_nonwear : share of days the device is not worn at all (device streams missing).
    wearables_nonwear_in_runs : f, the part of that share in runs of days (charging, forgetting): runs
        cover 1 - (1 - w)^f of the days and scattered days 1 - (1 - w)^(1 - f), so that w of them are missed.
    wearables_run_days : (shortest, longest) run of non-wear or of missing self reports, uniform.
    wearables_partial_wear : share of worn days the device is worn only a couple of hours: few steps and
        active minutes, sleep and resting heart rate missing (a non-wear detector has to catch them).
    wearables_report_missing : share of days without self reports (pain, stiffness), split into runs
        and scattered days like non-wear.
    wearables_device_change : share of wearers who change device once within the window; from that day
        steps (and so active minutes) are scaled by ``wearables_device_steps``, resting heart rate and
        sleep shifted by ``wearables_device_hr`` bpm and ``wearables_device_sleep`` minutes (uniform ranges).

    Flares (flares.py)
    ------------------
    flare_rate_per_year : yearly flare rate of a reference patient in the maintenance phase of a course
        (average frailty, seronegative, course DAS28 3.2, not losing response, no recent taper); the
        realised mean is about 1.1 a year.
    flare_frailty_shape : shape of the gamma (mean 1) personal flare-proneness frailty.
    flare_das28_log_hr : log hazard ratio per unit of the course's latent DAS28 above 3.2 (up to 5.1).
    flare_seropositive_hr, flare_failing_hr : hazard ratios for RF or ACPA positivity and for a course
        losing response (its last 12 weeks before the inefficacy stop).
    flare_taper_hr, flare_taper_days : hazard ratio per escalation glucocorticoid course stopped
        (tapered off) within the last ``flare_taper_days`` days.
    flare_refractory_days : no new flare begins from a flare's onset until this many days after its visit
        (at least 28, the flare label's horizon, which keeps the flare oracle's future-flare term exact).
    flare_lead_days : (shortest, longest) lead-up from onset to the flare visit, uniform in whole days.
    flare_peak : (lowest, highest) DAS28 bump at the flare visit, uniform.
    flare_half_life_days, flare_escalated_half_life_days : half-life of the bump after the visit,
        without and with escalation.
    flare_escalation : probability that the flare visit starts a glucocorticoid course.
    flare_gc_days : (shortest, longest) escalation glucocorticoid course, uniform in whole days.
    """

    start_year: int = 2006
    end_date: str = "2025-12-31"
    prevalent_fraction: float = 0.4
    max_lines: int = 6

    option_base_effect: dict[str, float] = field(default_factory=lambda: dict(OPTION_BASE_EFFECT))
    option_ae_hazard: dict[str, float] = field(default_factory=lambda: dict(OPTION_AE_HAZARD))
    option_progression_factor: dict[str, float] = field(default_factory=lambda: dict(OPTION_PROGRESSION_FACTOR))
    option_available_from: dict[str, int] = field(default_factory=lambda: dict(OPTION_AVAILABLE_FROM))
    effect_scale: float = 1.0
    heterogeneity_scale: float = 1.0
    outcome_sd: float = 1.0
    visit_noise_sd: float = 0.35
    progression_dispersion: float = 0.8
    secondary_failure_per_year: float = 0.12
    early_inefficacy_stop: float = 0.35
    late_inefficacy_switch: float = 0.55

    confounding_scale: float = 1.0
    overlap_floor: float = 0.01

    missing_baseline_visit: float = 0.05
    missing_followup_visit: float = 0.15
    crp_missing: float = 0.12
    esr_missing: float = 0.15
    global_missing: float = 0.05
    haq_missing: float = 0.20
    bmi_missing: float = 0.30
    genetics_fraction: float = 0.35
    imaging_fraction: float = 0.25
    wearables_fraction: float = 0.08
    wearables_days: int = 180
    wearables_nonwear: float = 0.08
    wearables_nonwear_in_runs: float = 0.6
    wearables_run_days: tuple[int, int] = (1, 14)
    wearables_partial_wear: float = 0.04
    wearables_report_missing: float = 0.2
    wearables_device_change: float = 0.25
    wearables_device_steps: tuple[float, float] = (0.75, 1.3)
    wearables_device_hr: tuple[float, float] = (-4.0, 4.0)
    wearables_device_sleep: tuple[float, float] = (-30.0, 30.0)
    loss_to_follow_up_per_year: float = 0.25

    flare_rate_per_year: float = 0.9
    flare_frailty_shape: float = 2.0
    flare_das28_log_hr: float = 0.3
    flare_seropositive_hr: float = 1.4
    flare_failing_hr: float = 2.0
    flare_taper_hr: float = 2.0
    flare_taper_days: int = 56
    flare_refractory_days: int = 42
    flare_lead_days: tuple[int, int] = (5, 21)
    flare_peak: tuple[float, float] = (1.0, 2.2)
    flare_half_life_days: float = 17.5
    flare_escalated_half_life_days: float = 7.0
    flare_escalation: float = 0.6
    flare_gc_days: tuple[int, int] = (28, 56)

    @classmethod
    def default(cls) -> "Scenario":
        """The realistic scenario."""
        return cls()

    @classmethod
    def stress(cls) -> "Scenario":
        """Strong confounding by indication and poor overlap between options."""
        return cls(confounding_scale=2.5, overlap_floor=0.0)

    @classmethod
    def named(cls, name: str) -> "Scenario":
        presets = {"default": cls.default, "stress": cls.stress}
        if name not in presets:
            raise ValueError(f"unknown scenario {name!r}; presets: {sorted(presets)} or a JSON file")
        return presets[name]()

    def replace(self, **changes: Any) -> "Scenario":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Scenario":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown scenario parameter(s): {sorted(unknown)}")
        # JSON has no tuples: ranges come back as lists.
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    @classmethod
    def load(cls, path_or_name: str | Path) -> "Scenario":
        """A preset name (``default``, ``stress``) or a JSON file of parameters to change."""
        p = Path(path_or_name)
        if p.suffix == ".json" and p.exists():
            return cls.from_dict(json.loads(p.read_text()))
        return cls.named(str(path_or_name))
