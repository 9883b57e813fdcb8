"""Simulated wide-field/confocal stack pairs with their true transform.

Both stacks come from the project's simulated scopes (the demo configs with a
random mount each): the confocal stack first, then the wide-field stack at the
position relocation would drive to. The wide-field camera is turned by a
random residual angle that relocation does not know about; the initial
estimate is the true transform without that rotation and with the lateral and
axial error relocation leaves.

The pair transform model (see :mod:`correlate.registration`) has no tilt, so
the mounts are drawn without coverslip tilt and without stage scale error
unless asked for; `SimulatedPair.model_error_um` says how well the model fits
the simulated geometry.

Sample medium: with a medium other than the immersion (``sample_medium``) a
point at height ``h`` above the glass is in focus at the nominal focus
``F(h)`` of each scope's optics (:mod:`acquire.sim.focal_shift`), so a
confocal plane at nominal focus ``f_c`` above the glass looks at
``h = F_c^-1(f_c)``, which the wide-field scope sees in focus at
``F_w(h)``. The true transform includes this: its ``axial_scale`` is the
least-squares slope of that mapping over the confocal stack (about
``F_w' / F_c'``), exactly 1 when both scopes are index-matched. The stacks are
centred where the chosen height is in focus (glass + ``F(h)``). Relocation
knows nothing about focal shift: the initial estimate keeps an axial scale of 1.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from acquire.config.bundled import bundled_config
from acquire.hardware import microscope
from acquire.sim import groundtruth
from acquire.sim.focal_shift import FocalShift, focal_shift
from acquire.sim.psf import SAMPLE_MEDIUM_INDEX
from acquire.sim.volume_cells import VolumeRequest, parse_volume_property
from correlate.registration.transform import PairTransform

if TYPE_CHECKING:
    from collections.abc import Sequence

    from numpy.typing import NDArray

    from acquire.sim.mount import Mount

WIDEFIELD_OBJECTIVES = {
    "10x": "EC Plan-Neofluar 10x/0.3 Air",
    "40x": "Plan-Apochromat 40x/1.3 Oil",
    "63x": "Plan-Apochromat 63x/1.43 Oil",
}
"""The demo wide-field scope's objectives (``hardware_configs/demo_widefield.cfg``)."""
CONFOCAL_OBJECTIVE = "Plan-Apochromat 40x/1.4 Oil"
CONFOCAL_SCAN_ZOOM_512 = 6.25
"""Scan zoom of the demo confocal: 0.1 um pixels at 512 px."""
STACK_CENTRE_HEIGHT_UM = 3.0
"""Default sample height above the coverslip that the stacks' centre planes
have in focus (cells are 2-6 um); ``simulate_pair(stack_centre_height_um=)``."""
WrongPartner = Literal["other_cell", "no_overlap"]
WidefieldObjective = Literal["10x", "40x", "63x"]
Medium = str | float
"""A ``SampleMedium`` name (``"matched"``, ``"water"`` ...) or a refractive index."""


@dataclass(frozen=True)
class SimulatedStack:
    """One simulated z-stack and where it was taken.

    Attributes
    ----------
    data : ndarray of float32
        (z, y, x) detector counts.
    voxel_um : tuple of float
        (dz, dy, dx) nominal voxel size.
    stage_um : tuple of float
        Stage (X, Y, Z) of the stack centre as commanded.
    axis_xy_um : tuple of float
        Physical position of the optical axis, landing error included.
    focus_offset_um : float
        Mean physical focal height minus the nominal plane offset: the physical
        height of the stack's centre (nominal) focal plane. With a mismatched
        sample medium the sample height in focus differs (see the module
        notes).

    """

    data: NDArray[np.float32]
    voxel_um: tuple[float, float, float]
    stage_um: tuple[float, float, float]
    axis_xy_um: tuple[float, float]
    focus_offset_um: float


