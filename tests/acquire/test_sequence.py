"""Sequence files: strict reading with file and line, planning and caps."""

from __future__ import annotations

import itertools
import json
import math
import time
from typing import TYPE_CHECKING

import pytest
import useq
from rich.console import Console

from acquire.config.stage_limits import StageLimits
from acquire.errors import UserError
from acquire.sequence.limits import SequenceLimits
from acquire.sequence.plan import AcquisitionPlan, StackKey, plan_acquisition, stack_key
from acquire.sequence.read import load_sequence, parse_sequence
from acquire.sequence.source import SequenceError
from acquire.sequence.table import describe_plan

if TYPE_CHECKING:
    from pathlib import Path


def write(tmp_path: Path, text: str, name: str = "seq.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def line_of(text: str, needle: str, nth: int = 1) -> int:
    """1-based line of the ``nth`` line containing ``needle`` (independent of YAML)."""
    hits = [i for i, line in enumerate(text.splitlines(), start=1) if needle in line]
    return hits[nth - 1]


def load_error(tmp_path: Path, text: str, name: str = "seq.yaml") -> SequenceError:
    path = write(tmp_path, text, name)
    with pytest.raises(SequenceError) as info:
        load_sequence(path)
    err = info.value
    assert err.path == path
    return err


# -- unknown keys -----------------------------------------------------------


TOP_TYPO = """\
channels:
  - config: GFP
    exposure: 10
z_plna:
  range: 4
  step: 1
"""

POSITION_TYPO = """\
stage_positions:
  - x: 100
    y: 200
    z: 10
  - x: 300
    yy: 400
    z: 10
"""

ZPLAN_TYPO = """\
channels: [GFP]
z_plan:
  range: 4
  step: 0.5
  go_pu: false
"""


def test_unknown_top_level_key_names_line_and_suggests(tmp_path: Path) -> None:
    err = load_error(tmp_path, TOP_TYPO)
    assert err.line == line_of(TOP_TYPO, "z_plna")
    assert "'z_plna'" in err.what
    assert "Did you mean 'z_plan'?" in err.hint
    assert str(err).startswith(f"{tmp_path / 'seq.yaml'}:{err.line}: Unknown key")
    assert isinstance(err, UserError)


def test_unknown_key_inside_a_position(tmp_path: Path) -> None:
    err = load_error(tmp_path, POSITION_TYPO)
    assert err.line == line_of(POSITION_TYPO, "yy:")
    assert "'yy'" in err.what
    assert "stage_positions[1]" in err.what
    assert "Did you mean 'y'?" in err.hint


def test_unknown_key_inside_z_plan(tmp_path: Path) -> None:
    err = load_error(tmp_path, ZPLAN_TYPO)
    assert err.line == line_of(ZPLAN_TYPO, "go_pu")
    assert "'z_plan'" in err.what
    assert "Did you mean 'go_up'?" in err.hint


def test_misspelled_required_key_gets_did_you_mean(tmp_path: Path) -> None:
    text = "z_plan:\n  range: 4\n  stpe: 1\n"
    err = load_error(tmp_path, text)
    assert err.line == line_of(text, "stpe")
    assert "Did you mean 'step'?" in err.hint


@pytest.mark.parametrize(
    ("text", "needle", "suggestion"),
    [
        (
            "stage_positions:\n  - x: 1\n    sequence:\n      z_plan:\n"
            "        range: 2\n        step: 1\n        bottum: 3\n",
            "bottum",
            None,
        ),
        ("channels:\n  - config: GFP\n    exposre: 10\n", "exposre", "exposure"),
        (
            "grid_plan:\n  rows: 2\n  columns: 2\n  overlapp: 10\n",
            "overlapp",
            "overlap",
        ),
        (
            "time_plan:\n  phases:\n    - interval: 1\n      loops: 2\n"
            "    - interval: 5\n      loops: 3\n      prioritise_duration: true\n",
            "prioritise",
            "prioritize_duration",
        ),
        (
            "autofocus_plan:\n  axes: [p]\n  autofocus_device_nam: AF\n",
            "device_nam",
            "autofocus_device_name",
        ),
    ],
)
def test_unknown_keys_at_any_depth(
    tmp_path: Path, text: str, needle: str, suggestion: str | None
) -> None:
    err = load_error(tmp_path, text)
    assert err.line == line_of(text, needle)
    if suggestion is not None:
        assert f"Did you mean '{suggestion}'?" in err.hint


def test_key_of_another_kind_of_plan_is_rejected(tmp_path: Path) -> None:
    # 'top' belongs to a top/bottom plan, not to a range plan: useq drops it.
    text = "z_plan:\n  range: 4\n  step: 1\n  top: 3\n"
    err = load_error(tmp_path, text)
    assert err.line == line_of(text, "top")
    assert "'top'" in err.what


def test_keys_useq_renames_are_not_unknown() -> None:
    # useq reads a position's old 'row' key as 'grid_row'.
    sequence = parse_sequence("stage_positions:\n  - x: 1\n    row: 2\n")
    assert isinstance(sequence.stage_positions, tuple)
    assert sequence.stage_positions[0].grid_row == 2


def test_free_form_metadata_is_not_checked() -> None:
    sequence = parse_sequence("metadata:\n  anything: 1\n  goes: {here: true}\n")
    assert sequence.metadata == {"anything": 1, "goes": {"here": True}}


def test_every_key_useq_itself_writes_is_accepted() -> None:
    original = useq.MDASequence.model_validate(
        {
            "metadata": {"experiment": "pairs"},
            "axis_order": "tpgcz",
            "stage_positions": [
                {"x": 1, "y": 2, "z": 3, "name": "a"},
                {
                    "x": 10,
                    "y": 20,
                    "z": 30,
                    "name": "b",
                    "sequence": {
                        "grid_plan": {"rows": 2, "columns": 1},
                        "z_plan": {"above": 1, "below": 2, "step": 0.5},
                    },
                },
            ],
            "channels": [{"config": "GFP", "exposure": 20, "acquire_every": 1}],
            "z_plan": {"range": 4, "step": 1, "go_up": False},
            "time_plan": {
                "phases": [
                    {"interval": 1, "loops": 2},
                    {"interval": 2, "duration": 10},
                ]
            },
            "autofocus_plan": {"axes": ["p"], "autofocus_device_name": "AF"},
            "keep_shutter_open_across": ["z"],
        }
    )
    text = original.yaml()
    assert text is not None
    assert parse_sequence(text) == original


# -- values useq accepts but no acquisition can mean --------------------------------


@pytest.mark.parametrize("step", ["0", "-1"])
def test_z_step_of_zero_or_below_is_an_error(tmp_path: Path, step: str) -> None:
    text = f"channels: [GFP]\nz_plan:\n  range: 4\n  step: {step}\n"
    err = load_error(tmp_path, text)
    assert err.line == line_of(text, "step:")
    assert "z_plan.step" in err.what
    assert "above 0" in err.what


@pytest.mark.parametrize("step", ["0", "-1"])
def test_z_step_in_a_position_sub_sequence(tmp_path: Path, step: str) -> None:
    text = (
        "stage_positions:\n"
        "  - x: 1\n"
        "  - x: 2\n"
        "    sequence:\n"
        f"      z_plan: {{top: 10, bottom: 0, step: {step}}}\n"
    )
    err = load_error(tmp_path, text)
    assert err.line == line_of(text, "z_plan")
    assert "stage_positions[1].sequence.z_plan.step" in err.what


@pytest.mark.parametrize("exposure", ["0", "-5"])
def test_exposure_of_zero_or_below_is_an_error(tmp_path: Path, exposure: str) -> None:
    text = f"channels:\n  - config: DAPI\n  - config: GFP\n    exposure: {exposure}\n"
    err = load_error(tmp_path, text)
    assert err.line == line_of(text, "exposure")
    assert "channels[1].exposure" in err.what


def test_empty_channel_name_is_an_error(tmp_path: Path) -> None:
    text = "channels:\n  - config: GFP\n  - config: ''\n"
    err = load_error(tmp_path, text)
    assert err.line == line_of(text, "config: ''")
    assert "channels[1]" in err.what


def test_grid_with_zero_rows_is_an_error(tmp_path: Path) -> None:
    # useq turns this into a single relative position without a word.
    text = "grid_plan:\n  rows: 0\n  columns: 3\n"
    err = load_error(tmp_path, text)
    assert err.line == line_of(text, "rows")
    assert "grid_plan.rows" in err.what


@pytest.mark.parametrize(
    "text",
    [
        "time_plan:\n  interval: 0\n  duration: 10\n",  # useq divides by zero
        "time_plan:\n  duration: 10\n  loops: 1\n",
    ],
)
def test_time_plan_that_cannot_be_expanded(tmp_path: Path, text: str) -> None:
    err = load_error(tmp_path, text)
    assert err.line == line_of(text, "time_plan")
    assert "time points" in err.what


def test_z_plan_without_planes_is_an_error(tmp_path: Path) -> None:
    text = "z_plan:\n  top: 0\n  bottom: 10\n  step: 1\n"
    err = load_error(tmp_path, text)
    assert err.line == line_of(text, "z_plan")
    assert "no z planes" in err.what


def test_plan_outside_explicit_axis_order_is_an_error(tmp_path: Path) -> None:
    text = "axis_order: tpgc\nz_plan: {range: 2, step: 1}\n"
    err = load_error(tmp_path, text)
    assert err.line == line_of(text, "axis_order")
    assert "'z'" in err.what


def test_duplicate_key_is_an_error(tmp_path: Path) -> None:
    text = "channels: [GFP]\nz_plan: {range: 2, step: 1}\nchannels: [DAPI]\n"
    err = load_error(tmp_path, text)
    assert err.line == line_of(text, "channels", nth=2)
    assert "twice" in err.what


def test_value_error_names_key_path_and_line(tmp_path: Path) -> None:
    text = "stage_positions:\n  - x: 1\n  - x: 2\n  - x: far\n"
    err = load_error(tmp_path, text)
    assert err.line == line_of(text, "far")
    assert "stage_positions[2].x" in err.what


def test_missing_required_key(tmp_path: Path) -> None:
    text = "channels: [GFP]\nz_plan:\n  range: 4\n"
    err = load_error(tmp_path, text)
    assert err.line == line_of(text, "z_plan")
    assert "'step'" in err.what


# -- files and syntax ---------------------------------------------------------------


def test_malformed_yaml_reports_line(tmp_path: Path) -> None:
    text = "channels: [GFP]\nz_plan:\n  range: 4\n   step: 1\n"
    err = load_error(tmp_path, text)
    assert err.line == line_of(text, "step")
    assert "not valid YAML" in err.what


def test_unclosed_bracket_reports_line(tmp_path: Path) -> None:
    text = "channels: [GFP, DAPI\nz_plan:\n  range: 4\n"
    err = load_error(tmp_path, text)
    assert err.line in {1, 2}
    assert "not valid YAML" in err.what


@pytest.mark.parametrize(
    ("text", "kind"), [("- GFP\n- DAPI\n", "list"), ("just text\n", "str")]
)
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str, kind: str) -> None:
    err = load_error(tmp_path, text)
    assert "mapping" in err.what
    assert kind in err.what


