"""Where a sequence came from, and the error that points into it.

A `SequenceError` names the file, the line, what is wrong and how to fix it.
A `SequenceSource` keeps a sequence file's YAML tree so that errors found after
reading (while planning, say) still name the line; `sequence_source` finds it
for a sequence read by `acquire.sequence.read.load_sequence`.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import yaml

from acquire.errors import UserError

if TYPE_CHECKING:
    from pathlib import Path

    import useq

    from acquire.sequence.problems import KeyPath, Problem

__all__ = [
    "SequenceError",
    "SequenceSource",
    "key_of",
    "remember_source",
    "sequence_source",
]

_SOURCES: weakref.WeakKeyDictionary[useq.MDASequence, SequenceSource] = (
    weakref.WeakKeyDictionary()
)


class SequenceError(UserError):
    """An acquisition sequence that cannot be used: what, where, how to fix it.

    ``str()`` reads ``<file>:<line>: <what>. <how to fix>`` (the line is left
    out when unknown, the file too when the sequence came from a string without
    a name). A `acquire.errors.UserError`, so the command line prints it as one
    message.

    Parameters
    ----------
    what : str
        What is wrong, one sentence.
    hint : str
        How to fix it.
    path : Path or None
        The sequence file, None for a sequence given as text.
    line : int or None
        1-based line number in the file, None when unknown.
    source : str or None
        Name shown for a sequence without a file (e.g. ``"<string>"``).

    """

    def __init__(
        self,
        what: str,
        hint: str = "",
        *,
        path: Path | None = None,
        line: int | None = None,
        source: str | None = None,
    ) -> None:
        super().__init__(what, hint)
        self.path = path
        self.line = line
        self.source = source

    @property
    def location(self) -> str:
        """``<file>:<line>``, ``<file>`` or ``""``."""
        name = str(self.path) if self.path is not None else (self.source or "")
        if name and self.line is not None:
            return f"{name}:{self.line}"
        return name

    def __str__(self) -> str:
        text = f"{self.what}. {self.hint}".strip()
        return f"{self.location}: {text}" if self.location else text


@dataclass(frozen=True)
class SequenceSource:
    """Where a sequence was read from, to point errors at its lines.

    Attributes
    ----------
    path : Path or None
        The file, None for text.
    name : str
        The name shown in messages (the file, or e.g. ``"<string>"``).
    root : yaml.Node or None
        The composed YAML tree (JSON is YAML too), None if it could not be
        composed.

    """

    path: Path | None
    name: str
    root: yaml.Node | None = field(default=None, repr=False)

    def line_of(self, key_path: KeyPath) -> int | None:
        """Return the line of the entry at ``key_path`` (1-based).

        Follows the path as far as the file has it: for a key the file lacks
        (a missing key), the line of the deepest entry that exists.

        Parameters
        ----------
        key_path : KeyPath
            Keys and list indices, as in `acquire.sequence.rules.Problem`.

        Returns
        -------
        int or None
            The line, None for the top level or when unknown.

        """
        node = self.root
        line: int | None = None
        for part in key_path:
            if isinstance(node, yaml.MappingNode):
                for key_node, value_node in node.value:
                    if key_of(key_node) == part:
                        line = key_node.start_mark.line + 1
                        node = value_node
                        break
                else:
                    return line
            elif (
                isinstance(node, yaml.SequenceNode)
                and isinstance(part, int)
                and 0 <= part < len(node.value)
            ):
                node = node.value[part]
                line = node.start_mark.line + 1
            else:
                return line
        return line

    def error(self, what: str, hint: str, key_path: KeyPath = ()) -> SequenceError:
        """Build the error for the entry at ``key_path``.

        Parameters
        ----------
        what : str
            What is wrong.
        hint : str
            How to fix it.
        key_path : KeyPath
            Where in the sequence (``()``: the whole sequence, no line).

        Returns
        -------
        SequenceError
            With this source's file and the entry's line.

        """
        return SequenceError(
            what,
            hint,
            path=self.path,
            line=self.line_of(key_path),
            source=None if self.path is not None else self.name,
        )

    def problem_error(self, problem: Problem) -> SequenceError:
        """Build the error for a `acquire.sequence.rules.Problem`."""
        return self.error(problem.what, problem.hint, problem.path)


def sequence_source(sequence: useq.MDASequence) -> SequenceSource | None:
    """Return where ``sequence`` was read from, None if not read here.

    Parameters
    ----------
    sequence : useq.MDASequence
        A sequence returned by `load_sequence` or `parse_sequence`.

    Returns
    -------
    SequenceSource or None
        Its file and YAML tree.

    """
    return _SOURCES.get(sequence)


def remember_source(sequence: useq.MDASequence, source: SequenceSource) -> None:
    """Record that ``sequence`` was read from ``source`` (see `sequence_source`).

    Parameters
    ----------
    sequence : useq.MDASequence
        A sequence just read.
    source : SequenceSource
        Its file and YAML tree.

    """
    _SOURCES[sequence] = source


def key_of(node: yaml.Node) -> object:
    """Return the Python value of a mapping key node, as ``safe_load`` makes it.

    Parameters
    ----------
    node : yaml.Node
        A key node of a composed YAML mapping.

    Returns
    -------
    object
        The key, usually a string.

    """
    if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:str":
        return node.value
    try:
        return yaml.SafeLoader("").construct_object(node, deep=True)
    except (yaml.YAMLError, TypeError):  # pragma: no cover - complex keys
        return node.value