@dataclass(frozen=True)
class SimulatedPair:
    """A wide-field/confocal pair and the truth about it.

    Attributes
    ----------
    widefield, confocal : SimulatedStack
        The stacks.
    truth : PairTransform
        Confocal-to-wide-field transform fitted to the simulated geometry,
        axial scale included (1 when both scopes are index-matched).
    initial : PairTransform
        What relocation would give: truth without the wide-field camera's
        residual rotation and without focal shift (axial scale 1), with
        lateral and axial errors.
    camera_rotation_deg : float
        Residual rotation of the wide-field camera.
    model_error_um : float
        Largest distance between the exact simulated mapping and ``truth``
        over the confocal stack (tilt and stage scale make it non-zero).
    overlaps : bool
        False for a deliberately wrong partner.
    cell_index : int
        The cell the confocal stack looks at, an index into
        ``Specimen.all_cells`` (procedural cells, then volume cells).

    """

    widefield: SimulatedStack
    confocal: SimulatedStack
    truth: PairTransform
    initial: PairTransform
    camera_rotation_deg: float
    model_error_um: float
    overlaps: bool
    cell_index: int


@dataclass(frozen=True)
class _Scope:
    """One acquired stack with what the exact map needs about its scope."""

    stack: SimulatedStack
    mount: Mount
    axes: NDArray[np.float64]
    """Stage-frame directions of the pixel columns and rows (2x2)."""
    shift: FocalShift | None
    """Focal shift of the optics; None where nominal focus equals height."""
    glass_um: float
    """Physical height of the coverslip surface at the stack's optical axis."""


def _config(folder: Path, name: str, extra: dict[str, object]) -> Path:
    text = bundled_config(f"demo_{name}.cfg").read_text()
    text += "\n" + "".join(f"#py Property,Camera,{k},{v}\n" for k, v in extra.items())
    path = folder / f"{name}.cfg"
    path.write_text(text)
    return path


def _medium_properties(medium: Medium, scope: str) -> dict[str, object]:
    """Camera properties that put the sample in ``medium`` (none for matched)."""
    if isinstance(medium, str):
        if medium not in SAMPLE_MEDIUM_INDEX:
            raise ValueError(
                f"unknown sample medium {medium!r} for the {scope} scope; use one "
                f"of {sorted(SAMPLE_MEDIUM_INDEX)} or a refractive index"
            )
        return {} if medium == "matched" else {"SampleMedium": medium}
    if isinstance(medium, bool) or not isinstance(medium, int | float):
        raise TypeError(
            f"sample medium for the {scope} scope must be a name or a refractive "
            f"index, got {medium!r}"
        )
    if not (math.isfinite(medium) and 1.0 <= medium <= 2.0):
        raise ValueError(
            f"sample refractive index {medium!r} for the {scope} scope must lie "
            "in [1, 2] (water 1.333, mountant 1.46)"
        )
    return {"SampleRefractiveIndex": float(medium)}


def _volume_requests(
    volumes: Sequence[str | os.PathLike[str] | VolumeRequest],
) -> tuple[VolumeRequest, ...]:
    """Requests with absolute paths; strings use the SpecimenVolumes syntax."""
    if isinstance(volumes, str | os.PathLike | VolumeRequest):
        volumes = (volumes,)
    requests: list[VolumeRequest] = []
    for volume in volumes:
        if isinstance(volume, VolumeRequest):
            requests.append(volume.resolved())
        elif isinstance(volume, str | os.PathLike):
            requests.extend(parse_volume_property(os.fspath(volume)))
        else:
            raise TypeError(
                f"a volume must be a SpecimenVolumes string or a VolumeRequest, "
                f"got {volume!r}"
            )
    return tuple(requests)


def _volume_property(folder: Path, requests: tuple[VolumeRequest, ...]) -> str:
    """A SpecimenVolumes value for ``requests``: a JSON list written to ``folder``."""
    path = folder / "volumes.json"
    if any(c in str(path) for c in ",;@"):
        raise ValueError(
            f"the folder {str(folder)!r} holds ',', ';' or '@', which a "
            "SpecimenVolumes property cannot; give another workdir"
        )
    path.write_text(json.dumps([r.as_dict() for r in requests], indent=1))
    return str(path)