def test_empty_file_is_an_error(tmp_path: Path) -> None:
    err = load_error(tmp_path, "# nothing here\n")
    assert "empty" in err.what


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SequenceError, match="does not exist") as info:
        load_sequence(tmp_path / "nope.yaml")
    assert str(info.value).startswith(f"{tmp_path / 'nope.yaml'}: ")


def test_binary_file_is_not_a_sequence(tmp_path: Path) -> None:
    path = tmp_path / "image.yaml"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00")
    with pytest.raises(SequenceError, match="not a text file"):
        load_sequence(path)


def test_directory_is_not_a_sequence(tmp_path: Path) -> None:
    with pytest.raises(SequenceError, match="folder"):
        load_sequence(tmp_path)


def test_parse_sequence_names_its_source() -> None:
    with pytest.raises(SequenceError) as info:
        parse_sequence("z_plan: {range: 2, step: 0}\n", source="<inline>")
    assert str(info.value).startswith("<inline>:1: ")
    assert info.value.path is None


VALID_YAML = """\
channels:
  - config: GFP
    exposure: 20
z_plan:
  range: 2
  step: 1
stage_positions:
  - {x: 1, y: 2, z: 3, name: cell-1}
"""


def test_json_sequence_reads_like_yaml(tmp_path: Path) -> None:
    data = {
        "channels": [{"config": "GFP", "exposure": 20}],
        "z_plan": {"range": 2, "step": 1},
        "stage_positions": [{"x": 1, "y": 2, "z": 3, "name": "cell-1"}],
    }
    from_json = load_sequence(write(tmp_path, json.dumps(data, indent=2), "s.json"))
    from_yaml = load_sequence(write(tmp_path, VALID_YAML))
    assert from_json == from_yaml
    assert len(list(from_json)) == 3


