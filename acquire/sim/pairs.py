"""Simulated wide-field/confocal stack pairs with their true transform.

Both stacks come from the project's simulated scopes (the demo configs with a
random mount each): the confocal stack first, then the wide-field stack at the
position relocation would drive to. The wide-field camera is turned by a
random residual angle that relocation does not know about; the initial
estimate is the true transform without that rotation and with the lateral and
axial error relocation leaves.

The pair transform model (see :mod:`correlate.registration`) has no tilt and
no axial scale, so the mounts are drawn without coverslip tilt and without
stage scale error unless asked for; `SimulatedPair.model_error_um` says how
well the model fits the simulated geometry.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from acquire import hardware
from acquire.bundled_configs import bundled_config
from acquire.sim import groundtruth
from acquire.sim.mount import Mount
from correlate.registration.transform import PairTransform

WIDEFIELD_OBJECTIVES = {
    "40x": "Plan-Apochromat 40x/1.3 Oil",
    "63x": "Plan-Apochromat 63x/1.43 Oil",
}
CONFOCAL_OBJECTIVE = "Plan-Apochromat 40x/1.4 Oil"
CONFOCAL_SCAN_ZOOM_512 = 6.25
"""Scan zoom of the demo confocal: 0.1 um pixels at 512 px."""
STACK_CENTRE_HEIGHT_UM = 3.0
"""Height above the coverslip of the stacks' centre plane (cells are 2-6 um)."""
WrongPartner = Literal["other_cell", "no_overlap"]


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
        height of the stack's centre plane.

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
        Confocal-to-wide-field transform fitted to the simulated geometry.
    initial : PairTransform
        What relocation would give: truth without the wide-field camera's
        residual rotation, with lateral and axial errors.
    camera_rotation_deg : float
        Residual rotation of the wide-field camera.
    model_error_um : float
        Largest distance between the exact simulated mapping and ``truth``
        over the confocal stack (tilt and stage scale make it non-zero).
    overlaps : bool
        False for a deliberately wrong partner.
    cell_index : int
        The cell the confocal stack looks at.

    """

    widefield: SimulatedStack
    confocal: SimulatedStack
    truth: PairTransform
    initial: PairTransform
    camera_rotation_deg: float
    model_error_um: float
    overlaps: bool
    cell_index: int


def _config(folder: Path, name: str, extra: dict[str, object]) -> Path:
    text = bundled_config(f"demo_{name}.cfg").read_text()
    text += "\n" + "".join(f"#py Property,Camera,{k},{v}\n" for k, v in extra.items())
    path = folder / f"{name}.cfg"
    path.write_text(text)
    return path


def _acquire_stack(
    config: Path,
    objective: str,
    *,
    cell_index: int,
    offset_xy_um: tuple[float, float],
    n_planes: int,
    z_step_um: float,
) -> tuple[SimulatedStack, Mount, NDArray[np.float64]]:
    """Acquire a stack centred near a cell; also the mount and the pixel axes."""
    core = hardware.open_core(config)
    try:
        hardware.set_objective(core, objective)
        camera = groundtruth.simulated_camera(core)
        state = camera.read_scope_state()
        geometry = camera.geometry(state.objective)
        mount = groundtruth.mount_of(core)
        cx, cy = groundtruth.specimen_of(core).cells[cell_index].centre_um
        centre = mount.sample_to_stage(
            (cx + offset_xy_um[0], cy + offset_xy_um[1], STACK_CENTRE_HEIGHT_UM)
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
            planes[k] = hardware.snap(core)
            axis, focus[k] = groundtruth.landed_position(core)
        pixel = geometry.pixel_size_um
        stack = SimulatedStack(
            data=planes,
            voxel_um=(z_step_um, pixel, pixel),
            stage_um=(float(centre[0]), float(centre[1]), float(centre[2])),
            axis_xy_um=axis,
            focus_offset_um=float(np.mean(focus - offsets)),
        )
        return stack, mount, geometry.pixel_to_stage / pixel
    finally:
        hardware.close_core(core)


def _exact_map(
    points_zyx: NDArray[np.float64],
    confocal: tuple[SimulatedStack, Mount, NDArray[np.float64]],
    widefield: tuple[SimulatedStack, Mount, NDArray[np.float64]],
) -> NDArray[np.float64]:
    """Confocal stack coordinates to wide-field ones through the sample."""
    c_stack, c_mount, c_axes = confocal
    w_stack, w_mount, w_axes = widefield
    xy_c = points_zyx[:, [2, 1]] @ c_axes.T + np.asarray(c_stack.axis_xy_um)
    z_c = points_zyx[:, 0] + c_stack.focus_offset_um
    sample = c_mount.physical_to_sample(np.column_stack([xy_c, z_c]))
    physical_w = w_mount.sample_to_physical(sample)
    xy_w = (physical_w[:, :2] - np.asarray(w_stack.axis_xy_um)) @ np.linalg.inv(
        w_axes
    ).T
    return np.column_stack(
        [physical_w[:, 2] - w_stack.focus_offset_um, xy_w[:, 1], xy_w[:, 0]]
    )


def _fit_transform(
    confocal: SimulatedStack,
    mapper: tuple[tuple[SimulatedStack, Mount, NDArray[np.float64]], ...],
) -> tuple[PairTransform, float]:
    """Least-squares PairTransform of the exact map over the confocal stack."""
    nz, ny, nx = confocal.data.shape
    dz, dy, dx = confocal.voxel_um
    grid = np.meshgrid(
        (np.linspace(0, nz - 1, 5) - (nz - 1) / 2) * dz,
        (np.linspace(0, ny - 1, 9) - (ny - 1) / 2) * dy,
        (np.linspace(0, nx - 1, 9) - (nx - 1) / 2) * dx,
        indexing="ij",
    )
    points = np.column_stack([g.ravel() for g in grid])
    mapped = _exact_map(points, mapper[0], mapper[1])
    design = np.column_stack([points[:, 1:], np.ones(len(points))])
    coef, *_ = np.linalg.lstsq(design, mapped[:, 1:], rcond=None)
    tz = float(np.mean(mapped[:, 0] - points[:, 0]))
    transform = PairTransform.from_arrays(coef[:2].T, [tz, coef[2, 0], coef[2, 1]])
    error = float(np.max(np.linalg.norm(transform.apply(points) - mapped, axis=1)))
    return transform, error


def simulate_pair(
    seed: int,
    *,
    widefield_objective: Literal["40x", "63x"] = "40x",
    n_planes: int = 41,
    z_step_um: float = 0.25,
    max_residual_rotation_deg: float = 5.0,
    initial_lateral_error_um: float = 0.5,
    initial_axial_error_um: float = 0.3,
    cell: int | None = None,
    wrong_partner: WrongPartner | None = None,
    tilt_and_scale_errors: bool = False,
    field_px: int = 512,
    workdir: Path | None = None,
) -> SimulatedPair:
    """Acquire a confocal stack and its wide-field partner on the simulated scopes.

    Parameters
    ----------
    seed : int
        Seeds the mounts, the cell, the camera rotation, the noise and the
        initial error; the same seed gives the same pair.
    widefield_objective : {"40x", "63x"}
        Wide-field objective (0.1625 or 0.103 um pixels); the confocal uses its
        40x/1.4 at 0.1 um.
    n_planes : int
        Planes per stack (both stacks).
    z_step_um : float
        Plane spacing (both stacks).
    max_residual_rotation_deg : float
        The wide-field camera is turned uniformly within +- this.
    initial_lateral_error_um : float
        Standard deviation per axis of the initial estimate's lateral error.
    initial_axial_error_um : float
        Standard deviation of the initial estimate's axial error.
    cell : int, optional
        Cell to look at; drawn from the seed if None.
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
        Folder for the two config files; a temporary one if None.

    Returns
    -------
    SimulatedPair
        Stacks, true transform and initial estimate.

    """
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
    offset = tuple(float(v) for v in rng.uniform(-5.0, 5.0, 2))
    lateral_error = rng.normal(0.0, initial_lateral_error_um, 2)
    axial_error = float(rng.normal(0.0, initial_axial_error_um))
    with tempfile.TemporaryDirectory(prefix="pairscope-pair-") as tmp:
        folder = workdir or Path(tmp)
        confocal_cfg = _config(folder, "confocal", confocal_extra)
        widefield_cfg = _config(folder, "widefield", widefield_extra)
        n_cells = _cell_count(confocal_cfg)
        cell_index = int(rng.integers(0, n_cells)) if cell is None else cell
        confocal = _acquire_stack(
            confocal_cfg,
            CONFOCAL_OBJECTIVE,
            cell_index=cell_index,
            offset_xy_um=offset,  # type: ignore[arg-type]
            n_planes=n_planes,
            z_step_um=z_step_um,
        )
        partner_cell = cell_index
        partner_offset = offset
        if wrong_partner == "other_cell":
            partner_cell = (
                cell_index + 1 + int(rng.integers(0, n_cells - 1))
            ) % n_cells
        elif wrong_partner == "no_overlap":
            partner_offset = (offset[0] + 150.0, offset[1])
        widefield = _acquire_stack(
            widefield_cfg,
            WIDEFIELD_OBJECTIVES[widefield_objective],
            cell_index=partner_cell,
            offset_xy_um=partner_offset,  # type: ignore[arg-type]
            n_planes=n_planes,
            z_step_um=z_step_um,
        )
    truth, model_error = _fit_transform(confocal[0], (confocal, widefield))
    # relocation's view: both stages where they were sent (no landing errors),
    # the wide-field stage at the confocal's cell, a camera believed unrotated
    c_stack, c_mount, c_axes = confocal
    w_stack, w_mount, w_axes = widefield
    believed_c = _as_commanded(c_stack, c_mount, c_stack.stage_um)
    target = w_mount.sample_to_stage(c_mount.stage_to_sample(c_stack.stage_um))
    believed_w = _as_commanded(w_stack, w_mount, tuple(float(v) for v in target))
    believed, _ = _fit_transform(
        c_stack,
        (
            (believed_c, c_mount, c_axes),
            (believed_w, w_mount, _rotation_xy(-rotation) @ w_axes),
        ),
    )
    initial = PairTransform.from_arrays(
        believed.matrix_array,
        believed.translation_array + np.array([axial_error, *lateral_error]),
    )
    return SimulatedPair(
        widefield=w_stack,
        confocal=c_stack,
        truth=truth,
        initial=initial,
        camera_rotation_deg=rotation,
        model_error_um=model_error,
        overlaps=wrong_partner is None,
        cell_index=cell_index,
    )


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


def _cell_count(config: Path) -> int:
    core = hardware.open_core(config)
    try:
        return len(groundtruth.specimen_of(core).cells)
    finally:
        hardware.close_core(core)
