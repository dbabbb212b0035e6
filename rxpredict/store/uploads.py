"""Registry exports uploaded to the app: a zip archive unpacked safely into a folder of its own, then validated.

:func:`check_upload` unpacks an archive (:func:`unpack_registry`), validates
the registry against the data contract and, where it is valid, builds its
cohort, so that the page can show the report and what the cohort rules keep
before anyone trains on it. Each upload gets a new folder under
:func:`uploads_root`; an invalid registry's folder is removed at once (nothing
may train on it), a valid one stays for the training job that reads it.

Only the table files of the contract (``patients.csv``, ``visits.parquet``,
...) are unpacked, from the top of the archive or from one folder (what
zipping a folder gives); any other file is passed over, and named in a note
of the report (hidden files and macOS's ``__MACOSX/`` leftovers unsaid).
An archive is refused whole, with an :class:`UploadError` that names the
member at fault and what to do, and nothing of it is left on disk, where:

- a name is absolute, climbs out (``..``) or holds a backslash, or a member
  is a link or encrypted;
- tables lie in more than one folder, or one comes twice, or there is none;
- a table unpacks to more than ``max_member_bytes``, or all of them to more
  than ``max_total_bytes``. The sizes the archive declares are checked before
  anything is written; :mod:`zipfile` never reads past a declared size and
  checks each member's CRC, so an archive that lies about them fails too.
"""
from __future__ import annotations

import datetime as dt
import io
import shutil
import stat
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import polars as pl

from rxpredict.cohort import build_cohort
from rxpredict.exceptions import RxpredictError
from rxpredict.registry import FORMATS, Registry, validate_registry
from rxpredict.schemas import load_contract
from rxpredict.store.models import models_root
from rxpredict.validation import ValidationReport

#: Most bytes one table file, and all of them together, may unpack to.
MAX_MEMBER_BYTES = 2 << 30
MAX_TOTAL_BYTES = 8 << 30
#: The folder of macOS's leftovers in an archive made by the Finder, passed over unsaid like hidden files.
MACOS_LEFTOVERS = "__MACOSX"


class UploadError(RxpredictError):
    """An uploaded archive cannot be unpacked: not a zip, a member outside the folder, too large, not a table."""


@dataclass(frozen=True)
class RegistryCheck:
    """An uploaded registry, checked: its validation report and, where it is valid, the folder a training job
    reads (None for an invalid one: its folder is removed), the cohort's episodes and patients, and
    :meth:`rxpredict.cohort.Cohort.summary` (how many episodes each rule left without a baseline or a label)."""

    report: ValidationReport
    directory: Path | None = None
    episodes: int = 0
    patients: int = 0
    summary: pl.DataFrame | None = None


def uploads_root() -> Path:
    """Where uploaded registries are unpacked: ``uploads`` beside the response-model bundles' folder."""
    return models_root().parent / "uploads"


def _table_files() -> set[str]:
    return {f"{table}.{fmt}" for table in load_contract().tables for fmt in FORMATS}


def _member_path(info: zipfile.ZipInfo) -> PurePosixPath | None:
    """The member's path in the archive; None for a folder or what is passed over unsaid (hidden files, macOS's
    leftovers); UploadError for a member no registry export holds."""
    name = info.filename
    path = PurePosixPath(name)
    if not path.parts or "\\" in name or path.is_absolute() or ":" in path.parts[0] or ".." in path.parts:
        raise UploadError(f"the archive member {name!r} points outside the archive's folder: zip the registry "
                          "folder itself")
    if info.is_dir() or path.parts[0] == MACOS_LEFTOVERS or any(p.startswith(".") for p in path.parts):
        return None
    if stat.S_ISLNK(info.external_attr >> 16):
        raise UploadError(f"the archive member {name!r} is a link: zip the table files themselves")
    if info.flag_bits & 0x1:
        raise UploadError(f"the archive member {name!r} is encrypted: zip the registry without a password")
    return path


