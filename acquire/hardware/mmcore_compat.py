"""Every pymmcore-plus internal that pairscope relies on, in one place.

pairscope's engine subclasses pymmcore-plus's `MDAEngine` to add retries and
to wait only for what changed; that needs a few names pymmcore-plus does not
export or document. They are reached only through this module, and
``tests/acquire/test_mmcore_compat.py`` checks each against the installed version,
so an upgrade that renames one fails there, by name, not mid-acquisition.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pymmcore_plus.core import SequencedEvent
from pymmcore_plus.mda._engine import ImagePayload

if TYPE_CHECKING:
    from pymmcore_plus import CMMCorePlus
    from pymmcore_plus.mda import MDAEngine

    # typing only: pymmcore-plus defines it for type checkers alone
    from pymmcore_plus.mda._protocol import PImagePayload as PImagePayload

__all__ = [
    "INTERNAL_ATTRIBUTES",
    "ImagePayload",
    "SequencedEvent",
    "autofocus_z_correction",
    "engine_opens_shutter",
    "last_config",
]

#: (owner, attribute) pairs read here: the core's and the stock engine's.
INTERNAL_ATTRIBUTES = (
    ("CMMCorePlus", "_last_config"),
    ("MDAEngine", "_z_correction"),
    ("MDAEngine", "_autoshutter_was_set"),
)


def last_config(core: CMMCorePlus) -> tuple[str, str]:
    """The (group, preset) the core last set: a channel change needs a wait."""
    value: tuple[str, str] = core._last_config
    return value


def autofocus_z_correction(engine: MDAEngine, position: Any) -> float:
    """The stock engine's autofocus correction of ``position`` (0 if none)."""
    corrections: dict[Any, float] = engine._z_correction
    return corrections.setdefault(position, 0.0)


def engine_opens_shutter(engine: MDAEngine) -> bool:
    """Whether the engine owns the shutter (auto-shutter was on at the start)."""
    return bool(engine._autoshutter_was_set)
