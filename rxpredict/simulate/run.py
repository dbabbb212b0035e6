"""Run the simulator chunk by chunk and write the registry, the oracles and the answer keys.

Each chunk of patients has its own random stream (spawned from the seed), so a
registry is the same bytes for the same seed, scenario and chunk size, and
memory stays bounded however many patients are asked for.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from rxpredict.schemas import load_contract
from rxpredict.simulate import effects
from rxpredict.simulate.course import course_path, simulate_courses
from rxpredict.simulate.effects import OPTIONS
from rxpredict.simulate.flares import bump_at
from rxpredict.simulate.imaging import initial_damage, simulate_imaging
from rxpredict.simulate.oracle import flare_oracle, response_oracle, rrp_oracle, stop_oracle
from rxpredict.simulate.population import MARKERS, draw_patients
from rxpredict.simulate.scenario import Scenario
from rxpredict.simulate.wearables import simulate_wearables, wearable_grid

ORACLE_SCHEMA = pl.Schema({
    "patient_id": pl.String(), "index_date": pl.Date(), "therapy": pl.String(), "p_response": pl.Float64(),
    "p_good": pl.Float64(), "p_remission": pl.Float64(), "expected_das28_change": pl.Float64(),
    "p_rrp": pl.Float64(), "p_stop_1y": pl.Float64(), "p_prescribed": pl.Float64(), "given": pl.Boolean(),
})
ANSWER_KEY_SCHEMA = pl.Schema({
    "patient_id": pl.String(), "index_date": pl.Date(), "therapy": pl.String(), "drug": pl.String(),
    "line": pl.Int64(), "baseline_das28_crp": pl.Float64(), "baseline_das28_esr": pl.Float64(),
    "baseline_visit_date": pl.Date(), "baseline_crp_missing": pl.Boolean(), "improvement": pl.Float64(),
    "nonresponder_crp": pl.Boolean(), "followup_visit_date": pl.Date(), "followup_crp_missing": pl.Boolean(),
    "stop_date": pl.Date(), "stop_reason": pl.String(), "early_inefficacy_stop": pl.Boolean(),
    "days_to_adverse_event": pl.Float64(), "days_to_inefficacy": pl.Float64(), "first_year_svdh_gain": pl.Int64(),
})
FLARE_ORACLE_SCHEMA = pl.Schema({"patient_id": pl.String(), "date": pl.Date(), "p_flare_28d": pl.Float64()})
FLARES_SCHEMA = pl.Schema({
    "patient_id": pl.String(), "onset_date": pl.Date(), "flare_visit_date": pl.Date(), "das28_increase": pl.Float64(),
    "escalated": pl.Boolean(),
})


@dataclass
class SimulationSummary:
    """What a run wrote: rows per table and where."""

    out: Path | None
    rows: dict[str, int]
    seed: int
    n_patients: int


def _dates(days: np.ndarray) -> pl.Series:
    """Days since 1970-01-01 as a Date series; -1 marks a missing date (every real date is after 1990)."""
    d = np.asarray(days, dtype=np.int64)
    return pl.Series(np.where(d >= 0, d.astype("datetime64[D]"), np.datetime64("NaT"))).cast(pl.Date)


def _nullable(x: np.ndarray, missing: np.ndarray) -> pl.Series:
    """``x`` with nulls where ``missing``."""
    return pl.select(pl.when(pl.Series(missing)).then(None).otherwise(pl.Series(x))).to_series()


def _registry_frames(pop, chunk, img, wear, ids: np.ndarray) -> dict[str, pl.DataFrame]:
    contract = load_contract()
    cast = lambda name, df: df.select(contract.tables[name].column_names).cast(  # noqa: E731
        dict(contract.tables[name].polars_schema), strict=True)
    patients = pl.DataFrame({
        "patient_id": ids, "sex": np.where(pop["female"], "F", "M"), "birth_year": pop["birth_year"],
        "diagnosis_date": _dates(pop["diagnosis"]), "rf_positive": pop["rf"], "acpa_positive": pop["acpa"],
        "smoking": pop["smoking"],
    })
    v = chunk.visits
    visits = pl.DataFrame({
        "patient_id": ids[v["patient"]], "visit_date": _dates(v["day"]),
        **{c: v[c] for c in ("tjc28", "sjc28", "esr_mm_h", "crp_mg_l", "patient_global_0_100",
                             "physician_global_0_100", "pain_0_100", "haq_di", "bmi_kg_m2", "morning_stiffness_min")},
    }, nan_to_null=True).unique(["patient_id", "visit_date"], keep="first", maintain_order=True)
    t = chunk.treatments
    treatments = pl.DataFrame({
        "patient_id": ids[t["patient"]], "drug": t["drug"].astype(str), "start_date": _dates(t["start"]),
        "stop_date": _dates(t["stop"]), "stop_reason": _nullable(t["reason"].astype(str), t["reason"] == ""),
    }).unique(["patient_id", "drug", "start_date"], keep="first", maintain_order=True)
    frames = {"patients": patients, "visits": visits, "treatments": treatments}
    if img:
        frames["imaging"] = pl.DataFrame({
            "patient_id": ids[img["patient"]], "exam_date": _dates(img["day"]), "joint": img["joint"].astype(str),
            "erosion": _nullable(img["erosion"], img["erosion"] < 0), "jsn": _nullable(img["jsn"], img["jsn"] < 0),
            "source": "reader",
        })
    g = np.flatnonzero(pop["has_genetics"])
    values = {"HLA-DRB1_SE": pop["se"], "rs2476601": pop["ptpn22"], "PRS_RA": np.round(pop["prs"], 3),
              "rs10488631": pop["rs10488631"], "rs7574865": pop["rs7574865"]}
    frames["genetics"] = pl.DataFrame({
        "patient_id": np.repeat(ids[g], len(MARKERS)), "marker": np.tile(np.array(MARKERS), g.size),
        "value": np.column_stack([values[m][g].astype(float) for m in MARKERS]).ravel(),
    })
    frames["wearables"] = pl.DataFrame({
        "patient_id": ids[wear["patient"]], "date": _dates(wear["day"]),
        **{c: wear[c] for c in ("steps", "active_min", "sleep_min", "resting_hr_bpm", "pain_0_10", "stiffness_min")},
    }, nan_to_null=True)
    sort = {"patients": ["patient_id"], "visits": ["patient_id", "visit_date"],
            "treatments": ["patient_id", "start_date", "drug"], "imaging": ["patient_id", "exam_date"],
            "genetics": ["patient_id"], "wearables": ["patient_id", "date"]}
    return {n: cast(n, f.sort(sort[n], maintain_order=True)) for n, f in frames.items()}


def simulate_chunk(seed: np.random.SeedSequence, n: int, first_id: int, id_width: int,
                   scenario: Scenario) -> dict[str, pl.DataFrame]:
    """One chunk of patients: the six registry tables, ``oracle``, ``answer_key``, ``flare_oracle`` and ``flares``."""
    rng = np.random.default_rng(seed)
    pop = draw_patients(rng, n, scenario)
    chunk = simulate_courses(rng, pop, scenario)
    ep = chunk.episodes
    ids = np.char.add("P", np.char.zfill(np.arange(first_id, first_id + n).astype(str), id_width)).astype(object)
    x = {k[2:]: v for k, v in ep.items() if k.startswith("x_")}
    damage0 = initial_damage(rng, pop, pop["entry"])
    erosive = (damage0 > 0)[ep["patient"]].astype(float)
    rates = np.column_stack(list(effects.progression_rate(x, erosive, scenario).values()))
    rows = np.arange(ep["patient"].shape[0])
    img, gain = simulate_imaging(rng, pop, ep, rates[rows, ep["option"]], damage0, scenario)
    # Wearables follow the latent path day by day: the course plus the flare bumps.
    fl = chunk.flares
    who, days = wearable_grid(pop, ep["patient"], scenario)
    course, episode = course_path(ep, who[:, None], days)
    das = course + bump_at(np.broadcast_to(who[:, None], days.shape), days, fl["patient"], fl, scenario).reshape(
        days.shape)
    wear = simulate_wearables(rng, who, days, das, scenario)
    frames = _registry_frames(pop, chunk, img, wear, ids)

    resp = response_oracle(ep["mu"], ep["das28"], ep["das28_esr"], ep["baseline_crp_missing"],
                           ep["baseline_esr_missing"], scenario)
    ae = np.column_stack(list(effects.ae_hazard(x, scenario).values()))
    k, n_opt = rows.size, len(OPTIONS)
    frames["oracle"] = pl.DataFrame({
        "patient_id": np.repeat(ids[ep["patient"]], n_opt), "index_date": _dates(np.repeat(ep["start"], n_opt)),
        "therapy": np.tile(np.array(OPTIONS), k),
        **{key: resp[key].ravel() for key in ("p_response", "p_good", "p_remission", "expected_das28_change")},
        "p_rrp": rrp_oracle(rates, scenario).ravel(), "p_stop_1y": stop_oracle(ep["mu"], ep["das28"], ae, scenario).ravel(),
        "p_prescribed": ep["probs"].ravel(), "given": (ep["option"][:, None] == np.arange(n_opt)[None, :]).ravel(),
    }, schema=ORACLE_SCHEMA)
    frames["answer_key"] = pl.DataFrame({
        "patient_id": ids[ep["patient"]], "index_date": _dates(ep["start"]),
        "therapy": np.array(OPTIONS)[ep["option"]], "drug": ep["drug"].astype(str), "line": ep["line"],
        "baseline_das28_crp": ep["das28"], "baseline_das28_esr": ep["das28_esr"],
        "baseline_visit_date": _dates(ep["baseline_day"]), "baseline_crp_missing": ep["baseline_crp_missing"],
        "improvement": ep["delta"], "nonresponder_crp": ep["nonresponder"],
        "followup_visit_date": _dates(ep["followup_day"]), "followup_crp_missing": ep["followup_crp_missing"],
        "stop_date": _dates(ep["stop"]), "stop_reason": _nullable(ep["stop_reason"].astype(str), ep["stop_reason"] == ""),
        "early_inefficacy_stop": ep["early_inefficacy"], "days_to_adverse_event": ep["days_to_adverse_event"],
        "days_to_inefficacy": ep["days_to_inefficacy"], "first_year_svdh_gain": _nullable(gain, gain < 0),
    }, schema=ANSWER_KEY_SCHEMA)
    p_flare = flare_oracle(who, days, course, episode, ep, chunk.visits, fl, pop["esr_offset"], scenario)
    frames["flare_oracle"] = pl.DataFrame({
        "patient_id": ids[wear["patient"]], "date": _dates(wear["day"]), "p_flare_28d": p_flare.ravel(),
    }, schema=FLARE_ORACLE_SCHEMA, nan_to_null=True)
    frames["flares"] = pl.DataFrame({
        "patient_id": ids[fl["patient"]], "onset_date": _dates(fl["onset"]), "flare_visit_date": _dates(fl["visit"]),
        "das28_increase": fl["peak"], "escalated": fl["escalated"],
    }, schema=FLARES_SCHEMA).sort("patient_id", "onset_date", "flare_visit_date")
    return frames


def simulate(n_patients: int, *, seed: int = 0, scenario: Scenario | None = None, out: str | Path | None = None,
             chunk_size: int = 20_000, progress: bool = True) -> SimulationSummary | dict[str, pl.DataFrame]:
    """Simulate a registry of ``n_patients``.

    With ``out`` the tables are streamed, chunk by chunk, to Parquet files in
    that directory (the six registry tables, ``oracle.parquet``,
    ``answer_key.parquet``, ``flare_oracle.parquet``, ``flares.parquet`` and
    ``scenario.json``), written to a temporary
    directory first and moved in when complete; returns a summary. Without
    ``out`` returns the frames (for tests and small runs).
    """
    if n_patients < 1:
        raise ValueError("n_patients must be at least 1")
    scenario = scenario or Scenario.default()
    n_chunks = -(-n_patients // chunk_size)
    seeds = np.random.SeedSequence(seed).spawn(n_chunks)
    width = max(7, len(str(n_patients - 1)))
    sizes = [min(chunk_size, n_patients - i * chunk_size) for i in range(n_chunks)]
    chunks = (simulate_chunk(seeds[i], sizes[i], i * chunk_size, width, scenario) for i in range(n_chunks))
    bar = tqdm(total=n_patients, unit="patient", disable=not progress, desc="simulating")
    if out is None:
        parts: dict[str, list[pl.DataFrame]] = {}
        for i, frames in enumerate(chunks):
            for name, f in frames.items():
                parts.setdefault(name, []).append(f)
            bar.update(sizes[i])
        bar.close()
        return {name: pl.concat(fs) for name, fs in parts.items()}

    target = Path(out)
    target.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".rxpredict-simulate-", dir=target))
    writers: dict[str, pq.ParquetWriter] = {}
    rows: dict[str, int] = {}
    try:
        for i, frames in enumerate(chunks):
            for name, f in frames.items():
                table = f.to_arrow()
                if name not in writers:
                    writers[name] = pq.ParquetWriter(staging / f"{name}.parquet", table.schema, compression="zstd")
                writers[name].write_table(table, row_group_size=1_000_000)
                rows[name] = rows.get(name, 0) + f.height
            bar.update(sizes[i])
        for w in writers.values():
            w.close()
        writers.clear()
        (staging / "scenario.json").write_text(
            json.dumps({"seed": seed, "n_patients": n_patients, "chunk_size": chunk_size,
                        "scenario": scenario.to_dict()}, indent=2, sort_keys=True) + "\n")
        for path in staging.iterdir():
            path.replace(target / path.name)
    finally:
        bar.close()
        for w in writers.values():
            w.close()
        shutil.rmtree(staging, ignore_errors=True)
    return SimulationSummary(out=target, rows=rows, seed=seed, n_patients=n_patients)
