"""``pairscope clean``: remove what interrupted runs left behind, and nothing else.

Interrupted work leaves three kinds of leftovers, none of them data anyone
can use:

* in a dataset, partial stacks in ``.staging`` and manifest temp files (a
  resume removes them too); stacks a crash left unjournaled are moved to
  ``.staging/orphans`` by a resume and are removed only when asked;
* in a pair database, pair folders without a catalog row and temporary
  folders older than an hour (`correlate.pairdb.PairDatabase.clean_up`);
* beside a demo's output folder, the hidden ``.NAME.XXXXXXXX.partial`` work
  folder of a demo that was stopped.

Nothing is removed from a folder that a running process holds: a dataset or a
demo work folder is cleaned only while this process holds its writer lock,
which the OS gives to one process at a time and releases when a process dies.
Complete stacks that wait in a dataset for a resume to adopt them are never
removed; they are listed, with the advice to resume.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from acquire.storage.dataset import (
    JOURNAL_NAME,
    ORPHANS_NAME,
    STAGING_NAME,
    refuse_links,
    remove_entry,
    staging_leftovers,
)
from acquire.storage.errors import DatasetError
from acquire.storage.journal import Journal
from acquire.storage.manifest import MANIFEST_NAME
from acquire.storage.spec import STACK_SUFFIX, is_stack_name
from acquire.storage.writer_lock import acquire_writer_lock, held_in_this_process
from correlate.pairdb import PairDatabase, PairDatabaseError
from correlate.pairdb.catalog import CATALOG_NAME

__all__ = [
    "CleanReport",
    "Leftover",
    "abandoned_partials",
    "clean",
]

#: A demo's work folder: ``.NAME.<8 hex digits>.partial``.
_PARTIAL = re.compile(r"^\.(?P<name>.+)\.[0-9a-f]{8}\.partial$")
#: How deep under the given folder datasets and databases are looked for
#: (a demo output holds them one or two levels down).
_MAX_DEPTH = 3


@dataclass(frozen=True)
class Leftover:
    """One thing an interrupted run left.

    Attributes
    ----------
    path : Path
        The file or folder.
    what : str
        What it is, in words.
    size_bytes : int
        Its size on disk.

    """

    path: Path
    what: str
    size_bytes: int


@dataclass
class CleanReport:
    """What `clean` found: removed (or to remove, on a dry run) and kept.

    Attributes
    ----------
    leftovers : list of Leftover
        Removed, or, with ``dry_run``, what would be.
    kept : list of str
        What was left and why (in use, waiting for a resume, orphans).
    dry_run : bool
        Whether nothing was removed.

    """

    leftovers: list[Leftover] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    dry_run: bool = False

    @property
    def size_bytes(self) -> int:
        """Total size of the leftovers."""
        return sum(item.size_bytes for item in self.leftovers)


def clean(folder: Path, *, orphans: bool = False, dry_run: bool = False) -> CleanReport:
    """Remove the leftovers of interrupted runs in and beside ``folder``.

    Parameters
    ----------
    folder : Path
        A dataset, a pair database, a demo's output folder, or a folder that
        holds them (searched three levels down).
    orphans : bool, optional
        Also remove ``.staging/orphans`` (stacks a crash left without a
        journal line, which a resume could not verify).
    dry_run : bool, optional
        Only report what would be removed.

    Returns
    -------
    CleanReport

    Raises
    ------
    DatasetError
        ``folder`` does not exist or is not a folder, or is a dataset that
        another process is writing.

    """
    folder = Path(folder).expanduser().absolute()
    if not folder.is_dir():
        raise DatasetError(
            f"{folder} is not a folder",
            "Give a dataset, a pair database or a demo output folder.",
        )
    report = CleanReport(dry_run=dry_run)
    for partial in abandoned_partials(folder, report):
        _remove(partial, "work folder of a stopped demo", report)
    for found in _walk(folder):
        if (found / MANIFEST_NAME).is_file():
            _clean_dataset(found, report, orphans=orphans, top=found == folder)
        elif (found / CATALOG_NAME).is_file():
            _clean_database(found, report)
    return report


def abandoned_partials(folder: Path, report: CleanReport | None = None) -> list[Path]:
    """Demo work folders, beside or inside ``folder``, that no process holds.

    Parameters
    ----------
    folder : Path
        A demo's output folder (its work folder lies beside it) or a folder
        of demo outputs.
    report : CleanReport, optional
        Receives a note for each work folder a running demo holds.

    Returns
    -------
    list of Path
        The abandoned work folders.

    """
    beside = [
        p
        for p in folder.parent.glob(f".{_glob_escape(folder.name)}.*.partial")
        if _PARTIAL.match(p.name)
    ]
    inside = [p for p in folder.glob(".*.partial") if _PARTIAL.match(p.name)]
    abandoned = []
    for partial in sorted(set(beside + inside)):
        if not partial.is_dir() or partial.is_symlink():
            continue
        if held_in_this_process(partial):
            continue
        try:
            claim = acquire_writer_lock(partial)
        except DatasetError as busy:
            if report is not None:
                report.kept.append(f"{partial}: {busy.what}")
            continue
        claim.release()
        abandoned.append(partial)
    return abandoned


def _glob_escape(name: str) -> str:
    """``name`` with the glob pattern characters taken literally."""
    return re.sub(r"([*?\[])", r"[\1]", name)


def _walk(folder: Path) -> list[Path]:
    """``folder`` and the folders under it, down to `_MAX_DEPTH`, no links."""
    found = [folder]
    level = [folder]
    for _ in range(_MAX_DEPTH):
        level = [
            child
            for parent in level
            if not (parent / MANIFEST_NAME).is_file()
            and not (parent / CATALOG_NAME).is_file()
            for child in sorted(_subfolders(parent))
        ]
        found += level
    return found


def _subfolders(folder: Path) -> list[Path]:
    try:
        return [
            c
            for c in folder.iterdir()
            if c.is_dir()
            and not c.is_symlink()
            and not c.name.startswith(".")
            and not c.name.endswith(STACK_SUFFIX)
        ]
    except OSError:
        return []


def _clean_dataset(
    dataset: Path, report: CleanReport, *, orphans: bool, top: bool
) -> None:
    try:
        claim = acquire_writer_lock(dataset)
    except DatasetError as busy:
        if top:
            raise DatasetError(
                busy.what, "Clean it once that run has ended (or been stopped)."
            ) from None
        report.kept.append(f"{dataset}: {busy.what}")
        return
    try:
        refuse_links(dataset)
        for entry in staging_leftovers(dataset):
            kind = "partial stack" if entry.parent.name == STAGING_NAME else "temp file"
            _remove(entry, kind, report)
        _note_unjournaled(dataset, report)
        quarantined = dataset / STAGING_NAME / ORPHANS_NAME
        if quarantined.is_dir():
            if orphans:
                for entry in sorted(quarantined.iterdir()):
                    _remove(entry, "orphan stack", report)
            elif any(quarantined.iterdir()):
                count = sum(1 for _ in quarantined.iterdir())
                report.kept.append(
                    f"{quarantined}: {count} orphan stacks a crash left without a "
                    "journal line (kept; --orphans removes them)"
                )
    finally:
        claim.release()


def _note_unjournaled(dataset: Path, report: CleanReport) -> None:
    """List complete stacks that a resume would verify and adopt."""
    committed = set(Journal(dataset / JOURNAL_NAME).read().stacks)
    waiting = [
        folder.name
        for folder in sorted(dataset.glob("*" + STACK_SUFFIX))
        if folder.name[: -len(STACK_SUFFIX)] not in committed
        and is_stack_name(folder.name[: -len(STACK_SUFFIX)])
    ]
    if waiting:
        report.kept.append(
            f"{dataset}: {len(waiting)} stacks without a journal line wait to be "
            f"verified and adopted ({', '.join(waiting)}): run the acquisition "
            "again with --resume"
        )


def _clean_database(root: Path, report: CleanReport) -> None:
    try:
        found = PairDatabase.open(root).clean_up(dry_run=report.dry_run)
    except PairDatabaseError as error:
        report.kept.append(f"{root}: {error}")
        return
    for folder in found:
        what = (
            "temp folder of an interrupted add"
            if folder.name.startswith(".")
            else "pair folder without a catalog row"
        )
        # sizes are gone once removed; a pair is a few MB, counted as 0 then
        report.leftovers.append(Leftover(folder, what, _size(folder)))


def _remove(path: Path, what: str, report: CleanReport) -> None:
    report.leftovers.append(Leftover(path, what, _size(path)))
    if not report.dry_run:
        remove_entry(path)


def _size(path: Path) -> int:
    """Bytes under ``path`` (links not followed)."""
    try:
        if path.is_symlink() or path.is_file():
            return path.lstat().st_size
        return sum(
            p.lstat().st_size
            for p in path.rglob("*")
            if p.is_file() and not p.is_symlink()
        )
    except OSError:
        return 0