def test_json_unknown_key_has_line(tmp_path: Path) -> None:
    data = {"channels": ["GFP"], "z_plan": {"range": 2, "step": 1, "stepp": 2}}
    text = json.dumps(data, indent=2)
    err = load_error(tmp_path, text, "s.json")
    assert err.line == line_of(text, '"stepp"')


def test_malformed_json_reports_line(tmp_path: Path) -> None:
    text = '{\n  "channels": ["GFP"],\n  "z_plan": {"range": 2 "step": 1}\n}\n'
    err = load_error(tmp_path, text, "s.json")
    assert err.line == 3
    assert "not valid JSON" in err.what


# -- planning -----------------------------------------------------------------------

FULL = """\
axis_order: tpgcz
channels:
  - {config: DAPI, exposure: 10}
  - {config: GFP, exposure: 30}
z_plan: {range: 4, step: 1}
stage_positions:
  - {x: 100, y: 100, z: 10, name: cell-a}
  - {x: 2000, y: 100, z: 10, name: cell-b}
  - {x: 100, y: 2000, z: 10, name: cell-c}
grid_plan: {rows: 2, columns: 3}
time_plan: {interval: 10, loops: 4}
"""
N_T, N_P, N_G, N_C, N_Z = 4, 3, 6, 2, 5
SHAPE = (256, 512)


