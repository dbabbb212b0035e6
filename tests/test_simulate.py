"""The simulator's claims, checked on what it generates: validity, determinism, confounding,
heterogeneity, an oracle that the realised outcomes reproduce, and configured missingness."""
from __future__ import annotations

import datetime as dt
import hashlib

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from rxpredict.cli import main
from rxpredict.clinical import das28_crp, das28_esr, eular_response
from rxpredict.registry import validate_registry
from rxpredict.simulate import OPTIONS, Scenario, simulate
from rxpredict.simulate.components import das28_crp as solved_das28
from rxpredict.simulate.components import solve_components
from rxpredict.validation import validate_tables
from tests.conftest import TODAY

REGISTRY_TABLES = ("patients", "visits", "treatments", "imaging", "genetics", "wearables")


@pytest.fixture(scope="module")
def sim() -> dict[str, pl.DataFrame]:
    """A registry large enough for the statistical checks (about 3 s)."""
    return simulate(30_000, seed=11, progress=False)


def _digest(directory) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def test_same_seed_same_bytes_different_seed_different_registry(tmp_path):
    simulate(400, seed=5, out=tmp_path / "a", chunk_size=150, progress=False)
    simulate(400, seed=5, out=tmp_path / "b", chunk_size=150, progress=False)
    simulate(400, seed=6, out=tmp_path / "c", chunk_size=150, progress=False)
    a, b, c = _digest(tmp_path / "a"), _digest(tmp_path / "b"), _digest(tmp_path / "c")
    assert a == b
    answers = ("oracle", "answer_key", "flare_oracle", "flares")
    assert sorted(a) == sorted([f"{t}.parquet" for t in (*REGISTRY_TABLES, *answers)] + ["scenario.json"])
    assert all(a[f] != c[f] for f in a if f != "scenario.json")


def test_written_registry_passes_validation(tmp_path):
    simulate(600, seed=1, out=tmp_path, progress=False)
    report = validate_registry(tmp_path, today=TODAY).report
    assert report.ok and report.n_warnings == 0, report.to_text()


def test_stress_scenario_registry_is_valid_too():
    frames = simulate(800, seed=2, scenario=Scenario.stress(), progress=False)
    report = validate_tables({t: frames[t] for t in REGISTRY_TABLES}, today=TODAY).report
    assert report.ok, report.to_text()


def test_oracle_has_every_option_for_every_episode(sim):
    oracle, key = sim["oracle"], sim["answer_key"]
    assert oracle.height == key.height * len(OPTIONS)
    per = oracle.group_by("patient_id", "index_date").agg(pl.col("therapy").n_unique(), pl.col("given").sum())
    assert per["therapy"].unique().to_list() == [len(OPTIONS)] and per["given"].unique().to_list() == [1]
    probs = oracle.select("p_response", "p_good", "p_remission", "p_rrp", "p_stop_1y")
    assert probs.select(pl.all().is_between(0, 1).all()).row(0) == (True,) * 5
    assert (oracle["p_good"] <= oracle["p_response"] + 1e-12).all()
    assert oracle.group_by("patient_id", "index_date").agg(pl.col("p_prescribed").sum())["p_prescribed"].is_between(
        0.999, 1.001).all()


def _episode_covariates(sim) -> pl.DataFrame:
    """What a registry shows at each start: patient facts, the baseline visit and the line."""
    patients = sim["patients"].with_columns(
        female=(pl.col("sex") == "F").cast(float), smoker=(pl.col("smoking") == "current").cast(float),
        rf=pl.col("rf_positive").cast(float), acpa=pl.col("acpa_positive").cast(float),
    )
    visits = sim["visits"].rename({"visit_date": "baseline_visit_date"})
    return (
        sim["answer_key"]
        .join(patients, on="patient_id")
        .join(visits, on=["patient_id", "baseline_visit_date"], how="left")
        .with_columns(
            age=pl.col("index_date").dt.year() - pl.col("birth_year"),
            year=pl.col("index_date").dt.year().cast(float),
            log_crp=pl.col("crp_mg_l").fill_null(5.0).log1p(),
            bmi=pl.col("bmi_kg_m2").fill_null(27.0),
        )
    )


def test_confounding_by_indication_assignment_is_predictable(sim):
    """The option given is predictable from registry covariates (macro one-vs-rest AUROC > 0.65)."""
    d = _episode_covariates(sim)
    cols = ["age", "female", "smoker", "rf", "acpa", "line", "year", "log_crp", "baseline_das28_crp", "bmi"]
    x = d.select(cols).to_numpy().astype(float)
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    y = d["therapy"].to_numpy()
    half = len(y) // 2
    model = LogisticRegression(max_iter=500).fit(x[:half], y[:half])
    proba = model.predict_proba(x[half:])
    auc = roc_auc_score(y[half:], proba, multi_class="ovr", average="macro", labels=model.classes_)
    assert auc > 0.65, auc