def _members(archive: zipfile.ZipFile, max_member_bytes: int,
             max_total_bytes: int) -> tuple[dict[str, zipfile.ZipInfo], list[str]]:
    """The table files to unpack by file name, once every member and the sizes have been checked, and the names of
    the other files, passed over."""
    allowed = _table_files()
    tables: list[tuple[PurePosixPath, zipfile.ZipInfo]] = []
    passed_over: list[str] = []
    for info in archive.infolist():
        path = _member_path(info)
        if path is not None and len(path.parts) <= 2 and path.name in allowed:
            tables.append((path, info))
        elif path is not None:
            passed_over.append(info.filename)
    folders = {path.parent for path, _ in tables}
    if len(folders) > 1:
        raise UploadError(f"the archive holds tables in {len(folders)} places ({', '.join(sorted(map(str, folders)))}):"
                          " put every table of one registry at its top or in one folder")
    members: dict[str, zipfile.ZipInfo] = {}
    for path, info in tables:
        if path.name in members:
            raise UploadError(f"the archive holds {path.name} twice: keep one")
        if info.file_size > max_member_bytes:
            raise UploadError(f"{path.name} unpacks to {info.file_size:,} bytes, more than the {max_member_bytes:,} "
                              "allowed: train on so large a registry with `rxpredict train` instead")
        members[path.name] = info
    if not members:
        raise UploadError("the archive holds no registry table: zip the registry folder, whose files are named "
                          f"after the tables ({', '.join(sorted(allowed))})")
    total = sum(info.file_size for info in members.values())
    if total > max_total_bytes:
        raise UploadError(f"the archive unpacks to {total:,} bytes, more than the {max_total_bytes:,} allowed: "
                          "train on so large a registry with `rxpredict train` instead")
    return members, passed_over


def unpack_registry(archive: bytes | BinaryIO, *, max_member_bytes: int = MAX_MEMBER_BYTES,
                    max_total_bytes: int = MAX_TOTAL_BYTES) -> tuple[Path, list[str]]:
    """Unpack the table files of a zip archive into a new folder under :func:`uploads_root`; that folder, and the
    archive's other files, passed over.

    Raises :class:`UploadError`, leaving nothing behind, for an archive the module docstring refuses.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(archive) if isinstance(archive, bytes) else archive) as opened:
            members, passed_over = _members(opened, max_member_bytes, max_total_bytes)
            root = uploads_root()
            root.mkdir(parents=True, exist_ok=True)
            folder = Path(tempfile.mkdtemp(prefix=f"{dt.datetime.now(dt.timezone.utc):%Y%m%d-%H%M%S}-", dir=root))
            try:
                for name, info in members.items():
                    with opened.open(info) as source, (folder / name).open("wb") as target:
                        shutil.copyfileobj(source, target)
            except BaseException:
                shutil.rmtree(folder, ignore_errors=True)
                raise
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as e:
        raise UploadError(f"the file is not a zip archive that can be read ({e}): zip the registry folder "
                          "again and upload that") from None
    return folder, passed_over


def check_upload(archive: bytes | BinaryIO, **limits: int) -> RegistryCheck:
    """Unpack (:func:`unpack_registry`, with its ``limits``), validate, and for a valid registry build its cohort.

    The files passed over are named in a note of the report. An invalid registry's folder is removed again: the
    check holds its report only.
    """
    directory, passed_over = unpack_registry(archive, **limits)
    result = validate_registry(directory)
    if passed_over:
        result.report.notes.append(f"passed over the archive's files that are no registry table: "
                                   f"{', '.join(passed_over)}")
    if not result.report.ok:
        shutil.rmtree(directory, ignore_errors=True)
        return RegistryCheck(report=result.report)
    cohort = build_cohort(Registry.from_validation(result))
    return RegistryCheck(report=result.report, directory=directory, episodes=cohort.frame.height,
                         patients=cohort.frame["patient_id"].n_unique(), summary=cohort.summary())
