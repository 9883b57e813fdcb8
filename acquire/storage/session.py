"""Correlation session files: what scope A found, for scope B to relocate.

Scope A (e.g. the confocal) writes the holder, the stage positions of its
fiducial marks and the targets (cells) it imaged; scope B (the wide-field, in
the same process for the demo or on another PC) loads it, finds the same marks
and maps the targets into its own stage coordinates. Plain JSON, versioned.
"""

from __future__ import annotations

import datetime
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from acquire._version import __version__
from acquire.errors import UserError
from correlate.fiducials.marks import Holder
from correlate.stage.camera_calibration import PixelCalibration

SESSION_FORMAT = "pairscope-correlation-session"
SESSION_VERSION = 1


class SessionError(UserError, ValueError):
    """A session file is missing, unreadable or of another kind."""


@dataclass(frozen=True)
class Target:
    """A place scope B must revisit: a name and scope A's stage (x, y, z)."""

    name: str
    stage_xyz_um: tuple[float, float, float]


@dataclass(frozen=True)
class CorrelationSession:
    """Everything scope B needs from scope A.

    Attributes
    ----------
    scope : str
        Name of scope A (its config's stem).
    holder : Holder
        The holder's marks.
    marks : mapping
        Mark identity -> scope A stage (x, y, z) in um.
    targets : tuple of Target
        Positions to revisit, in scope A stage coordinates.
    calibrations : mapping
        Scope A's camera calibrations by objective label.
    metadata : mapping
        Free-form provenance (software version, time, config path).

    """

    scope: str
    holder: Holder
    marks: Mapping[str, tuple[float, float, float]]
    targets: tuple[Target, ...] = ()
    calibrations: Mapping[str, PixelCalibration] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "format": SESSION_FORMAT,
            "format_version": SESSION_VERSION,
            "scope": self.scope,
            "holder": self.holder.to_dict(),
            "marks": {k: list(v) for k, v in self.marks.items()},
            "targets": [
                {"name": t.name, "stage_xyz_um": list(t.stage_xyz_um)}
                for t in self.targets
            ],
            "calibrations": {k: c.to_dict() for k, c in self.calibrations.items()},
            "metadata": {
                "software": f"pairscope {__version__}",
                "written_at": datetime.datetime.now(datetime.UTC).isoformat(),
                **dict(self.metadata),
            },
        }

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, source: str = "session"
    ) -> CorrelationSession:
        """Rebuild a session, refusing other files and other format versions."""
        if data.get("format") != SESSION_FORMAT:
            raise SessionError(
                f"{source} is not a pairscope correlation session",
                "Give the file written by `pairscope fiducials`.",
            )
        version = data.get("format_version")
        if version != SESSION_VERSION:
            raise SessionError(
                f"{source} has session format version {version!r}; this pairscope "
                f"reads version {SESSION_VERSION}",
                "Write the session again with this pairscope version.",
            )
        try:
            return cls(
                scope=str(data["scope"]),
                holder=Holder.from_dict(data["holder"]),
                marks={str(k): _xyz(v) for k, v in _mapping(data, "marks").items()},
                targets=tuple(
                    Target(str(t["name"]), _xyz(t["stage_xyz_um"]))
                    for t in data.get("targets", [])
                ),
                calibrations={
                    str(k): PixelCalibration.from_dict(v)
                    for k, v in _mapping(data, "calibrations", {}).items()
                },
                metadata=dict(_mapping(data, "metadata", {})),
            )
        except KeyError as error:
            raise SessionError(
                f"{source} is damaged: it has no {error}",
                "Write the session again on scope A.",
            ) from None
        except (TypeError, ValueError, AttributeError) as error:
            raise SessionError(
                f"{source} is damaged: {error}", "Write the session again on scope A."
            ) from None


def _mapping(data: Mapping[str, Any], key: str, *default: Any) -> Mapping[str, Any]:
    """``data[key]``, which must be a mapping (a list would lose the names)."""
    value = data[key] if not default else data.get(key, default[0])
    if not isinstance(value, Mapping):
        kind = "list" if isinstance(value, list) else type(value).__name__
        raise ValueError(f"'{key}' must map names to values, not be a {kind}")
    return value


def _xyz(values: Any) -> tuple[float, float, float]:
    x, y, z = (float(v) for v in values)
    if not all(math.isfinite(v) for v in (x, y, z)):
        raise ValueError(f"stage position {[x, y, z]} is not finite")
    return (x, y, z)


def save_session(
    path: Path, session: CorrelationSession, *, overwrite: bool = False
) -> None:
    """Write a session atomically; refuse to replace a file unless asked."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise SessionError(
            f"{path} already exists", "Choose another --out, or remove the old session."
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        text = json.dumps(session.to_dict(), indent=2, allow_nan=False)
    except ValueError as error:
        raise SessionError(
            f"cannot write {path}: a position or calibration is not finite ({error})",
            "Check the targets and the marks found; nothing was written.",
        ) from None
    tmp.write_text(text + "\n")
    tmp.replace(path)


def load_session(path: Path) -> CorrelationSession:
    """Read a session written by :func:`save_session`."""
    path = Path(path)
    if not path.is_file():
        raise SessionError(f"{path}: no such session file", "Check the path.")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SessionError(
            f"{path} is not readable JSON: {error}", "Check the file."
        ) from None
    if not isinstance(data, dict):
        raise SessionError(
            f"{path} is not a session", "Give the file from `pairscope fiducials`."
        )
    return CorrelationSession.from_dict(data, source=str(path))