def test_no_option_is_best_for_most_patients_and_effects_are_heterogeneous(sim):
    oracle = sim["oracle"]
    best = oracle.sort("p_response", descending=True).group_by("patient_id", "index_date").first()
    shares = best.group_by("therapy").len().with_columns(share=pl.col("len") / pl.col("len").sum())
    assert shares["share"].max() < 0.60, shares
    assert shares.height >= 4
    spread = oracle.group_by("therapy").agg(pl.col("expected_das28_change").std())
    assert (spread["expected_das28_change"] > 0.3).all()


def test_named_effect_modifiers_act_as_documented(sim):
    """Rituximab works better in seropositive patients; IL-6 inhibition better with high CRP."""
    d = _episode_covariates(sim).select("patient_id", "index_date", "rf", "acpa", "crp_mg_l")
    o = sim["oracle"].pivot(on="therapy", index=["patient_id", "index_date"], values="p_response").join(
        d, on=["patient_id", "index_date"])
    sero = o.filter((pl.col("rf") == 1) | (pl.col("acpa") == 1))
    seroneg = o.filter((pl.col("rf") == 0) & (pl.col("acpa") == 0))
    gap = lambda f: (f["rituximab"] - f["tnfi"]).mean()  # noqa: E731
    assert gap(sero) - gap(seroneg) > 0.10
    high, low = o.filter(pl.col("crp_mg_l") > 20), o.filter(pl.col("crp_mg_l") < 3)
    il6_gap = lambda f: (f["il6i"] - f["tnfi"]).mean()  # noqa: E731
    assert il6_gap(high) - il6_gap(low) > 0.05


def _realised_labels(sim) -> pl.DataFrame:
    """24-week labels as a registry shows them: DAS28 at the baseline and week-24 visits (CRP, else ESR);
    an early stop for inefficacy is a non-response; another stop before the visit leaves no label."""
    vis = sim["visits"].with_columns(das28_crp().alias("crp_das"), das28_esr().alias("esr_das")).select(
        "patient_id", "visit_date", "crp_das", "esr_das", "crp_mg_l")
    b = vis.rename({"visit_date": "baseline_visit_date", "crp_das": "b_crp", "esr_das": "b_esr", "crp_mg_l": "b_c"})
    f = vis.rename({"visit_date": "followup_visit_date", "crp_das": "f_crp", "esr_das": "f_esr", "crp_mg_l": "f_c"})
    stopped_first = pl.col("stop_date").is_not_null() & (pl.col("stop_date") < pl.col("followup_visit_date"))
    return (
        sim["answer_key"].join(b, on=["patient_id", "baseline_visit_date"]).join(
            f, on=["patient_id", "followup_visit_date"], how="left")
        .with_columns(esr=pl.col("b_c").is_null() | pl.col("f_c").is_null())
        .with_columns(b=pl.when("esr").then("b_esr").otherwise("b_crp"), fu=pl.when("esr").then("f_esr").otherwise("f_crp"))
        .with_columns(eular=eular_response("b", "fu"))
        .with_columns(
            response=pl.when("early_inefficacy_stop").then(False).when(stopped_first).then(None)
            .otherwise(pl.col("eular") != "none"),
            good=pl.when("early_inefficacy_stop").then(False).when(stopped_first).then(None)
            .otherwise(pl.col("eular") == "good"),
            remission=pl.when("early_inefficacy_stop").then(False).when(stopped_first).then(None)
            .otherwise(pl.col("fu") < 2.6),
        )
        .filter(pl.col("early_inefficacy_stop") | (pl.col("b").is_not_null() & pl.col("fu").is_not_null()))
        .filter(pl.col("response").is_not_null())
        .join(sim["oracle"].filter("given"), on=["patient_id", "index_date", "therapy"])
    )


def _z(observed: pl.Series, p: pl.Series) -> float:
    return float((observed.cast(float).sum() - p.sum()) / np.sqrt((p * (1 - p)).sum()))


@pytest.mark.parametrize(("label", "prob"), [("response", "p_response"), ("good", "p_good"),
                                             ("remission", "p_remission")])
def test_oracle_is_reproduced_by_the_realised_24_week_outcomes(sim, label, prob):
    lab = _realised_labels(sim)
    assert lab.height > 10_000
    assert abs(_z(lab[label], lab[prob])) < 4
    by_decile = lab.with_columns(bin=(pl.col(prob) * 10).floor().clip(0, 9)).partition_by("bin")
    for part in by_decile:
        if part.height > 200:
            assert abs(_z(part[label], part[prob])) < 4.5, part["bin"][0]