def _acquire_stack(
    config: Path,
    objective: str,
    *,
    cell_index: int,
    offset_xy_um: tuple[float, float],
    centre_height_um: float,
    n_planes: int,
    z_step_um: float,
) -> _Scope:
    """Acquire a stack centred near a cell, focused at ``centre_height_um``."""
    core = microscope.open_core(config)
    try:
        microscope.set_objective(core, objective)
        camera = groundtruth.simulated_camera(core)
        state = camera.read_scope_state()
        geometry = camera.geometry(state.objective)
        mount = groundtruth.mount_of(core)
        shift = focal_shift(camera.optical_setup(state.objective))
        cx, cy = groundtruth.specimen_of(core).all_cells[cell_index].centre_um
        centre = groundtruth.stage_position_of(
            core,
            (cx + offset_xy_um[0], cy + offset_xy_um[1], centre_height_um),
            objective=state.objective,
        )
        core.setXYPosition(float(centre[0]), float(centre[1]))
        core.waitForDevice(core.getXYStageDevice())
        offsets = (np.arange(n_planes) - (n_planes - 1) / 2) * z_step_um
        planes = np.empty((n_planes, *geometry.shape), np.float32)
        focus = np.empty(n_planes)
        axis = (0.0, 0.0)
        for k, dz in enumerate(offsets):
            core.setPosition(float(centre[2] + dz))
            core.waitForDevice(core.getFocusDevice())
            planes[k] = microscope.snap(core)
            axis, focus[k] = groundtruth.landed_position(core)
        pixel = geometry.pixel_size_um
        stack = SimulatedStack(
            data=planes,
            voxel_um=(z_step_um, pixel, pixel),
            stage_um=(float(centre[0]), float(centre[1]), float(centre[2])),
            axis_xy_um=axis,
            focus_offset_um=float(np.mean(focus - offsets)),
        )
        return _Scope(
            stack,
            mount,
            geometry.pixel_to_stage / pixel,
            None if shift.identity else shift,
            float(mount.surface_height_um(np.asarray(axis))),
        )
    finally:
        microscope.close_core(core)


def _exact_map(
    points_zyx: NDArray[np.float64], confocal: _Scope, widefield: _Scope
) -> NDArray[np.float64]:
    """Confocal stack coordinates to wide-field ones through the sample.

    A confocal plane's nominal focus ``f_c`` above the glass looks at height
    ``F_c^-1(f_c)``, which the wide-field scope has in focus at ``F_w(h)``.
    """
    c, w = confocal, widefield
    xy_c = points_zyx[:, [2, 1]] @ c.axes.T + np.asarray(c.stack.axis_xy_um)
    z_c = points_zyx[:, 0] + c.stack.focus_offset_um
    if c.shift is not None:
        z_c = c.glass_um + c.shift.depth_um(z_c - c.glass_um)
    sample = c.mount.physical_to_sample(np.column_stack([xy_c, z_c]))
    physical_w = w.mount.sample_to_physical(sample)
    z_w = physical_w[:, 2]
    if w.shift is not None:
        z_w = w.glass_um + w.shift.nominal_focus_um(z_w - w.glass_um)
    xy_w = (physical_w[:, :2] - np.asarray(w.stack.axis_xy_um)) @ np.linalg.inv(
        w.axes
    ).T
    return np.column_stack([z_w - w.stack.focus_offset_um, xy_w[:, 1], xy_w[:, 0]])


