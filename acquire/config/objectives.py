"""Objective lenses described by their Micro-Manager state labels.

Real objective turrets are labelled like ``"Plan-Apochromat 40x/1.3 Oil"``: the
configuration checks, the fiducial search and the simulated cameras all read
magnification, numerical aperture and immersion from that label, so a config
describes its optics in the one place a microscopist edits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

IMMERSION_INDEX: dict[str, float] = {
    "oil": 1.518,
    "water": 1.333,
    "glycerol": 1.474,
    "silicone": 1.406,
    "air": 1.0,
}
_IMMERSION_WORDS: dict[str, str] = {
    "oil": "oil",
    "oel": "oil",
    "water": "water",
    "w": "water",
    "glyc": "glycerol",
    "glycerol": "glycerol",
    "sil": "silicone",
    "silicone": "silicone",
    "air": "air",
    "dry": "air",
}
_MAG_NA = re.compile(r"(\d+(?:\.\d+)?)\s*[xX]\s*/\s*(\d(?:\.\d+)?)")
_WORD = re.compile(r"[A-Za-z]+")


@dataclass(frozen=True)
class Objective:
    """An objective lens.

    Attributes
    ----------
    label : str
        The turret label it was parsed from.
    magnification : float
        Nominal magnification (with the tube lens the objective is designed for).
    numerical_aperture : float
        Numerical aperture.
    immersion : str
        One of ``IMMERSION_INDEX``'s keys.

    """

    label: str
    magnification: float
    numerical_aperture: float
    immersion: str

    @property
    def immersion_index(self) -> float:
        """Refractive index of the immersion medium."""
        return IMMERSION_INDEX[self.immersion]


def parse_objective_label(label: str) -> Objective:
    """Parse an objective turret label such as ``"Plan-Apochromat 63x/1.43 Oil"``.

    Parameters
    ----------
    label : str
        The state label. It must contain ``<magnification>x/<NA>``; an immersion
        word (Oil, Water/W, Glyc, Silicone, Air/Dry) is optional and defaults to
        air for NA < 1 and oil otherwise.

    Returns
    -------
    Objective
        The parsed objective.

    Raises
    ------
    ValueError
        If the label has no magnification/NA, or the NA is impossible for the
        immersion medium.

    """
    match = _MAG_NA.search(label)
    if match is None:
        raise ValueError(
            f"objective label {label!r} does not state magnification and NA; "
            "label the turret position like 'Plan-Apochromat 40x/1.3 Oil'"
        )
    magnification = float(match.group(1))
    numerical_aperture = float(match.group(2))
    words = [w.lower() for w in _WORD.findall(label[match.end() :])]
    immersion = next((_IMMERSION_WORDS[w] for w in words if w in _IMMERSION_WORDS), "")
    if not immersion:
        immersion = "air" if numerical_aperture < 1.0 else "oil"
    if magnification <= 0:
        raise ValueError(f"objective label {label!r}: magnification must be > 0")
    if not 0 < numerical_aperture < IMMERSION_INDEX[immersion]:
        raise ValueError(
            f"objective label {label!r}: NA {numerical_aperture} is impossible in "
            f"{immersion} (n = {IMMERSION_INDEX[immersion]}); fix the NA or name "
            "the immersion medium (Oil, Water, Glyc, Silicone)"
        )
    return Objective(label, magnification, numerical_aperture, immersion)
