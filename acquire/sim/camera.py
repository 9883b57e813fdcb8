"""Simulated cameras for UniMMCore: the specimen seen through physical optics.

Load them from a Micro-Manager config with ``#py`` lines::

    #py pyDevice,Camera,acquire.sim.camera,WidefieldCamera
    #py Property,Core,Camera,Camera

A Python device only reaches the core through an events-only proxy, so after
loading, :func:`attach_simulators` hands each simulated camera the real core; the
camera then reads the stage position, the objective and the shutter on every
snap. ``acquire.hardware.microscope.open_core`` does this for you.

Each camera holds its scope's hidden :class:`~acquire.sim.mount.Mount` (drawn
from ``MountSeed``); the controller never reads it: tests and benchmarks use
:mod:`acquire.sim.groundtruth`.
"""

from __future__ import annotations

import hashlib
import threading
import time
import weakref
from abc import abstractmethod
from collections import Counter, OrderedDict
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from pymmcore_plus.experimental.unicore import SimpleCameraDevice

from acquire.config.objectives import Objective, parse_objective_label
from acquire.sim.debris import DebrisSpecimen, debris_of, register_debris_properties
from acquire.sim.detector import PMTDetector, SCMOSDetector
from acquire.sim.faults import FaultInjector, register_fault_properties
from acquire.sim.illumination import (
    illuminate,
    illumination_of,
    mountant_fraction,
    register_illumination_properties,
)
from acquire.sim.measured_psf import (
    MeasuredPSF,
    MeasuredPSFError,
    check_measured_psf_file,
    load_measured_psf,
    parse_voxel_um,
)
from acquire.sim.mount import Mount, MountLimits, draw_mount
from acquire.sim.occlusion import AlteredSpecimen, parse_decoy, parse_hidden
from acquire.sim.psf import SAMPLE_MEDIUM_INDEX, Modality, OpticalSetup
from acquire.sim.render import CameraGeometry, FieldRenderer
from acquire.sim.specimen import Specimen, generate_specimen
from acquire.sim.volume_cells import (
    VolumeRequest,
    load_volume_cell,
    parse_volume_property,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from numpy.typing import DTypeLike, NDArray
    from pymmcore_plus import CMMCorePlus

    from acquire.sim.targets import EmitterSource

CONFOCAL_SCAN_FIELD_UM = 12800.0
"""Side of the square scan field in the intermediate image (LSM 710-like)."""
_RENDERER_CACHE_SIZE = 4
_RENDERERS: OrderedDict[tuple[Any, ...], FieldRenderer] = OrderedDict()
_RENDERERS_LOCK = threading.Lock()
MAX_EXPOSURE_RANGE_MS = (0.0, 60000.0)
"""Exposure (frame time for the confocal) accepted by the simulated cameras."""


class SimulatorNotAttachedError(RuntimeError):
    """A simulated camera snapped before it was given the core."""


@dataclass(frozen=True)
class ScopeState:
    """What the camera reads from the core at the moment of a snap."""

    stage_xy_um: tuple[float, float]
    stage_z_um: float
    objective: Objective
    shutter_open: bool


class SpecimenCamera(SimpleCameraDevice):
    """Base class: renders the simulated specimen at the core's current state."""

    MODALITY: ClassVar[Modality] = "widefield"
    DEFAULT_EXPOSURE_MS: ClassVar[float] = 50.0
    DEFAULT_MOUNT_SEED: ClassVar[int] = 1

    def __init__(self) -> None:
        super().__init__()
        self._exposure_ms = self.DEFAULT_EXPOSURE_MS
        self.set_property_limits("Exposure", MAX_EXPOSURE_RANGE_MS)
        self._core_ref: weakref.ReferenceType[CMMCorePlus] | None = None
        self._visits: Counter[tuple[Any, ...]] = Counter()
        self._last_xy: tuple[float, float] | None = None
        self._last_z: tuple[float, float, float] | None = None
        self._xy_error = np.zeros(2)
        self._z_error = 0.0
        self._register_common_properties()
        self._register_optics_properties()
        self._register_detector_properties()
        # uneven illumination, autofluorescence and debris: off by default
        register_illumination_properties(self)
        register_debris_properties(self)
        self.faults = FaultInjector()
        register_fault_properties(self, self.faults, unit="Frame")

    # -- properties ---------------------------------------------------------

    def _register_common_properties(self) -> None:
        add = self.register_property
        add("SpecimenSeed", default_value=0, limits=(0, 2**31 - 1))
        add("SpecimenCellCount", default_value=40, limits=(0, 400))
        # real volumes as cells (acquire.sim.volume_cells); checked when set
        self._volumes_text = ""
        self._volume_requests: tuple[VolumeRequest, ...] = ()
        add(
            "SpecimenVolumes",
            default_value="",
            getter=SpecimenCamera._get_specimen_volumes,
            setter=SpecimenCamera._set_specimen_volumes,
        )
        add("MountSeed", default_value=self.DEFAULT_MOUNT_SEED, limits=(0, 2**31 - 1))
        add("NoiseSeed", default_value=0, limits=(0, 2**31 - 1))
        add("ObjectiveDevice", default_value="Objective")
        add("SensorWidthPx", default_value=512, limits=(16, 2048))
        add("SensorHeightPx", default_value=512, limits=(16, 2048))
        add("CameraRotationDeg", default_value=0.0, limits=(-180.0, 180.0))
        add("CameraFlip", default_value="No", allowed_values=["No", "Yes"])
        add("RealTiming", default_value="Yes", allowed_values=["Yes", "No"])
        # the demo configurations start over a cell (acquire.sim.start_position)
        add("StartOnCell", default_value="No", allowed_values=["Yes", "No"])
        add("EmissionWavelengthNm", default_value=520.0, limits=(350.0, 900.0))
        add("PhotonRateScale", default_value=1.0, limits=(0.0, 1e7))
        # marks this scope cannot see, and a lookalike (see acquire.sim.occlusion)
        add("HiddenFiducials", default_value="")
        add("FiducialDecoy", default_value="")
        limits = MountLimits()
        add(
            "MountMaxRotationDeg",
            default_value=limits.max_rotation_deg,
            limits=(0.0, 180.0),
        )
        add(
            "MountMaxTranslationUm",
            default_value=limits.max_translation_um,
            limits=(0.0, 1e4),
        )
        add(
            "MountMaxZOffsetUm", default_value=limits.max_z_offset_um, limits=(0.0, 1e3)
        )
        add("MountMaxTiltDeg", default_value=limits.max_tilt_deg, limits=(0.0, 5.0))
        add(
            "StageMaxScaleError",
            default_value=limits.max_scale_error,
            limits=(0.0, 0.05),
        )
        add(
            "StageRepeatabilityUm",
            default_value=limits.xy_repeatability_um,
            limits=(0.0, 10.0),
        )
        add(
            "FocusRepeatabilityUm",
            default_value=limits.z_repeatability_um,
            limits=(0.0, 1.0),
        )

    def _register_optics_properties(self) -> None:
        """Sample medium and measured PSF (see docs/configs.md)."""
        add = self.register_property
        add(
            "SampleMedium",
            default_value="matched",
            allowed_values=list(SAMPLE_MEDIUM_INDEX),
        )
        # 0: take SampleMedium; otherwise the sample's refractive index itself
        add("SampleRefractiveIndex", default_value=0.0, limits=(0.0, 2.0))
        # the bead stack is checked when set; its voxel size may follow
        self._psf_file = ""
        self._psf_voxel = ""
        add(
            "MeasuredPsfFile",
            default_value="",
            getter=SpecimenCamera._get_psf_file,
            setter=SpecimenCamera._set_psf_file,
        )
        add(
            "MeasuredPsfVoxelUm",
            default_value="",
            getter=SpecimenCamera._get_psf_voxel,
            setter=SpecimenCamera._set_psf_voxel,
        )
        add("MeasuredPsfSymmetrize", default_value="No", allowed_values=["No", "Yes"])

    def _get_psf_file(self) -> str:
        return self._psf_file

    def _set_psf_file(self, value: str) -> None:
        path = str(value).strip()
        if path:
            check_measured_psf_file(path)  # raises MeasuredPSFError
        self._psf_file = path

    def _get_psf_voxel(self) -> str:
        return self._psf_voxel

    def _set_psf_voxel(self, value: str) -> None:
        parse_voxel_um(str(value))  # raises MeasuredPSFError
        self._psf_voxel = str(value).strip()

    def sample_index(self) -> float | None:
        """Refractive index of the sample medium; None when index-matched."""
        index = float(self._prop("SampleRefractiveIndex"))
        if index > 0:
            if index < 1.0:
                raise ValueError(
                    f"camera {self.get_label()!r}: SampleRefractiveIndex {index} is "
                    "below 1; give the medium's index (water 1.333, mountant 1.46) "
                    "or 0 to use SampleMedium"
                )
            return index
        return SAMPLE_MEDIUM_INDEX[str(self._prop("SampleMedium"))]

    def measured_psf(self) -> MeasuredPSF | None:
        """The bead stack named by ``MeasuredPsfFile`` (None when it is empty)."""
        if not self._psf_file:
            return None
        if self.sample_index() is not None:
            raise MeasuredPSFError(
                f"camera {self.get_label()!r} has both a sample medium "
                f"({self._prop('SampleMedium')!r}, index {self.sample_index()}) and "
                f"a measured PSF ({self._psf_file!r})",
                "A measured PSF already holds its sample's aberration: set "
                "SampleMedium to 'matched' and SampleRefractiveIndex to 0, or "
                "MeasuredPsfFile to ''",
            )
        return load_measured_psf(
            self._psf_file,
            parse_voxel_um(self._psf_voxel, self._psf_file),
            symmetrize=self._prop("MeasuredPsfSymmetrize") == "Yes",
        )

    def _register_detector_properties(self) -> None:
        add = self.register_property
        add("QuantumEfficiency", default_value=0.7, limits=(0.01, 1.0))
        add("ReadNoiseElectrons", default_value=1.5, limits=(0.0, 100.0))
        add("GainAduPerElectron", default_value=2.17, limits=(0.01, 100.0))
        add("OffsetAdu", default_value=100.0, limits=(0.0, 10000.0))

    def _prop(self, name: str) -> Any:
        return self.get_property_value(name)

    def _get_specimen_volumes(self) -> str:
        return self._volumes_text

    def _set_specimen_volumes(self, value: str) -> None:
        """Parse ``SpecimenVolumes`` and load its volumes now.

        A bad file or value fails where it is set: a config line fails when the
        config loads, with the volume's message. Relative paths are relative to
        the current working directory at the time the property is set; see
        :func:`~acquire.sim.volume_cells.parse_volume_property`.
        """
        requests = parse_volume_property(str(value))
        for request in requests:
            load_volume_cell(request)  # cached: the specimen reuses the result
        self._volumes_text = str(value)
        self._volume_requests = requests

    # -- camera API -----------------------------------------------------------

    def get_exposure(self) -> float:
        """Exposure time in ms."""
        return self._exposure_ms

    def set_exposure(self, exposure: float | str) -> None:
        """Set the exposure time in ms (a config file passes it as text)."""
        exposure_ms = float(exposure)
        low, high = MAX_EXPOSURE_RANGE_MS
        if not low < exposure_ms <= high:
            raise ValueError(
                f"exposure must lie in ({low}, {high}] ms, got {exposure_ms}"
            )
        self._exposure_ms = exposure_ms

    def sensor_shape(self) -> tuple[int, int]:
        """(rows, cols) of the sensor."""
        return int(self._prop("SensorHeightPx")), int(self._prop("SensorWidthPx"))

    def dtype(self) -> DTypeLike:
        """Pixel type: 16-bit unsigned."""
        return np.uint16

    def attach_core(self, core: CMMCorePlus) -> None:
        """Give the camera the core whose stage, objective and shutter it follows."""
        self._core_ref = weakref.ref(core)

    @property
    def is_attached(self) -> bool:
        """Whether the camera can read the scope's state."""
        return self._core_ref is not None and self._core_ref() is not None

    def snap(self, buffer: NDArray[Any]) -> Mapping[str, Any]:
        """Render the specimen at the current scope state into ``buffer``."""
        # an injected fault raises before the buffer or any state is touched
        self.faults.check(f"camera {self.get_label()!r} snap")
        started = time.perf_counter()
        state = self.read_scope_state()
        axis_xy, focus_z = self.physical_position(state)
        if state.shutter_open:
            rate = self.renderer_for(state.objective).render(
                (float(axis_xy[0]), float(axis_xy[1])), focus_z
            )
            rate = self._illuminate(rate, state.objective, axis_xy, focus_z)
        else:
            rate = np.zeros(self.sensor_shape(), np.float32)
        rng = np.random.default_rng(self._noise_seed(state))
        buffer[:] = self._detect(rate, rng)
        if self._prop("RealTiming") == "Yes":
            remaining = self._frame_time_ms() / 1000.0 - (time.perf_counter() - started)
            if remaining > 0:
                time.sleep(remaining)
        return {}

    # -- simulation -----------------------------------------------------------

    def _core(self) -> CMMCorePlus:
        core = self._core_ref() if self._core_ref is not None else None
        if core is None:
            raise SimulatorNotAttachedError(
                f"simulated camera {self.get_label()!r} is not attached to a core: "
                "load the config with acquire.hardware.microscope.open_core(), or call "
                "acquire.sim.camera.attach_simulators(core) after loading it"
            )
        return core

    def read_scope_state(self) -> ScopeState:
        """Read stage position, objective and shutter from the core."""
        core = self._core()
        xy = core.getXYPosition() if core.getXYStageDevice() else (0.0, 0.0)
        z = core.getPosition() if core.getFocusDevice() else 0.0
        turret = str(self._prop("ObjectiveDevice"))
        if turret not in core.getLoadedDevices():
            raise RuntimeError(
                f"camera {self.get_label()!r}: objective turret {turret!r} is not "
                "loaded; set the camera's ObjectiveDevice property to its label"
            )
        objective = parse_objective_label(core.getStateLabel(turret))
        shutter = core.getShutterDevice()
        shutter_open = bool(core.getShutterOpen()) if shutter else True
        return ScopeState(
            (float(xy[0]), float(xy[1])), float(z), objective, shutter_open
        )

    def mount(self) -> Mount:
        """The scope's hidden mount (ground truth; never used by the controller)."""
        limits = MountLimits(
            max_rotation_deg=float(self._prop("MountMaxRotationDeg")),
            max_translation_um=float(self._prop("MountMaxTranslationUm")),
            max_z_offset_um=float(self._prop("MountMaxZOffsetUm")),
            max_tilt_deg=float(self._prop("MountMaxTiltDeg")),
            max_scale_error=float(self._prop("StageMaxScaleError")),
            xy_repeatability_um=float(self._prop("StageRepeatabilityUm")),
            z_repeatability_um=float(self._prop("FocusRepeatabilityUm")),
        )
        return draw_mount(int(self._prop("MountSeed")), limits)

    def specimen(self) -> Specimen:
        """The simulated sample (ground truth)."""
        return generate_specimen(
            int(self._prop("SpecimenSeed")),
            n_cells=int(self._prop("SpecimenCellCount")),
            volumes=self._volume_requests,
        )

    def pixel_size_um(self, objective: Objective) -> float:
        """Pixel size at the sample with this objective."""
        return float(self._prop("SensorPixelUm")) / objective.magnification

    def optical_setup(self, objective: Objective) -> OpticalSetup:
        """Optics of this camera's light path with ``objective``."""
        return OpticalSetup(
            modality=self.MODALITY,
            numerical_aperture=objective.numerical_aperture,
            immersion_index=objective.immersion_index,
            emission_wavelength_um=float(self._prop("EmissionWavelengthNm")) / 1000.0,
            pixel_size_um=self.pixel_size_um(objective),
            sample_index=self.sample_index(),
            measured_psf=self.measured_psf(),
        )

    def geometry(self, objective: Objective) -> CameraGeometry:
        """Pixel grid and orientation relative to the stage."""
        return CameraGeometry(
            pixel_size_um=self.pixel_size_um(objective),
            shape=self.sensor_shape(),
            rotation_deg=float(self._prop("CameraRotationDeg")),
            flip=self._prop("CameraFlip") == "Yes",
        )

    def renderer_for(self, objective: Objective) -> FieldRenderer:
        """The (cached) renderer for the current optics, camera and sample."""
        setup = self.optical_setup(objective)
        geometry = self.geometry(objective)
        mount = self.mount()
        specimen = self.specimen()
        hidden = parse_hidden(str(self._prop("HiddenFiducials")), specimen)
        decoy = parse_decoy(str(self._prop("FiducialDecoy")), specimen)
        # shared by every camera of the process: reopening a config (or a second
        # core on the same scope) reuses the OTF tables and the current field
        debris = debris_of(self)
        key = (setup, geometry, mount, id(specimen), hidden, decoy, debris)
        with _RENDERERS_LOCK:
            renderer = _RENDERERS.get(key)
            if renderer is None:
                source: EmitterSource = specimen
                if hidden or decoy:
                    source = AlteredSpecimen(specimen, hidden, decoy)
                if not debris.is_clean:
                    source = DebrisSpecimen(source, specimen, debris)
                renderer = FieldRenderer(source, mount, setup, geometry)
                _RENDERERS[key] = renderer
                if len(_RENDERERS) > _RENDERER_CACHE_SIZE:
                    _RENDERERS.popitem(last=False)
            else:
                _RENDERERS.move_to_end(key)
        return renderer

    def _illuminate(
        self,
        rate: NDArray[np.float32],
        objective: Objective,
        axis_xy: NDArray[Any],
        focus_z: float,
    ) -> NDArray[np.float32]:
        """Uneven illumination and autofluorescence (acquire.sim.illumination)."""
        section = 1.0  # a wide-field camera collects all of the mountant's glow
        if self.MODALITY == "confocal":
            section = mountant_fraction(
                focus_z - float(self.mount().surface_height_um(axis_xy)),
                numerical_aperture=objective.numerical_aperture,
                immersion_index=objective.immersion_index,
                wavelength_um=float(self._prop("EmissionWavelengthNm")) / 1000.0,
            )
        return illuminate(
            rate,
            illumination_of(self),
            magnification=objective.magnification,
            geometry=self.geometry(objective),
            mount=self.mount(),
            axis_xy_um=(float(axis_xy[0]), float(axis_xy[1])),
            specimen_seed=int(self._prop("SpecimenSeed")),
            autofluorescence_fraction=section,
        )

    def physical_position(self, state: ScopeState) -> tuple[NDArray[np.float64], float]:
        """Where the optical axis and focal plane really are, with landing errors."""
        mount = self.mount()
        xy = (round(state.stage_xy_um[0], 3), round(state.stage_xy_um[1], 3))
        if xy != self._last_xy:
            self._visits[("xy", xy)] += 1
            move = (int(self._prop("MountSeed")), xy, self._visits[("xy", xy)])
            self._xy_error = mount.repeatability_error_um(move, "xy")
            self._last_xy = xy
        xyz = (*xy, round(state.stage_z_um, 3))
        if xyz != self._last_z:
            self._visits[("z", xyz)] += 1
            focus_move = (int(self._prop("MountSeed")), xyz, self._visits[("z", xyz)])
            self._z_error = float(mount.repeatability_error_um(focus_move, "z")[0])
            self._last_z = xyz
        physical = mount.stage_to_physical((*state.stage_xy_um, state.stage_z_um))
        axis_xy = physical[:2] + self._xy_error
        focus_z = float(physical[2] + self._z_error)
        return axis_xy, focus_z

    def _noise_seed(self, state: ScopeState) -> int:
        """Seed of this frame's detector noise: reproducible, fresh per revisit."""
        frame_key = (
            round(state.stage_xy_um[0], 3),
            round(state.stage_xy_um[1], 3),
            round(state.stage_z_um, 3),
            self._exposure_ms,
            state.objective.label,
            state.shutter_open,
        )
        self._visits[("frame", frame_key)] += 1
        payload = repr(
            (
                int(self._prop("NoiseSeed")),
                frame_key,
                self._visits[("frame", frame_key)],
            )
        )
        return int.from_bytes(
            hashlib.blake2b(payload.encode(), digest_size=8).digest(), "little"
        )

    def _frame_time_ms(self) -> float:
        return self._exposure_ms

    @abstractmethod
    def _detect(
        self, rate: NDArray[np.float32], rng: np.random.Generator
    ) -> NDArray[np.uint16]:
        """Turn expected photon rates into a detector frame."""


class WidefieldCamera(SpecimenCamera):
    """Wide-field fluorescence with an sCMOS camera (Hamamatsu ORCA-like).

    Pixel size at the sample is ``SensorPixelUm`` over the objective's
    magnification; the signal is integrated over the exposure.
    """

    MODALITY: ClassVar[Modality] = "widefield"

    def __init__(self) -> None:
        super().__init__()
        self.register_property("SensorPixelUm", default_value=6.5, limits=(1.0, 30.0))

    def _detect(
        self, rate: NDArray[np.float32], rng: np.random.Generator
    ) -> NDArray[np.uint16]:
        detector = SCMOSDetector(
            quantum_efficiency=float(self._prop("QuantumEfficiency")),
            read_noise_e=float(self._prop("ReadNoiseElectrons")),
            gain_adu_per_e=float(self._prop("GainAduPerElectron")),
            offset_adu=float(self._prop("OffsetAdu")),
        )
        photons = rate * np.float32(
            self._exposure_ms * float(self._prop("PhotonRateScale"))
        )
        return detector.expose(photons, rng, exposure_ms=self._exposure_ms)


class ConfocalCamera(SpecimenCamera):
    """Point-scanning confocal (LSM 710-like) with a pinhole and a PMT.

    ``Exposure`` is the frame time; each pixel is dwelt on for
    ``Exposure / (rows * cols)``. The pixel size is set by ``ScanZoom``:
    ``12.8 mm / (magnification * zoom * cols)``.
    """

    MODALITY: ClassVar[Modality] = "confocal"
    DEFAULT_EXPOSURE_MS: ClassVar[float] = 1000.0
    DEFAULT_MOUNT_SEED: ClassVar[int] = 2

    def __init__(self) -> None:
        super().__init__()
        self.register_property("PinholeAU", default_value=1.0, limits=(0.1, 20.0))
        self.register_property("ScanZoom", default_value=6.25, limits=(0.5, 40.0))
        self.register_property(
            "ExcitationWavelengthNm", default_value=488.0, limits=(350.0, 900.0)
        )
        self.set_property_value("PhotonRateScale", 10000.0)

    def _register_detector_properties(self) -> None:
        add = self.register_property
        add("QuantumEfficiency", default_value=0.25, limits=(0.01, 1.0))
        add("PMTGainAduPerPhotoelectron", default_value=20.0, limits=(0.1, 1000.0))
        add("OffsetAdu", default_value=0.0, limits=(0.0, 10000.0))

    def pixel_size_um(self, objective: Objective) -> float:
        """Scan step at the sample for this objective and zoom."""
        cols = self.sensor_shape()[1]
        return CONFOCAL_SCAN_FIELD_UM / (
            objective.magnification * float(self._prop("ScanZoom")) * cols
        )

    def optical_setup(self, objective: Objective) -> OpticalSetup:
        """Confocal optics: excitation laser, emission band and pinhole."""
        return replace(
            super().optical_setup(objective),
            modality="confocal",
            excitation_wavelength_um=float(self._prop("ExcitationWavelengthNm"))
            / 1000.0,
            pinhole_au=float(self._prop("PinholeAU")),
        )

    def _detect(
        self, rate: NDArray[np.float32], rng: np.random.Generator
    ) -> NDArray[np.uint16]:
        detector = PMTDetector(
            quantum_efficiency=float(self._prop("QuantumEfficiency")),
            gain_adu_per_photoelectron=float(self._prop("PMTGainAduPerPhotoelectron")),
            offset_adu=float(self._prop("OffsetAdu")),
        )
        rows, cols = self.sensor_shape()
        dwell_ms = self._exposure_ms / (rows * cols)
        photons = rate * np.float32(dwell_ms * float(self._prop("PhotonRateScale")))
        return detector.expose(photons, rng, exposure_ms=dwell_ms)


def attach_simulators(core: CMMCorePlus) -> list[str]:
    """Give every simulated camera loaded in ``core`` the core itself.

    A camera whose ``StartOnCell`` is ``Yes`` then puts the stage over a cell,
    in focus (:mod:`acquire.sim.start_position`).

    Parameters
    ----------
    core : CMMCorePlus
        A UniMMCore after ``loadSystemConfiguration``; other cores have no
        Python devices and are left alone.

    Returns
    -------
    list of str
        Labels of the cameras attached.

    """
    py_devices = getattr(core, "_pydevices", None)
    if py_devices is None:
        return []
    attached = []
    start_on_cell = False
    for label in list(py_devices):
        device = py_devices[label]
        if isinstance(device, SpecimenCamera):
            device.attach_core(core)
            attached.append(str(label))
            start_on_cell |= device.get_property_value("StartOnCell") == "Yes"
    if start_on_cell:
        from acquire.sim.start_position import start_on_nearest_cell

        start_on_nearest_cell(core)
    return attached


__all__ = [
    "ConfocalCamera",
    "ScopeState",
    "SimulatorNotAttachedError",
    "SpecimenCamera",
    "WidefieldCamera",
    "attach_simulators",
]
