"""Terminal front end of ``pairscope acquire``: plan table, progress bars, summary."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich import box
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from acquire.sequence.table import describe_plan
from acquire.workflows.acquisition import AcquisitionRequest, dry_run, run_acquisition

if TYPE_CHECKING:
    from rich.console import Console

    from acquire.hardware.controller import AcquisitionController, AcquisitionResult
    from acquire.sequence.plan import AcquisitionPlan

EXIT_DEVICE_FAULT = 3
"""Exit code when a device fault persisted after retries (committed data is valid)."""


def show_plan(console: Console, plan: AcquisitionPlan) -> None:
    """Print the validated plan and its size and time estimates."""
    console.print(describe_plan(plan))


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description:>8}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
    )


def _summary(
    console: Console, result: AcquisitionResult, request: AcquisitionRequest
) -> None:
    table = Table(title=f"pairscope acquire: {request.out}", box=box.SIMPLE_HEAD)
    table.add_column("")
    table.add_column("value", justify="right")
    table.add_row("status", result.status)
    table.add_row("frames acquired", str(result.frames_acquired))
    table.add_row("stacks committed", str(result.stacks_committed))
    table.add_row("stacks already there", str(result.stacks_skipped_as_committed))
    table.add_row("wall time", f"{result.wall_time_s:.1f} s")
    for kind, count in sorted(result.retries.items()):
        table.add_row(f"retries ({kind})", str(count))
    for name, count in sorted(result.dropped_stacks.items()):
        table.add_row(f"dropped by {name}", str(count))
    console.print(table)


def acquire_main(
    request: AcquisitionRequest, *, dry: bool, console: Console, err_console: Console
) -> int:
    """Validate, then plan only (``dry``) or run; returns the exit code.

    User errors are raised (the caller turns them into exit code 2); a device
    fault that persisted after retries gives :data:`EXIT_DEVICE_FAULT`.
    """
    if dry:
        show_plan(console, dry_run(request))
        return 0

    with _progress(err_console) as progress:

        def connect(controller: AcquisitionController) -> None:
            show_plan(err_console, controller.plan)
            frames = progress.add_task("planes", total=None)
            stacks = progress.add_task("stacks", total=None)

            def started(n_frames: int, n_stacks: int) -> None:
                progress.update(frames, total=n_frames)
                progress.update(stacks, total=n_stacks)

            controller.events.started.connect(started)
            controller.events.frame_acquired.connect(
                lambda *_: progress.advance(frames)
            )
            controller.events.stack_committed.connect(
                lambda *_: progress.advance(stacks)
            )

        result = run_acquisition(request, connect=connect)
    _summary(console, result, request)
    if result.status == "failed":
        err_console.print(
            f"pairscope: error: acquisition stopped: {result.failure}. The "
            f"{result.stacks_committed + result.stacks_skipped_as_committed} committed "
            f"stacks in {request.out} are valid; fix the device, then run the same "
            "command with --resume.",
            soft_wrap=True,
            markup=False,
        )
        return EXIT_DEVICE_FAULT
    return 0