def _fit_transform(confocal: _Scope, widefield: _Scope) -> tuple[PairTransform, float]:
    """Least-squares PairTransform of the exact map over the confocal stack.

    Index-matched on both scopes the axial scale is 1 and only the axial
    offset is fitted; otherwise ``z_w = s z_c + tz`` is fitted over every
    plane of the stack.
    """
    matched = confocal.shift is None and widefield.shift is None
    nz, ny, nx = confocal.stack.data.shape
    dz, dy, dx = confocal.stack.voxel_um
    n_z = 5 if matched else max(5, nz)
    z_planes = (np.linspace(0, nz - 1, n_z) - (nz - 1) / 2) * dz
    if nz == 1 and not matched:
        z_planes = np.array([-0.5, 0.0, 0.5]) * dz  # the local slope
    grid = np.meshgrid(
        z_planes,
        (np.linspace(0, ny - 1, 9) - (ny - 1) / 2) * dy,
        (np.linspace(0, nx - 1, 9) - (nx - 1) / 2) * dx,
        indexing="ij",
    )
    points = np.column_stack([g.ravel() for g in grid])
    mapped = _exact_map(points, confocal, widefield)
    design = np.column_stack([points[:, 1:], np.ones(len(points))])
    coef, *_ = np.linalg.lstsq(design, mapped[:, 1:], rcond=None)
    if matched:
        axial_scale = 1.0
        tz = float(np.mean(mapped[:, 0] - points[:, 0]))
    else:
        axial_design = np.column_stack([points[:, 0], np.ones(len(points))])
        (axial_scale, tz), *_ = np.linalg.lstsq(axial_design, mapped[:, 0], rcond=None)
    transform = PairTransform.from_arrays(
        coef[:2].T, [tz, coef[2, 0], coef[2, 1]], float(axial_scale)
    )
    error = float(np.max(np.linalg.norm(transform.apply(points) - mapped, axis=1)))
    return transform, error


