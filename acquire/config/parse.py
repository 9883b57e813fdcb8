"""Reading Micro-Manager configuration files into command lines.

A ``.cfg`` file is one command a line, its fields separated by commas; ``#``
starts a comment. pymmcore-plus' ``UniMMCore`` also reads the lines that start
with ``#py `` (Python devices), which Micro-Manager skips as comments. The
parser checks each line's command and field count and nothing beyond it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from acquire.config.errors import ConfigError

__all__ = [
    "PY_PREFIX",
    "ConfigLine",
    "parse_config",
    "parse_config_lines",
    "read_config_text",
]

#: Prefix of lines that only pymmcore-plus' UniMMCore reads (comments elsewhere).
PY_PREFIX = "#py "


class _CommandForm(NamedTuple):
    """How many fields follow a command word, and the form of its line."""

    field_counts: tuple[int, ...]
    form: str


_COMMANDS: dict[str, _CommandForm] = {
    "Device": _CommandForm((3,), "Device,<label>,<adapter library>,<device name>"),
    "pyDevice": _CommandForm((3,), "#py pyDevice,<label>,<python module>,<class name>"),
    "Property": _CommandForm((2, 3), "Property,<device>,<property>,<value>"),
    "Delay": _CommandForm((2,), "Delay,<device>,<delay ms>"),
    "FocusDirection": _CommandForm((2,), "FocusDirection,<device>,<-1|0|1>"),
    "Label": _CommandForm((3,), "Label,<device>,<state>,<label>"),
    "ConfigGroup": _CommandForm(
        (1, 4, 5), "ConfigGroup,<group>,<preset>,<device>,<property>,<value>"
    ),
    "ConfigPixelSize": _CommandForm(
        (4,), "ConfigPixelSize,<preset>,<device>,<property>,<value>"
    ),
    "PixelSize_um": _CommandForm((2,), "PixelSize_um,<preset>,<um per pixel>"),
    "PixelSizeAffine": _CommandForm(
        (7,), "PixelSizeAffine,<preset>,<a>,<b>,<c>,<d>,<e>,<f>"
    ),
    "PixelSizeAngle_dxdz": _CommandForm((2,), "PixelSizeAngle_dxdz,<preset>,<angle>"),
    "PixelSizeAngle_dydz": _CommandForm((2,), "PixelSizeAngle_dydz,<preset>,<angle>"),
    "PixelSizeOptimalZ_Um": _CommandForm((2,), "PixelSizeOptimalZ_Um,<preset>,<um>"),
    "Parent": _CommandForm((2,), "Parent,<device>,<hub device>"),
}
_REMOVED_COMMANDS = {
    "Config": "the obsolete 'Config' command is ignored by Micro-Manager",
    "Equipment": "the 'Equipment' command was removed from the config format",
    "ImageSynchro": "the 'ImageSynchro' command was removed from the config format",
}
# A comment that was probably meant as a "#py " line ("# py pyDevice,...").
_MISSPELLED_PY = re.compile(
    r"^#\s*py\s+(?P<rest>(?:" + "|".join(_COMMANDS) + r"),.*)$", re.IGNORECASE
)


@dataclass(frozen=True)
class ConfigLine:
    """One command line of a configuration file.

    Attributes
    ----------
    number : int
        1-based line number in the file.
    text : str
        The line as written (surrounding whitespace removed).
    command : str
        First field (``Device``, ``Property``, ``pyDevice`` ...).
    fields : tuple of str
        The fields after the command.
    python_only : bool
        True for lines written with the ``#py `` prefix.

    """

    number: int
    text: str
    command: str
    fields: tuple[str, ...]
    python_only: bool


def parse_config(path: Path | str) -> list[ConfigLine]:
    """Read the command lines of a configuration file.

    Parameters
    ----------
    path : Path or str
        The ``.cfg`` file.

    Returns
    -------
    list of ConfigLine
        Command lines in file order (comments and blank lines dropped).

    Raises
    ------
    ConfigError
        Missing/unreadable file, unknown command or wrong number of fields.

    """
    cfg = Path(path).expanduser()
    text = read_config_text(cfg)
    lines, problems = parse_config_lines(text, cfg)
    if problems:
        raise problems[0]
    return lines


def read_config_text(cfg: Path) -> str:
    """Read a configuration file, or raise `ConfigError` saying why not.

    Parameters
    ----------
    cfg : Path
        The ``.cfg`` file.

    Returns
    -------
    str
        Its text (UTF-8, with or without byte-order mark, else Latin-1).

    Raises
    ------
    ConfigError
        The file is missing, a folder or unreadable.

    """
    if not cfg.exists():
        raise ConfigError(
            "configuration file not found",
            path=cfg,
            hint="Check the path; the demo configurations are in "
            "hardware_configs/ (demo_widefield.cfg, demo_confocal.cfg).",
        )
    if not cfg.is_file():
        raise ConfigError(
            "this is a folder, not a configuration file",
            path=cfg,
            hint="Pass a Micro-Manager .cfg file.",
        )
    try:
        return cfg.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        return cfg.read_text(encoding="latin-1")
    except OSError as exc:
        raise ConfigError(
            f"cannot read the file ({exc.strerror})",
            path=cfg,
            hint="Check the file permissions.",
        ) from exc


def parse_config_lines(
    text: str, cfg: Path
) -> tuple[list[ConfigLine], list[ConfigError]]:
    """Parse every line of a configuration file's text.

    Parameters
    ----------
    text : str
        The file's text.
    cfg : Path
        The file, named in the errors.

    Returns
    -------
    tuple
        ``(lines, problems)``: the command lines in file order and one
        `ConfigError` for each malformed line.

    """
    lines: list[ConfigLine] = []
    problems: list[ConfigError] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        try:
            parsed = _parse_line(number, raw, cfg)
        except ConfigError as exc:
            problems.append(exc)
            continue
        if parsed is not None:
            lines.append(parsed)
    return lines, problems


def _split_line(raw: str) -> tuple[str, bool] | None:
    """Return (command text, python_only) or None for blank/comment lines."""
    line = raw.rstrip("\r").strip()
    if not line:
        return None
    python_only = line.startswith(PY_PREFIX)
    if python_only:
        line = line[len(PY_PREFIX) :].lstrip()
    if line.startswith("#"):
        return None
    return line, python_only


def _parse_line(number: int, raw: str, path: Path) -> ConfigLine | None:
    """Parse one raw line (None for blanks and comments)."""
    stripped = raw.strip()

    def error(what: str, hint: str) -> ConfigError:
        return ConfigError(
            what, path=path, line_number=number, line=stripped, hint=hint
        )

    if not stripped.startswith(PY_PREFIX) and (m := _MISSPELLED_PY.match(stripped)):
        raise error(
            "this line is a comment, so it is ignored; it looks like a Python-"
            "device line",
            f"Write it exactly as '{PY_PREFIX}{m.group('rest')}' "
            "('#py' followed by one space).",
        )
    split = _split_line(raw)
    if split is None:
        return None
    text, python_only = split
    command, *fields = text.split(",")
    line = ConfigLine(number, stripped, command, tuple(fields), python_only)
    if command in _REMOVED_COMMANDS:
        raise error(_REMOVED_COMMANDS[command], "Delete this line.")
    if command not in _COMMANDS:
        known = ", ".join(sorted(_COMMANDS))
        raise error(
            f"unknown command {command!r} in line {stripped!r}",
            f"A line starts with one of: {known}; fields are separated by "
            "commas. Comments start with '#'.",
        )
    field_counts, form = _COMMANDS[command]
    if len(fields) not in field_counts:
        counts = " or ".join(str(n) for n in field_counts)
        raise error(
            f"{command} line has {len(fields)} field(s) after the command, "
            f"expected {counts}: {stripped!r}",
            f"The form is '{form}'. A comma inside a value is not allowed.",
        )
    if command == "pyDevice" and not python_only:
        raise error(
            "a pyDevice line without the '#py ' prefix stops Micro-Manager from "
            "loading this file",
            f"Write it as '{PY_PREFIX}{stripped}'.",
        )
    return line
