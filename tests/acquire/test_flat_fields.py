"""Flat fields given to the fiducial search: read, checked, and applied.

The detector's own use of a flat field (dividing out strong vignetting) is
tested in test_mark_detection.py on independently rendered images; here the
application's side: ``--flat-field OBJECTIVE=PATH`` reaches the detector for
frames through that objective, and bad flats stop with one message before
the stage moves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

import acquire.workflows.fiducial_search as fiducial_search
from acquire.cli.main import app
from acquire.errors import UserError
from acquire.workflows.flat_fields import check_flat_fields, parse_flat_field_specs
from correlate.fiducials.detect import MarkDetectionError

CONFIGS = Path(__file__).resolve().parents[2] / "hardware_configs"
HOLDER = CONFIGS / "demo_holder.json"
SEARCH = "EC Plan-Neofluar 10x/0.3 Air"  # the demo's search objective


@pytest.fixture(scope="module")
def widefield_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo wide-field with a small, instantly read camera."""
    config = tmp_path_factory.mktemp("flat") / "widefield.cfg"
    config.write_text(
        (CONFIGS / "demo_widefield.cfg").read_text()
        + "\n#py Property,Camera,RealTiming,No"
        + "\n#py Property,Camera,SensorWidthPx,96"
        + "\n#py Property,Camera,SensorHeightPx,64\n"
    )
    return config


def _fiducials(config: Path, out: Path, *flat_args: str) -> tuple[int, str]:
    args = ["fiducials", "--config", str(config), "--holder", str(HOLDER)]
    args += ["--out", str(out), *flat_args]
    result = CliRunner().invoke(app, args)
    return result.exit_code, result.output


def test_a_stack_of_flat_frames_is_averaged(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    stack = rng.uniform(900, 1100, size=(5, 12, 16)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "flat.tif", stack)
    np.save(tmp_path / "flat.npy", stack[0])
    flats = parse_flat_field_specs(
        [f"10x={tmp_path / 'flat.tif'}", f" 40x = {tmp_path / 'flat.npy'}"]
    )
    assert sorted(flats) == ["10x", "40x"]
    np.testing.assert_allclose(flats["10x"].image, stack.mean(axis=0, dtype=float))
    np.testing.assert_array_equal(flats["40x"].image, stack[0].astype(float))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("10x", "is not OBJECTIVE=PATH"),
        ("=flat.npy", "is not OBJECTIVE=PATH"),
        ("10x=missing.npy", "no such file"),
        ("10x=nan.npy", "NaN or infinite"),
        ("10x=line.npy", "not one camera frame"),
        ("10x=text.tif", "cannot be read as an image"),
    ],
)
def test_bad_flat_files_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spec: str, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    np.save("nan.npy", np.full((8, 8), np.nan))
    np.save("line.npy", np.ones(8))
    Path("text.tif").write_text("not a tiff")
    with pytest.raises(UserError, match=message):
        parse_flat_field_specs([spec])


def test_an_objective_given_twice_is_refused(tmp_path: Path) -> None:
    np.save(tmp_path / "f.npy", np.ones((8, 8)))
    spec = f"10x={tmp_path / 'f.npy'}"
    with pytest.raises(UserError, match="names objective '10x' twice"):
        parse_flat_field_specs([spec, spec])


def test_flats_must_fit_the_turret_and_the_camera(tmp_path: Path) -> None:
    np.save(tmp_path / "f.npy", np.ones((8, 8)))
    flats = parse_flat_field_specs([f"10x={tmp_path / 'f.npy'}"])
    check_flat_fields(flats, objectives=["10x", "40x"], frame_shape=(8, 8))
    with pytest.raises(UserError, match=r"no objective '10x' on the turret"):
        check_flat_fields(flats, objectives=["20x"], frame_shape=(8, 8))
    with pytest.raises(UserError, match=r"8 x 8 pixels but the camera's .* 8 x 9"):
        check_flat_fields(flats, objectives=["10x"], frame_shape=(8, 9))
    dim = np.full((8, 8), 500.0)
    dim[3, 5] = 90.0
    np.save(tmp_path / "f.npy", dim)
    flats = parse_flat_field_specs([f"10x={tmp_path / 'f.npy'}"])
    check_flat_fields(flats, objectives=["10x"], frame_shape=(8, 8), dark_level=80)
    with pytest.raises(UserError, match=r"1 pixels at or below .* 100 .*row 3, col 5"):
        check_flat_fields(flats, objectives=["10x"], frame_shape=(8, 8), dark_level=100)


def test_a_flat_of_the_wrong_size_stops_the_command_before_the_search(
    widefield_config: Path, tmp_path: Path
) -> None:
    np.save(tmp_path / "flat.npy", np.ones((64, 64)))
    out = tmp_path / "session.json"
    code, output = _fiducials(
        widefield_config, out, "--flat-field", f"{SEARCH}={tmp_path / 'flat.npy'}"
    )
    assert code == 2, output
    assert "64 x 64 pixels but the camera's frames are 64 x 96" in output
    assert "Traceback" not in output and not out.exists()


def test_the_search_divides_frames_by_their_objectives_flat(
    widefield_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The detector gets the flat (and dark level) of the objective in use."""
    flat = np.linspace(500.0, 1500.0, 64 * 96).reshape(64, 96)
    np.save(tmp_path / "flat.npy", flat)
    seen: list[dict[str, Any]] = []

    def recording_detector(image: Any, **options: Any) -> tuple[()]:
        seen.append(options)
        raise MarkDetectionError("recorded")  # stop the search at the first frame

    monkeypatch.setattr(fiducial_search, "detect_marks", recording_detector)
    # the small field at the stage's origin shows nothing to focus on
    monkeypatch.setattr(fiducial_search, "autofocus", lambda *a, **k: 0.0)
    code, output = _fiducials(
        widefield_config,
        tmp_path / "session.json",
        "--flat-field",
        f"{SEARCH}={tmp_path / 'flat.npy'}",
        "--dark-level",
        "100",
    )
    assert code == 2 and f"objective {SEARCH!r}" in output, output
    assert "recorded" in output
    assert len(seen) == 1
    np.testing.assert_array_equal(seen[0]["flat_field"], flat)
    assert seen[0]["dark_level"] == 100.0


def test_a_negative_dark_level_is_refused(
    widefield_config: Path, tmp_path: Path
) -> None:
    code, output = _fiducials(
        widefield_config, tmp_path / "s.json", "--dark-level", "-5"
    )
    assert code == 2 and "--dark-level -5.0 is not a camera offset" in output