def full_plan(tmp_path: Path, **kwargs: object) -> AcquisitionPlan:
    sequence = load_sequence(write(tmp_path, FULL))
    options: dict[str, object] = {
        "frame_shape": SHAPE,
        "bytes_per_pixel": 2,
        "default_exposure_ms": 50.0,
        "overhead_ms_per_frame": 5.0,
        "pixel_size_um": 0.5,
    }
    options.update(kwargs)
    return plan_acquisition(sequence, **options)  # type: ignore[arg-type]


def test_plan_counts_frames_stacks_and_bytes(tmp_path: Path) -> None:
    plan = full_plan(tmp_path)
    frames = N_T * N_P * N_G * N_C * N_Z
    assert plan.n_frames == frames
    expected = tuple(
        StackKey(t, p, g)
        for t, p, g in itertools.product(range(N_T), range(N_P), range(N_G))
    )
    assert plan.stacks == expected
    assert set(plan.planes_per_stack.values()) == {N_C * N_Z}
    assert plan.total_bytes == frames * SHAPE[0] * SHAPE[1] * 2
    assert dict(plan.axis_sizes) == {"t": N_T, "p": N_P, "g": N_G, "c": N_C, "z": N_Z}
    assert plan.channel_names == ("DAPI", "GFP")


def test_plan_duration_follows_time_plan_when_it_dominates(tmp_path: Path) -> None:
    plan = full_plan(tmp_path)
    per_time_point_s = N_P * N_G * N_Z * ((10 + 5) + (30 + 5)) / 1000
    assert per_time_point_s < 10  # the 10 s interval dominates
    assert plan.estimated_duration_s == pytest.approx(3 * 10 + per_time_point_s)


