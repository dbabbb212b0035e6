"""A synthetic rheumatoid-arthritis registry with a ground-truth oracle.

``simulate(n_patients, seed=..., out=DIR)`` writes the six registry tables of the
data contract, ``oracle.parquet`` (every episode's true outcome probabilities
under every therapy option), ``answer_key.parquet`` (what really happened in
each episode, for testing the cohort builder), ``flare_oracle.parquet`` (each
wearable patient-day's true probability of a flare label within 28 days) and
``flares.parquet`` (every simulated flare). See docs/simulator.md.
"""
from rxpredict.simulate.effects import OPTIONS
from rxpredict.simulate.run import SimulationSummary, simulate
from rxpredict.simulate.scenario import Scenario

__all__ = ["OPTIONS", "Scenario", "SimulationSummary", "simulate"]
