"""ResilientEngine: injected camera and stage faults are retried or stop the run."""

from __future__ import annotations

import pickle
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import useq
from pymmcore_plus.experimental.unicore import UniMMCore
from pymmcore_plus.mda import MDAEngine

from acquire.hardware.engine import AcquisitionFault, ResilientEngine
from acquire.hardware.microscope import close_core, illumination, open_core
from acquire.hardware.retry import RetryPolicy
from acquire.sim import groundtruth
from acquire.sim.faults import (
    FaultInjector,
    SimulatedDeviceError,
    SimulatedTimeoutError,
)
from acquire.sim.stage import SimulatedXYStage, SimulatedZStage, StageLimitError

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

FAULTY = Path(__file__).resolve().parents[1] / "configs" / "faulty_widefield.cfg"
FAST = RetryPolicy(max_attempts=3, backoff_ms=1.0, backoff_factor=2.0)
N_FRAMES = 10  # 2 positions x 5 planes


@dataclass
class Run:
    """What one MDA run produced."""

    frames: list[tuple[dict[str, int], np.ndarray]] = field(default_factory=list)
    metadata: list[Mapping[str, Any]] = field(default_factory=list)
    retries: dict[str, int] = field(default_factory=dict)
    error: Exception | None = None
    snap_attempts: int = 0
    xy_position: tuple[float, float] = (0.0, 0.0)
    seconds: float = 0.0

    @property
    def images(self) -> list[np.ndarray]:
        return [image for _, image in self.frames]


def sequence(core: UniMMCore) -> useq.MDASequence:
    x, y, z = groundtruth.stage_position_of_cell(core, 0)
    return useq.MDASequence(
        stage_positions=(
            useq.Position(x=x, y=y, z=z),
            useq.Position(x=x + 20.0, y=y, z=z),
        ),
        z_plan=useq.ZRangeAround(range=4.0, step=1.0),
    )


def run_mda(
    properties: Mapping[tuple[str, str], object] | None = None,
    *,
    policy: RetryPolicy = FAST,
    stock_engine: bool = False,
    mda: useq.MDASequence | None = None,
    **engine_kwargs: Any,
) -> Run:
    """Open the faulty config, set ``properties``, run the MDA, close the core."""
    core = open_core(FAULTY)
    result = Run()
    try:
        for (device, name), value in (properties or {}).items():
            core.setProperty(device, name, value)
        camera = groundtruth.simulated_camera(core)

        # frameReady is emitted synchronously in the runner's thread (the one
        # calling core.mda.run), so every frame is here when run() returns
        def keep(image: np.ndarray, event: useq.MDAEvent, meta: Any) -> None:
            index = {str(k): int(v) for k, v in event.index.items()}
            result.frames.append((index, np.array(image, copy=True)))
            result.metadata.append(meta)

        core.mda.events.frameReady.connect(keep)
        engine = (
            MDAEngine(core, use_hardware_sequencing=False)
            if stock_engine
            else ResilientEngine(core, retry_policy=policy, **engine_kwargs)
        )
        core.mda.set_engine(engine)
        started = time.perf_counter()
        with illumination(core):
            try:
                core.mda.run(mda or sequence(core))
            except Exception as error:
                result.error = error
        result.seconds = time.perf_counter() - started
        if isinstance(engine, ResilientEngine):
            result.retries = dict(engine.retries)
        result.snap_attempts = camera.faults.attempts
        result.xy_position = core.getXYPosition()
    finally:
        close_core(core)
    for _, image in result.frames:  # a failed snap never shows up as data
        assert image.any()
        assert image.min() > 0
    return result


@pytest.fixture(scope="module")
def reference() -> Run:
    run = run_mda()
    assert run.error is None
    assert len(run.frames) == N_FRAMES
    return run


def assert_same_frames(run: Run, reference: Run, count: int = N_FRAMES) -> None:
    assert len(run.frames) == count
    for (index, image), (ref_index, ref_image) in zip(
        run.frames, reference.frames[:count], strict=True
    ):
        assert index == ref_index
        np.testing.assert_array_equal(image, ref_image)


# -- the engine with a fault-free scope -------------------------------------


def test_fault_free_run_matches_the_stock_engine(reference: Run) -> None:
    stock = run_mda(stock_engine=True)
    assert stock.error is None
    assert_same_frames(stock, reference)
    assert reference.retries == {}
    for ours, theirs in zip(reference.metadata, stock.metadata, strict=True):
        assert set(ours) == set(theirs)
        assert ours["position"] == theirs["position"]
    # the frames have signal: the cell is brighter than the background
    brightest = max(float(image.max()) for image in reference.images)
    assert brightest > 2 * float(np.median(reference.images[0])) + 10


def test_stock_engine_silently_drops_a_failed_frame() -> None:
    """Why the engine exists: pymmcore-plus logs the failed snap and goes on."""
    run = run_mda({("Camera", "FaultPersistFromFrame"): 4}, stock_engine=True)
    assert run.error is None
    assert len(run.frames) == 3


# -- camera faults ------------------------------------------------------------


