"""The ``pairscope`` command line: inspect a scope, snap an image, run the demo.

User errors (a broken configuration, a bad path, an existing output, a bad
option value) print one message to stderr and exit with code 2; unexpected
failures print one line and exit with code 1. Every core is torn down before
the process exits.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import gc
import json
import math
import shutil
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypeVar

import numpy as np
import tifffile
import typer
from numpy.typing import NDArray
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from acquire._version import __version__
from acquire.config_check import ConfigError
from acquire.hardware import (
    ObjectiveInfo,
    ScopeDescription,
    describe_scope,
    illumination,
    scope,
    set_objective,
    snap,
)

__all__ = ["UserError", "app", "main"]

app = typer.Typer(
    name="pairscope",
    help="Correlative wide-field/confocal acquisition on Micro-Manager.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

F = TypeVar("F", bound=Callable[..., Any])


class UserError(Exception):
    """A mistake in what the user asked for: what, where, and how to fix it.

    Parameters
    ----------
    what : str
        What is wrong (one sentence, naming the path or option).
    hint : str
        How to fix it.

    """

    def __init__(self, what: str, hint: str = "") -> None:
        self.what = what.rstrip(". ")
        self.hint = hint.strip()
        super().__init__(f"{self.what}. {self.hint}".strip())


def _fail(message: str, code: int) -> typer.Exit:
    err_console.print(f"pairscope: error: {message}", soft_wrap=True, markup=False)
    return typer.Exit(code)


def _handle_errors(func: F) -> F:
    """Turn user errors into exit code 2 and crashes into exit code 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (ConfigError, UserError) as exc:
            raise _fail(str(exc), 2) from None
        except KeyboardInterrupt:
            raise _fail("interrupted", 130) from None
        except typer.Exit:
            raise
        except Exception as exc:
            detail = " ".join(str(exc).split()) or "no details"
            raise _fail(f"{type(exc).__name__}: {detail}", 1) from None
        finally:
            gc.collect()

    return wrapper  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        console.print(f"pairscope {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """Correlative wide-field/confocal acquisition on Micro-Manager."""


ConfigOption = Annotated[
    Path,
    typer.Option(
        "--config",
        "-c",
        help="Micro-Manager configuration file (.cfg), e.g. "
        "hardware_configs/demo_widefield.cfg.",
    ),
]
AdapterOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--adapter-path",
        help="Folder with Micro-Manager adapter libraries (repeatable). Default: "
        "the Micro-Manager installation (MICROMANAGER_PATH) and mm-test-adapters.",
        envvar="PAIRSCOPE_ADAPTER_PATH",
    ),
]


# -- OME-TIFF -----------------------------------------------------------------

_OME_NS = "http://www.openmicroscopy.org/Schemas/OME/2016-06"
_XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
_UM = "\u00b5m"
_IMMERSION_OME = {"oil": "Oil", "water": "Water", "glycerol": "Glycerol", "air": "Air"}


@dataclass
class OmeImage:
    """A z-stack (or one plane) and what OME-TIFF readers need to know about it.

    Attributes
    ----------
    data : numpy.ndarray
        Pixels, shape (planes, rows, columns).
    pixel_size_um : float
        Pixel size at the sample.
    z_step_um : float or None
        Distance between planes (None for a single plane).
    positions_um : list of (x, y, z)
        Stage position of every plane.
    exposure_ms : float
        Exposure time per plane.
    objective : ObjectiveInfo or None
        The objective in the light path.
    camera : str
        Camera device label.
    channel : str
        Channel preset name ("" if none).
    annotations : dict
        Extra key/value pairs stored as an OME MapAnnotation.

    """

    data: NDArray[Any]
    pixel_size_um: float
    z_step_um: float | None
    positions_um: list[tuple[float, float, float]]
    exposure_ms: float
    objective: ObjectiveInfo | None
    camera: str
    channel: str = ""
    annotations: dict[str, str] = field(default_factory=dict)


def _sub(parent: ET.Element, tag: str, **attrs: object) -> ET.Element:
    return ET.SubElement(
        parent, f"{{{_OME_NS}}}{tag}", {k: str(v) for k, v in attrs.items()}
    )


def ome_xml(image: OmeImage, name: str) -> str:
    """OME-XML (2016-06 schema) describing ``image``, as 7-bit ASCII text.

    Parameters
    ----------
    image : OmeImage
        The image and its metadata.
    name : str
        Image name.

    Returns
    -------
    str
        The XML document, non-ASCII characters as character references.

    """
    ET.register_namespace("", _OME_NS)
    ET.register_namespace("xsi", _XSI_NS)
    root = ET.Element(
        f"{{{_OME_NS}}}OME",
        {
            "Creator": f"pairscope {__version__}",
            f"{{{_XSI_NS}}}schemaLocation": f"{_OME_NS} {_OME_NS}/ome.xsd",
        },
    )
    instrument = _sub(root, "Instrument", ID="Instrument:0")
    _sub(instrument, "Detector", ID="Detector:0", Model=image.camera)
    obj = image.objective
    if obj is not None:
        attrs: dict[str, object] = {"ID": "Objective:0", "Model": obj.label}
        if obj.magnification:
            attrs["NominalMagnification"] = obj.magnification
        if obj.numerical_aperture:
            attrs["LensNA"] = obj.numerical_aperture
        if obj.immersion:
            attrs["Immersion"] = _IMMERSION_OME.get(obj.immersion.lower(), "Other")
        _sub(instrument, "Objective", **attrs)
    img = _sub(root, "Image", ID="Image:0", Name=name)
    date = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    _sub(img, "AcquisitionDate").text = date.isoformat()
    _sub(img, "InstrumentRef", ID="Instrument:0")
    if obj is not None:
        _sub(img, "ObjectiveSettings", ID="Objective:0")
    n_planes, rows, cols = image.data.shape
    pixels_attrs: dict[str, object] = {
        "ID": "Pixels:0",
        "DimensionOrder": "XYZCT",
        "Type": np.dtype(image.data.dtype).name,
        "SizeX": cols,
        "SizeY": rows,
        "SizeZ": n_planes,
        "SizeC": 1,
        "SizeT": 1,
        "PhysicalSizeX": image.pixel_size_um,
        "PhysicalSizeXUnit": _UM,
        "PhysicalSizeY": image.pixel_size_um,
        "PhysicalSizeYUnit": _UM,
    }
    if image.z_step_um is not None:
        pixels_attrs.update(PhysicalSizeZ=image.z_step_um, PhysicalSizeZUnit=_UM)
    pixels = _sub(img, "Pixels", **pixels_attrs)
    channel = _sub(pixels, "Channel", ID="Channel:0:0", SamplesPerPixel=1)
    if image.channel:
        channel.set("Name", image.channel)
    _sub(channel, "DetectorSettings", ID="Detector:0")
    _sub(pixels, "TiffData", IFD=0, PlaneCount=n_planes)
    for z_index, (x_um, y_um, z_um) in enumerate(image.positions_um):
        _sub(
            pixels,
            "Plane",
            TheZ=z_index,
            TheC=0,
            TheT=0,
            ExposureTime=image.exposure_ms,
            ExposureTimeUnit="ms",
            PositionX=x_um,
            PositionXUnit=_UM,
            PositionY=y_um,
            PositionYUnit=_UM,
            PositionZ=z_um,
            PositionZUnit=_UM,
        )
    if image.annotations:
        _sub(img, "AnnotationRef", ID="Annotation:0")
        annotations = _sub(root, "StructuredAnnotations")
        mapping = _sub(
            annotations, "MapAnnotation", ID="Annotation:0", Namespace="pairscope"
        )
        value = _sub(mapping, "Value")
        for key, text in image.annotations.items():
            _sub(value, "M", K=key).text = text
    body = ET.tostring(root, encoding="unicode")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + body.encode(
        "ascii", "xmlcharrefreplace"
    ).decode("ascii")


def write_ome_tiff(path: Path, image: OmeImage, *, overwrite: bool = False) -> None:
    """Write ``image`` as an OME-TIFF, atomically (temporary file + rename).

    Parameters
    ----------
    path : Path
        Target file (``.ome.tif``).
    image : OmeImage
        Pixels and metadata.
    overwrite : bool
        Replace an existing file; otherwise an existing file is an error.

    Raises
    ------
    UserError
        ``path`` exists and ``overwrite`` is False.

    """
    if path.exists() and not overwrite:
        raise UserError(f"output file {str(path)!r} already exists", "Use --overwrite.")
    name = path.name.split(".")[0]
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        tifffile.imwrite(
            tmp,
            image.data,
            description=ome_xml(image, name),
            metadata=None,
            photometric="minisblack",
        )
        tmp.replace(path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def check_adapter_paths(paths: list[Path] | None) -> list[Path] | None:
    """Check that every ``--adapter-path`` is an existing folder.

    Parameters
    ----------
    paths : list of Path or None
        Folders given on the command line (None: use the defaults).

    Returns
    -------
    list of Path or None
        The same folders, absolute.

    Raises
    ------
    UserError
        A folder does not exist.

    """
    if not paths:
        return None
    for path in paths:
        if not path.expanduser().is_dir():
            raise UserError(
                f"adapter folder {str(path)!r} (--adapter-path or "
                "PAIRSCOPE_ADAPTER_PATH) does not exist",
                "Give the Micro-Manager installation folder that holds the "
                "mmgr_dal_* libraries.",
            )
    return [path.expanduser().absolute() for path in paths]


# -- info ---------------------------------------------------------------------


def _describe(config: Path, adapter_paths: list[Path] | None) -> ScopeDescription:
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


def check_output_file(out: Path, *, overwrite: bool) -> Path:
    """Check an output path for an OME-TIFF; return it absolute.

    Parameters
    ----------
    out : Path
        Requested output file.
    overwrite : bool
        Whether an existing file may be replaced.

    Returns
    -------
    Path
        The absolute path.

    Raises
    ------
    UserError
        Wrong extension, missing folder, a folder in the way, or an existing
        file without ``overwrite``.

    """
    path = out.expanduser().absolute()
    if not path.name.lower().endswith((".ome.tif", ".ome.tiff")):
        raise UserError(
            f"output file {str(out)!r} must end in .ome.tif or .ome.tiff",
            f"Use e.g. --out {path.name.split('.')[0] or 'image'}.ome.tif.",
        )
    if not path.parent.is_dir():
        raise UserError(
            f"output folder {str(path.parent)!r} does not exist",
            "Create it first or choose another --out.",
        )
    if path.is_dir():
        raise UserError(f"output {str(path)!r} is a folder", "Give a file name.")
    if path.exists() and not overwrite:
        raise UserError(
            f"output file {str(path)!r} already exists",
            "Choose another --out, or pass --overwrite to replace it.",
        )
    return path


def _check_finite(name: str, value: float, *, positive: bool = False) -> None:
    if not math.isfinite(value) or (positive and value <= 0):
        need = "a positive number" if positive else "a finite number"
        raise UserError(f"{name} {value!r} is not valid", f"Give {name} as {need}.")


def _apply(option: str, action: Callable[[], object]) -> None:
    """Run ``action``; a device that rejects the value is the user's error."""
    try:
        action()
    except (RuntimeError, ValueError) as exc:
        detail = " ".join(str(exc).split())
        raise UserError(
            f"{option}: the device rejected the value ({detail})",
            "Choose a value within the device's range.",
        ) from None


def _snap(
    config: Path,
    adapter_paths: list[Path] | None,
    *,
    exposure_ms: float,
    objective: str | None,
    xy: tuple[float, float] | None,
    z: float | None,
) -> OmeImage:
    with scope(config, adapter_paths=adapter_paths) as core:
        if objective is not None:
            try:
                set_objective(core, objective)
            except ValueError as exc:
                raise UserError(
                    f"--objective: {exc}", "Run `pairscope info`."
                ) from None
        _apply("--exposure-ms", lambda: core.setExposure(exposure_ms))
        if xy is not None:
            _apply("--xy", lambda: core.setXYPosition(*xy))
        if z is not None:
            _apply("--z", lambda: core.setPosition(z))
        core.waitForSystem()
        desc = describe_scope(core)
        if desc.pixel_size_um <= 0:
            raise UserError(
                f"objective {desc.current_objective!r} has no pixel size in {config}",
                "Choose a configured objective with --objective, or add a "
                "pixel-size configuration for it (docs/configs.md).",
            )
        image = snap(core)
        x_um, y_um = core.getXYPosition()
        return OmeImage(
            data=image[np.newaxis],
            pixel_size_um=desc.pixel_size_um,
            z_step_um=None,
            positions_um=[(float(x_um), float(y_um), float(core.getPosition()))],
            exposure_ms=float(core.getExposure()),
            objective=next(
                (o for o in desc.objectives if o.label == desc.current_objective), None
            ),
            camera=desc.camera,
            channel=core.getCurrentConfig(core.getChannelGroup())
            if core.getChannelGroup()
            else "",
            annotations={
                "pairscope.config": str(desc.config_file),
                "pairscope.camera": desc.camera,
                "pairscope.objective": desc.current_objective or "",
            },
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
        bool, typer.Option("--overwrite", help="Replace an existing output file.")
    ] = False,
    adapter_path: AdapterOption = None,
) -> None:
    """Open the shutter, snap one image, close it, and write an OME-TIFF."""
    path = check_output_file(out, overwrite=overwrite)
    _check_finite("--exposure-ms", exposure_ms, positive=True)
    for name, value in (("--xy", xy or ()), ("--z", () if z is None else (z,))):
        for item in value:
            _check_finite(name, item)
    image = _snap(
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

_CONFIG_DIR = Path(__file__).resolve().parent.parent / "hardware_configs"
DEMO_SCOPES: dict[str, str] = {
    "widefield": "demo_widefield.cfg",
    "confocal": "demo_confocal.cfg",
}


@dataclass(frozen=True)
class DemoPlan:
    """How many cells and planes the demo acquires on each scope."""

    n_positions: int
    n_planes: int
    z_step_um: float
    focus_height_um: float = 2.0


FULL_PLAN = DemoPlan(n_positions=2, n_planes=21, z_step_um=0.25)
QUICK_PLAN = DemoPlan(n_positions=1, n_planes=11, z_step_um=0.5)


@dataclass
class StackResult:
    """One saved z-stack (a row of the demo summary)."""

    scope_name: str
    path: Path
    shape: tuple[int, ...]
    pixel_size_um: float
    z_step_um: float
    minimum: int
    maximum: int
    seconds: float


def check_output_folder(out: Path) -> Path:
    """Check that ``out`` is a new or empty folder; return it absolute.

    Parameters
    ----------
    out : Path
        Requested output folder.

    Returns
    -------
    Path
        The absolute path.

    Raises
    ------
    UserError
        ``out`` is a file, holds other data, or its parent does not exist.

    """
    path = out.expanduser().absolute()
    if path.exists():
        if not path.is_dir():
            raise UserError(f"--out {str(path)!r} is a file", "Give a folder.")
        if any(path.iterdir()):
            raise UserError(
                f"output folder {str(path)!r} already holds data",
                "Choose a new or empty folder; pairscope does not mix runs.",
            )
    elif not path.parent.is_dir():
        raise UserError(
            f"parent folder {str(path.parent)!r} of --out does not exist",
            "Create it first or choose another --out.",
        )
    return path


def _json_ready(value: Any) -> Any:
    """Dataclasses, tuples and numpy values as plain JSON types."""
    if hasattr(value, "__dataclass_fields__"):
        return {k: _json_ready(getattr(value, k)) for k in value.__dataclass_fields__}
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


class _StackCollector:
    """Collects MDA frames into one (planes, rows, cols) array per position."""

    def __init__(self, plan: DemoPlan, shape: tuple[int, int], dtype: Any) -> None:
        self.stacks = [
            np.zeros((plan.n_planes, *shape), dtype=dtype)
            for _ in range(plan.n_positions)
        ]
        self.positions: list[list[tuple[float, float, float]]] = [
            [(math.nan, math.nan, math.nan)] * plan.n_planes
            for _ in range(plan.n_positions)
        ]
        self.received = [0] * plan.n_positions
        self.exposure_ms = math.nan
        self.on_frame: Callable[[], None] = lambda: None

    def frame_ready(self, image: NDArray[Any], event: Any, meta: Any) -> None:
        p_index = int(event.index.get("p", 0))
        z_index = int(event.index.get("z", 0))
        self.stacks[p_index][z_index] = image
        pos = meta.get("position", {}) if isinstance(meta, dict) else {}
        self.positions[p_index][z_index] = (
            float(pos.get("x", event.x_pos or 0.0)),
            float(pos.get("y", event.y_pos or 0.0)),
            float(pos.get("z", event.z_pos or 0.0)),
        )
        if isinstance(meta, dict) and "exposure_ms" in meta:
            self.exposure_ms = float(meta["exposure_ms"])
        self.received[p_index] += 1
        self.on_frame()


def _demo_sequence(core: Any, plan: DemoPlan) -> tuple[Any, list[dict[str, Any]]]:
    """The useq sequence aimed at real cells, and what it aims at."""
    import useq

    from acquire.sim.groundtruth import stage_position_of_cell

    targets = []
    positions = []
    for cell in range(plan.n_positions):
        x, y, z = stage_position_of_cell(core, cell, height_um=plan.focus_height_um)
        targets.append({"cell": cell, "stage_position_um": [x, y, z]})
        positions.append(useq.Position(x=x, y=y, z=z, name=f"cell{cell:02d}"))
    half = (plan.n_planes - 1) / 2
    z_plan = useq.ZRelativePositions(
        relative=[(k - half) * plan.z_step_um for k in range(plan.n_planes)]
    )
    channels = []
    group = core.getChannelGroup()
    if group:
        preset = core.getCurrentConfig(group)
        channels.append(useq.Channel(config=preset, group=group, exposure=None))
    sequence = useq.MDASequence(
        stage_positions=tuple(positions),
        z_plan=z_plan,
        channels=tuple(channels),
        axis_order=("p", "c", "z"),
    )
    return sequence, targets


def _demo_scope(
    name: str,
    config: Path,
    folder: Path,
    plan: DemoPlan,
    *,
    seed: int | None,
    real_timing: bool,
    adapter_paths: list[Path] | None,
    progress: Progress,
) -> tuple[list[StackResult], dict[str, Any]]:
    """Acquire and save the demo stacks on one scope; return rows + ground truth."""
    from acquire.sim.groundtruth import mount_of, specimen_of

    with scope(config, adapter_paths=adapter_paths) as core:
        camera = core.getCameraDevice()
        if seed is not None:
            core.setProperty(camera, "SpecimenSeed", seed)
        core.setProperty(camera, "RealTiming", "Yes" if real_timing else "No")
        desc = describe_scope(core)
        sequence, targets = _demo_sequence(core, plan)
        collector = _StackCollector(
            plan,
            (desc.image_height_px, desc.image_width_px),
            np.dtype(f"uint{8 if desc.bit_depth <= 8 else 16}"),
        )
        task = progress.add_task(name, total=plan.n_positions * plan.n_planes)
        collector.on_frame = lambda: progress.advance(task)
        core.mda.events.frameReady.connect(collector.frame_ready)
        started = time.perf_counter()
        try:
            with illumination(core):
                core.mda.run(sequence)
        finally:
            core.mda.events.frameReady.disconnect(collector.frame_ready)
        seconds = time.perf_counter() - started
        missing = plan.n_planes * plan.n_positions - sum(collector.received)
        if missing:
            raise RuntimeError(
                f"{name}: {missing} frame(s) were not acquired (see the "
                "pymmcore-plus log); nothing was saved for this scope"
            )
        objective = next(
            (o for o in desc.objectives if o.label == desc.current_objective), None
        )
        rows = []
        for target, stack, planes in zip(
            targets, collector.stacks, collector.positions, strict=True
        ):
            path = folder / f"{name}_cell{target['cell']:02d}.ome.tif"
            image = OmeImage(
                data=stack,
                pixel_size_um=desc.pixel_size_um,
                z_step_um=plan.z_step_um,
                positions_um=planes,
                exposure_ms=collector.exposure_ms,
                objective=objective,
                camera=camera,
                channel=sequence.channels[0].config if sequence.channels else "",
                annotations={
                    "pairscope.scope": name,
                    "pairscope.config": str(config),
                    "pairscope.objective": desc.current_objective or "",
                    "pairscope.cell": str(target["cell"]),
                },
            )
            write_ome_tiff(path, image)
            rows.append(
                StackResult(
                    name,
                    path,
                    stack.shape,
                    desc.pixel_size_um,
                    plan.z_step_um,
                    int(stack.min()),
                    int(stack.max()),
                    seconds / plan.n_positions,
                )
            )
        truth = {
            "specimen": specimen_of(core).ground_truth(),
            "config": str(config),
            "specimen_seed": int(core.getProperty(camera, "SpecimenSeed")),
            "mount_seed": int(core.getProperty(camera, "MountSeed")),
            "mount": _json_ready(mount_of(core)),
            "targets": targets,
        }
    return rows, truth


def _print_demo_summary(rows: list[StackResult], truth_path: Path) -> None:
    table = Table(title=f"pairscope demo: {truth_path.parent}", box=box.SIMPLE_HEAD)
    for column in ("file", "z x y x x", "dz um", "dxy um", "min-max", "s"):
        table.add_column(column, no_wrap=True)
    for row in rows:
        table.add_row(
            row.path.name,
            "x".join(str(n) for n in row.shape),
            f"{row.z_step_um:g}",
            f"{row.pixel_size_um:.4g}",
            f"{row.minimum}-{row.maximum}",
            f"{row.seconds:.1f}",
        )
    console.print(table)
    console.print(f"ground truth: {truth_path}", soft_wrap=True, markup=False)


@app.command()
@_handle_errors
def demo(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="New (or empty) output folder.")
    ],
    quick: Annotated[
        bool, typer.Option("--quick", help="1 cell x 11 planes instead of 2 x 21.")
    ] = False,
    seed: Annotated[
        int | None,
        typer.Option("--seed", help="Specimen seed (default: the configs' own)."),
    ] = None,
    real_timing: Annotated[
        bool,
        typer.Option("--real-timing", help="Wait real exposure times (slower)."),
    ] = False,
    adapter_path: AdapterOption = None,
) -> None:
    """Image the same simulated cells on the demo wide-field and confocal scopes.

    Each scope runs a useq MDA (cells x z-planes) aimed at real cells of the
    simulated specimen; every stack is saved as an OME-TIFF with its voxel
    size, next to ground_truth.json (the hidden mounts, for checking only).
    """
    folder = check_output_folder(out)
    adapter_paths = check_adapter_paths(adapter_path)
    if seed is not None and not 0 <= seed < 2**31:
        raise UserError(f"--seed {seed} is out of range", "Use 0 <= seed < 2**31.")
    plan = QUICK_PLAN if quick else FULL_PLAN
    configs = {name: _CONFIG_DIR / cfg for name, cfg in DEMO_SCOPES.items()}
    partial = folder.with_name(f".{folder.name}.{uuid.uuid4().hex[:8]}.partial")
    partial.mkdir()
    try:
        rows: list[StackResult] = []
        truth: dict[str, Any] = {
            "note": "simulation ground truth: hidden from the controller, for "
            "checking registration and relocation only",
            "specimen": {},
            "scopes": {},
        }
        with Progress(
            TextColumn("{task.description:>10}"),
            BarColumn(),
            MofNCompleteColumn(),
            console=err_console,
        ) as progress:
            for name, config in configs.items():
                scope_rows, scope_truth = _demo_scope(
                    name,
                    config,
                    partial,
                    plan,
                    seed=seed,
                    real_timing=real_timing,
                    adapter_paths=adapter_paths,
                    progress=progress,
                )
                rows += scope_rows
                truth["specimen"] = scope_truth.pop("specimen")
                truth["scopes"][name] = scope_truth
        truth_path = partial / "ground_truth.json"
        truth_path.write_text(json.dumps(truth, indent=2), encoding="utf-8")
        if folder.exists():
            folder.rmdir()
        partial.replace(folder)
    finally:
        if partial.exists():
            shutil.rmtree(partial, ignore_errors=True)
    for row in rows:
        row.path = folder / row.path.name
    _print_demo_summary(rows, folder / "ground_truth.json")


def main() -> None:
    """Entry point of the ``pairscope`` command."""
    try:
        app()
    finally:
        gc.collect()


if __name__ == "__main__":
    sys.exit(main())  # type: ignore[func-returns-value]