def simulate_pair(
    seed: int,
    *,
    widefield_objective: WidefieldObjective = "40x",
    n_planes: int = 41,
    z_step_um: float = 0.25,
    max_residual_rotation_deg: float = 5.0,
    initial_lateral_error_um: float = 0.5,
    initial_axial_error_um: float = 0.3,
    cell: int | str | None = None,
    wrong_partner: WrongPartner | None = None,
    tilt_and_scale_errors: bool = False,
    field_px: int = 512,
    workdir: Path | None = None,
    sample_medium: Medium | tuple[Medium, Medium] = "matched",
    volumes: Sequence[str | os.PathLike[str] | VolumeRequest] = (),
    stack_centre_height_um: float = STACK_CENTRE_HEIGHT_UM,
) -> SimulatedPair:
    """Acquire a confocal stack and its wide-field partner on the simulated scopes.

    Parameters
    ----------
    seed : int
        Seeds the mounts, the cell, the camera rotation, the noise and the
        initial error; the same seed gives the same pair.
    widefield_objective : {"40x", "63x", "10x"}
        Wide-field objective of the demo config: 40x/1.3 oil (0.1625 um
        pixels), 63x/1.43 oil (0.103 um) or 10x/0.3 air (0.65 um); the
        confocal uses its 40x/1.4 oil at 0.1 um.
    n_planes : int
        Planes per stack (both stacks).
    z_step_um : float
        Plane spacing in nominal stage units (both stacks).
    max_residual_rotation_deg : float
        The wide-field camera is turned uniformly within +- this.
    initial_lateral_error_um : float
        Standard deviation per axis of the initial estimate's lateral error.
    initial_axial_error_um : float
        Standard deviation of the initial estimate's axial error.
    cell : int or str, optional
        Cell to look at: an index into ``Specimen.all_cells`` (the procedural
        cells, then the volume cells) or a cell's identity (``"V00"`` for the
        first of ``volumes``); drawn from the seed among the procedural cells
        if None.
    wrong_partner : {"other_cell", "no_overlap"}, optional
        Take the wide-field stack at another cell, or 150 um away from the
        confocal field, while the initial estimate still claims the right place.
    tilt_and_scale_errors : bool
        Keep the mounts' coverslip tilt and stage scale errors (which the pair
        transform model cannot represent).
    field_px : int
        Frame side in pixels, both scopes (the confocal's scan zoom follows
        so that its pixel stays 0.1 um).
    workdir : Path, optional
        Folder for the two config files (and ``volumes.json``); a temporary
        one if None.
    sample_medium : str or float, or a (confocal, widefield) pair of them
        Medium the cells sit in, for both scopes or per scope: a
        ``SampleMedium`` name (``"matched"`` to the immersion, ``"water"``,
        ``"glycerol"``, ``"mountant"``, ``"oil"``) or a refractive index
        (``SampleRefractiveIndex``). A medium other than the immersion shifts
        the focus with depth differently on each scope's optics: the truth
        then has an axial scale (see the module notes).
    volumes : sequence of str or VolumeRequest
        Real volumes placed as extra cells on both scopes' coverslip:
        ``SpecimenVolumes`` strings (``"path[@dz:dy:dx][@height=UM]..."``;
        relative paths from the current directory) or requests. They do not
        move the procedural cells; select one with ``cell="V00"``.
    stack_centre_height_um : float
        Height above the glass of the sample plane that the stacks' centre
        planes have in focus (each scope focuses glass + ``F(height)``);
        e.g. 1.5 um above or below a cell's middle to put it off-centre.

    Returns
    -------
    SimulatedPair
        Stacks, true transform and initial estimate.

    """
    if not math.isfinite(stack_centre_height_um):
        raise ValueError(
            f"stack_centre_height_um must be finite, got {stack_centre_height_um!r}"
        )
    if widefield_objective not in WIDEFIELD_OBJECTIVES:
        raise ValueError(
            f"unknown wide-field objective {widefield_objective!r}; the demo "
            f"wide-field scope has {sorted(WIDEFIELD_OBJECTIVES)}"
        )
    media = sample_medium if isinstance(sample_medium, tuple) else (sample_medium,) * 2
    if len(media) != 2:
        raise ValueError(
            f"sample_medium pair must be (confocal, widefield), got {sample_medium!r}"
        )
    requests = _volume_requests(volumes)
    rng = np.random.default_rng([seed, 0x70616972])
    rotation = float(rng.uniform(-max_residual_rotation_deg, max_residual_rotation_deg))
    common: dict[str, object] = {
        "RealTiming": "No",
        "SensorWidthPx": field_px,
        "SensorHeightPx": field_px,
    }
    if not tilt_and_scale_errors:
        common |= {"MountMaxTiltDeg": 0.0, "StageMaxScaleError": 0.0}
    mount_seeds = rng.integers(0, 2**31 - 1, 4)
    confocal_extra = common | {
        "MountSeed": mount_seeds[0],
        "NoiseSeed": mount_seeds[1],
        "ScanZoom": CONFOCAL_SCAN_ZOOM_512 * 512 / field_px,
    }
    widefield_extra = common | {
        "MountSeed": mount_seeds[2],
        "NoiseSeed": mount_seeds[3],
        "CameraRotationDeg": rotation,
    }
    confocal_extra |= _medium_properties(media[0], "confocal")
    widefield_extra |= _medium_properties(media[1], "wide-field")
    offset = tuple(float(v) for v in rng.uniform(-5.0, 5.0, 2))
    lateral_error = rng.normal(0.0, initial_lateral_error_um, 2)
    axial_error = float(rng.normal(0.0, initial_axial_error_um))
    with tempfile.TemporaryDirectory(prefix="pairscope-pair-") as tmp:
        folder = workdir or Path(tmp)
        if requests:
            volume_value = _volume_property(folder, requests)
            confocal_extra["SpecimenVolumes"] = volume_value
            widefield_extra["SpecimenVolumes"] = volume_value
        confocal_cfg = _config(folder, "confocal", confocal_extra)
        widefield_cfg = _config(folder, "widefield", widefield_extra)
        n_cells, identities = _cells(confocal_cfg)
        if cell is None:
            cell_index = int(rng.integers(0, n_cells))
        else:
            cell_index = _cell_index(cell, identities)
        confocal = _acquire_stack(
            confocal_cfg,
            CONFOCAL_OBJECTIVE,
            cell_index=cell_index,
            offset_xy_um=offset,  # type: ignore[arg-type]
            centre_height_um=stack_centre_height_um,
            n_planes=n_planes,
            z_step_um=z_step_um,
        )
        partner_cell = cell_index
        partner_offset = offset
        n_all = len(identities)
        if wrong_partner == "other_cell":
            partner_cell = (cell_index + 1 + int(rng.integers(0, n_all - 1))) % n_all
        elif wrong_partner == "no_overlap":
            partner_offset = (offset[0] + 150.0, offset[1])
        widefield = _acquire_stack(
            widefield_cfg,
            WIDEFIELD_OBJECTIVES[widefield_objective],
            cell_index=partner_cell,
            offset_xy_um=partner_offset,  # type: ignore[arg-type]
            centre_height_um=stack_centre_height_um,
            n_planes=n_planes,
            z_step_um=z_step_um,
        )
    truth, model_error = _fit_transform(confocal, widefield)
    # relocation's view: both stages where they were sent (no landing errors),
    # the wide-field stage at the confocal's cell, a camera believed unrotated,
    # nominal focus taken for height (no focal shift: axial scale 1)
    c, w = confocal, widefield
    believed_c = _as_commanded(c.stack, c.mount, c.stack.stage_um)
    target = w.mount.sample_to_stage(c.mount.stage_to_sample(c.stack.stage_um))
    believed_w = _as_commanded(w.stack, w.mount, tuple(float(v) for v in target))
    believed, _ = _fit_transform(
        _Scope(believed_c, c.mount, c.axes, None, c.glass_um),
        _Scope(believed_w, w.mount, _rotation_xy(-rotation) @ w.axes, None, w.glass_um),
    )
    initial = PairTransform.from_arrays(
        believed.matrix_array,
        believed.translation_array + np.array([axial_error, *lateral_error]),
    )
    return SimulatedPair(
        widefield=w.stack,
        confocal=c.stack,
        truth=truth,
        initial=initial,
        camera_rotation_deg=rotation,
        model_error_um=model_error,
        overlaps=wrong_partner is None,
        cell_index=cell_index,
    )