def test_every_third_snap_failing_once_still_yields_every_frame(
    reference: Run,
) -> None:
    run = run_mda({("Camera", "FaultEveryNFrames"): 3})
    assert run.error is None
    assert_same_frames(run, reference)
    assert run.retries == {"snap": 3}  # frames 3, 6 and 9
    assert run.snap_attempts == N_FRAMES + 3


@pytest.mark.parametrize("max_attempts", [1, 3, 5])
def test_persistent_snap_fault_stops_the_run(reference: Run, max_attempts: int) -> None:
    policy = RetryPolicy(max_attempts=max_attempts, backoff_ms=1.0)
    run = run_mda({("Camera", "FaultPersistFromFrame"): 4}, policy=policy)
    fault = run.error
    assert isinstance(fault, AcquisitionFault)
    assert fault.kind == "snap"
    assert fault.attempts == max_attempts
    assert fault.event_index == {"p": 0, "z": 3}
    assert "snap #4" in fault.last_error
    assert_same_frames(run, reference, count=3)
    assert run.snap_attempts == 3 + max_attempts
    assert run.retries == ({"snap": max_attempts - 1} if max_attempts > 1 else {})
    times = "once" if max_attempts == 1 else f"{max_attempts} times"
    message = str(fault)
    assert message.startswith(f"camera 'Camera' snap failed {times} at p=0 z=3: ")
    assert "Check the camera" in message
    assert "\n" not in message


def test_timeouts_are_retried(reference: Run) -> None:
    timeout_ms = 30.0
    run = run_mda(
        {("Camera", "TimeoutEveryNFrames"): 4, ("Camera", "TimeoutMs"): timeout_ms}
    )
    assert run.error is None
    assert_same_frames(run, reference)
    assert run.retries == {"snap": 2}  # frames 4 and 8
    assert run.seconds >= 2 * timeout_ms / 1000.0


def test_backoff_waits_between_attempts() -> None:
    policy = RetryPolicy(max_attempts=3, backoff_ms=40.0, backoff_factor=2.0)
    run = run_mda({("Camera", "FaultPersistFromFrame"): 1}, policy=policy)
    assert isinstance(run.error, AcquisitionFault)
    assert run.frames == []
    assert run.seconds >= sum(policy.delays_ms()) / 1000.0


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_short_hardware_sequence_stops_the_run() -> None:
    mda = useq.MDASequence(time_plan=useq.TIntervalLoops(interval=0, loops=5))
    run = run_mda(
        {("Camera", "FaultPersistFromFrame"): 3},
        mda=mda,
        use_hardware_sequencing=True,
        timeout_first_frame=5.0,
    )
    fault = run.error
    assert isinstance(fault, AcquisitionFault)
    assert fault.kind == "snap"
    assert fault.event_index == {"t": 2}
    assert "delivered 2 of 5 frames" in str(fault)
    assert len(run.frames) == 2


# -- stage faults ---------------------------------------------------------------


def test_stage_faults_are_retried(reference: Run) -> None:
    run = run_mda(
        {("XYStage", "FaultEveryNMoves"): 3, ("ZStage", "FaultEveryNMoves"): 4}
    )
    assert run.error is None
    assert_same_frames(run, reference)
    # one XY and one Z move per event: XY moves 3, 6, 9 and Z moves 4, 8 fail once
    assert run.retries == {"xy_move": 3, "z_move": 2}


@pytest.mark.parametrize(
    ("device", "kind"), [("XYStage", "xy_move"), ("ZStage", "z_move")]
)
def test_persistent_stage_fault_stops_the_run(
    reference: Run, device: str, kind: str
) -> None:
    run = run_mda({(device, "FaultPersistFromMove"): 2})
    fault = run.error
    assert isinstance(fault, AcquisitionFault)
    assert fault.kind == kind
    assert fault.attempts == FAST.max_attempts
    assert fault.event_index == {"p": 0, "z": 1}
    assert_same_frames(run, reference, count=1)  # move 2 is for the 2nd frame
    assert f"{device!r} move to " in str(fault)
    assert "failed 3 times at p=0 z=1" in str(fault)


def test_out_of_range_move_is_refused_without_retries() -> None:
    run = run_mda({("XYStage", "XMaxUm"): 0.0})
    fault = run.error
    assert isinstance(fault, AcquisitionFault)
    assert fault.kind == "xy_move"
    assert fault.attempts == 1
    assert isinstance(fault.__cause__, StageLimitError)
    assert "outside its travel" in str(fault)
    assert "not retried" in str(fault)
    assert run.retries == {}
    assert run.frames == []
    assert run.xy_position == (0.0, 0.0)  # the stage never moved


# -- RetryPolicy and AcquisitionFault ------------------------------------------


def test_retry_policy_delays() -> None:
    assert RetryPolicy().delays_ms() == (50.0, 100.0)
    assert RetryPolicy(max_attempts=1).delays_ms() == ()
    assert RetryPolicy(4, 10.0, 3.0).delays_ms() == (10.0, 30.0, 90.0)


