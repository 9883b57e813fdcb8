"""The ``pairscope`` command line: inspect, snap, acquire, run the demo.

User errors (a broken configuration, a bad path, an existing output, a bad
option value) print one message to stderr and exit with code 2; unexpected
failures print one line and exit with code 1. Every core is torn down before
the process exits.
"""

from __future__ import annotations

import gc
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table

from acquire._version import __version__
from acquire.cli.clean import clean_command
from acquire.cli.common import (
    AdapterOption,
    ConfigOption,
    console,
    err_console,
    flag,
)
from acquire.cli.common import handle_errors as _handle_errors
from acquire.cli.enhance import enhance, evaluate, train
from acquire.cli.export import export_command
from acquire.cli.gui import gui
from acquire.cli.pairs import pairs_app
from acquire.errors import UserError
from acquire.hardware.retry import RetryPolicy
from acquire.paths import (
    check_adapter_paths,
    check_new_file,
    check_output_file,
    check_output_folder,
)
from acquire.sequence.limits import SequenceLimits
from acquire.workflows.demo_options import SAMPLE_MEDIA, check_sample_medium, check_seed

if TYPE_CHECKING:
    from acquire.hardware.microscope import ScopeDescription
    from acquire.workflows.demo import DemoProgress

# Workflows (and pymmcore-plus, useq, scipy, torch behind them) are imported
# by the commands that run them: `pairscope --help` and `--version` stay fast.

__all__ = [
    "MAX_EXPOSURE_MS",
    "app",
    "main",
]

