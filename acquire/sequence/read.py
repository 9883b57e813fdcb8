"""Read acquisition sequences (YAML or JSON) strictly, with file and line.

A sequence file is a useq-schema `useq.MDASequence` written as YAML (or JSON).
useq-schema itself is lenient: it ignores keys it does not know, so a
misspelled ``z_plan`` silently drops the z stack, and it accepts a z step of 0
or below. `load_sequence` and `parse_sequence` reject those and every other
problem with one `SequenceError` that names the file, the line, what is wrong
and how to fix it. The checks live in `acquire.sequence.keys` (unknown keys)
and `acquire.sequence.rules` (values useq accepts but no acquisition can mean).

The sequences read here remember where they came from (`sequence_source`), so
later errors (a position outside the stage limits found while planning) can
point at the line of the file too. The planning API (`plan_acquisition`,
`describe_plan` and their types) is re-exported here from
`acquire.sequence.plan` and `acquire.sequence.table`.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import useq
import yaml
from pydantic import ValidationError

from acquire.sequence.keys import unknown_key_problem
from acquire.sequence.problems import KeyPath, format_key_path, validation_problem
from acquire.sequence.rules import semantic_problems
from acquire.sequence.source import (
    SequenceError,
    SequenceSource,
    key_of,
    remember_source,
)

__all__ = [
    "check_sequence",
    "load_sequence",
    "parse_sequence",
]

_JSON_SUFFIXES = frozenset({".json"})
#: Largest sequence file read (a sequence of 20 000 positions is about 1 MB).
MAX_SEQUENCE_BYTES = 4 * 1024 * 1024
#: Most values a sequence may hold once YAML aliases are expanded (a few
#: anchors can otherwise stand for billions of values: the "billion laughs").
MAX_SEQUENCE_VALUES = 200_000


def load_sequence(path: Path | str) -> useq.MDASequence:
    """Read and strictly check a sequence file (YAML, or JSON for ``.json``).

    Parameters
    ----------
    path : Path or str
        The sequence file.

    Returns
    -------
    useq.MDASequence
        The validated sequence.

    Raises
    ------
    SequenceError
        When the file is missing or unreadable, is not valid YAML/JSON, or the
        sequence has an unknown key, an invalid value or a value no acquisition
        can mean (such as a z step of 0).

    """
    file = Path(path).expanduser()
    if not file.exists():
        raise SequenceError(
            "The sequence file does not exist",
            "Check the path and the file name (sequences are .yaml or .json files).",
            path=file,
        )
    if file.is_dir():
        raise SequenceError(
            "This is a folder, not a sequence file",
            "Give the .yaml or .json file inside it.",
            path=file,
        )
    try:
        size = file.stat().st_size
    except OSError:
        size = 0  # unreadable: said below, by the read
    if size > MAX_SEQUENCE_BYTES:
        raise SequenceError(
            f"The sequence file is {size / 1e6:.1f} MB, more than the "
            f"{MAX_SEQUENCE_BYTES / 1e6:.1f} MB a sequence may be",
            "Split the positions over several sequences, or use a grid_plan.",
            path=file,
        )
    try:
        text = file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise SequenceError(
            "The sequence file is not a text file",
            "Give a YAML or JSON file saved as UTF-8 text.",
            path=file,
        ) from None
    except OSError as exc:
        raise SequenceError(
            f"The sequence file cannot be read ({exc.strerror or exc})",
            "Check the file's permissions.",
            path=file,
        ) from None
    if file.suffix.lower() in _JSON_SUFFIXES:
        return _build(_read_json(text, file), _source(text, file, str(file)))
    return _parse_yaml(text, file, str(file))


def parse_sequence(text: str, *, source: str = "<string>") -> useq.MDASequence:
    """Strictly check a sequence given as YAML text (JSON text is YAML too).

    Parameters
    ----------
    text : str
        The sequence.
    source : str
        Name of the text in messages.

    Returns
    -------
    useq.MDASequence
        The validated sequence.

    Raises
    ------
    SequenceError
        As `load_sequence`, naming ``source`` instead of a file.

    """
    return _parse_yaml(text, None, source)


def check_sequence(
    sequence: useq.MDASequence, *, source: str = "<sequence>"
) -> useq.MDASequence:
    """Apply the checks of `load_sequence` to a sequence built in code.

    A workflow that builds its sequence (paired acquisition, the demo) hands
    the object itself to the acquisition, not a file written only to be read
    back; it meets the same rules as a file.

    Parameters
    ----------
    sequence : useq.MDASequence
        The sequence.
    source : str
        Name of the sequence in messages.

    Returns
    -------
    useq.MDASequence
        The same sequence.

    Raises
    ------
    SequenceError
        A number is not finite, or a value no acquisition can mean.

    """
    where = SequenceSource(path=None, name=source, root=None)
    _check_finite(sequence.model_dump(mode="python", exclude_unset=True), where)
    problem = next(semantic_problems(sequence), None)
    if problem is not None:
        raise where.problem_error(problem)
    return sequence


def _parse_yaml(text: str, path: Path | None, name: str) -> useq.MDASequence:
    """Read YAML text into data and build the sequence."""
    try:
        _check_expanded_size(text, path, name)
        data = yaml.safe_load(text)
    except RecursionError:
        raise SequenceError(
            "The sequence is nested too deeply to be a sequence",
            "Check the file: a sequence nests a few levels, not thousands.",
            path=path,
            source=None if path is not None else name,
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        detail = " ".join(str(exc.problem or exc.context or "").split())
        if mark is not None:
            detail += f" (column {mark.column + 1})"
        raise SequenceError(
            f"The sequence is not valid YAML: {detail}",
            "Check the indentation (spaces, not tabs) and the ':' after each key "
            "on this line and the one before.",
            path=path,
            line=None if mark is None else mark.line + 1,
            source=None if path is not None else name,
        ) from None
    except yaml.YAMLError as exc:
        raise SequenceError(
            f"The sequence is not valid YAML: {exc}",
            "Check the file's syntax.",
            path=path,
            source=None if path is not None else name,
        ) from None
    return _build(data, _source(text, path, name))


def _check_expanded_size(text: str, path: Path | None, name: str) -> None:
    """Refuse YAML whose aliases expand to more than MAX_SEQUENCE_VALUES values.

    The composed tree shares the node an alias names, so counting with one
    entry per node (not per path to it) costs as little as the text is long.
    """
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    sizes: dict[int, int] = {}

    def expanded(node: yaml.Node) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        sizes[id(node)] = MAX_SEQUENCE_VALUES + 1  # a cycle counts as too many
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(expanded(child) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            total += sum(expanded(k) + expanded(v) for k, v in node.value)
        sizes[id(node)] = min(total, MAX_SEQUENCE_VALUES + 1)
        return sizes[id(node)]

    if root is not None and expanded(root) > MAX_SEQUENCE_VALUES:
        raise SequenceError(
            f"The sequence stands for more than {MAX_SEQUENCE_VALUES} values once "
            "its YAML aliases (*name) are expanded",
            "Write the values out, or use fewer aliases; a sequence this large "
            "is not one a microscope can run.",
            path=path,
            source=None if path is not None else name,
        )


def _read_json(text: str, path: Path) -> Any:
    """Read JSON text, with the line of a syntax error."""
    try:
        return json.loads(text)
    except RecursionError:
        raise SequenceError(
            "The sequence is nested too deeply to be a sequence",
            "Check the file: a sequence nests a few levels, not thousands.",
            path=path,
        ) from None
    except json.JSONDecodeError as exc:
        raise SequenceError(
            f"The sequence is not valid JSON: {exc.msg} (column {exc.colno})",
            "Check for a missing comma, quote or bracket at or just before this point.",
            path=path,
            line=exc.lineno,
        ) from None


def _source(text: str, path: Path | None, name: str) -> SequenceSource:
    """Compose the YAML tree for line numbers (None where it cannot be had)."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        root = None
    return SequenceSource(path=path, name=name, root=root)


