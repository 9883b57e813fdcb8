"""One writing process per dataset, enforced by an operating-system lock.

A dataset's writer holds an exclusive lock on ``.pairscope.lock`` in the
dataset folder for as long as its :class:`~acquire.storage.Dataset` object
lives. The operating system releases the lock when the process ends, however
it ends (a crash, a kill, a power cut), so a stale lock never blocks a
resume. A second process that opens the dataset for writing gets one error
naming the process and host that hold it; within one process, opening the
same dataset again shares the lock (the application reopens a dataset it
holds, e.g. to resume after a failed run).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import sys
import threading
from pathlib import Path
from typing import IO, Any

from acquire.storage.errors import DatasetError
from acquire.storage.jsonsafe import utc_now_iso

__all__ = [
    "LOCK_NAME",
    "OWNER_NAME",
    "WriterLock",
    "acquire_writer_lock",
    "held_in_this_process",
]

LOCK_NAME = ".pairscope.lock"
OWNER_NAME = ".pairscope.owner.json"

_HELD: dict[Path, tuple[IO[bytes], int]] = {}
_HELD_LOCK = threading.Lock()


class WriterLock:
    """A claim of this process on one dataset folder; release it once.

    Parameters
    ----------
    folder : Path
        The dataset folder (absolute, resolved).

    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._released = False

    def release(self) -> None:
        """Give the claim back; the last claim in the process unlocks the file."""
        with _HELD_LOCK:
            if self._released:
                return
            self._released = True
            handle, count = _HELD[self.folder]
            if count > 1:
                _HELD[self.folder] = (handle, count - 1)
                return
            del _HELD[self.folder]
        _unlock(handle)
        handle.close()


def acquire_writer_lock(folder: Path) -> WriterLock:
    """Claim a dataset folder for writing, or say who holds it.

    Parameters
    ----------
    folder : Path
        An existing dataset folder.

    Returns
    -------
    WriterLock
        Release it when the dataset is no longer written (``Dataset`` does so
        when it is garbage-collected; the OS does so when the process ends).

    Raises
    ------
    DatasetError
        Another process holds the dataset (naming its process id and host),
        or the lock file cannot be created.

    """
    folder = Path(folder).resolve()
    with _HELD_LOCK:
        held = _HELD.get(folder)
        if held is not None:
            _HELD[folder] = (held[0], held[1] + 1)
            return WriterLock(folder)
        try:
            handle = (folder / LOCK_NAME).open("a+b")
        except OSError as exc:
            raise DatasetError(
                f"cannot create the writer lock of dataset {folder}: {exc}",
                "Check the folder's permissions.",
            ) from exc
        if not _try_lock(handle):
            handle.close()
            raise DatasetError(
                f"dataset {folder} is in use by {_owner_text(folder)}",
                "Wait for that run to finish (or stop it), then resume; two "
                "writers would destroy each other's stacks.",
            )
        _HELD[folder] = (handle, 1)
    _write_owner(folder)
    return WriterLock(folder)


def held_in_this_process(folder: Path) -> bool:
    """Whether this process holds the folder's writer lock."""
    with _HELD_LOCK:
        return Path(folder).resolve() in _HELD


def _owner_text(folder: Path) -> str:
    try:
        owner: dict[str, Any] = json.loads((folder / OWNER_NAME).read_text())
        return (
            f"process {owner['pid']} on host {owner['host']} (since {owner['since']})"
        )
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


def _write_owner(folder: Path) -> None:
    owner = {"pid": os.getpid(), "host": platform.node(), "since": utc_now_iso()}
    # on failure the lock holds anyway; only the message names the owner less well
    with contextlib.suppress(OSError):
        (folder / OWNER_NAME).write_text(json.dumps(owner) + "\n")


if sys.platform == "win32":
    import msvcrt

    def _try_lock(handle: IO[bytes]) -> bool:
        handle.seek(0)
        try:
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _unlock(handle: IO[bytes]) -> None:
        handle.seek(0)
        with contextlib.suppress(OSError):  # closing the handle releases it too
            msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _try_lock(handle: IO[bytes]) -> bool:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        return True

    def _unlock(handle: IO[bytes]) -> None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
