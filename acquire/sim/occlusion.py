"""What one scope sees of the coverslip: covered marks and lookalike debris.

Real holders lose marks to bubbles, dust or a label edge, and debris can look
like a mark. The simulated cameras show these through two properties (each
scope its own): ``HiddenFiducials`` ("F2-cross" or "F0-disc F2-cross") covers
marks, and ``FiducialDecoy`` ("F1-ring 40 -25") covers a mark and puts a copy
of it 40 um right and 25 um down in sample coordinates, so the search finds
and identifies the copy: a false detection. The ground truth (the specimen)
stays unchanged. Values are separated by spaces: Micro-Manager config
values cannot hold commas.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from acquire.sim.emitters import Emitters

if TYPE_CHECKING:
    from acquire.sim.specimen import Specimen


@dataclass(frozen=True)
class Decoy:
    """A lookalike of mark ``identity``, offset from it in sample um."""

    identity: str
    offset_um: tuple[float, float]


def parse_hidden(value: str, specimen: Specimen) -> tuple[str, ...]:
    """Mark identities from a ``HiddenFiducials`` property value.

    Raises
    ------
    ValueError
        An identity that is not a mark of the specimen.

    """
    names = tuple(sorted(set(value.split())))
    _check_identities(names, specimen, "HiddenFiducials")
    return names


def parse_decoy(value: str, specimen: Specimen) -> Decoy | None:
    """A decoy from a ``FiducialDecoy`` property value ("identity dx dy")."""
    if not value.strip():
        return None
    parts = value.split()
    try:
        identity, dx, dy = parts[0], float(parts[1]), float(parts[2])
        if len(parts) != 3:
            raise ValueError
    except (IndexError, ValueError):
        raise ValueError(
            f"FiducialDecoy {value!r} is not 'identity dx_um dy_um', "
            "e.g. 'F1-ring 40 -25'"
        ) from None
    _check_identities((identity,), specimen, "FiducialDecoy")
    return Decoy(identity, (dx, dy))


def _check_identities(names: tuple[str, ...], specimen: Specimen, prop: str) -> None:
    known = {mark.identity for mark in specimen.fiducials}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(
            f"{prop}: no mark named {', '.join(unknown)}; marks: {sorted(known)}"
        )


class AlteredSpecimen:
    """The specimen with some marks covered and, optionally, one decoy.

    Parameters
    ----------
    specimen : Specimen
        The sample.
    hidden : tuple of str
        Marks whose light is blocked (a disc of the mark's size around it).
    decoy : Decoy or None
        A copy of a mark at an offset; the original is covered as well.

    """

    def __init__(
        self, specimen: Specimen, hidden: tuple[str, ...], decoy: Decoy | None
    ) -> None:
        marks = {mark.identity: mark for mark in specimen.fiducials}
        covered = set(hidden) | ({decoy.identity} if decoy else set())
        self.specimen = specimen
        self._discs = np.array(
            [(*marks[n].centre_um, marks[n].size_um) for n in sorted(covered)],
            dtype=np.float64,
        ).reshape(-1, 3)
        if decoy is None:
            self._decoy = Emitters(
                np.empty((0, 3), np.float32), np.empty(0, np.float32)
            )
        else:
            copy = specimen.emitters_of(f"fiducials/{decoy.identity}")
            shift = np.array([*decoy.offset_um, 0.0], dtype=np.float32)
            self._decoy = Emitters(copy.xyz_um + shift, copy.photons_per_ms)

    def emitters_in_box(
        self, x_min_um: float, x_max_um: float, y_min_um: float, y_max_um: float
    ) -> Emitters:
        """Emitters in the box, less the covered discs, plus the decoy's."""
        found = self.specimen.emitters_in_box(x_min_um, x_max_um, y_min_um, y_max_um)
        xyz, photons = found.xyz_um, found.photons_per_ms
        keep = np.ones(len(photons), dtype=bool)
        for x, y, radius in self._discs:
            keep &= np.hypot(xyz[:, 0] - x, xyz[:, 1] - y) > radius
        d = self._decoy.xyz_um
        inside = (
            (d[:, 0] >= x_min_um)
            & (d[:, 0] <= x_max_um)
            & (d[:, 1] >= y_min_um)
            & (d[:, 1] <= y_max_um)
        )
        return Emitters(
            np.concatenate([xyz[keep], d[inside]]),
            np.concatenate([photons[keep], self._decoy.photons_per_ms[inside]]),
        )