@pytest.mark.parametrize(
    ("kwargs", "field_name"),
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_attempts": 2.5}, "max_attempts"),
        ({"max_attempts": True}, "max_attempts"),
        ({"backoff_ms": -1.0}, "backoff_ms"),
        ({"backoff_ms": float("nan")}, "backoff_ms"),
        ({"backoff_factor": 0.5}, "backoff_factor"),
        ({"backoff_factor": float("inf")}, "backoff_factor"),
        ({"give_up_on": (int,)}, "give_up_on"),
    ],
)
def test_invalid_retry_policy(kwargs: dict[str, Any], field_name: str) -> None:
    with pytest.raises(ValueError, match=f"RetryPolicy.{field_name}"):
        RetryPolicy(**kwargs)


def test_engine_needs_a_retry_policy() -> None:
    core = UniMMCore()
    try:
        with pytest.raises(TypeError, match="RetryPolicy"):
            ResilientEngine(core, retry_policy={"max_attempts": 3})  # type: ignore[arg-type]
    finally:
        del core


def test_acquisition_fault_is_one_sentence_and_pickles() -> None:
    fault = AcquisitionFault("snap", {"t": 0, "p": 1, "z": 4}, 3, "boom")
    assert str(fault) == (
        "camera snap failed 3 times at t=0 p=1 z=4: boom. Check the camera "
        "(power, cable, driver, other programs using it) before running again."
    )
    copy = pickle.loads(pickle.dumps(fault))
    assert str(copy) == str(fault)
    assert copy.kind == "snap"
    assert copy.event_index == {"t": 0, "p": 1, "z": 4}
    assert copy.attempts == 3


# -- the fault injector and the simulated stages ---------------------------------


def outcomes(injector: FaultInjector, n: int) -> str:
    """'.' for each successful check, 'x' for each fault, over ``n`` checks."""
    result = ""
    for _ in range(n):
        try:
            injector.check("op")
        except SimulatedDeviceError:
            result += "x"
        else:
            result += "."
    return result


def test_every_nth_operation_fails_once() -> None:
    injector = FaultInjector(every_n=3)
    assert outcomes(injector, 8) == "..x...x."  # ops 3 and 6 fail once each
    assert (injector.count, injector.attempts, injector.failures) == (6, 8, 2)
    assert outcomes(FaultInjector(every_n=1), 4) == "x.x."


def test_persistent_fault_and_reconfiguration() -> None:
    injector = FaultInjector(persist_from=3)
    assert outcomes(injector, 5) == "..xxx"
    injector.configure(persist_from=0)
    assert outcomes(injector, 2) == ".."
    injector.configure(every_n=2)  # the count restarts
    assert outcomes(injector, 3) == ".x."
    with pytest.raises(ValueError, match="whole number"):
        injector.configure(every_n=1.5)
    with pytest.raises(ValueError, match="no setting"):
        injector.configure(sometimes=1)


def test_timeout_sleeps_then_raises() -> None:
    injector = FaultInjector(timeout_every_n=1, timeout_ms=30.0)
    started = time.perf_counter()
    with pytest.raises(SimulatedTimeoutError, match="timed out after 30 ms"):
        injector.check("Camera snap")
    assert time.perf_counter() - started >= 0.03
    injector.check("Camera snap")  # fails once only


@pytest.fixture
def faulty_core() -> Iterator[UniMMCore]:
    core = open_core(FAULTY)
    try:
        yield core
    finally:
        close_core(core)


def test_simulated_stages_hold_position_and_limits(faulty_core: UniMMCore) -> None:
    core = faulty_core
    core.setXYPosition(12.5, -40.0)
    core.setPosition(3.25)
    core.waitForSystem()
    assert core.getXYPosition() == (12.5, -40.0)
    assert core.getPosition() == 3.25
    with pytest.raises(StageLimitError, match=r"y to 60000 um: outside its travel"):
        core.setXYPosition(0.0, 60_000.0)
    with pytest.raises(StageLimitError, match=r"z to -6000 um"):
        core.setPosition(-6000.0)
    assert core.getXYPosition() == (12.5, -40.0)
    assert core.getPosition() == 3.25
    core.setOriginXY()
    core.setOrigin()
    assert core.getXYPosition() == (0.0, 0.0)
    assert core.getPosition() == 0.0
    core.setProperty("XYStage", "FaultPersistFromMove", 1)
    with pytest.raises(SimulatedDeviceError):
        core.setXYPosition(1.0, 1.0)
    assert core.getXYPosition() == (0.0, 0.0)  # a failed move does not move


def test_fault_properties_are_validated(faulty_core: UniMMCore) -> None:
    core = faulty_core
    assert float(core.getProperty("Camera", "FaultEveryNFrames")) == 0
    assert float(core.getProperty("Camera", "TimeoutMs")) == 200.0
    with pytest.raises(Exception, match="FaultEveryNFrames"):
        core.setProperty("Camera", "FaultEveryNFrames", 2.5)
    with pytest.raises(Exception, match="range"):
        core.setProperty("ZStage", "FaultEveryNMoves", -1)


def test_stage_classes_are_loadable_devices() -> None:
    assert SimulatedXYStage().get_position_um() == (0.0, 0.0)
    assert SimulatedZStage().get_position_um() == 0.0
