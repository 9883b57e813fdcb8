"""`Dataset`: create, resume and grow a crash-safe dataset folder.

The journal is the source of truth: a stack is committed once its line is in
``journal.jsonl``, and its folder was renamed into place (and fsync'd) before
that line was written. `Dataset.resume` restores that invariant after a crash:
it empties ``.staging`` (except ``.staging/orphans``) and moves any
``*.ome.zarr`` folder without a journal line into ``.staging/orphans``.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import shutil
import threading
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

from acquire.storage.collection import write_collection_index
from acquire.storage.durable import TEMP_SUFFIX, fsync_dir, replace
from acquire.storage.errors import DatasetError
from acquire.storage.journal import Journal
from acquire.storage.jsonsafe import json_safe, utc_now_iso
from acquire.storage.manifest import (
    MANIFEST_NAME,
    check_identity,
    new_manifest,
    read_manifest,
    write_manifest,
)
from acquire.storage.spec import STACK_SUFFIX, StackSpec, is_stack_name
from acquire.storage.stack_writer import StackWriter
from acquire.storage.verify import verified_stack
from acquire.storage.writer_lock import WriterLock, acquire_writer_lock

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "JOURNAL_NAME",
    "ORPHANS_NAME",
    "STAGING_NAME",
    "Dataset",
    "refuse_links",
    "remove_entry",
    "staging_leftovers",
]

JOURNAL_NAME = "journal.jsonl"
STAGING_NAME = ".staging"
ORPHANS_NAME = "orphans"
# Keys update_manifest may not change (status goes through its own methods
# or update_manifest(status=...); failures only through record_failure).
_FIXED_KEYS = frozenset({"format", "format_version", "failures"})
_DISK_HINT = "Free disk space or fix the folder's permissions, then resume."
_log = logging.getLogger(__name__)


class Dataset:
    """A dataset folder: manifest, journal, committed stacks and staging.

    Open one with `create` or `resume`, not directly. One process at a time
    may write a dataset.

    Parameters
    ----------
    path : Path
        The dataset folder.
    manifest : dict[str, Any]
        Its current manifest.
    committed : set[str]
        Names of the stacks in its journal.

    """

    def __init__(
        self,
        path: Path,
        manifest: dict[str, Any],
        committed: set[str],
        writer_lock: WriterLock | None = None,
    ):
        self._path = path
        self._manifest = manifest
        self._committed = committed
        if writer_lock is not None:
            # held while this object lives; the OS drops it if the process dies
            weakref.finalize(self, writer_lock.release)
        self._journal = Journal(path / JOURNAL_NAME)
        self._lock = threading.RLock()
        self._writers: weakref.WeakValueDictionary[str, StackWriter] = (
            weakref.WeakValueDictionary()
        )

    @classmethod
    def create(cls, path: Path, manifest: Mapping[str, Any]) -> Dataset:
        """Start a new dataset in a new or empty folder.

        Parameters
        ----------
        path : Path
            The folder; created (with its parents) if missing.
        manifest : Mapping[str, Any]
            The caller's manifest keys: identity (sequence hash, config hash)
            and description. Plain JSON values.

        Returns
        -------
        Dataset
            The new dataset, status ``"running"``.

        Raises
        ------
        DatasetError
            The folder exists and is not empty, is a file, or cannot be
            written; or the manifest sets a reserved key.

        """
        path = Path(path).expanduser().absolute()
        if path.exists():
            if not path.is_dir():
                raise DatasetError(
                    f"output folder {path} is a file",
                    "Choose a new or empty folder for the dataset.",
                )
            if any(path.iterdir()):
                hint = "Choose a new or empty folder for the dataset."
                if (path / MANIFEST_NAME).is_file():
                    hint = "Resume the dataset in it, or choose a new or empty folder."
                raise DatasetError(
                    f"output folder {path} already exists and is not empty", hint
                )
        full = new_manifest(manifest, dataset=path)
        full["created_at"] = utc_now_iso()
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatasetError(
                f"cannot create dataset {path}: {exc}", _DISK_HINT
            ) from exc
        writer_lock = acquire_writer_lock(path)
        try:
            # The manifest first: a crash later leaves a folder resume accepts.
            write_manifest(path, full)
            (path / JOURNAL_NAME).touch()
            (path / STAGING_NAME).mkdir(exist_ok=True)
            fsync_dir(path)
        except OSError as exc:
            writer_lock.release()
            raise DatasetError(
                f"cannot create dataset {path}: {exc}", _DISK_HINT
            ) from exc
        return cls(path, full, set(), writer_lock)

    @classmethod
    def resume(cls, path: Path, *, identity: Mapping[str, Any]) -> Dataset:
        """Reopen a dataset to add stacks after a stop or crash.

        Checks that the folder holds the same acquisition (every key of
        ``identity`` equals the manifest's), removes partial stacks from
        ``.staging``, moves ``*.ome.zarr`` folders that have no journal line
        into ``.staging/orphans``, records the resume in the manifest and sets
        its status to ``"running"``.

        Parameters
        ----------
        path : Path
            The dataset folder.
        identity : Mapping[str, Any]
            Keys identifying this run (e.g. sequence hash, config hash).

        Returns
        -------
        Dataset
            The dataset, with `committed` read from the journal.

        Raises
        ------
        DatasetError
            The folder is not a pairscope dataset, holds a different
            acquisition, lacks a committed stack's folder, or cannot be
            written.

        """
        path = Path(path).expanduser().absolute()
        manifest = read_manifest(path)
        check_identity(manifest, identity, dataset=path)
        # before anything is cleaned up: a run still writing keeps its staging
        writer_lock = acquire_writer_lock(path)
        try:
            return cls._reopen(path, manifest, writer_lock)
        except BaseException:
            writer_lock.release()
            raise

    @classmethod
    def _reopen(
        cls, path: Path, manifest: dict[str, Any], writer_lock: WriterLock
    ) -> Dataset:
        """Resume's work once the writer lock is held."""
        contents = Journal(path / JOURNAL_NAME).read()
        contents.check_intact(path)
        committed = set(contents.stacks)
        for name in sorted(committed):
            if not (path / (name + STACK_SUFFIX)).is_dir():
                raise DatasetError(
                    f"the journal of {path} lists stack {name!r} but its folder "
                    f"{name + STACK_SUFFIX} is missing",
                    "Restore the folder from a backup, or start a new dataset in "
                    "an empty folder.",
                )
        refuse_links(path)
        try:
            removed = _clean_staging(path)
            adopted = _adopt_complete_stacks(path, committed)
            orphans = _quarantine_orphans(path, committed)
        except OSError as exc:
            raise DatasetError(
                f"cannot clean up dataset {path}: {exc}", _DISK_HINT
            ) from exc
        manifest["status"] = "running"
        manifest.setdefault("resumes", []).append(
            {
                "at": utc_now_iso(),
                "committed": len(committed),
                "staging_removed": removed,
                "adopted": adopted,
                "orphans": orphans,
                "journal_lines_skipped": contents.skipped_lines,
            }
        )
        write_manifest(path, manifest)
        dataset = cls(path, manifest, committed, writer_lock)
        dataset._write_index()  # stacks adopted or moved aside since
        return dataset

    @property
    def path(self) -> Path:
        """The dataset folder (absolute)."""
        return self._path

    @property
    def manifest(self) -> dict[str, Any]:
        """A copy of the current manifest."""
        with self._lock:
            return copy.deepcopy(self._manifest)

    def committed(self) -> frozenset[str]:
        """Names of the committed stacks (those in the journal).

        Returns
        -------
        frozenset[str]
            Stack names.

        """
        with self._lock:
            return frozenset(self._committed)

    def stack_path(self, name: str) -> Path:
        """Folder of the stack ``name`` once committed, ``<name>.ome.zarr``.

        Parameters
        ----------
        name : str
            Stack name.

        Returns
        -------
        Path
            ``DATASET/<name>.ome.zarr``.

        """
        return self._path / (name + STACK_SUFFIX)

    def begin_stack(self, spec: StackSpec) -> StackWriter:
        """Start writing a stack into ``.staging``.

        Parameters
        ----------
        spec : StackSpec
            What the stack will hold.

        Returns
        -------
        StackWriter
            Write its planes, then `StackWriter.commit` (or `abort`) it.

        Raises
        ------
        DatasetError
            A stack of that name is committed or being written, or staging
            cannot be created.

        """
        with self._lock:
            if spec.name in self._committed:
                raise DatasetError(
                    f"stack {spec.name!r} is already committed in {self._path}",
                    "Skip it (see Dataset.committed()) or give the stack another name.",
                )
            active = self._writers.get(spec.name)
            if active is not None and active.is_open:
                raise DatasetError(
                    f"stack {spec.name!r} in {self._path} is already being written",
                    "Commit or abort the first writer before beginning it again.",
                )
            if self.stack_path(spec.name).exists():
                raise DatasetError(
                    f"{self.stack_path(spec.name)} exists but is not in the journal",
                    "Resume the dataset (Dataset.resume) to move it aside.",
                )
            staging = self._path / STAGING_NAME / spec.folder_name
            writer = StackWriter(spec, staging, self._publish)
            self._writers[spec.name] = writer
            return writer

    def update_manifest(self, **fields: Any) -> None:
        """Set manifest keys and rewrite the manifest atomically.

        Parameters
        ----------
        **fields : Any
            Keys to set (plain JSON values); ``status`` may be set here, but
            not ``format``, ``format_version`` or ``failures``.

        Raises
        ------
        DatasetError
            A fixed key, a value with no JSON form, or a failed write.

        """
        clash = sorted(_FIXED_KEYS.intersection(fields))
        if clash:
            raise DatasetError(
                f"update_manifest cannot change {', '.join(clash)} of {self._path}",
                "Use record_failure for failures; format keys are fixed.",
            )
        safe = json_safe(fields, where=f"the manifest of {self._path}")
        with self._lock:
            updated = {**self._manifest, **safe}
            write_manifest(self._path, updated)
            self._manifest = updated

    def record_failure(self, message: str, **details: Any) -> None:
        """Add a failure to the manifest and set its status to ``"failed"``.

        Parameters
        ----------
        message : str
            What failed, in one sentence.
        **details : Any
            Context (stack name, position, exception type...); plain JSON values.

        Raises
        ------
        DatasetError
            A value with no JSON form, or a failed write.

        """
        entry = json_safe(
            {**details, "message": message, "at": utc_now_iso()},
            where=f"a failure recorded in {self._path}",
        )
        with self._lock:
            updated = copy.deepcopy(self._manifest)
            updated.setdefault("failures", []).append(entry)
            updated["status"] = "failed"
            write_manifest(self._path, updated)
            self._manifest = updated

    def mark_complete(self) -> None:
        """Set the manifest status to ``"complete"`` (with ``completed_at``).

        Raises
        ------
        DatasetError
            The manifest cannot be written.

        """
        self.update_manifest(status="complete", completed_at=utc_now_iso())

    def _publish(self, writer: StackWriter, staging: Path, sha256: str) -> Path:
        """Rename a finished stack into the dataset, then journal it."""
        spec = writer.spec
        final = self.stack_path(spec.name)
        with self._lock:
            if spec.name in self._committed or final.exists():
                raise DatasetError(
                    f"cannot commit stack {spec.name!r}: {final} already exists",
                    "Abort this stack; resume the dataset to move stray folders aside.",
                )
            try:
                replace(staging, final)
                fsync_dir(staging.parent)
                fsync_dir(self._path)
            except OSError as exc:
                raise DatasetError(
                    f"cannot move stack {spec.name!r} from {staging} to {final}: {exc}",
                    "Close programs that hold files in the dataset open, free disk "
                    "space, then resume the acquisition.",
                ) from exc
            entry = {
                "stack": spec.name,
                "path": spec.folder_name,
                "planes": spec.n_total_planes,
                "committed_at": utc_now_iso(),
                "sha256": sha256,
            }
            try:
                self._journal.append(entry)
            except OSError as exc:
                # Not journaled, so not committed: move it aside now if we can
                # (resume would do the same).
                with contextlib.suppress(OSError):
                    _quarantine(self._path, final)
                raise DatasetError(
                    f"stack {spec.name!r} could not be recorded in "
                    f"{self._journal.path}: {exc}",
                    "Free disk space, then resume the acquisition; the stack will "
                    "be taken again.",
                ) from exc
            self._committed.add(spec.name)
            self._write_index()
            return final

    def _write_index(self) -> None:
        """List the committed stacks in the folder's OME-Zarr collection index."""
        try:
            write_collection_index(
                self._path, (name + STACK_SUFFIX for name in self._committed)
            )
        except OSError as exc:
            # the stack is committed (journaled); only the index is behind, and
            # the next commit or a resume writes it again
            _log.warning(
                "could not update the OME-Zarr index of %s: %s", self._path, exc
            )


def refuse_links(dataset: Path) -> None:
    """Refuse a ``.staging`` or ``.staging/orphans`` that is a link.

    Both are emptied or filled by pairscope: through a link (a symbolic link
    or a Windows junction) that would delete or move files outside the dataset.
    """
    for folder in (dataset / STAGING_NAME, dataset / STAGING_NAME / ORPHANS_NAME):
        if folder.is_symlink() or _is_junction(folder):
            raise DatasetError(
                f"{folder} is a link to {folder.resolve()}: pairscope deletes and "
                "moves files in it, and only ever inside the dataset",
                f"Remove the link (the folder it points to is left as it is), then "
                f"resume; pairscope recreates {folder.name} as a plain folder.",
            )


def _is_junction(path: Path) -> bool:
    is_junction = getattr(os.path, "isjunction", None)  # Python 3.12+
    return bool(is_junction(path)) if is_junction is not None else False


def staging_leftovers(dataset: Path) -> list[Path]:
    """What interrupted writes left: partial stacks and manifest temp files.

    ``.staging/orphans`` is not among them (see `ORPHANS_NAME`).
    """
    staging = dataset / STAGING_NAME
    found = sorted(dataset.glob(f".{MANIFEST_NAME}.*{TEMP_SUFFIX}"))
    if staging.is_dir() and not staging.is_symlink():
        found += [e for e in sorted(staging.iterdir()) if e.name != ORPHANS_NAME]
    return found


def remove_entry(entry: Path) -> None:
    """Delete a file or folder; a link (or junction) is removed as a link."""
    if entry.is_symlink() or _is_junction(entry):
        entry.unlink()
    elif entry.is_dir():
        shutil.rmtree(entry)
    else:
        entry.unlink()


def _clean_staging(dataset: Path) -> list[str]:
    """Empty ``.staging`` except ``orphans``; drop stray manifest temp files.

    A link inside ``.staging`` is removed as a link: what it points to stays.
    """
    (dataset / STAGING_NAME).mkdir(exist_ok=True)
    removed: list[str] = []
    for entry in staging_leftovers(dataset):
        remove_entry(entry)
        if entry.parent.name == STAGING_NAME:
            removed.append(entry.name)
    return removed


def _adopt_complete_stacks(dataset: Path, committed: set[str]) -> list[str]:
    """Journal the stacks a kill left renamed into place but not yet journaled.

    A commit renames the verified stack into the dataset, then appends its
    journal line; a kill between the two leaves a complete stack that is not
    committed. It is adopted when its pixels still match the checksum its
    writer recorded in its attributes; otherwise it is left to the quarantine.
    ``committed`` gains the adopted names.
    """
    journal = Journal(dataset / JOURNAL_NAME)
    adopted: list[str] = []
    for folder in sorted(dataset.glob("*" + STACK_SUFFIX)):
        name = folder.name[: -len(STACK_SUFFIX)]
        if name in committed or folder.is_symlink() or not is_stack_name(name):
            continue
        checked = verified_stack(folder, name)
        if checked is None:
            continue
        sha256, planes = checked
        journal.append(
            {
                "stack": name,
                "path": folder.name,
                "planes": planes,
                "committed_at": utc_now_iso(),
                "sha256": sha256,
                "adopted": True,
            }
        )
        committed.add(name)
        adopted.append(name)
    return adopted


def _quarantine_orphans(dataset: Path, committed: set[str]) -> list[str]:
    """Move ``*.ome.zarr`` folders without a journal line into staging/orphans."""
    moved: list[str] = []
    for folder in sorted(dataset.glob("*" + STACK_SUFFIX)):
        name = folder.name[: -len(STACK_SUFFIX)]
        if name not in committed:
            moved.append(_quarantine(dataset, folder).name)
    return moved


def _quarantine(dataset: Path, folder: Path) -> Path:
    """Move one uncommitted folder into ``.staging/orphans`` under a free name."""
    orphans = dataset / STAGING_NAME / ORPHANS_NAME
    orphans.mkdir(parents=True, exist_ok=True)
    target = orphans / folder.name
    counter = 1
    while target.exists():
        target = orphans / f"{folder.name}.{counter}"
        counter += 1
    replace(folder, target)
    fsync_dir(orphans)
    fsync_dir(dataset)
    return target