def test_plan_duration_is_frame_time_when_acquisition_dominates(tmp_path: Path) -> None:
    plan = full_plan(tmp_path, overhead_ms_per_frame=100.0)
    per_time_point_s = N_P * N_G * N_Z * ((10 + 100) + (30 + 100)) / 1000
    assert per_time_point_s > 10
    assert plan.estimated_duration_s == pytest.approx(N_T * per_time_point_s)


def test_plan_grid_positions_use_the_camera_field_of_view(tmp_path: Path) -> None:
    plan = full_plan(tmp_path)
    first = next(iter(plan.sequence))
    fov_width_um = SHAPE[1] * 0.5
    # 3 columns centred on x = 100: the first tile is one field of view left.
    assert first.x_pos == pytest.approx(100 - fov_width_um)
    assert plan.sequence.grid_plan is not None
    assert plan.sequence.grid_plan.fov_width == pytest.approx(fov_width_um)


def test_sub_sequences_per_position(tmp_path: Path) -> None:
    text = """\
channels: [GFP]
z_plan: {range: 4, step: 1}
stage_positions:
  - {x: 0, y: 0, z: 0}
  - x: 10
    y: 0
    z: 0
    sequence:
      channels: [GFP, DAPI]
      z_plan: {range: 2, step: 1}
  - x: 20
    y: 0
    z: 0
    sequence:
      grid_plan: {rows: 1, columns: 2, fov_width: 100, fov_height: 100}
"""
    plan = plan_acquisition(
        load_sequence(write(tmp_path, text)),
        frame_shape=(64, 64),
        bytes_per_pixel=1,
        default_exposure_ms=10.0,
    )
    # position 0: 1 channel x 5 planes; position 1: 2 channels x 3 planes;
    # position 2: 2 tiles of 1 channel x 5 planes each.
    assert dict(plan.planes_per_stack) == {
        StackKey(0, 0, 0): 5,
        StackKey(0, 1, 0): 6,
        StackKey(0, 2, 0): 5,
        StackKey(0, 2, 1): 5,
    }
    assert plan.n_frames == 5 + 6 + 5 + 5
    assert plan.total_bytes == plan.n_frames * 64 * 64


def test_default_exposure_applies_to_channels_without_one() -> None:
    sequence = parse_sequence("channels: [GFP]\ntime_plan: {interval: 0, loops: 10}\n")
    plan = plan_acquisition(
        sequence,
        frame_shape=(8, 8),
        bytes_per_pixel=2,
        default_exposure_ms=100.0,
        overhead_ms_per_frame=0.0,
    )
    assert plan.n_frames == 10
    assert plan.estimated_duration_s == pytest.approx(1.0)


def test_plan_checks_sequences_built_in_python() -> None:
    sequence = useq.MDASequence.model_validate({"z_plan": {"range": 4, "step": 0}})
    with pytest.raises(SequenceError, match=r"z_plan\.step"):
        plan_acquisition(
            sequence, frame_shape=(8, 8), bytes_per_pixel=1, default_exposure_ms=1.0
        )


def test_stack_key_and_name() -> None:
    event = useq.MDAEvent.model_validate({"index": {"t": 3, "p": 12, "c": 1, "z": 4}})
    key = stack_key(event)
    assert key == StackKey(t=3, p=12, g=0)
    assert key.name == "t0003_p0012_g0000"
    assert stack_key(useq.MDAEvent()) == StackKey(0, 0, 0)


@pytest.mark.parametrize(
    ("limits", "option"),
    [
        (SequenceLimits(max_frames=100), "--max-frames"),
        (SequenceLimits(max_bytes=10**6), "--max-bytes"),
        (SequenceLimits(max_duration_s=20.0), "--max-hours"),
    ],
)
def test_caps(tmp_path: Path, limits: SequenceLimits, option: str) -> None:
    with pytest.raises(SequenceError) as info:
        full_plan(tmp_path, limits=limits)
    assert option in info.value.hint
    assert info.value.path == tmp_path / "seq.yaml"


def test_caps_just_above_the_plan_pass(tmp_path: Path) -> None:
    plan = full_plan(tmp_path)
    limits = SequenceLimits(
        max_frames=plan.n_frames,
        max_bytes=plan.total_bytes,
        max_duration_s=math.ceil(plan.estimated_duration_s),
    )
    assert full_plan(tmp_path, limits=limits).n_frames == plan.n_frames


