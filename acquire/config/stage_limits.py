"""Soft travel limits of the stages, read from pairscope lines in the .cfg.

Micro-Manager has no API for XY soft limits, so pairscope keeps them in its own
comment lines of the hardware configuration (plain Micro-Manager and
pymmcore-plus read them as comments)::

    #pairscope StageLimitsUm,XY,<x_min>,<x_max>,<y_min>,<y_max>
    #pairscope StageLimitsUm,Z,<z_min>,<z_max>

All values are stage coordinates in micrometres. Either line may be left out
(that axis is then not limited). Other ``#pairscope`` commands are left to the
parts of pairscope that use them.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass
from pathlib import Path

from acquire.errors import UserError

__all__ = [
    "LIMITS_COMMAND",
    "PAIRSCOPE_PREFIX",
    "StageLimits",
    "StageLimitsError",
    "read_stage_limits",
]

#: Prefix of the configuration lines only pairscope reads.
PAIRSCOPE_PREFIX = "#pairscope"
#: The command of the stage-limit lines.
LIMITS_COMMAND = "StageLimitsUm"
#: Tolerance for a coordinate on a limit (float rounding of grid positions).
_TOLERANCE_UM = 1e-6

_PREFIX_RE = re.compile(rf"^{PAIRSCOPE_PREFIX}(?P<space>\s*)(?P<body>.*)$")
_FORMATS = {
    "XY": (
        ("x_min", "x_max", "y_min", "y_max"),
        f"{PAIRSCOPE_PREFIX} {LIMITS_COMMAND},XY,-30000,30000,-30000,30000",
    ),
    "Z": (("z_min", "z_max"), f"{PAIRSCOPE_PREFIX} {LIMITS_COMMAND},Z,-2000,2000"),
}


class StageLimitsError(UserError, ValueError):
    """A malformed stage-limit line: file, line, what is wrong and how to fix it.

    Parameters
    ----------
    what : str
        What is wrong, one sentence.
    hint : str
        How to fix it.
    path : Path
        The hardware configuration file.
    line : int or None
        1-based line number, None for the whole file.

    """

    def __init__(self, what: str, hint: str, *, path: Path, line: int | None) -> None:
        super().__init__(what, hint)
        self.path = path
        self.line = line

    def __str__(self) -> str:
        where = str(self.path) if self.line is None else f"{self.path}:{self.line}"
        return f"{where}: {self.what}. {self.hint}".strip()


def _range_problem(name: str, low: float, high: float) -> str | None:
    """Describe what is wrong with a ``low``..``high`` limit pair, if anything."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return f"the {name} limits must be finite numbers (got {low:g}, {high:g})"
    if low >= high:
        return f"the {name} minimum {low:g} um is not below the maximum {high:g} um"
    return None


def _outside(name: str, value: float, low: float, high: float, axes: str) -> str | None:
    """Describe ``value`` outside ``low``..``high`` (None when inside)."""
    if low - _TOLERANCE_UM <= value <= high + _TOLERANCE_UM:
        return None
    return (
        f"{name} = {value:g} um is outside the {axes} stage limits "
        f"({name} from {low:g} to {high:g} um)"
    )


@dataclass(frozen=True)
class StageLimits:
    """Soft travel limits of the XY stage and the focus drive, in um.

    Attributes
    ----------
    xy_um : tuple of 4 floats or None
        ``(x_min, x_max, y_min, y_max)``; None: XY not limited.
    z_um : tuple of 2 floats or None
        ``(z_min, z_max)``; None: Z not limited.

    Raises
    ------
    ValueError
        When a minimum is not below its maximum, or a limit is not finite.

    """

    xy_um: tuple[float, float, float, float] | None = None
    z_um: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        pairs: list[tuple[str, float, float]] = []
        if self.xy_um is not None:
            x_min, x_max, y_min, y_max = self.xy_um
            pairs += [("x", x_min, x_max), ("y", y_min, y_max)]
        if self.z_um is not None:
            pairs.append(("z", *self.z_um))
        for name, low, high in pairs:
            problem = _range_problem(name, low, high)
            if problem is not None:
                raise ValueError(problem)

    def violation(
        self, x_um: float | None, y_um: float | None, z_um: float | None
    ) -> str | None:
        """Describe how a stage position leaves the limits.

        Parameters
        ----------
        x_um, y_um, z_um : float or None
            Stage coordinates; None: that axis does not move (not checked).

        Returns
        -------
        str or None
            None when the position is inside the limits (or unlimited), else
            e.g. ``"x = 41000 um is outside the XY stage limits (x from -30000
            to 30000 um)"``.

        """
        if self.xy_um is not None:
            x_min, x_max, y_min, y_max = self.xy_um
            if x_um is not None and (text := _outside("x", x_um, x_min, x_max, "XY")):
                return text
            if y_um is not None and (text := _outside("y", y_um, y_min, y_max, "XY")):
                return text
        if self.z_um is not None and z_um is not None:
            return _outside("z", z_um, *self.z_um, "Z")
        return None

    def check(self, x_um: float | None, y_um: float | None, z_um: float | None) -> None:
        """Raise when a stage position leaves the limits.

        Parameters
        ----------
        x_um, y_um, z_um : float or None
            Stage coordinates; None: that axis is not checked.

        Raises
        ------
        ValueError
            With the description of `violation`.

        """
        text = self.violation(x_um, y_um, z_um)
        if text is not None:
            raise ValueError(text)


