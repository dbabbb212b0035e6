"""The 28 DAS28 joints on the visit form: a grid of tick boxes for tender and swollen joints, and their counts."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from rxpredict.schemas import Das28Joint, load_contract

JointKind = Literal["tender", "swollen"]

#: Which visits column counts the joints ticked as tender or swollen.
JOINT_COUNT_COLUMNS: dict[JointKind, str] = {"tender": "tjc28", "swollen": "sjc28"}


def das28_joints() -> tuple[Das28Joint, ...]:
    """The 28 joints in vocabulary order (das28_joints.json)."""
    return load_contract().das28_joints


def joint_grid() -> list[list[Das28Joint | None]]:
    """The joints placed on their grid, row by row (None where a cell is empty).

    Drawn as the examiner faces the patient: the patient's right side on the
    left of the grid, shoulders on top, knees at the bottom.
    """
    joints = das28_joints()
    grid: list[list[Das28Joint | None]] = [
        [None] * (max(j.col for j in joints) + 1) for _ in range(max(j.row for j in joints) + 1)
    ]
    for j in joints:
        grid[j.row][j.col] = j
    return grid


def joint_key(kind: JointKind, joint: str) -> str:
    """The form-state key of one tick box, e.g. ``tender_left_wrist``."""
    if kind not in JOINT_COUNT_COLUMNS:
        raise ValueError(f"joint kind must be one of {sorted(JOINT_COUNT_COLUMNS)}, not {kind!r}")
    return f"{kind}_{joint}"


def count_joints(selected: Iterable[str]) -> int:
    """How many distinct DAS28 joints are selected; a name outside the 28-joint vocabulary is an error."""
    names = {j.name for j in das28_joints()}
    chosen = set(selected)
    if unknown := sorted(str(s) for s in chosen - names):
        raise ValueError(f"not DAS28 joints: {unknown}; see data_schemas/das28_joints.json")
    return len(chosen)
