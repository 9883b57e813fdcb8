"""The pymmcore-plus internals pairscope reads are still there, with their meaning.

An upgrade of pymmcore-plus that renames or removes one fails here, by name,
instead of in the middle of an acquisition.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import useq
from pymmcore_plus.mda import MDAEngine

from acquire.hardware import mmcore_compat
from acquire.hardware.microscope import close_core, open_core

if TYPE_CHECKING:
    from pymmcore_plus import CMMCorePlus

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def core() -> CMMCorePlus:
    loaded = open_core(ROOT / "hardware_configs" / "demo_widefield.cfg")
    yield loaded
    close_core(loaded)


@pytest.mark.parametrize(("owner", "attribute"), mmcore_compat.INTERNAL_ATTRIBUTES)
def test_every_internal_attribute_exists(
    core: CMMCorePlus, owner: str, attribute: str
) -> None:
    instance = core if owner == "CMMCorePlus" else MDAEngine(core)
    assert hasattr(instance, attribute), (
        f"pymmcore-plus no longer has {owner}.{attribute}: update "
        "acquire/hardware/mmcore_compat.py"
    )


def test_the_internals_mean_what_pairscope_reads_in_them(core: CMMCorePlus) -> None:
    group = str(core.getChannelGroup())
    preset = str(core.getAvailableConfigs(group)[-1])
    core.setConfig(group, preset)
    assert tuple(mmcore_compat.last_config(core)) == (group, preset)
    engine = MDAEngine(core)
    assert mmcore_compat.autofocus_z_correction(engine, 3) == 0.0
    core.setAutoShutter(True)
    engine.setup_sequence(useq.MDASequence())
    assert mmcore_compat.engine_opens_shutter(engine)
    # the payload type the engine yields: (image, event, metadata)
    payload = mmcore_compat.ImagePayload("image", "event", {})  # type: ignore[arg-type]
    image, event, meta = payload
    assert (image, event, meta) == ("image", "event", {})
