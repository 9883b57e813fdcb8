"""The ``pairscope`` command, run as a real subprocess (exit codes included)."""

from __future__ import annotations

import contextlib
import math
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import tifffile
from acquire_helpers import pairscope
from typer.testing import CliRunner

from acquire import __version__
from acquire.cli.main import app

if TYPE_CHECKING:
    from collections.abc import Iterator

CONFIGS = Path(__file__).resolve().parents[2] / "hardware_configs"
WIDEFIELD = CONFIGS / "demo_widefield.cfg"
CONFOCAL = CONFIGS / "demo_confocal.cfg"
ZEISS = CONFIGS / "zeiss_axioobserver_orca_TEMPLATE.cfg"
OME = {"ome": "http://www.openmicroscopy.org/Schemas/OME/2016-06"}
OBJECTIVE_63X = "Plan-Apochromat 63x/1.43 Oil"


def assert_user_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    """Exit code 2, one error line on stderr, no traceback."""
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("pairscope: error: ")
    for needle in needles:
        assert needle in lines[0]


def test_version_through_the_entry_point(tmp_path: Path) -> None:
    script = shutil.which("pairscope", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip("the pairscope console script is not installed")
    result = subprocess.run(
        [script, "--version"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"pairscope {__version__}"


def test_version(tmp_path: Path) -> None:
    result = pairscope("--version", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.strip() == f"pairscope {__version__}"


@pytest.mark.parametrize(
    ("cfg", "expected"),
    [
        (
            WIDEFIELD,
            {"Plan-Apochromat 40x/1.3 Oil": "0.1625", OBJECTIVE_63X: "0.103175"},
        ),
        (CONFOCAL, {"Plan-Apochromat 40x/1.4 Oil": "0.1"}),
    ],
    ids=["widefield", "confocal"],
)
def test_info_lists_objectives_and_pixel_sizes(
    tmp_path: Path, cfg: Path, expected: dict[str, str]
) -> None:
    result = pairscope("info", "--config", cfg, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "acquire.sim.camera" in result.stdout
    objectives = result.stdout.split("Objectives (Objective)")[1]
    for label, size in expected.items():
        row = next(line for line in objectives.splitlines() if label in line)
        assert f" {size} " in row, row
    for role in ("Camera", "Shutter", "ZStage", "XYStage"):
        assert role in result.stdout


def test_snap_writes_ome_tiff_and_refuses_to_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "snap.ome.tif"
    args: list[str | Path] = ["snap", "--config", WIDEFIELD, "--out", out]
    result = pairscope(
        *args,
        "--objective",
        OBJECTIVE_63X,
        "--exposure-ms",
        "20",
        "--xy",
        "100",
        "-50",
        "--z",
        "3",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert out.is_file()
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temp files left

    with tifffile.TiffFile(out) as tif:
        assert tif.is_ome
        image = tif.asarray()
        root = ET.fromstring(tif.ome_metadata or "")
    assert image.shape == (512, 512)
    assert image.dtype == np.uint16
    assert image.max() > image.min()
    pixels = root.find("ome:Image/ome:Pixels", OME)
    assert pixels is not None
    assert float(pixels.get("PhysicalSizeX", "nan")) == pytest.approx(6.5 / 63)
    assert float(pixels.get("PhysicalSizeY", "nan")) == pytest.approx(6.5 / 63)
    assert pixels.get("PhysicalSizeXUnit") == "\u00b5m"
    plane = pixels.find("ome:Plane", OME)
    assert plane is not None
    assert float(plane.get("PositionX", "nan")) == pytest.approx(100.0, abs=0.1)
    assert float(plane.get("PositionY", "nan")) == pytest.approx(-50.0, abs=0.1)
    assert float(plane.get("PositionZ", "nan")) == pytest.approx(3.0, abs=0.1)
    assert float(plane.get("ExposureTime", "nan")) == pytest.approx(20.0)
    objective = root.find("ome:Instrument/ome:Objective", OME)
    assert objective is not None
    assert objective.get("Model") == OBJECTIVE_63X
    assert float(objective.get("LensNA", "nan")) == pytest.approx(1.43)
    detector = root.find("ome:Instrument/ome:Detector", OME)
    assert detector is not None
    assert detector.get("Model") == "Camera"

    before = out.read_bytes()
    again = pairscope(*args, cwd=tmp_path)
    assert_user_error(again, "already exists", "--overwrite")
    assert out.read_bytes() == before


def test_broken_config_names_file_and_line(tmp_path: Path) -> None:
    lines = WIDEFIELD.read_text(encoding="utf-8").splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("Device,ZStage"))
    lines[at] = "Device,ZStage,DemoCamera"
    broken = tmp_path / "broken.cfg"
    broken.write_text("\n".join(lines), encoding="utf-8")
    result = pairscope("info", "--config", broken, cwd=tmp_path)
    assert_user_error(result, f"{broken}:{at + 1}:", "Device,<label>")


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["info", "--config", "missing.cfg"], ["missing.cfg", "not found"]),
        (["info", "--config", ZEISS], ["ZeissCAN29", "not found", ".cfg:"]),
        (
            ["snap", "--config", WIDEFIELD, "--out", "image.tif"],
            [".ome.tif", "--out"],
        ),
        (
            ["snap", "--config", WIDEFIELD, "--out", "no/such/dir/x.ome.tif"],
            ["does not exist"],
        ),
        (
            [
                "snap",
                "--config",
                WIDEFIELD,
                "--out",
                "x.ome.tif",
                "--exposure-ms",
                "-1",
            ],
            ["--exposure-ms", "positive"],
        ),
        (
            ["snap", "--config", WIDEFIELD, "--out", "x.ome.tif", "--objective", "99x"],
            ["--objective", "99x", OBJECTIVE_63X],
        ),
        (["demo", "--out", "full"], ["already holds data"]),
        (["demo", "--out", "a_file.txt"], ["is a file"]),
        (["demo", "--out", "fresh", "--seed", "-4"], ["--seed"]),
    ],
    ids=[
        "missing-config",
        "adapter-not-found",
        "bad-extension",
        "missing-folder",
        "bad-exposure",
        "unknown-objective",
        "demo-folder-not-empty",
        "demo-out-is-file",
        "bad-seed",
    ],
)
def test_user_errors_exit_2_with_one_message(
    tmp_path: Path, args: list[str | Path], needles: list[str]
) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "old_data.ome.tif").write_bytes(b"x")
    (tmp_path / "a_file.txt").write_text("x")
    result = pairscope(*args, cwd=tmp_path)
    assert_user_error(result, *needles)
    assert not (tmp_path / "x.ome.tif").exists()
    assert not (tmp_path / "fresh").exists()


def test_unparsable_option_exits_2_without_traceback(tmp_path: Path) -> None:
    result = pairscope(
        "snap", "--config", WIDEFIELD, "--out", "x.ome.tif", "--exposure-ms", "abc",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    assert "Traceback" not in result.stdout + result.stderr
    assert "--exposure-ms" in result.stderr


def test_snap_refuses_an_absurd_exposure_before_opening_the_scope(
    tmp_path: Path,
) -> None:
    result = pairscope(
        "snap", "--config", WIDEFIELD, "--out", "x.ome.tif", "--exposure-ms", "1e9",
        cwd=tmp_path,
    )  # fmt: skip
    assert_user_error(result, "--exposure-ms", "0 < exposure <= 60000 ms")
    assert "camera" not in result.stderr  # refused by the CLI, not by the device
    assert list(tmp_path.iterdir()) == []


def test_snap_checks_the_cameras_own_exposure_limits(tmp_path: Path) -> None:
    # DemoCamera's DCam publishes Exposure limits of 0 to 10000 ms.
    text = WIDEFIELD.read_text(encoding="utf-8").replace(
        "#py pyDevice,Camera,acquire.sim.camera,WidefieldCamera",
        "Device,Camera,DemoCamera,DCam",
    )
    lines = [ln for ln in text.splitlines() if not ln.startswith("#py Property,Camera")]
    assert "Device,Camera,DemoCamera,DCam" in lines
    cfg = tmp_path / "dcam.cfg"
    cfg.write_text("\n".join(lines), encoding="utf-8")
    result = pairscope(
        "snap", "--config", cfg, "--out", "x.ome.tif", "--exposure-ms", "20000",
        cwd=tmp_path,
    )  # fmt: skip
    assert_user_error(result, "--exposure-ms", "'Camera'", "0 < exposure <= 10000 ms")
    assert not (tmp_path / "x.ome.tif").exists()


@pytest.mark.parametrize(
    ("position", "needles"),
    [
        (["--xy", "1e9", "1e9"], ["refusing to move the stage", "StageLimitsUm"]),
        (["--z", "1e5"], ["refusing to move the stage", "StageLimitsUm"]),
        (["--xy", "nan", "0"], ["--xy nan is not valid"]),
    ],
)
def test_snap_never_sends_the_stage_past_its_soft_limits(
    tmp_path: Path, position: list[str], needles: list[str]
) -> None:
    out = tmp_path / "x.ome.tif"
    args = ["snap", "--config", str(WIDEFIELD), "--out", str(out), *position]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    for needle in needles:
        assert needle in result.output
    assert "Traceback" not in result.output
    assert not out.exists()


def test_take_snapshot_refuses_a_position_that_is_not_finite() -> None:
    from acquire.errors import UserError
    from acquire.hardware.snapshot import take_snapshot

    with pytest.raises(UserError, match=r"--z inf is not a position"):
        take_snapshot(
            WIDEFIELD, None, exposure_ms=10.0, objective=None, xy=None, z=math.inf
        )


def _all_commands(command: Any, path: str = "pairscope") -> Iterator[tuple[str, Any]]:
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _all_commands(sub, f"{path} {name}")


def test_flags_show_as_switches_not_values() -> None:
    """``--resume`` takes no value; help that shows ``<bool>`` invites one."""
    import typer.main

    root = typer.main.get_command(app)
    flags = [
        (path, param.name)
        for path, command in _all_commands(root)
        for param in command.params
        # typer's own --help, --install-completion and --show-completion aside
        if getattr(param, "is_flag", False)
        and param.name not in {"help", "install_completion", "show_completion"}
    ]
    assert ("pairscope acquire", "resume") in flags
    assert len(flags) >= 15
    shown = {
        (path, param.name): param.metavar
        for path, command in _all_commands(root)
        for param in command.params
        if (path, param.name) in flags
    }
    assert all(metavar == "" for metavar in shown.values()), shown
    help_text = CliRunner().invoke(app, ["acquire", "--help"]).output
    resume_line = next(line for line in help_text.splitlines() if "--resume" in line)
    assert "<bool>" not in resume_line


def test_shipped_configs_are_found_by_name_from_any_folder(tmp_path: Path) -> None:
    from acquire.config.bundled import resolve_config_path

    for name in ("demo_widefield.cfg", "hardware_configs/demo_confocal.cfg"):
        result = pairscope("info", "--config", name, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        shipped = CONFIGS / Path(name).name
        with contextlib.chdir(tmp_path):
            assert resolve_config_path(Path(name)) == shipped
        assert shipped.name in result.stdout
    # a file of that name in the working folder is the one meant
    local = tmp_path / "demo_widefield.cfg"
    local.write_text("# a local copy\n")
    with contextlib.chdir(tmp_path):
        assert resolve_config_path(Path("demo_widefield.cfg")) == Path(
            "demo_widefield.cfg"
        )
    # any other missing name is still one clear message
    missing = pairscope("info", "--config", "nosuch.cfg", cwd=tmp_path)
    assert missing.returncode == 2
    assert "nosuch.cfg" in missing.stderr and "not found" in missing.stderr


def test_gui_checks_its_adapter_folders_before_any_window(tmp_path: Path) -> None:
    missing = str(tmp_path / "x")
    args = ["gui", "--config", "demo_widefield.cfg", "--adapter-path", missing]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "adapter folder" in result.output and "does not exist" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("typed", "offered"),
    [
        ("pairscope ac", {"acquire"}),
        ("pairscope pairs a", {"acquire"}),
        ("pairscope acquire --re", {"--resume", "--retries", "--retry-backoff-ms"}),
    ],
)
def test_shell_completion_offers_commands_and_options(
    typed: str, offered: set[str]
) -> None:
    env = {
        "_PAIRSCOPE_COMPLETE": "complete_bash",
        "COMP_WORDS": typed,
        "COMP_CWORD": str(len(typed.split()) - 1),
    }
    result = CliRunner().invoke(app, [], env=env, prog_name="pairscope")
    assert result.exit_code == 0
    assert set(result.output.split()) == offered
