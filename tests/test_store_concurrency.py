"""Reliability of the store under real processes: 20 concurrent writers, and a writer killed in mid-save.

The writers are separate Python processes (tests/store_worker.py) on the
same database, SQLite file or PostgreSQL server: the parent test creates the
schema (store_engine), the workers only connect.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from rxpredict.store import records
from rxpredict.store.records import VisitEntry
from rxpredict.store.tables import REGISTRY_TABLES, AuditEntry
from tests.store_worker import HANG_ENV, MARKER_ENV

ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).with_name("store_worker.py")
WRITERS = 20
PATIENTS = [f"C{i:02d}" for i in range(5)]
CONTESTED = {"patient_id": PATIENTS[0], "visit_date": "2024-01-01"}


def _url(engine) -> str:
    return engine.url.render_as_string(hide_password=False)


@pytest.fixture()
def start_worker():
    """Start worker processes; any still running when the test ends (a failed assertion) is killed."""
    started: list[subprocess.Popen] = []

    def start(job: dict, *, env: dict | None = None) -> subprocess.Popen:
        started.append(_start(job, env=env))
        return started[-1]

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _start(job: dict, *, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(WORKER), json.dumps(job)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


def _register(engine) -> None:
    for pid in PATIENTS:
        records.register_patient(engine, {"patient_id": pid, "sex": "F", "birth_year": 1970,
                                          "diagnosis_date": "2020-01-01"}, user="setup")


def _entries(writer: int) -> list[dict]:
    """The visit every writer tries to enter, then two of its own (two patients) with an SvdH row or a course."""
    own_a = {"patient_id": PATIENTS[writer % 5], "visit_date": str(dt.date(2024, 2, 1) + dt.timedelta(days=writer))}
    own_b = {"patient_id": PATIENTS[(writer + 1) % 5],
             "visit_date": str(dt.date(2024, 6, 1) + dt.timedelta(days=writer))}
    return [
        {"visit": {**CONTESTED, "tjc28": writer, "sjc28": 0}},
        {"visit": {**own_a, "tjc28": 1, "sjc28": writer % 29, "crp_mg_l": writer + 0.5},
         "imaging": [{"exam_date": own_a["visit_date"], "joint": "left_hand_mcp1", "erosion": writer % 6,
                      "jsn": 1, "source": "reader"}]},
        {"visit": {**own_b, "tjc28": 2, "sjc28": 2, "esr_mm_h": float(writer)},
         "started": [{"drug": "methotrexate", "start_date": own_b["visit_date"]}]},
    ]


def _count(engine, table) -> int:
    with engine.connect() as c:
        return c.scalar(select(func.count()).select_from(table))


def test_twenty_writer_processes_lose_and_duplicate_nothing(store_engine, tmp_path, start_worker):
    _register(store_engine)
    go = tmp_path / "go"
    procs = [start_worker({"url": _url(store_engine), "ready": str(tmp_path / f"ready{w}"), "go": str(go),
                           "user": f"w{w}", "entries": _entries(w)}) for w in range(WRITERS)]
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("ready*"))) < WRITERS:  # every writer imported and connected: start together
        assert all(p.poll() is None for p in procs) and time.monotonic() < deadline
        time.sleep(0.05)
    go.touch()
    outcomes = {}
    for w, proc in enumerate(procs):
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        outcomes[w] = [json.loads(line)["outcome"] for line in out.splitlines()]

    # the contested visit: exactly one writer stored it, every other one was told it is a duplicate
    winners = [w for w, o in outcomes.items() if o[0] == "ok"]
    assert len(winners) == 1 and sorted(o[0] for o in outcomes.values()) == ["duplicate_key"] * 19 + ["ok"]
    assert all(o[1:] == ["ok", "ok"] for o in outcomes.values())

    stored = {(r["patient_id"], str(r["visit_date"])): r
              for pid in PATIENTS for r in records.patient_tables(store_engine, pid)["visits"].iter_rows(named=True)}
    assert len(stored) == _count(store_engine, REGISTRY_TABLES["visits"]) == 1 + 2 * WRITERS
    assert stored[(CONTESTED["patient_id"], CONTESTED["visit_date"])]["tjc28"] == winners[0]
    for w in range(WRITERS):
        _, a, b = _entries(w)
        for entry in (a, b):
            row = stored[(entry["visit"]["patient_id"], entry["visit"]["visit_date"])]
            assert {k: row[k] for k in entry["visit"] if k not in ("patient_id", "visit_date")} == {
                k: v for k, v in entry["visit"].items() if k not in ("patient_id", "visit_date")}
    assert _count(store_engine, REGISTRY_TABLES["treatments"]) == WRITERS
    assert _count(store_engine, REGISTRY_TABLES["imaging"]) == WRITERS
    with store_engine.connect() as c:
        audited = c.execute(select(AuditEntry.table_name, func.count()).where(AuditEntry.action == "insert")
                            .group_by(AuditEntry.table_name)).all()
    assert dict(audited) == {"patients": 5, "visits": 1 + 2 * WRITERS, "treatments": WRITERS, "imaging": WRITERS}


def test_a_writer_killed_mid_save_leaves_no_half_written_rows(store_engine, tmp_path, start_worker):
    _register(store_engine)
    go, marker = tmp_path / "go", tmp_path / "hanging"
    go.touch()
    entry = _entries(3)[1]
    entry["started"] = [{"drug": "leflunomide", "start_date": entry["visit"]["visit_date"]}]
    job = {"url": _url(store_engine), "ready": str(tmp_path / "ready"), "go": str(go), "user": "doomed",
           "entries": [entry]}
    before = {name: _count(store_engine, t) for name, t in REGISTRY_TABLES.items()} | {
        "audit": _count(store_engine, AuditEntry)}
    proc = start_worker(job, env={HANG_ENV: "imaging", MARKER_ENV: str(marker)})
    deadline = time.monotonic() + 60
    while not marker.exists():  # visit and course written, SvdH row being written, nothing committed
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "the worker never reached the imaging insert"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    after = {name: _count(store_engine, t) for name, t in REGISTRY_TABLES.items()} | {
        "audit": _count(store_engine, AuditEntry)}
    assert after == before
    # the database is usable: the same visit saves whole from another process and from here
    survivor = start_worker({**job, "user": "survivor"})
    out, err = survivor.communicate(timeout=120)
    assert survivor.returncode == 0, err
    assert json.loads(out)["outcome"] == "ok"
    tables = records.patient_tables(store_engine, entry["visit"]["patient_id"])
    assert tables["visits"].height == tables["treatments"].height == tables["imaging"].height == 1
    records.save_visit(store_engine, VisitEntry(visit={**entry["visit"], "visit_date": "2025-01-01"}), user="here")
    assert _count(store_engine, REGISTRY_TABLES["visits"]) == before["visits"] + 2