def test_frame_cap_found_while_counting(tmp_path: Path) -> None:
    # 720 frames; counted without expanding, the axes promise only 360.
    with pytest.raises(SequenceError, match="more than 500 frames") as info:
        full_plan(tmp_path, limits=SequenceLimits(max_frames=500))
    assert "t 4 x p 3 x g 6 x c 2 x z 5" in info.value.what


def test_frame_cap_stops_counting_early() -> None:
    huge = parse_sequence("time_plan: {interval: 0, loops: 100000000}\n")
    start = time.perf_counter()
    with pytest.raises(SequenceError, match="at least 100,000,000 frames"):
        plan_acquisition(
            huge,
            frame_shape=(8, 8),
            bytes_per_pixel=1,
            default_exposure_ms=1.0,
            limits=SequenceLimits(max_frames=1000),
        )
    assert time.perf_counter() - start < 10


def test_position_outside_stage_limits(tmp_path: Path) -> None:
    text = (
        "stage_positions:\n"
        "  - {x: 0, y: 0, z: 0, name: ok}\n"
        "  - {x: 41000, y: 0, z: 0, name: far-away}\n"
    )
    sequence = load_sequence(write(tmp_path, text))
    with pytest.raises(SequenceError) as info:
        plan_acquisition(
            sequence,
            frame_shape=(8, 8),
            bytes_per_pixel=1,
            default_exposure_ms=1.0,
            stage_limits=StageLimits(xy_um=(-30000, 30000, -30000, 30000)),
        )
    err = info.value
    assert err.line == line_of(text, "far-away")
    assert "Position 1" in err.what
    assert "'far-away'" in err.what
    assert "x = 41000" in err.what


def test_z_stack_leaving_z_limits(tmp_path: Path) -> None:
    text = (
        "stage_positions:\n  - {x: 0, y: 0, z: 1990}\nz_plan: {range: 40, step: 10}\n"
    )
    sequence = load_sequence(write(tmp_path, text))
    limits = StageLimits(z_um=(-2000, 2000))
    with pytest.raises(SequenceError, match=r"z = 2010") as info:
        plan_acquisition(
            sequence,
            frame_shape=(8, 8),
            bytes_per_pixel=1,
            default_exposure_ms=1.0,
            stage_limits=limits,
        )
    assert "z plane 4" in info.value.what
    inside = parse_sequence(
        "stage_positions:\n  - {z: 1900}\nz_plan: {range: 40, step: 10}\n"
    )
    plan = plan_acquisition(
        inside,
        frame_shape=(8, 8),
        bytes_per_pixel=1,
        default_exposure_ms=1.0,
        stage_limits=limits,
    )
    assert plan.n_frames == 5


def test_grid_tiles_outside_stage_limits(tmp_path: Path) -> None:
    # The position is inside, but its 3 x 3 grid of 1000 um tiles is not.
    sequence = parse_sequence(
        "stage_positions:\n  - {x: 29500, y: 0}\ngrid_plan: {rows: 3, columns: 3}\n"
    )
    with pytest.raises(SequenceError, match=r"Position 0, tile \d+: x = 30500"):
        plan_acquisition(
            sequence,
            frame_shape=(1000, 1000),
            bytes_per_pixel=1,
            default_exposure_ms=1.0,
            pixel_size_um=1.0,
            stage_limits=StageLimits(xy_um=(-30000, 30000, -30000, 30000)),
        )


def test_grid_by_extents_needs_a_field_of_view() -> None:
    sequence = parse_sequence(
        "grid_plan: {top: 0, bottom: 500, left: 0, right: 1000}\nchannels: [GFP]\n"
    )
    with pytest.raises(SequenceError, match="field of view"):
        plan_acquisition(
            sequence, frame_shape=(256, 512), bytes_per_pixel=2, default_exposure_ms=1
        )
    plan = plan_acquisition(
        sequence,
        frame_shape=(256, 512),
        bytes_per_pixel=2,
        default_exposure_ms=1,
        pixel_size_um=1.0,
    )
    tiles = math.ceil(1000 / 512) * math.ceil(500 / 256)
    assert plan.n_frames == tiles
    assert sequence.grid_plan is not None
    assert sequence.grid_plan.fov_width is None  # the user's sequence is untouched


