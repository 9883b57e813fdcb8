"""The acquisition controller end to end, checked with an independent zarr reader."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import mm_test_adapters
import numpy as np
import pytest
import useq
import zarr
from acquire_helpers import (
    cell_positions,
    pairscope,
    read_dataset,
    small_config,
    write_sequence,
)

from acquire.errors import UserError
from acquire.hardware.consumers import CompletedStack, StackQueue
from acquire.hardware.microscope import close_core, illumination, open_core
from acquire.storage.errors import DatasetError
from acquire.storage.reader import committed_stacks, read_stack
from acquire.workflows.acquisition import (
    AcquisitionRequest,
    dry_run,
    run_acquisition,
)


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_config(tmp_path_factory.mktemp("cfg"))


@pytest.fixture(scope="module")
def positions(config: Path) -> list[tuple[float, float, float]]:
    return cell_positions(config, [0, 1])


def test_planes_equal_what_the_simulator_renders_and_metadata_round_trips(
    tmp_path: Path, config: Path, positions: list[tuple[float, float, float]]
) -> None:
    sequence = write_sequence(tmp_path / "seq.yaml", positions, planes=5, step_um=0.5)
    out = tmp_path / "dataset"
    result = run_acquisition(AcquisitionRequest(sequence, config, out))
    assert result.status == "complete"
    assert result.frames_acquired == 10 and result.stacks_committed == 2

    stacks = read_dataset(out)
    assert sorted(stacks) == ["t0000_p0000_g0000", "t0000_p0001_g0000"]

    # an independent re-render: a fresh scope driven to each recorded position
    core = open_core(config)
    try:
        for name, data in stacks.items():
            group = zarr.open_group(out / f"{name}.ome.zarr", mode="r")
            attrs = group.attrs.asdict()
            multiscale = attrs["ome"]["multiscales"][0]
            assert attrs["ome"]["version"] == "0.5"
            assert [a["name"] for a in multiscale["axes"]] == ["c", "z", "y", "x"]
            scale = multiscale["datasets"][0]["coordinateTransformations"][0]["scale"]
            assert scale[1] == pytest.approx(0.5)
            assert scale[2] == scale[3] == pytest.approx(0.1625)
            planes = attrs["pairscope"]["planes"]
            assert data.shape == (1, 5, 96, 96) and data.dtype == np.uint16
            with illumination(core):
                for plane in sorted(planes, key=lambda p: (p["c"], p["z"])):
                    core.setExposure(plane["exposure_ms"])
                    core.setXYPosition(plane["stage_x_um"], plane["stage_y_um"])
                    core.setPosition(plane["stage_z_um"])
                    core.waitForSystem()
                    core.snapImage()
                    expected = np.asarray(core.getImage())
                    np.testing.assert_array_equal(
                        data[plane["c"], plane["z"]], expected
                    )
                    assert plane["objective"] == "Plan-Apochromat 40x/1.3 Oil"
                    assert plane["channel"] == "GFP"
                    assert plane["scope"] == config.stem
                    assert plane["timestamp"]
    finally:
        close_core(core)

    # commanded positions were reached: the metadata holds them
    p1 = zarr.open_group(out / "t0000_p0001_g0000.ome.zarr", mode="r").attrs.asdict()
    zs = sorted(p["stage_z_um"] for p in p1["pairscope"]["planes"])
    assert zs == pytest.approx(positions[1][2] + np.arange(-1.0, 1.01, 0.5), abs=1e-3)
    # DemoCamera's XY stage moves in 5 nm steps: reached = commanded to +-5 nm
    xs = [p["stage_x_um"] for p in p1["pairscope"]["planes"]]
    assert xs == pytest.approx([positions[1][0]] * 5, abs=0.006)

    # pairscope's own reader gives back what zarr-python reads
    assert committed_stacks(out) == ("t0000_p0000_g0000", "t0000_p0001_g0000")
    stored = read_stack(out, "t0000_p0001_g0000")
    np.testing.assert_array_equal(stored.data, stacks["t0000_p0001_g0000"])
    assert stored.voxel_size_um == pytest.approx((0.5, 0.1625, 0.1625))
    assert stored.stage_xyz_um() == pytest.approx(positions[1], abs=0.006)
    assert stored.objective() == "Plan-Apochromat 40x/1.3 Oil"
    with pytest.raises(DatasetError, match="cannot read stack"):
        read_stack(out, "t0000_p0009_g0000")

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["software"]["name"] == "pairscope"
    assert len(manifest["config_sha256"]) == 64
    assert manifest["sequence"]["z_plan"]["step"] == 0.5
    assert manifest["scope"]["camera"] == "Camera"


def test_plain_micromanager_demo_config_works(tmp_path: Path) -> None:
    demo_cfg = Path(mm_test_adapters.device_adapter_path()) / "MMConfig_demo.cfg"
    sequence = write_sequence(
        tmp_path / "seq.yaml",
        [(0.0, 0.0, 0.0), (100.0, 50.0, 0.0)],
        planes=3,
        step_um=1.0,
        extra={"channels": [{"config": "FITC", "group": "Channel", "exposure": 5}]},
    )
    out = tmp_path / "dataset"
    result = run_acquisition(AcquisitionRequest(sequence, demo_cfg, out))
    assert result.status == "complete"
    stacks = read_dataset(out)
    assert len(stacks) == 2
    for data in stacks.values():
        assert data.shape[:2] == (1, 3)
        assert data.max() > 0  # DemoCamera draws its test pattern, never zeros


def test_slow_consumer_drops_stacks_and_never_blocks(
    tmp_path: Path, config: Path, positions: list[tuple[float, float, float]]
) -> None:
    many = [positions[i % 2] for i in range(4)]
    sequence = write_sequence(tmp_path / "seq.yaml", many, planes=3)
    seen: list[str] = []

    def slow(stack: CompletedStack) -> None:
        time.sleep(1.5)
        seen.append(stack.name)
        assert stack.data.shape == (1, 3, 96, 96)

    queue = StackQueue(slow, maxsize=1, name="slow")
    started = time.perf_counter()
    result = run_acquisition(
        AcquisitionRequest(sequence, config, tmp_path / "ds"), consumers=[queue]
    )
    elapsed = time.perf_counter() - started
    assert result.status == "complete" and result.stacks_committed == 4
    assert result.dropped_stacks["slow"] >= 1
    assert queue.stats.processed + queue.stats.dropped == 4
    # acquisition did not wait for the consumer: 4 x 1.5 s would be 6 s
    assert elapsed < 6.0 + 15.0  # generous: includes loading the scope
    assert len(seen) == queue.stats.processed


def test_transient_faults_still_give_the_complete_identical_dataset(
    tmp_path: Path, config: Path, positions: list[tuple[float, float, float]]
) -> None:
    sequence = write_sequence(tmp_path / "seq.yaml", positions, planes=5)
    clean = tmp_path / "clean"
    run_acquisition(AcquisitionRequest(sequence, config, clean))
    faulty_cfg = small_config(
        tmp_path, extra="#py Property,Camera,FaultEveryNFrames,3\n"
    )
    faulty = tmp_path / "faulty"
    # a different config file: identity differs, so compare pixels, not manifests
    result = run_acquisition(AcquisitionRequest(sequence, faulty_cfg, faulty))
    assert result.status == "complete"
    assert result.retries.get("snap", 0) >= 3
    clean_stacks, faulty_stacks = read_dataset(clean), read_dataset(faulty)
    assert clean_stacks.keys() == faulty_stacks.keys()
    for name in clean_stacks:
        np.testing.assert_array_equal(clean_stacks[name], faulty_stacks[name])


def test_persistent_fault_stops_cleanly_with_a_clear_message(
    tmp_path: Path, config: Path, positions: list[tuple[float, float, float]]
) -> None:
    sequence = write_sequence(tmp_path / "seq.yaml", positions, planes=5)
    broken = small_config(
        tmp_path, extra="#py Property,Camera,FaultPersistFromFrame,8\n"
    )
    out = tmp_path / "ds"
    proc = pairscope(
        "acquire",
        sequence,
        "--config",
        broken,
        "--out",
        out,
        "--retries",
        "2",
        "--retry-backoff-ms",
        "1",
    )
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "acquisition stopped" in proc.stderr and "--resume" in proc.stderr
    stacks = read_dataset(out)
    assert list(stacks) == ["t0000_p0000_g0000"]  # the first stack was committed
    assert stacks["t0000_p0000_g0000"].shape == (1, 5, 96, 96)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "failed"
    assert manifest["failures"] and "snap" in json.dumps(manifest["failures"])
    assert not list((out / ".staging").glob("*.ome.zarr"))  # no half stack left as data


def test_dry_run_moves_nothing_and_writes_nothing(
    tmp_path: Path, config: Path, positions: list[tuple[float, float, float]]
) -> None:
    sequence = write_sequence(tmp_path / "seq.yaml", positions, planes=5)
    out = tmp_path / "ds"
    proc = pairscope("acquire", sequence, "--config", config, "--out", out, "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "10" in proc.stdout  # frames
    assert not out.exists()


@pytest.mark.parametrize(
    ("yaml_text", "needle"),
    [
        ("z_plan: {range: 2, stpe: 0.5}\n", "stpe"),
        ("z_plan: {range: 2, step: 0}\n", "step"),
        ("stage_positions: [{x: 1e9, y: 0, z: 0}]\n", "limit"),
        ("z_plan: [range: 2\n", "line"),
        ("channels: [{config: mCherry}]\n", "preset 'mCherry' of group 'Channel'"),
        ("channels: [{config: GFP, group: Lasers}]\n", "group 'Lasers'"),
    ],
)
def test_bad_sequences_are_refused_with_one_clear_message(
    tmp_path: Path, config: Path, yaml_text: str, needle: str
) -> None:
    sequence = tmp_path / "bad.yaml"
    sequence.write_text(yaml_text)
    proc = pairscope("acquire", sequence, "--config", config, "--out", tmp_path / "ds")
    assert proc.returncode == 2, proc.stderr
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "ds").exists()


def test_output_folder_with_a_different_dataset_is_never_overwritten(
    tmp_path: Path, config: Path, positions: list[tuple[float, float, float]]
) -> None:
    first = write_sequence(tmp_path / "a.yaml", positions[:1], planes=3)
    out = tmp_path / "ds"
    assert pairscope("acquire", first, "--config", config, "--out", out).returncode == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    other = write_sequence(tmp_path / "b.yaml", positions, planes=3)
    for extra in ((), ("--resume",)):
        proc = pairscope("acquire", other, "--config", config, "--out", out, *extra)
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before


def test_grids_and_time_points_each_get_their_own_stack(
    tmp_path: Path, config: Path, positions: list[tuple[float, float, float]]
) -> None:
    sequence = write_sequence(
        tmp_path / "seq.yaml",
        positions[:1],
        planes=3,
        extra={
            "grid_plan": {"rows": 1, "columns": 2},
            "time_plan": {"interval": 0, "loops": 2},
            "axis_order": "tpgcz",
        },
    )
    out = tmp_path / "ds"
    result = run_acquisition(AcquisitionRequest(sequence, config, out))
    assert result.status == "complete"
    stacks = read_dataset(out)
    assert sorted(stacks) == [
        f"t{t:04d}_p0000_g{g:04d}" for t in range(2) for g in range(2)
    ]
    # the two tiles see different parts of the specimen; the two time points
    # the same tile (fixed cells), so tiles differ far more than time points
    tile_0, tile_1 = stacks["t0000_p0000_g0000"], stacks["t0000_p0000_g0001"]
    later_0 = stacks["t0001_p0000_g0000"]
    tile_gap = np.abs(tile_0.astype(float) - tile_1).mean()
    time_gap = np.abs(tile_0.astype(float) - later_0).mean()
    assert tile_gap > 2 * time_gap


def test_position_offsets_are_asked_per_stack_as_it_begins(
    tmp_path: Path, config: Path, positions: list[tuple[float, float, float]]
) -> None:
    # closed loop: a stack's offset is decided when it starts, after the
    # frames before it were taken (so what they measured can count)
    sequence = write_sequence(tmp_path / "seq.yaml", positions, planes=3)
    frames: list[str] = []
    asked: list[tuple[str, int]] = []

    def offset(name: str) -> tuple[float, float, float]:
        asked.append((name, len(frames)))
        return (2.0 * len(frames), -1.0, 0.5)

    run_acquisition(
        AcquisitionRequest(sequence, config, tmp_path / "ds"),
        connect=lambda c: c.events.frame_acquired.connect(
            lambda name, _c, _z: frames.append(name)
        ),
        position_offset=offset,
    )
    assert asked == [("cell0", 0), ("cell1", 3)]
    for index, name in enumerate(("t0000_p0000_g0000", "t0000_p0001_g0000")):
        x, y, z = read_stack(tmp_path / "ds", name).stage_xyz_um()
        x0, y0, z0 = positions[index]
        assert x == pytest.approx(x0 + 6.0 * index, abs=0.01)
        assert y == pytest.approx(y0 - 1.0, abs=0.01)
        assert z == pytest.approx(z0 + 0.5, abs=0.01)


def _with_autofocus_device(tmp_path: Path) -> Path:
    """The small wide-field scope plus Micro-Manager's demo autofocus device."""
    text = small_config(tmp_path).read_text()
    text = text.replace(
        "Device,FilterWheel,DemoCamera,DWheel\n",
        "Device,FilterWheel,DemoCamera,DWheel\nDevice,AutoFocus,DemoCamera,DAutoFocus\n",
    ).replace(
        "Parent,FilterWheel,DHub\n", "Parent,FilterWheel,DHub\nParent,AutoFocus,DHub\n"
    )
    path = tmp_path / "with_autofocus.cfg"
    path.write_text(text)
    return path