def _cell_index(cell: int | str, identities: list[str]) -> int:
    """Index into ``Specimen.all_cells`` of a cell given by index or identity."""
    if isinstance(cell, str):
        if cell not in identities:
            volumes = [i for i in identities if i.startswith("V")]
            raise ValueError(
                f"no cell {cell!r} on the specimen; volume cells: {volumes or 'none'}"
                " (pass volumes=... to add some), or give an index"
            )
        return identities.index(cell)
    index = int(cell)
    if not 0 <= index < len(identities):
        raise IndexError(
            f"cell {cell} does not exist (the specimen has {len(identities)} cells)"
        )
    return index


def _rotation_xy(angle_deg: float) -> NDArray[np.float64]:
    a = np.deg2rad(angle_deg)
    return np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])


def _as_commanded(
    stack: SimulatedStack, mount: Mount, stage_um: tuple[float, ...]
) -> SimulatedStack:
    """The stack as the controller believes it: exactly where the stage was sent."""
    physical = mount.stage_to_physical(stage_um)
    return SimulatedStack(
        data=stack.data,
        voxel_um=stack.voxel_um,
        stage_um=(float(stage_um[0]), float(stage_um[1]), float(stage_um[2])),
        axis_xy_um=(float(physical[0]), float(physical[1])),
        focus_offset_um=float(physical[2]),
    )


def _cells(config: Path) -> tuple[int, list[str]]:
    """Number of procedural cells and the identities of ``Specimen.all_cells``."""
    core = microscope.open_core(config)
    try:
        specimen = groundtruth.specimen_of(core)
        return len(specimen.cells), [c.identity for c in specimen.all_cells]
    finally:
        microscope.close_core(core)
