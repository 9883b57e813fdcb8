"""The append-only journal of committed stacks (``journal.jsonl``).

One JSON object per line, one line per committed stack, each line flushed and
fsync'd before the commit returns. The journal is the source of truth of what
a dataset holds: a stack folder without a line is not committed.

A crash in the middle of an append leaves a torn last line. Reading ignores
lines that are not complete entries, and the next append first ends a torn
line with a newline, so the journal stays readable line by line forever.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from acquire.storage.errors import DatasetError
from acquire.storage.spec import STACK_SUFFIX, is_stack_name

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

__all__ = ["REQUIRED_KEYS", "Journal", "JournalContents"]

#: Keys (and their types) that make a line a complete journal entry.
REQUIRED_KEYS: dict[str, type] = {
    "stack": str,
    "path": str,
    "planes": int,
    "committed_at": str,
    "sha256": str,
}


@dataclass(frozen=True)
class JournalContents:
    """What a journal holds.

    Attributes
    ----------
    entries : tuple[dict[str, Any], ...]
        Complete entries, in the order they were appended.
    skipped_lines : int
        Lines that are not complete entries (torn by a crash mid-append).
    damaged_lines : tuple of int
        1-based numbers of the skipped lines a crash cannot explain (not the
        cut-short start of an entry): something other than pairscope changed
        the journal.

    """

    entries: tuple[dict[str, Any], ...]
    skipped_lines: int
    damaged_lines: tuple[int, ...] = ()

    @property
    def stacks(self) -> frozenset[str]:
        """Names of the committed stacks."""
        return frozenset(entry["stack"] for entry in self.entries)

    def check_intact(self, dataset: Path) -> None:
        """Refuse a journal that something other than pairscope changed.

        Raises
        ------
        DatasetError
            Naming the dataset and the damaged lines.

        """
        if self.damaged_lines:
            lines = ", ".join(map(str, self.damaged_lines[:5]))
            raise DatasetError(
                f"the journal of {dataset} is damaged: line(s) {lines} are not "
                "entries pairscope wrote",
                "Restore journal.jsonl from a backup; until then no stack of this "
                "dataset is used or added.",
            )


class Journal:
    """Reads and appends one ``journal.jsonl`` file.

    Parameters
    ----------
    path : Path
        The journal file (created by the first append if missing).

    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> JournalContents:
        """Read every complete entry; ignore torn or foreign lines.

        Returns
        -------
        JournalContents
            The entries and how many lines were skipped.

        """
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return JournalContents(entries=(), skipped_lines=0)
        entries: list[dict[str, Any]] = []
        skipped = 0
        damaged: list[int] = []
        for number, line in enumerate(raw.split(b"\n"), start=1):
            if not line.strip():
                continue
            entry = _parse(line)
            if entry is not None:
                entries.append(entry)
                continue
            skipped += 1
            if not _is_torn(line):
                damaged.append(number)
        return JournalContents(
            entries=tuple(entries), skipped_lines=skipped, damaged_lines=tuple(damaged)
        )

    def append(self, entry: Mapping[str, Any]) -> None:
        """Append one entry as one line, flushed and fsync'd before returning.

        If the file ends in a torn line (no final newline), a newline is
        written first so the new entry starts on a line of its own.

        Parameters
        ----------
        entry : Mapping[str, Any]
            Plain JSON values including every key of `REQUIRED_KEYS`.

        """
        line = json.dumps(dict(entry), separators=(",", ":"), allow_nan=False)
        with self.path.open("ab+") as handle:
            handle.seek(0, os.SEEK_END)
            prefix = b""
            if handle.tell() > 0:
                handle.seek(-1, os.SEEK_END)
                if handle.read(1) != b"\n":
                    prefix = b"\n"
            handle.write(prefix + line.encode("utf-8") + b"\n")
            handle.flush()
            os.fsync(handle.fileno())


def _is_torn(line: bytes) -> bool:
    """A line a crash mid-append can leave: the start of an entry, cut short.

    The next append ends it with a newline, so it may sit anywhere in the file.
    """
    if not line.lstrip().startswith(b"{"):
        return False
    try:
        json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return True
    return False  # complete JSON that is not an entry: written by someone else


def _parse(line: bytes) -> dict[str, Any] | None:
    """Return the entry on one line, or None if it is not a complete entry.

    An entry whose stack is not a plain folder name of this dataset (a path,
    '..', an absolute name) is not one pairscope wrote: it is never counted
    as committed, so no stack is read or kept from outside the dataset.
    """
    try:
        value = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(value, dict):
        return None
    for key, kind in REQUIRED_KEYS.items():
        if not isinstance(value.get(key), kind) or isinstance(value.get(key), bool):
            return None
    if not is_stack_name(value["stack"]) or value["path"] != (
        value["stack"] + STACK_SUFFIX
    ):
        return None
    return value
