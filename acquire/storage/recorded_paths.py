"""Paths recorded in manifests and sessions that survive moving the folders.

A dataset records the files it was made from (its config, the session and
confocal dataset of a paired run). Recorded absolute, they break when a
project folder is moved or copied to another PC, or when the demo renames
its work folder into place. A path that lies beside the recording folder
(inside the folder that holds it) is therefore recorded relative to it, and
resolved against it when read back; one elsewhere stays absolute.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["record_path", "resolve_recorded_path"]


def record_path(path: Path, *, relative_to: Path) -> str:
    """How a manifest or session in ``relative_to`` should name ``path``.

    Parameters
    ----------
    path : Path
        The file or folder to record.
    relative_to : Path
        The folder that holds the record (a dataset, a session's folder).

    Returns
    -------
    str
        ``path`` relative to ``relative_to`` (POSIX separators) when both
        lie in the folder that holds ``relative_to``; else absolute.

    """
    target = Path(path).resolve()
    base = Path(relative_to).resolve()
    if not target.is_relative_to(base.parent):
        return str(target)
    return Path(os.path.relpath(target, base)).as_posix()


def resolve_recorded_path(recorded: str, *, relative_to: Path) -> Path:
    """The path a record names (see `record_path`).

    Parameters
    ----------
    recorded : str
        The recorded text.
    relative_to : Path
        The folder that holds the record, where it is now.

    Returns
    -------
    Path
        An absolute path.

    """
    path = Path(recorded)
    return path if path.is_absolute() else (Path(relative_to) / path).resolve()
