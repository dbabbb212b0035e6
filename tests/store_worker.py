"""A writer process for tests/test_store_concurrency.py: saves the visits it is given and reports each outcome.

Takes one JSON job as its argument: ``{"url": ..., "ready": path, "go": path, "entries": [VisitEntry
fields, ...]}``; once connected it creates the file ``ready`` and waits until the
file ``go`` exists (so that all writers start together), then saves each
entry with ``save_visit`` and prints one JSON line per entry:
``{"patient_id", "visit_date", "outcome"}`` with outcome "ok" or the rules of
the RecordError.

Test-only crash hook: with ``RXPREDICT_TEST_HANG_AFTER=<table>`` the process,
right after its first INSERT into that table inside the save's transaction
(through an SQLAlchemy event listener, not a production code path), creates
the file ``$RXPREDICT_TEST_HANG_MARKER`` and sleeps until it is killed.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from sqlalchemy import event

from rxpredict.exceptions import RecordError
from rxpredict.store.engine import make_engine
from rxpredict.store.records import VisitEntry, save_visit

HANG_ENV, MARKER_ENV = "RXPREDICT_TEST_HANG_AFTER", "RXPREDICT_TEST_HANG_MARKER"


def hang_after_insert(engine, table: str, marker: Path) -> None:  # noqa: ANN001
    """Stop the process inside the open transaction once a row of ``table`` was written."""

    @event.listens_for(engine, "after_cursor_execute")
    def _hang(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        if statement.lstrip().upper().startswith(f"INSERT INTO {table.upper()} "):
            marker.touch()
            while True:
                time.sleep(60)


def main() -> None:
    job = json.loads(sys.argv[1])
    engine = make_engine(job["url"])
    if table := os.environ.get(HANG_ENV):
        hang_after_insert(engine, table, Path(os.environ[MARKER_ENV]))
    with engine.connect():  # connected and warm before the start
        Path(job["ready"]).touch()
    go = Path(job["go"])
    while not go.exists():
        time.sleep(0.01)
    for fields in job["entries"]:
        try:
            save_visit(engine, VisitEntry(**fields), user=job.get("user"))
            outcome = "ok"
        except RecordError as e:
            outcome = ",".join(sorted({p.rule for p in e.problems}))
        visit = fields["visit"]
        print(json.dumps({"patient_id": visit["patient_id"], "visit_date": visit["visit_date"], "outcome": outcome}),
              flush=True)
    engine.dispose()


if __name__ == "__main__":
    main()