app = typer.Typer(
    name="pairscope",
    help="Correlative wide-field/confocal acquisition on Micro-Manager.",
    add_completion=True,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        console.print(f"pairscope {__version__}")
        raise typer.Exit(0)


app.add_typer(pairs_app, name="pairs")
app.command("gui")(gui)
app.command("train")(train)
app.command("evaluate")(evaluate)
app.command("enhance")(enhance)
app.command("export")(export_command)
app.command("clean")(clean_command)


@app.callback()
def _root(
    version: Annotated[
        bool,
        flag(
            "--version",
            callback=_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """Correlative wide-field/confocal acquisition on Micro-Manager."""


# -- info ---------------------------------------------------------------------


def _describe(config: Path, adapter_paths: list[Path] | None) -> ScopeDescription:
    from acquire.hardware.microscope import describe_scope, scope

    with scope(config, adapter_paths=adapter_paths) as core:
        return describe_scope(core)


def _print_description(desc: ScopeDescription) -> None:
    console.print(f"[bold]Configuration[/bold] {desc.config_file}")
    roles = Table(title="Roles", show_header=False, box=box.SIMPLE)
    roles.add_row("camera", desc.camera or "-")
    roles.add_row("shutter", desc.shutter or "-")
    roles.add_row("focus", desc.focus or "-")
    roles.add_row("XY stage", desc.xy_stage or "-")
    roles.add_row("objective turret", desc.objective_device or "-")
    roles.add_row(
        "image",
        f"{desc.image_width_px} x {desc.image_height_px} px, {desc.bit_depth} bit",
    )
    roles.add_row("objective now", desc.current_objective or "-")
    roles.add_row("pixel size now", f"{desc.pixel_size_um:.6g} um")
    console.print(roles)

    devices = Table(title="Devices", box=box.SIMPLE_HEAD)
    for column in ("label", "type", "library", "device", "python"):
        devices.add_column(column)
    for dev in desc.devices:
        kind = dev.device_type.removesuffix("Device")
        devices.add_row(
            dev.label, kind, dev.library, dev.name, "yes" if dev.python else ""
        )
    console.print(devices)

    turret = desc.objective_device or "no turret"
    objectives = Table(title=f"Objectives ({turret})", box=box.SIMPLE_HEAD)
    for column in ("state", "label", "um/px", "mag", "NA", "immersion"):
        objectives.add_column(column, no_wrap=column == "label")
    for obj in desc.objectives:
        size = f"{obj.pixel_size_um:.6g}" if obj.pixel_size_um else "-"
        objectives.add_row(
            str(obj.state),
            obj.label,
            size,
            f"{obj.magnification:g}x" if obj.magnification else "",
            f"{obj.numerical_aperture:g}" if obj.numerical_aperture else "",
            obj.immersion or "",
        )
    console.print(objectives)


@app.command()
@_handle_errors
def info(config: ConfigOption, adapter_path: AdapterOption = None) -> None:
    """Load a configuration and list its devices, objectives and pixel sizes."""
    _print_description(_describe(config, check_adapter_paths(adapter_path)))


# -- snap ---------------------------------------------------------------------

MAX_EXPOSURE_MS = 60_000.0
"""Longest ``--exposure-ms`` accepted (one minute); a camera may allow less."""


def _check_finite(name: str, value: float, *, positive: bool = False) -> None:
    if not math.isfinite(value) or (positive and value <= 0):
        need = "a positive number" if positive else "a finite number"
        raise UserError(f"{name} {value!r} is not valid", f"Give {name} as {need}.")


def _check_exposure(exposure_ms: float) -> None:
    """Refuse a non-positive or absurdly long exposure before opening a scope."""
    _check_finite("--exposure-ms", exposure_ms, positive=True)
    if exposure_ms > MAX_EXPOSURE_MS:
        raise UserError(
            f"--exposure-ms {exposure_ms:g} ms is out of range",
            f"Allowed: 0 < exposure <= {MAX_EXPOSURE_MS:g} ms.",
        )


@app.command("snap")
@_handle_errors
def snap_command(
    config: ConfigOption,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output file, ending in .ome.tif.")
    ],
    exposure_ms: Annotated[
        float, typer.Option("--exposure-ms", help="Exposure time in ms.")
    ] = 50.0,
    objective: Annotated[
        str | None,
        typer.Option("--objective", help="Objective label (see `pairscope info`)."),
    ] = None,
    xy: Annotated[
        tuple[float, float] | None,
        typer.Option("--xy", help="Stage position X Y in um before snapping."),
    ] = None,
    z: Annotated[
        float | None, typer.Option("--z", help="Focus position in um.")
    ] = None,
    overwrite: Annotated[
        bool, flag("--overwrite", help="Replace an existing output file.")
    ] = False,
    adapter_path: AdapterOption = None,
) -> None:
    """Open the shutter, snap one image, close it, and write an OME-TIFF."""
    from acquire.hardware.snapshot import take_snapshot
    from acquire.storage.ome_tiff import write_ome_tiff

    path = check_output_file(out, overwrite=overwrite)
    _check_exposure(exposure_ms)
    for name, value in (("--xy", xy or ()), ("--z", () if z is None else (z,))):
        for item in value:
            _check_finite(name, item)
    image = take_snapshot(
        config,
        check_adapter_paths(adapter_path),
        exposure_ms=exposure_ms,
        objective=objective,
        xy=xy,
        z=z,
    )
    write_ome_tiff(path, image, overwrite=overwrite)
    label = image.objective.label if image.objective else "-"
    console.print(
        f"wrote {path} ({image.data.shape[-1]} x {image.data.shape[-2]} px, "
        f"{image.pixel_size_um:.6g} um/px, {label})",
        soft_wrap=True,
        markup=False,
    )


# -- demo ---------------------------------------------------------------------


def _progress_bars(progress: Progress) -> DemoProgress:
    """A demo progress callback that draws one bar per step."""
    tasks: dict[str, TaskID] = {}

    def show(name: str, done: int, total: int) -> None:
        if name not in tasks:
            tasks[name] = progress.add_task(name, total=total)
        progress.update(tasks[name], completed=done, total=total)

    return show


@app.command()
@_handle_errors
def demo(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="New (or empty) output folder.")
    ],
    quick: Annotated[
        bool,
        flag("--quick", help="3 cells, 21 planes, smaller fields: ~2 min."),
    ] = False,
    seed: Annotated[
        int, typer.Option("--seed", help="Specimen seed (mounts derive from it).")
    ] = 0,
    positions: Annotated[
        int | None,
        typer.Option("--positions", help="Cells to image (default 6; quick 3)."),
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option("--model", help="Model of pairscope train (default: bundled)."),
    ] = None,
    real_timing: Annotated[
        bool,
        flag(
            "--real-timing",
            help="Wait real exposure times and stage travel (slower).",
        ),
    ] = False,
    sample_medium: Annotated[
        str,
        typer.Option(
            "--sample-medium",
            help="Sample medium on both scopes: "
            f"{', '.join(SAMPLE_MEDIA)} (default matched to the oil).",
        ),
    ] = "matched",
) -> None:
    """Run the whole correlative workflow on the simulated twin scopes.

    The confocal finds the fiducials and images N cells; the wide-field, under
    another hidden mount, relocates, images and registers them into the
    paired database; new stacks are enhanced live with the bundled model; the
    report compares everything with the simulator's ground truth.
    """
    from acquire.workflows.demo import run_demo

    check_output_folder(out)
    check_seed(seed)
    check_sample_medium(sample_medium)
    with Progress(
        TextColumn("{task.description:>22}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err_console,
    ) as progress:
        result = run_demo(
            out,
            quick=quick,
            seed=seed,
            positions=positions,
            model=model,
            real_timing=real_timing,
            sample_medium=sample_medium,
            progress=_progress_bars(progress),
            log=lambda line: progress.console.print(line, markup=False),
        )
    checks = result.metrics.get("checks", {})
    table = Table(title="pairscope demo", box=box.SIMPLE_HEAD)
    table.add_column("check")
    table.add_column("result")
    for name, ok in checks.items():
        table.add_row(name, "pass" if ok else "FAIL")
    console.print(table)
    console.print(f"report: {result.report_md}", soft_wrap=True, markup=False)


# -- acquire ------------------------------------------------------------------


@app.command("acquire")
@_handle_errors
def acquire_command(
    sequence: Annotated[
        Path,
        typer.Argument(help="useq-schema MDA sequence (YAML or JSON)."),
    ],
    config: ConfigOption,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Dataset folder (new, or --resume).")
    ],
    resume: Annotated[
        bool,
        flag("--resume", help="Continue after the last committed stack."),
    ] = False,
    dry_run: Annotated[
        bool,
        flag("--dry-run", help="Validate and show the plan; move nothing."),
    ] = False,
    max_frames: Annotated[
        int, typer.Option("--max-frames", help="Refuse plans with more frames.")
    ] = SequenceLimits.max_frames,
    max_gb: Annotated[
        float, typer.Option("--max-gb", help="Refuse plans larger than this.")
    ] = SequenceLimits.max_bytes / 1e9,
    max_hours: Annotated[
        float, typer.Option("--max-hours", help="Refuse plans longer than this.")
    ] = SequenceLimits.max_duration_s / 3600,
    retries: Annotated[
        int,
        typer.Option("--retries", help="Attempts per snap or stage move (>= 1)."),
    ] = RetryPolicy.max_attempts,
    retry_backoff_ms: Annotated[
        float,
        typer.Option("--retry-backoff-ms", help="Wait before the first retry."),
    ] = RetryPolicy.backoff_ms,
) -> None:
    """Run a useq MDA sequence into a crash-safe OME-Zarr dataset.

    Every completed z-stack is committed atomically and journaled; after a
    crash or a device fault, run the same command with --resume.
    """
    from acquire.cli.acquire_display import acquire_main
    from acquire.workflows.acquisition import AcquisitionRequest

    for name, value in (("--max-gb", max_gb), ("--max-hours", max_hours)):
        _check_finite(name, value, positive=True)
    if max_frames < 1:
        raise UserError(f"--max-frames {max_frames} is not valid", "Give at least 1.")
    try:
        policy = RetryPolicy(max_attempts=retries, backoff_ms=retry_backoff_ms)
    except ValueError as exc:
        raise UserError(f"retry options are not valid: {exc}", "") from None
    request = AcquisitionRequest(
        sequence=sequence,
        config_path=config,
        out=out,
        resume=resume,
        limits=SequenceLimits(
            max_frames=max_frames,
            max_bytes=int(max_gb * 1e9),
            max_duration_s=max_hours * 3600,
        ),
        retry_policy=policy,
    )
    code = acquire_main(request, dry=dry_run, console=console, err_console=err_console)
    if code:
        raise typer.Exit(code)


# -- fiducials and relocation --------------------------------------------------

HolderOption = Annotated[
    Path,
    typer.Option(
        "--holder",
        help="Holder description (JSON) with the marks' shapes, sizes and nominal "
        "positions.",
    ),
]
SearchObjectiveOption = Annotated[
    str | None,
    typer.Option("--search-objective", help="Default: the lowest magnification."),
]
FineObjectiveOption = Annotated[
    str | None,
    typer.Option("--fine-objective", help="Default: the objective in use."),
]
FlatFieldOption = Annotated[
    list[str] | None,
    typer.Option(
        "--flat-field",
        help="OBJECTIVE=PATH: a TIFF or .npy image of a uniformly fluorescent "
        "slide through that objective; its frames are divided by it before marks "
        "are detected (evens out vignetting). Repeat for each objective.",
    ),
]
DarkLevelOption = Annotated[
    float,
    typer.Option(
        "--dark-level",
        help="Camera offset (counts) subtracted before the flat-field division.",
    ),
]


def _checked_dark_level(dark_level: float) -> float:
    if not (math.isfinite(dark_level) and dark_level >= 0):
        raise UserError(
            f"--dark-level {dark_level} is not a camera offset",
            "Give the camera's offset in counts (0 or more).",
        )
    return dark_level


@app.command("fiducials")
@_handle_errors
def fiducials_command(
    config: ConfigOption,
    out: Annotated[Path, typer.Option("--out", "-o", help="Session file to write.")],
    holder: HolderOption,
    targets: Annotated[
        Path | None,
        typer.Option(
            "--targets",
            help="useq sequence whose stage positions are the targets to revisit.",
        ),
    ] = None,
    search_objective: SearchObjectiveOption = None,
    fine_objective: FineObjectiveOption = None,
    flat_field: FlatFieldOption = None,
    dark_level: DarkLevelOption = 0.0,
) -> None:
    """Find the holder's fiducial marks on this scope and write a session file."""
    from acquire.workflows.flat_fields import parse_flat_field_specs
    from acquire.workflows.relocation import load_holder, load_targets, record_fiducials

    check_new_file(out, what="session file")
    flats = parse_flat_field_specs(flat_field or [])
    session, found = record_fiducials(
        config,
        out,
        load_holder(holder),
        targets=load_targets(targets),
        search_objective=search_objective,
        fine_objective=fine_objective,
        flat_fields=flats,
        dark_level=_checked_dark_level(dark_level),
        progress=lambda line: err_console.print(line, markup=False),
    )
    table = Table(title=f"fiducials on {session.scope}", box=box.SIMPLE_HEAD)
    for column in ("mark", "x um", "y um", "z um", "score"):
        table.add_column(column, justify="right")
    for mark in found.marks:
        x, y, z = mark.stage_xyz_um
        table.add_row(
            mark.identity, f"{x:.2f}", f"{y:.2f}", f"{z:.2f}", f"{mark.score:.2f}"
        )
    console.print(table)
    console.print(
        f"{len(found.marks)} marks, {found.fields_searched} fields, "
        f"{found.wall_time_s:.1f} s; {len(session.targets)} targets; wrote {out}",
        markup=False,
    )


@app.command("relocate")
@_handle_errors
def relocate_command(
    session: Annotated[Path, typer.Argument(help="Session file from `fiducials`.")],
    config: ConfigOption,
    export: Annotated[
        Path | None,
        typer.Option("--export", help="Write the targets as a useq sequence (YAML)."),
    ] = None,
    template: Annotated[
        Path | None,
        typer.Option("--template", help="Sequence whose plans the export keeps."),
    ] = None,
    max_error_fraction: Annotated[
        float,
        typer.Option(
            "--max-error-fraction", help="Warn above this fraction of the FOV."
        ),
    ] = 0.1,
    search_objective: SearchObjectiveOption = None,
    fine_objective: FineObjectiveOption = None,
    flat_field: FlatFieldOption = None,
    dark_level: DarkLevelOption = 0.0,
) -> None:
    """Find the marks on this scope, fit the transform, map the session's targets."""
    from acquire.workflows.flat_fields import parse_flat_field_specs
    from acquire.workflows.relocation import check_export, export_sequence, relocate

    check_export(export, template)  # before minutes of scope work
    flats = parse_flat_field_specs(flat_field or [])
    transform, targets, found_here = relocate(
        session,
        config,
        max_error_fraction_of_fov=max_error_fraction,
        search_objective=search_objective,
        fine_objective=fine_objective,
        flat_fields=flats,
        dark_level=_checked_dark_level(dark_level),
        progress=lambda line: err_console.print(line, markup=False),
    )
    console.print(
        f"transform: {transform.model}, FRE {transform.residual_rms_um:.3f} um, "
        f"z residual {transform.z_residual_rms_um:.3f} um; used "
        f"{', '.join(transform.inliers)}"
        + (f"; rejected {', '.join(transform.rejected)}" if transform.rejected else ""),
        markup=False,
    )
    if found_here.missing:
        err_console.print(
            f"marks not found here: {', '.join(found_here.missing)}", markup=False
        )
    table = Table(title="targets on this scope", box=box.SIMPLE_HEAD)
    for column in ("target", "x um", "y um", "z um", "TRE um", "z err um", ""):
        table.add_column(column, justify="right")
    for t in targets:
        x, y, z = t.stage_xyz_um
        table.add_row(
            t.name,
            f"{x:.2f}",
            f"{y:.2f}",
            f"{z:.2f}",
            f"{t.predicted_tre_um:.2f}",
            f"{t.predicted_z_error_um:.2f}",
            "CHECK" if t.too_uncertain else "",
        )
    console.print(table)
    if any(t.too_uncertain for t in targets):
        err_console.print(
            "warning: some targets' predicted error exceeds "
            f"{max_error_fraction:.0%} of the field of view",
            markup=False,
        )
    if export is not None:
        export_sequence(export, targets, template=template)
        console.print(f"wrote {export}", markup=False)


def main() -> None:
    """Entry point of the ``pairscope`` command."""
    try:
        app()
    finally:
        gc.collect()


if __name__ == "__main__":
    sys.exit(main())  # type: ignore[func-returns-value]
