"""``rxpredict imaging``: radiograph damage scoring (issue 12).

``synth`` writes synthetic hand and foot films with known SvdH scores in the
RA2-DREAM layout (docs/imaging.md). It exits 0 when written and 2 for a bad
argument (an output folder that is not new or empty).
"""
from __future__ import annotations

from pathlib import Path

import click

from rxpredict.cli_store import EXIT_BAD_ARGUMENT, fail


@click.group("imaging")
def imaging() -> None:
    """Radiographs of hands and feet: the RA2-DREAM layout and synthetic films."""


@imaging.command("synth")
@click.option("--patients", type=click.IntRange(min=1), required=True, help="How many patients (4 films each).")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="New or empty folder to write.")
@click.option("--seed", type=int, default=0, show_default=True)
def synth(patients: int, out: Path, seed: int) -> None:
    """Write synthetic hand and foot films, landmark files and a score CSV in the RA2-DREAM layout."""
    from rxpredict.imaging.synth import synthesize

    try:
        csv = synthesize(patients, out, seed=seed)
    except FileExistsError as e:
        fail(str(e), EXIT_BAD_ARGUMENT)
    click.echo(f"wrote {patients} patients ({4 * patients} films) to {out}; scores in {csv.name}")