def _build(data: Any, source: SequenceSource) -> useq.MDASequence:
    """Validate ``data`` strictly into a sequence and remember its source."""
    if data is None:
        raise source.error(
            "The sequence is empty",
            "Write at least one key, e.g. 'channels: [GFP]'.",
        )
    if not isinstance(data, Mapping):
        kind = "list" if isinstance(data, list) else type(data).__name__
        raise source.error(
            f"The sequence must be a mapping of keys such as 'channels:' and "
            f"'z_plan:', not a {kind}",
            "Write one 'key: value' per line at the top level of the file, "
            "without a leading '-'.",
        )
    _check_duplicate_keys(source)
    _check_finite(data, source)
    pristine = copy.deepcopy(data)
    try:
        sequence = useq.MDASequence.model_validate(copy.deepcopy(data))
    except ValidationError as exc:
        problem = unknown_key_problem(pristine, None, useq.MDASequence)
        raise source.problem_error(
            problem or validation_problem(exc, pristine)
        ) from None
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise source.error(
            f"useq-schema cannot read the sequence ({exc})",
            "See the useq-schema documentation for the keys of a sequence.",
        ) from None
    problem = unknown_key_problem(pristine, sequence, useq.MDASequence)
    if problem is None:
        problem = next(semantic_problems(sequence), None)
    if problem is not None:
        raise source.problem_error(problem)
    remember_source(sequence, source)
    return sequence


def _check_finite(data: Mapping[str, Any], source: SequenceSource) -> None:
    """Reject NaN and infinite numbers anywhere but the free-form metadata."""
    pending: list[tuple[Any, KeyPath]] = [
        (value, (key,)) for key, value in data.items() if key != "metadata"
    ]
    while pending:
        value, where = pending.pop()
        if isinstance(value, float) and not math.isfinite(value):
            raise source.error(
                f"'{format_key_path(where)}' is {value}, not a number a "
                "microscope can use",
                "Give a finite number.",
                key_path=where,
            )
        if isinstance(value, Mapping):
            pending.extend((v, (*where, k)) for k, v in value.items())
        elif isinstance(value, list):
            pending.extend((v, (*where, i)) for i, v in enumerate(value))


def _check_duplicate_keys(source: SequenceSource) -> None:
    """Reject a key written twice in one mapping (YAML keeps only the last)."""
    if source.root is None:
        return
    twice: list[tuple[int, int, object, KeyPath]] = []
    pending: list[tuple[yaml.Node, KeyPath]] = [(source.root, ())]
    visited: set[int] = set()
    while pending:
        node, path = pending.pop()
        if id(node) in visited:  # an alias of an anchored node
            continue
        visited.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            pending.extend((item, (*path, i)) for i, item in enumerate(node.value))
        if not isinstance(node, yaml.MappingNode):
            continue
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = key_of(key_node)
            line = key_node.start_mark.line + 1
            if key != "<<" and repr(key) in first_line:
                twice.append((line, first_line[repr(key)], key, path))
            first_line.setdefault(repr(key), line)
            pending.append((value_node, (*path, key)))
    if twice:
        line, first, key, path = min(twice, key=lambda found: found[0])
        where = f" in '{format_key_path(path)}'" if path else ""
        raise SequenceError(
            f"The key '{key}' is written twice{where} (lines {first} and {line})",
            "Keep one of them: only the last would be used.",
            path=source.path,
            line=line,
            source=None if source.path is not None else source.name,
        )