def read_stage_limits(config_path: Path | str) -> StageLimits:
    """Read the ``#pairscope StageLimitsUm`` lines of a hardware configuration.

    Parameters
    ----------
    config_path : Path or str
        The Micro-Manager ``.cfg`` file.

    Returns
    -------
    StageLimits
        The limits found; an axis without a line is not limited.

    Raises
    ------
    StageLimitsError
        A `ValueError` naming the file and line, when a stage-limit line is
        malformed, repeated or gives a minimum not below its maximum, or when
        the file cannot be read.

    """
    path = Path(config_path)
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise StageLimitsError(
            f"The hardware configuration {path} cannot be read ({exc.strerror or exc})",
            "Check the path of the .cfg file.",
            path=path,
            line=None,
        ) from None
    found: dict[str, tuple[tuple[float, ...], int]] = {}
    for number, text in enumerate(lines, start=1):
        parsed = _parse_line(text.strip(), path, number)
        if parsed is None:
            continue
        axis, values = parsed
        if axis in found:
            raise StageLimitsError(
                f"A second {LIMITS_COMMAND},{axis} line (the first is on line "
                f"{found[axis][1]})",
                "Keep one line per axis.",
                path=path,
                line=number,
            )
        found[axis] = (values, number)
    xy = found.get("XY")
    z = found.get("Z")
    return StageLimits(
        xy_um=None if xy is None else (xy[0][0], xy[0][1], xy[0][2], xy[0][3]),
        z_um=None if z is None else (z[0][0], z[0][1]),
    )


def _parse_line(
    text: str, path: Path, number: int
) -> tuple[str, tuple[float, ...]] | None:
    """Parse one line; None for lines that are not stage-limit lines."""
    match = _PREFIX_RE.match(text)
    if match is None:
        return None

    def error(what: str, hint: str) -> StageLimitsError:
        return StageLimitsError(what, hint, path=path, line=number)

    fields = [part.strip() for part in match["body"].split(",")]
    command = fields[0]
    if command != LIMITS_COMMAND:
        near = difflib.get_close_matches(command.lower(), [LIMITS_COMMAND.lower()], 1)
        if near:
            raise error(
                f"'{command}' is not a pairscope command (did you mean "
                f"'{LIMITS_COMMAND}'?)",
                f"Write '{_FORMATS['XY'][1]}' (values in um).",
            )
        return None  # another pairscope command, not a stage limit
    if not match["space"]:
        raise error(
            f"'{PAIRSCOPE_PREFIX}' must be followed by a space",
            f"Write '{_FORMATS['XY'][1]}'.",
        )
    axis = fields[1].upper() if len(fields) > 1 else ""
    if axis not in _FORMATS:
        raise error(
            f"Unknown stage axis '{fields[1] if len(fields) > 1 else ''}' in a "
            f"{LIMITS_COMMAND} line",
            f"Use XY or Z, e.g. '{_FORMATS['XY'][1]}' or '{_FORMATS['Z'][1]}'.",
        )
    names, example = _FORMATS[axis]
    raw = fields[2:]
    if len(raw) != len(names):
        raise error(
            f"{LIMITS_COMMAND},{axis} needs {len(names)} numbers "
            f"({', '.join(names)}), found {len(raw)}",
            f"Write e.g. '{example}' (values in um).",
        )
    values: list[float] = []
    for name, item in zip(names, raw, strict=True):
        try:
            values.append(float(item))
        except ValueError:
            raise error(
                f"{name} '{item}' is not a number",
                f"Write the limits in um as plain numbers, e.g. '{example}'.",
            ) from None
    for first in range(0, len(values), 2):
        problem = _range_problem(names[first][0], values[first], values[first + 1])
        if problem is not None:
            raise error(
                problem[:1].upper() + problem[1:],
                f"Give each axis as minimum then maximum, e.g. '{example}'.",
            )
    return axis, tuple(values)
