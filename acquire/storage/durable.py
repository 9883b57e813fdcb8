"""Durable file operations: fsync, atomic JSON rewrite, rename with retries.

On Windows, directories cannot be fsync'd (NTFS journals its metadata itself)
and a rename can briefly fail while a virus scanner or indexer holds a file;
both are handled here so the callers stay platform-neutral.
"""

from __future__ import annotations

import errno
import json
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

__all__ = [
    "TEMP_SUFFIX",
    "fsync_dir",
    "fsync_file",
    "fsync_tree",
    "replace",
    "write_json_atomic",
]

#: Suffix of the temporary files `write_json_atomic` writes next to its target.
TEMP_SUFFIX = ".tmp"

_IS_WINDOWS = os.name == "nt"
_RENAME_RETRY_S = 1.0
_FSYNC_WORKERS = 8


def fsync_file(path: Path) -> None:
    """Flush one file's data and metadata to the disk.

    Parameters
    ----------
    path : Path
        An existing, writable file.

    """
    with path.open("rb+") as handle:
        os.fsync(handle.fileno())


def fsync_dir(path: Path) -> None:
    """Make the entries of a folder (creations, renames) durable.

    A no-op on Windows, and on file systems that cannot fsync a folder.

    Parameters
    ----------
    path : Path
        An existing folder.

    """
    if _IS_WINDOWS:
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:  # some file systems refuse fsync on folders
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """Fsync every file, then every folder, under ``root`` (``root`` included).

    The fsyncs run on a few threads: a disk flushes many small files much
    faster in parallel than one after another.

    Parameters
    ----------
    root : Path
        An existing folder.

    """
    files: list[Path] = []
    folders: list[Path] = [root]
    for folder, dir_names, file_names in os.walk(root):
        base = Path(folder)
        files.extend(base / name for name in file_names)
        folders.extend(base / name for name in dir_names)
    with ThreadPoolExecutor(max_workers=_FSYNC_WORKERS) as pool:
        list(pool.map(fsync_file, files))
        list(pool.map(fsync_dir, folders))


def replace(source: Path, target: Path) -> None:
    """Rename ``source`` to ``target`` atomically (`os.replace`).

    On Windows a rename can fail for a moment with "access denied" while
    another program (virus scanner, search indexer) has a file open; it is
    retried for up to a second before the error is raised.

    Parameters
    ----------
    source : Path
        File or folder to rename.
    target : Path
        New name; an existing file is replaced, a folder must not exist.

    """
    deadline = time.monotonic() + _RENAME_RETRY_S
    while True:
        try:
            source.replace(target)
            return
        except PermissionError:
            if not _IS_WINDOWS or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def write_json_atomic(path: Path, data: Any) -> None:
    """Replace ``path`` with ``data`` as JSON so that it is never half-written.

    The JSON goes to a temporary file in the same folder, is fsync'd, and is
    renamed over ``path``; then the folder is fsync'd. A crash at any moment
    leaves either the old or the new file (and at most a stray temporary file
    ending in `TEMP_SUFFIX`).

    Parameters
    ----------
    path : Path
        The file to write.
    data : Any
        Plain JSON values.

    """
    text = json.dumps(data, indent=2, allow_nan=False) + "\n"
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex}{TEMP_SUFFIX}")
    try:
        with temp.open("wb") as handle:
            handle.write(text.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        replace(temp, path)
    finally:
        if temp.exists():
            temp.unlink()
    fsync_dir(path.parent)