def test_describe_plan_lists_the_numbers(tmp_path: Path) -> None:
    plan = full_plan(tmp_path)
    console = Console(record=True, width=100)
    console.print(describe_plan(plan))
    text = console.export_text()
    frames = N_T * N_P * N_G * N_C * N_Z
    assert f"{frames:,}" in text
    assert "DAPI, GFP" in text
    assert f"{N_T * N_P * N_G} ({N_C * N_Z} frames each)" in text
    assert f"{plan.total_bytes / 1e9:.2f} GB" in text


def test_relative_z_plan_without_a_position_z_is_refused() -> None:
    from acquire.sequence.read import parse_sequence
    from acquire.sequence.source import SequenceError

    text = "stage_positions: [{x: 1, y: 2}]\nz_plan: {range: 4, step: 1}\n"
    with pytest.raises(SequenceError, match="no z"):
        parse_sequence(text)
    parse_sequence(
        "stage_positions: [{x: 1, y: 2, z: 5}]\nz_plan: {range: 4, step: 1}\n"
    )
    parse_sequence(
        "stage_positions: [{x: 1, y: 2}]\nz_plan: {top: 4, bottom: 0, step: 1}\n"
    )


# -- unbounded input ----------------------------------------------------------


def _alias_bomb(levels: int) -> str:
    """Each level lists the previous one ten times: 10**levels leaves."""
    lines = ["metadata:", "  l0: &l0 [" + ", ".join(["lol"] * 10) + "]"]
    for level in range(1, levels + 1):
        refs = ", ".join([f"*l{level - 1}"] * 10)
        lines.append(f"  l{level}: &l{level} [{refs}]")
    return "\n".join(lines) + "\nchannels: [GFP]\n"


def test_a_yaml_alias_bomb_is_refused_before_it_expands(tmp_path: Path) -> None:
    text = _alias_bomb(9)  # 10**9 values from under 1 kB
    assert len(text) < 1000
    started = time.perf_counter()
    err = load_error(tmp_path, text)
    assert time.perf_counter() - started < 5.0  # refused, not expanded
    assert "more than 200000 values" in err.what
    # a few aliases are fine: 10**3 leaves
    assert load_sequence(write(tmp_path, _alias_bomb(3), "small.yaml")).channels


def test_a_sequence_file_over_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("w", encoding="utf-8") as handle:
        handle.write("stage_positions:\n")
        handle.write("  - {x: 1, y: 2, z: 3}\n" * 200_000)  # 4.6 MB
    with pytest.raises(SequenceError, match=r"MB, more than the 4\.2 MB"):
        load_sequence(path)


@pytest.mark.parametrize("name", ["deep.json", "deep.yaml"])
def test_a_deeply_nested_file_is_one_message_not_a_crash(
    tmp_path: Path, name: str
) -> None:
    depth = 100_000
    text = '{"metadata": ' + "[" * depth + "]" * depth + "}"
    err = load_error(tmp_path, text, name)
    assert "nested too deeply" in err.what


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("z_plan: {range: .nan, step: 0.5}\n", "'z_plan.range' is nan"),
        ("z_plan: {range: 4, step: .inf}\n", "'z_plan.step' is inf"),
        ("z_plan: {top: .inf, bottom: 0, step: 1}\n", "'z_plan.top' is inf"),
        ("stage_positions: [{x: 1, y: .nan, z: 0}]\n", "'stage_positions[0].y'"),
        ("grid_plan: {rows: 2, columns: 2, overlap: .nan}\n", "'grid_plan.overlap'"),
    ],
)
def test_numbers_that_are_not_finite_are_one_message(
    tmp_path: Path, text: str, where: str
) -> None:
    err = load_error(tmp_path, text)
    assert where in err.what and "not a number a microscope can use" in err.what
    assert err.line == 1