def _autofocused(drive: str | None) -> useq.MDASequence:
    autofocus: dict[str, object] = {"autofocus_motor_offset": 0.0, "axes": ("p",)}
    if drive is not None:
        autofocus["autofocus_device_name"] = drive
    return useq.MDASequence(
        stage_positions=[(0.0, 0.0, 0.0), (100.0, 0.0, 0.0)],
        z_plan={"range": 2.0, "step": 1.0},
        autofocus_plan=autofocus,
    )


def test_autofocus_steps_are_not_frames_and_run_on_the_scope(tmp_path: Path) -> None:
    config = _with_autofocus_device(tmp_path)
    sequence = _autofocused(drive=None)
    # useq gives 8 events: an autofocus before each 3-plane stack
    assert len(list(sequence)) == 8
    started: list[tuple[int, int]] = []

    def connect(controller: Any) -> None:
        controller.events.started.connect(lambda f, s: started.append((f, s)))

    request = AcquisitionRequest(sequence, config, tmp_path / "ds")
    plan = dry_run(request)
    assert plan.n_frames == 6
    assert set(plan.planes_per_stack.values()) == {3}
    result = run_acquisition(request, connect=connect)
    assert result.status == "complete", result.failure
    assert result.frames_acquired == 6 and started == [(6, 2)]
    stacks = committed_stacks(tmp_path / "ds")
    assert [read_stack(tmp_path / "ds", s).data.shape[1] for s in stacks] == [3, 3]


@pytest.mark.parametrize(
    ("with_device", "drive", "needle"),
    [
        (False, None, "this scope has none"),
        (True, "AutoFocus", "'AutoFocus', which is not a stage device"),
    ],
)
def test_an_autofocus_plan_the_scope_cannot_run_is_refused_before_any_work(
    tmp_path: Path, with_device: bool, drive: str | None, needle: str
) -> None:
    config = _with_autofocus_device(tmp_path) if with_device else small_config(tmp_path)
    out = tmp_path / "ds"
    request = AcquisitionRequest(_autofocused(drive), config, out)
    for attempt in (dry_run, run_acquisition):
        with pytest.raises(UserError, match=needle):
            attempt(request)
    assert not out.exists()