def test_oracle_is_reproduced_for_progression_and_stopping(sim):
    key = sim["answer_key"].join(sim["oracle"].filter("given"), on=["patient_id", "index_date", "therapy"])
    rrp = key.filter(pl.col("first_year_svdh_gain").is_not_null())
    assert rrp.height > 2000
    assert abs(_z(rrp["first_year_svdh_gain"] >= 5, rrp["p_rrp"])) < 4
    stop = pl.min_horizontal("days_to_adverse_event", "days_to_inefficacy") <= 365
    assert abs(_z(key.select(stop).to_series(), key["p_stop_1y"])) < 4


def test_recorded_components_reproduce_the_latent_das28():
    rng = np.random.default_rng(0)
    das = rng.uniform(1.0, 8.6, 50_000)
    offset = rng.uniform(0.0, 0.8, 50_000)
    c = solve_components(rng, das, offset, rng.normal(size=50_000))
    assert np.abs(solved_das28(c) - das).max() < 1e-3
    esr_das = 0.56 * np.sqrt(c["tjc28"]) + 0.28 * np.sqrt(c["sjc28"]) + 0.70 * np.log(c["esr_mm_h"]) \
        + 0.014 * c["patient_global_0_100"]
    assert np.mean(np.abs(esr_das - (das + offset)) < 0.01) > 0.995


def test_missingness_rates_follow_the_scenario():
    scenario = Scenario(crp_missing=0.30, esr_missing=0.05, genetics_fraction=0.50, imaging_fraction=0.10,
                        wearables_fraction=0.20, wearables_nonwear=0.15, bmi_missing=0.5)
    f = simulate(6_000, seed=3, scenario=scenario, progress=False)
    n = f["patients"].height
    visits = f["visits"]

    def close(observed: float, expected: float, count: int) -> bool:
        return abs(observed - expected) < 4 * np.sqrt(expected * (1 - expected) / count) + 0.005

    assert close(visits["crp_mg_l"].null_count() / visits.height, 0.30, visits.height)
    assert close(visits["esr_mm_h"].null_count() / visits.height, 0.05, visits.height)
    assert close(visits["bmi_kg_m2"].null_count() / visits.height, 0.50, visits.height)
    assert close(f["genetics"]["patient_id"].n_unique() / n, 0.50, n)
    assert close(f["imaging"]["patient_id"].n_unique() / n, 0.10, n)
    assert close(f["wearables"]["patient_id"].n_unique() / n, 0.20, n)
    w = f["wearables"]
    assert close(w["steps"].null_count() / w.height, 0.15, w.height // 30)


def test_scenario_round_trip_and_errors(tmp_path):
    s = Scenario.stress()
    assert Scenario.from_dict(s.to_dict()) == s
    path = tmp_path / "s.json"
    path.write_text('{"confounding_scale": 3.0}')
    assert Scenario.load(path).confounding_scale == 3.0
    with pytest.raises(ValueError, match="unknown scenario parameter"):
        Scenario.from_dict({"confounding": 1})
    with pytest.raises(ValueError, match="unknown scenario"):
        Scenario.load("nonsense")


def test_scenario_ranges_survive_a_json_file(tmp_path):
    s = Scenario.default().replace(flare_lead_days=(7, 14), wearables_device_steps=(0.8, 1.2))
    path = tmp_path / "s.json"
    path.write_text(s.to_json())
    assert Scenario.load(path) == s


def test_stress_scenario_confounds_more_and_overlaps_less():
    default = simulate(3_000, seed=4, progress=False)["oracle"]
    stress = simulate(3_000, seed=4, scenario=Scenario.stress(), progress=False)["oracle"]
    entropy = lambda o: -(o["p_prescribed"] * o["p_prescribed"].clip(1e-12).log()).sum() / o.filter("given").height  # noqa: E731
    assert entropy(stress) < entropy(default)
    rare = lambda o: ((o["p_prescribed"] > 0) & (o["p_prescribed"] < 0.01)).mean()  # noqa: E731
    assert rare(stress) > rare(default) + 0.05  # options available but almost never chosen: poor overlap


def test_cli_simulate_writes_a_valid_registry(tmp_path):
    result = CliRunner().invoke(main, ["simulate", "--patients", "300", "--seed", "2", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "oracle" in result.output
    assert validate_registry(tmp_path, today=dt.date(2026, 11, 23)).report.ok
    bad = CliRunner().invoke(main, ["simulate", "--patients", "10", "--out", str(tmp_path), "--scenario", "x"])
    assert bad.exit_code == 2 and "unknown scenario" in bad.output
