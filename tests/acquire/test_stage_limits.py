"""Stage soft limits: the #pairscope lines of a hardware configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from acquire.config.stage_limits import StageLimits, StageLimitsError, read_stage_limits
from acquire.errors import UserError

CONFIGS = Path(__file__).resolve().parents[2] / "hardware_configs"
DEMOS = [CONFIGS / "demo_widefield.cfg", CONFIGS / "demo_confocal.cfg"]

HEADER = "# test config\nDevice,XYStage,DemoCamera,DXYStage\n"


def cfg(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "scope.cfg"
    path.write_text(HEADER + body, encoding="utf-8")
    return path


def header_lines() -> int:
    return HEADER.count("\n")


@pytest.mark.parametrize("path", DEMOS, ids=lambda p: p.stem)
def test_demo_configs_carry_the_limits(path: Path) -> None:
    limits = read_stage_limits(path)
    assert limits.xy_um == (-30000.0, 30000.0, -30000.0, 30000.0)
    assert limits.z_um == (-2000.0, 2000.0)


def test_config_without_lines_limits_nothing(tmp_path: Path) -> None:
    limits = read_stage_limits(cfg(tmp_path, "Property,Core,XYStage,XYStage\n"))
    assert limits == StageLimits()
    assert limits.violation(1e9, -1e9, 1e9) is None


def test_reads_values_and_ignores_other_pairscope_commands(tmp_path: Path) -> None:
    body = (
        "#pairscope StageLimitsUm,XY,-100,200,-300.5,400\n"
        "#pairscope SomethingElse,1,2\n"
        "# #pairscope StageLimitsUm,XY,<x_min>,<x_max>,<y_min>,<y_max>\n"
        "  #pairscope StageLimitsUm, z , -5, 5\n"
    )
    limits = read_stage_limits(cfg(tmp_path, body))
    assert limits.xy_um == (-100.0, 200.0, -300.5, 400.0)
    assert limits.z_um == (-5.0, 5.0)


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("#pairscope StageLimitsUm,XY,-100,100,-100", "needs 4 numbers"),
        ("#pairscope StageLimitsUm,Z,-100", "needs 2 numbers"),
        ("#pairscope StageLimitsUm,XY,-100,100,-100,abc", "'abc' is not a number"),
        ("#pairscope StageLimitsUm,XY,100,-100,-100,100", "x minimum 100"),
        ("#pairscope StageLimitsUm,Z,5,5", "z minimum 5"),
        ("#pairscope StageLimitsUm,XY,-1,1,-1,nan", "finite"),
        ("#pairscope StageLimitsUm,R,0,360", "Unknown stage axis 'R'"),
        ("#pairscope StageLimitUm,XY,-1,1,-1,1", "did you mean 'StageLimitsUm'"),
        ("#pairscopeStageLimitsUm,Z,-1,1", "followed by a space"),
    ],
)
def test_malformed_lines_name_file_and_line(
    tmp_path: Path, line: str, fragment: str
) -> None:
    path = cfg(tmp_path, "Property,Core,XYStage,XYStage\n" + line + "\n")
    with pytest.raises(StageLimitsError) as info:
        read_stage_limits(path)
    err = info.value
    number = header_lines() + 2
    assert err.line == number
    assert str(err).startswith(f"{path}:{number}: ")
    assert fragment in str(err)
    assert isinstance(err, ValueError)
    assert isinstance(err, UserError)


def test_repeated_axis_is_an_error(tmp_path: Path) -> None:
    body = "#pairscope StageLimitsUm,Z,-1,1\n#pairscope StageLimitsUm,Z,-2,2\n"
    with pytest.raises(StageLimitsError, match="first is on line") as info:
        read_stage_limits(cfg(tmp_path, body))
    assert info.value.line == header_lines() + 2


def test_missing_config_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(StageLimitsError, match="cannot be read"):
        read_stage_limits(tmp_path / "absent.cfg")


LIMITS = StageLimits(xy_um=(-100.0, 100.0, -50.0, 50.0), z_um=(0.0, 10.0))


@pytest.mark.parametrize(
    ("xyz", "fragment"),
    [
        ((0.0, 0.0, 5.0), None),
        ((100.0, -50.0, 10.0), None),  # on the limits is inside
        ((None, None, None), None),
        ((100.5, 0.0, 5.0), "x = 100.5 um"),
        ((0.0, -51.0, 5.0), "y = -51 um"),
        ((0.0, 0.0, -0.1), "z = -0.1 um"),
        ((None, 60.0, None), "y = 60 um"),
        ((float("nan"), 0.0, 0.0), "x = nan"),
    ],
)
def test_violation_and_check(
    xyz: tuple[float | None, float | None, float | None], fragment: str | None
) -> None:
    text = LIMITS.violation(*xyz)
    if fragment is None:
        assert text is None
        LIMITS.check(*xyz)
        return
    assert text is not None
    assert fragment in text
    with pytest.raises(ValueError, match="outside"):
        LIMITS.check(*xyz)


def test_only_given_axes_are_limited() -> None:
    z_only = StageLimits(z_um=(-1.0, 1.0))
    assert z_only.violation(1e6, 1e6, 0.0) is None
    assert z_only.violation(0.0, 0.0, 2.0) is not None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"xy_um": (1.0, -1.0, -1.0, 1.0)},
        {"xy_um": (-1.0, 1.0, 1.0, 1.0)},
        {"z_um": (0.0, float("inf"))},
    ],
)
def test_impossible_limits_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        StageLimits(**kwargs)  # type: ignore[arg-type]
