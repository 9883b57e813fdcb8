"""Hardware configurations: they load, run an MDA, and broken ones fail well."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import TYPE_CHECKING

import mm_test_adapters
import numpy as np
import pytest
import useq
from pymmcore_plus import CMMCorePlus, DeviceType
from pymmcore_plus.experimental.unicore import UniMMCore

from acquire.config.check import validate_config
from acquire.config.errors import ConfigError
from acquire.hardware.microscope import (
    close_core,
    describe_scope,
    illumination,
    open_core,
    scope,
    set_objective,
)
from acquire.sim import groundtruth

if TYPE_CHECKING:
    from collections.abc import Callable

CONFIGS = Path(__file__).resolve().parents[2] / "hardware_configs"
WIDEFIELD = CONFIGS / "demo_widefield.cfg"
CONFOCAL = CONFIGS / "demo_confocal.cfg"
ZEISS = CONFIGS / "zeiss_axioobserver_orca_TEMPLATE.cfg"
ADAPTERS = [Path(mm_test_adapters.device_adapter_path())]

# objective label -> pixel size (um) expected in each demo configuration
WIDEFIELD_OBJECTIVES = {
    "EC Plan-Neofluar 10x/0.3 Air": 6.5 / 10,
    "Plan-Apochromat 40x/1.3 Oil": 6.5 / 40,
    "Plan-Apochromat 63x/1.43 Oil": 6.5 / 63,
}
CONFOCAL_OBJECTIVES = {
    "Plan-Apochromat 10x/0.45 Air": 12800 / (10 * 6.25 * 512),
    "Plan-Apochromat 40x/1.4 Oil": 12800 / (40 * 6.25 * 512),
}
DEMOS = {
    "widefield": (WIDEFIELD, "WidefieldCamera", WIDEFIELD_OBJECTIVES),
    "confocal": (CONFOCAL, "ConfocalCamera", CONFOCAL_OBJECTIVES),
}


@pytest.fixture(params=sorted(DEMOS))
def demo(request: pytest.FixtureRequest) -> tuple[Path, str, dict[str, float]]:
    return DEMOS[request.param]


# -- the demo configurations ----------------------------------------------------


def test_demo_configs_load_with_roles_and_pixel_sizes(
    demo: tuple[Path, str, dict[str, float]],
) -> None:
    cfg, camera_class, objectives = demo
    with scope(cfg, adapter_paths=ADAPTERS) as core:
        assert isinstance(core, UniMMCore)
        assert core.getCameraDevice() == "Camera"
        assert core.getShutterDevice() == "Shutter"
        assert core.getFocusDevice() == "ZStage"
        assert core.getXYStageDevice() == "XYStage"
        assert core.getAutoShutter()
        assert core.isPyDevice("Camera")
        assert core.getDeviceLibrary("Camera") == "acquire.sim.camera"
        assert core.getDeviceName("Camera") == camera_class
        expected = {
            "XYStage": ("DXYStage", DeviceType.XYStage),
            "ZStage": ("DStage", DeviceType.Stage),
            "Objective": ("DObjective", DeviceType.State),
            "Shutter": ("DShutter", DeviceType.Shutter),
            "FilterWheel": ("DWheel", DeviceType.State),
        }
        for label, (name, kind) in expected.items():
            assert core.getDeviceLibrary(label) == "DemoCamera"
            assert core.getDeviceName(label) == name
            assert core.getDeviceType(label) == kind
        assert "GFP" in core.getAvailableConfigs("Channel")
        assert core.getChannelGroup() == "Channel"
        # the first objective is in the light path at start-up
        # the System/Startup preset puts the 40x in the light path
        assert "40x" in core.getStateLabel("Objective")
        for label, size_um in objectives.items():
            set_objective(core, label)
            assert core.getPixelSizeUm() == pytest.approx(size_um, rel=1e-9)
        desc = describe_scope(core)
        configured = {o.label: o.pixel_size_um for o in desc.objectives}
        for label, size_um in objectives.items():
            assert configured[label] == pytest.approx(size_um, rel=1e-9)
        del core


def test_demo_scopes_share_the_specimen_but_not_the_mount() -> None:
    seeds = {}
    for cfg in (WIDEFIELD, CONFOCAL):
        with scope(cfg, adapter_paths=ADAPTERS) as core:
            seeds[cfg.stem] = tuple(
                int(core.getProperty("Camera", name))
                for name in ("SpecimenSeed", "MountSeed")
            )
            del core
    assert seeds["demo_widefield"][0] == seeds["demo_confocal"][0]
    assert seeds["demo_widefield"][1] != seeds["demo_confocal"][1]


@pytest.mark.parametrize("cfg", [WIDEFIELD, CONFOCAL], ids=["widefield", "confocal"])
def test_demo_configs_load_in_plain_micromanager(cfg: Path) -> None:
    core = CMMCorePlus()
    try:
        core.setDeviceAdapterSearchPaths([str(p) for p in ADAPTERS])
        core.loadSystemConfiguration(str(cfg))
        assert "Camera" not in core.getLoadedDevices()
        assert core.getCameraDevice() == ""
        assert core.getShutterDevice() == "Shutter"
        assert core.getFocusDevice() == "ZStage"
        assert core.getXYStageDevice() == "XYStage"
        assert core.getPixelSizeUm() > 0
    finally:
        core.unloadAllDevices()
        del core
        gc.collect()


def test_mda_yields_every_frame_of_the_camera_shape(
    demo: tuple[Path, str, dict[str, float]],
) -> None:
    cfg = demo[0]
    core = open_core(cfg, adapter_paths=ADAPTERS)
    try:
        for name, value in (
            ("RealTiming", "No"),
            ("SensorWidthPx", 256),
            ("SensorHeightPx", 192),
        ):
            core.setProperty("Camera", name, value)
        x, y, z = groundtruth.stage_position_of_cell(core, 0)
        sequence = useq.MDASequence(
            stage_positions=(
                useq.Position(x=x, y=y, z=z),
                useq.Position(x=x + 20.0, y=y, z=z),
            ),
            z_plan=useq.ZRangeAround(range=5.0, step=0.5),
        )
        frames: list[tuple[dict[str, int], np.ndarray]] = []

        def keep(image: np.ndarray, event: useq.MDAEvent, meta: object) -> None:
            frames.append((dict(event.index), np.array(image)))

        core.mda.events.frameReady.connect(keep)
        with illumination(core):
            core.mda.run(sequence)
        assert not core.getShutterOpen()
        assert len(frames) == 22
        shape = (core.getImageHeight(), core.getImageWidth())
        assert shape == (192, 256)
        assert all(image.shape == shape for _, image in frames)
        assert {(i["p"], i["z"]) for i, _ in frames} == {
            (p, z) for p in range(2) for z in range(11)
        }
        # the shutter was open: the cell is brighter than the dark background
        brightest = max(float(image.max()) for _, image in frames)
        assert brightest > 2 * float(np.median(frames[0][1])) + 10
    finally:
        close_core(core)
        del core


# -- broken configurations ----------------------------------------------------


def _variant(
    tmp_path: Path, edit: Callable[[list[str]], int], source: Path = WIDEFIELD
) -> tuple[Path, int]:
    """Write an edited copy of ``source``; ``edit`` returns the bad 1-based line."""
    lines = source.read_text(encoding="utf-8").splitlines()
    bad_line = edit(lines)
    path = tmp_path / f"broken_{source.name}"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, bad_line


def _index(lines: list[str], startswith: str) -> int:
    return next(i for i, line in enumerate(lines) if line.startswith(startswith))


def _expect_error(path: Path, line: int | None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        validate_config(path, adapter_paths=ADAPTERS)
    error = info.value
    assert error.path == path.resolve()
    assert error.line_number == line
    location = f"{path.resolve()}:{line}: " if line else f"{path.resolve()}: "
    assert str(error).startswith(location)
    assert error.hint
    return error


def test_demo_configs_validate(demo: tuple[Path, str, dict[str, float]]) -> None:
    parsed = validate_config(demo[0], adapter_paths=ADAPTERS)
    assert parsed.objective_devices == ["Objective"]
    assert parsed.roles["Camera"] == "Camera"
    sizes = {p.settings[0][2]: p.pixel_size_um for p in parsed.pixel_presets.values()}
    assert sizes == pytest.approx(demo[2])


def test_missing_file(tmp_path: Path) -> None:
    error = _expect_error(tmp_path / "nope.cfg", None)
    assert "not found" in str(error)


def test_unknown_command(tmp_path: Path) -> None:
    def edit(lines: list[str]) -> int:
        at = _index(lines, "Device,ZStage")
        lines.insert(at, "Devise,Extra,DemoCamera,DStage")
        return at + 1

    path, line = _variant(tmp_path, edit)
    assert "unknown command 'Devise'" in str(_expect_error(path, line))


def test_wrong_field_count(tmp_path: Path) -> None:
    def edit(lines: list[str]) -> int:
        at = _index(lines, "Label,Objective,3")
        lines[at] = "Label,Objective,Plan-Apochromat 63x/1.43 Oil"
        return at + 1

    path, line = _variant(tmp_path, edit)
    error = _expect_error(path, line)
    assert "2 field(s)" in str(error)
    assert "Label,<device>,<state>,<label>" in str(error)


def test_unknown_python_module(tmp_path: Path) -> None:
    def edit(lines: list[str]) -> int:
        at = _index(lines, "#py pyDevice,Camera")
        lines[at] = "#py pyDevice,Camera,acquire.sim.no_such_camera,WidefieldCamera"
        return at + 1

    path, line = _variant(tmp_path, edit)
    assert "'acquire.sim.no_such_camera' not found" in str(_expect_error(path, line))


def test_python_class_missing_or_not_a_device(tmp_path: Path) -> None:
    def missing(lines: list[str]) -> int:
        at = _index(lines, "#py pyDevice,Camera")
        lines[at] = "#py pyDevice,Camera,acquire.sim.camera,NoSuchCamera"
        return at + 1

    path, line = _variant(tmp_path, missing)
    error = _expect_error(path, line)
    assert "no class 'NoSuchCamera'" in str(error)
    assert "WidefieldCamera" in error.hint

    def not_device(lines: list[str]) -> int:
        at = _index(lines, "#py pyDevice,Camera")
        lines[at] = "#py pyDevice,Camera,acquire.config.objectives,Objective"
        return at + 1

    path, line = _variant(tmp_path, not_device)
    assert "not a pymmcore-plus unicore Device" in str(_expect_error(path, line))


def test_unknown_adapter_in_zeiss_template() -> None:
    lines = ZEISS.read_text(encoding="utf-8").splitlines()
    first_missing = _index(lines, "Device,COM1,SerialManager") + 1
    error = _expect_error(ZEISS, first_missing)
    message = str(error)
    assert "adapter library 'SerialManager' not found" in message
    zeiss_line = _index(lines, "Device,ZeissScope,ZeissCAN29") + 1
    ham_line = _index(lines, "Device,Camera,HamamatsuHam") + 1
    assert f"'ZeissCAN29' (line {zeiss_line})" in message
    assert f"'HamamatsuHam' (line {ham_line})" in message
    assert "--adapter-path" in error.hint


def test_unknown_adapter_and_device_name(tmp_path: Path) -> None:
    def zeiss_turret(lines: list[str]) -> int:
        at = _index(lines, "Device,Objective")
        lines[at] = "Device,Objective,ZeissCAN29,ZeissObjectiveTurret"
        return at + 1

    path, line = _variant(tmp_path, zeiss_turret)
    assert "'ZeissCAN29' not found" in str(_expect_error(path, line))

    def typo(lines: list[str]) -> int:
        at = _index(lines, "Device,Shutter")
        lines[at] = "Device,Shutter,DemoCamera,DShuter"
        return at + 1

    path, line = _variant(tmp_path, typo)
    assert "no device 'DShuter'" in str(_expect_error(path, line))


def test_objective_without_pixel_size(tmp_path: Path) -> None:
    def edit(lines: list[str]) -> int:
        lines[:] = [line for line in lines if "Res63x" not in line]
        return _index(lines, "Label,Objective,3") + 1

    path, line = _variant(tmp_path, edit)
    error = _expect_error(path, line)
    assert "'Plan-Apochromat 63x/1.43 Oil'" in str(error)
    assert "no pixel-size configuration" in str(error)


def test_pixel_size_for_an_undefined_label(tmp_path: Path) -> None:
    def edit(lines: list[str]) -> int:
        at = _index(lines, "ConfigPixelSize,Res63x")
        lines[at] = "ConfigPixelSize,Res63x,Objective,Label,Plan-Apochromat 63x/1.4 Oil"
        return at + 1

    path, line = _variant(tmp_path, edit)
    # the 63x label line has no pixel size now, and it comes first
    label_line = _index(path.read_text().splitlines(), "Label,Objective,3") + 1
    assert label_line < line
    _expect_error(path, label_line)


def test_python_device_line_without_prefix(tmp_path: Path) -> None:
    def edit(lines: list[str]) -> int:
        at = _index(lines, "#py Property,Core,Camera")
        lines[at] = "Property,Core,Camera,Camera"
        return at + 1

    path, line = _variant(tmp_path, edit)
    assert "lacks the '#py ' prefix" in str(_expect_error(path, line))


def test_misspelled_py_prefix(tmp_path: Path) -> None:
    def edit(lines: list[str]) -> int:
        at = _index(lines, "#py pyDevice,Camera")
        lines[at] = "# py pyDevice,Camera,acquire.sim.camera,WidefieldCamera"
        return at + 1

    path, line = _variant(tmp_path, edit)
    assert "#py pyDevice,Camera" in _expect_error(path, line).hint


def test_missing_role_has_no_line(tmp_path: Path) -> None:
    def edit(lines: list[str]) -> int:
        lines[:] = [ln for ln in lines if not ln.startswith("Property,Core,Shutter")]
        return 0

    path, _ = _variant(tmp_path, edit)
    assert "no shutter" in str(_expect_error(path, None))


def test_load_failure_is_reported_with_its_line(tmp_path: Path) -> None:
    # valid syntax and devices, but the loader rejects the value
    def edit(lines: list[str]) -> int:
        at = _index(lines, "FocusDirection")
        lines.insert(at, "Property,Objective,Label,No Such Objective")
        return at + 1

    path, line = _variant(tmp_path, edit)
    validate_config(path, adapter_paths=ADAPTERS)  # passes the pre-check
    with pytest.raises(ConfigError) as info:
        open_core(path, adapter_paths=ADAPTERS)
    assert info.value.line_number == line
    assert str(info.value).startswith(f"{path.resolve()}:{line}: ")
    assert info.value.line == "Property,Objective,Label,No Such Objective"


def test_scope_closes_the_core_on_errors() -> None:
    cores: list[UniMMCore] = []
    with (
        pytest.raises(RuntimeError, match="boom"),
        scope(WIDEFIELD, adapter_paths=ADAPTERS) as core,
    ):
        cores.append(core)
        raise RuntimeError("boom")
    assert cores[0].getLoadedDevices() == ("Core",)
