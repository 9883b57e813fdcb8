"""Scores of a registration, its predicted error, and the gate that judges it.

The gate judges the *final* transform by what is measured at it (see
`correlate.registration.alignment`): the shift field the tiles still show, and
how well that field is known. The predicted error over the confocal field
combines

* the residual shift the tiles measure at the final transform,
* the fit's covariance (cluster-robust: the tiles' actual scatter),
* a lateral scale or axial scale that the structure could not measure (too few
  tile places; signal too thin in z), taken as uncertain by a prior spread,
* a floor for what sampling and interpolation leave.

The residual is itself a measurement with that uncertainty, so the two add in
quadrature: the RMS over the field of ``sqrt(residual^2 + sigma^2)`` is the
error to expect, and the gate bounds the largest ``sqrt(residual^2 +
(2 sigma)^2)`` over the field and over the planes that hold the specimen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from correlate.registration.grid import centred_axis

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from correlate.registration.alignment import AlignmentMeasurement, PreparedStacks
    from correlate.registration.shift_field import ShiftField

LATERAL_SCALE_PRIOR = 0.003
"""Spread of the two scopes' relative pixel calibration, when not measured."""
AXIAL_SCALE_PRIOR = 0.01
"""Spread of the two scopes' relative axial scale when the stack cannot
measure it: z-drive calibrations, and the focal shifts of one mounting medium
seen through two oil objectives, differ by about 1 %. (A known difference, e.g.
a water sample on an oil and a water objective, belongs in the initial
estimate.)"""
SIGMA_CALIBRATION = 0.5
"""The fit's covariance is scaled by this: on our simulator (with and without
a sample medium) the predicted statistical error was 2.5-3x the error
measured against the truth, because the cluster-robust covariance of 16
correlated tiles overestimates (calibrated over every benchmark suite, see
bench/registration.py)."""
PREDICTION_FLOOR_UM = (0.01, 0.005)
"""(axial, lateral) error floor: what interpolation and sampling leave."""
_FIELD_SAMPLES = 17


@dataclass(frozen=True)
class RegistrationQuality:
    """How well the registered stacks agree, and how well that is known.

    Attributes
    ----------
    ncc : float
        Normalised cross-correlation of the band-passed stacks over the overlap.
    overlap_fraction : float
        Fraction of the confocal stack's voxels that the wide-field stack covers.
    tiles_measured : int
        Tiles of the overlap that were correlated (lateral measurements).
    tiles_usable : int
        Measured tiles with enough structure (correlation peak) to be used.
    tile_inlier_fraction : float
        Fraction of the usable tiles that agree with one shift field.
    tile_residual_um : float
        Lateral RMS disagreement of the agreeing tiles, um.
    median_tile_score : float
        Median normalised tile correlation peak.
    predicted_lateral_rms_um, predicted_lateral_max_um : float
        Expected lateral error over the confocal field (RMS), and its bound
        (largest ``hypot(residual, 2 sigma)``), um.
    predicted_axial_rms_um, predicted_axial_max_um : float
        The same along z, over the confocal planes that hold the specimen
        (`correlate.registration.alignment.signal_planes`), um.
    widefield_pixel_um : float
        Wide-field pixel, for errors in pixels.
    lateral_scale_measured : bool
        Whether enough structure was spread over the field to measure scale.
    lateral_scale_trusted : bool
        False when the lateral scale kept growing after it was corrected (a
        difference between the two microscopes' images, not the geometry).
    axial_scale_measured : bool
        Whether the signal spread enough in z to measure the axial scale.
    axial_signal_span_um : float
        That spread (twice the standard deviation of the tiles' heights).
    axial_blur_um : float
        Axial blur given to the confocal stack to match the wide field.
    structure_contrast : float
        Band-passed RMS of the confocal and of the wide-field stack over their
        mean level, the smaller of the two (next to nothing: no structure).

    """

    ncc: float
    overlap_fraction: float
    tiles_measured: int
    tiles_usable: int
    tile_inlier_fraction: float
    tile_residual_um: float
    median_tile_score: float
    predicted_lateral_rms_um: float = float("inf")
    predicted_lateral_max_um: float = float("inf")
    predicted_axial_rms_um: float = float("inf")
    predicted_axial_max_um: float = float("inf")
    widefield_pixel_um: float = float("nan")
    lateral_scale_measured: bool = False
    lateral_scale_trusted: bool = True
    axial_scale_measured: bool = False
    axial_signal_span_um: float = 0.0
    axial_blur_um: float = 0.0
    structure_contrast: float = 1.0

    @property
    def predicted_lateral_rms_px(self) -> float:
        """`predicted_lateral_rms_um` in wide-field pixels."""
        return self.predicted_lateral_rms_um / self.widefield_pixel_um

    @property
    def predicted_lateral_max_px(self) -> float:
        """`predicted_lateral_max_um` in wide-field pixels."""
        return self.predicted_lateral_max_um / self.widefield_pixel_um

    def to_dict(self) -> dict[str, float | int | None]:
        """JSON-safe copy (a value that could not be measured is None)."""
        values: dict[str, float | int] = {
            "ncc": self.ncc,
            "overlap_fraction": self.overlap_fraction,
            "tiles_measured": self.tiles_measured,
            "tiles_usable": self.tiles_usable,
            "tile_inlier_fraction": self.tile_inlier_fraction,
            "tile_residual_um": self.tile_residual_um,
            "median_tile_score": self.median_tile_score,
            "predicted_lateral_rms_um": self.predicted_lateral_rms_um,
            "predicted_lateral_max_um": self.predicted_lateral_max_um,
            "predicted_lateral_rms_px": self.predicted_lateral_rms_px,
            "predicted_lateral_max_px": self.predicted_lateral_max_px,
            "predicted_axial_rms_um": self.predicted_axial_rms_um,
            "predicted_axial_max_um": self.predicted_axial_max_um,
            "lateral_scale_measured": int(self.lateral_scale_measured),
            "lateral_scale_trusted": int(self.lateral_scale_trusted),
            "axial_scale_measured": int(self.axial_scale_measured),
            "axial_signal_span_um": self.axial_signal_span_um,
            "axial_blur_um": self.axial_blur_um,
            "structure_contrast": self.structure_contrast,
        }
        return {k: v if np.isfinite(v) else None for k, v in values.items()}


@dataclass(frozen=True)
class QualityGate:
    """Thresholds a registration must pass to be accepted.

    Attributes
    ----------
    min_overlap_fraction : float
        Least overlap of the two stacks.
    min_ncc : float
        Least NCC of the band-passed stacks.
    min_tiles : int
        Least number of agreeing tiles.
    min_tile_inlier_fraction : float
        Least fraction of usable tiles that agree.
    min_tile_score : float
        Least correlation peak of a tile to be usable.
    min_structure_contrast : float
        Least band-passed contrast of either stack (an empty or constant
        stack has none: its tiles would only correlate rounding noise).
    max_lateral_error_px : float
        Largest predicted lateral error bound over the field, wide-field px.
    max_axial_error_um : float
        Largest predicted axial error bound over the stack, um.

    """

    min_overlap_fraction: float = 0.5
    min_ncc: float = 0.1
    min_tiles: int = 4
    min_tile_inlier_fraction: float = 0.5
    min_tile_score: float = 0.2
    min_structure_contrast: float = 1e-3
    max_lateral_error_px: float = 0.25
    max_axial_error_um: float = 0.2

    def judge(self, quality: RegistrationQuality) -> tuple[bool, str]:
        """Accept or flag, with the reason (every failing criterion named)."""
        inliers = round(quality.tile_inlier_fraction * quality.tiles_usable)
        problems = []
        if not quality.structure_contrast >= self.min_structure_contrast:
            problems.append(
                f"no structure to register (band-passed contrast "
                f"{quality.structure_contrast:.1e} < {self.min_structure_contrast:.0e})"
            )
        if quality.overlap_fraction < self.min_overlap_fraction:
            problems.append(
                f"overlap {quality.overlap_fraction:.2f} < "
                f"{self.min_overlap_fraction:.2f}"
            )
        if quality.ncc < self.min_ncc:
            problems.append(f"NCC {quality.ncc:.3f} < {self.min_ncc:.3f}")
        if inliers < self.min_tiles:
            problems.append(f"{inliers} agreeing tiles < {self.min_tiles}")
        elif quality.tile_inlier_fraction < self.min_tile_inlier_fraction:
            problems.append(
                f"tile agreement {quality.tile_inlier_fraction:.2f} < "
                f"{self.min_tile_inlier_fraction:.2f}"
            )
        if inliers >= self.min_tiles:
            if not quality.predicted_lateral_max_px <= self.max_lateral_error_px:
                problems.append(
                    f"predicted lateral error up to "
                    f"{quality.predicted_lateral_max_px:.2f} px > "
                    f"{self.max_lateral_error_px:.2f} px"
                )
            if not quality.predicted_axial_max_um <= self.max_axial_error_um:
                problems.append(
                    f"predicted axial error up to "
                    f"{quality.predicted_axial_max_um:.2f} um > "
                    f"{self.max_axial_error_um:.2f} um"
                )
        notes = _notes(quality)
        if problems:
            return False, "flagged: " + "; ".join(problems + notes)
        return True, "; ".join(
            [
                f"accepted: predicted error {quality.predicted_lateral_rms_px:.2f} px "
                f"lateral, {quality.predicted_axial_rms_um:.2f} um axial (RMS); "
                f"NCC {quality.ncc:.3f}, overlap {quality.overlap_fraction:.2f}, "
                f"{inliers}/{quality.tiles_usable} tiles agree",
                *notes,
            ]
        )


def _notes(quality: RegistrationQuality) -> list[str]:
    notes = []
    if quality.tiles_usable and not quality.axial_scale_measured:
        notes.append(
            f"axial scale not measured (signal spans "
            f"{quality.axial_signal_span_um:.1f} um in z): held at the initial "
            "estimate's"
        )
    if quality.tiles_usable and not quality.lateral_scale_trusted:
        notes.append(
            "lateral scale not trusted (it kept growing after each correction: "
            "the images differ, not the geometry): held at the initial estimate's"
        )
    elif quality.tiles_usable and not quality.lateral_scale_measured:
        notes.append("lateral scale not measured (structure in too few places)")
    return notes


def _ncc(
    confocal: NDArray[np.float32],
    widefield: NDArray[np.float32],
    mask: NDArray[np.bool_],
) -> float:
    if not mask.any():
        return 0.0
    a = confocal[mask].astype(np.float64)
    b = widefield[mask].astype(np.float64)
    a -= a.mean()
    b -= b.mean()
    denominator = float(np.sqrt((a @ a) * (b @ b)))
    return float(a @ b) / denominator if denominator > 0 else 0.0


def _field_points(stacks: PreparedStacks) -> NDArray[np.float64]:
    """(n, 2) lateral points spanning the confocal field, centred um."""
    _, ny, nx = stacks.confocal_shape
    _, dy, dx = stacks.confocal_voxel_um
    ys = np.linspace(-(ny - 1) / 2, (ny - 1) / 2, _FIELD_SAMPLES) * dy
    xs = np.linspace(-(nx - 1) / 2, (nx - 1) / 2, _FIELD_SAMPLES) * dx
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    return np.column_stack([yy.ravel(), xx.ravel()])


def _posterior(fit: ShiftField) -> NDArray[np.float64]:
    """The fit's calibrated covariance with the scale priors joined."""
    return fit.with_priors(
        LATERAL_SCALE_PRIOR, AXIAL_SCALE_PRIOR, calibration=SIGMA_CALIBRATION
    )


def _lateral_sigma_um(
    fit: ShiftField, points: NDArray[np.float64], covariance: NDArray[np.float64]
) -> NDArray[np.float64]:
    sigma = fit.lateral_error_um(points, covariance)
    result: NDArray[np.float64] = np.hypot(sigma, PREDICTION_FLOOR_UM[1])
    return result


def _axial_sigma_um(
    fit: ShiftField, z_um: NDArray[np.float64], covariance: NDArray[np.float64]
) -> NDArray[np.float64]:
    sigma = fit.axial_error_um(z_um, covariance)
    result: NDArray[np.float64] = np.hypot(sigma, PREDICTION_FLOOR_UM[0])
    return result


def assess(
    stacks: PreparedStacks, measured: AlignmentMeasurement
) -> RegistrationQuality:
    """Scores and predicted error of the transform ``measured`` was taken at.

    Parameters
    ----------
    stacks : PreparedStacks
        The prepared stacks.
    measured : AlignmentMeasurement
        The residual field measured at the transform being judged.

    Returns
    -------
    RegistrationQuality
        Everything the gate judges.

    """
    mask = measured.mask
    ncc = _ncc(stacks.confocal_band, measured.widefield_band, mask)
    tiles = measured.tiles
    lateral = tiles.used_components[:, 1]
    measured_count = int(lateral.sum())
    score = float(np.median(tiles.scores[lateral])) if measured_count else 0.0
    fit = measured.fit
    widefield_contrast = 0.0
    if mask.any():
        rms = np.sqrt(
            np.mean(np.square(measured.widefield_band[mask], dtype=np.float64))
        )
        widefield_contrast = float(rms) / max(measured.widefield_raw_level, 1e-30)
    base = {
        "structure_contrast": min(stacks.confocal_contrast, widefield_contrast),
        "ncc": ncc,
        "overlap_fraction": float(mask.mean()),
        "tiles_measured": measured_count,
        "median_tile_score": score,
        "widefield_pixel_um": float(stacks.widefield_voxel_um[1]),
        "axial_blur_um": stacks.axial_blur_um,
    }
    if fit is None:
        return RegistrationQuality(
            tiles_usable=int((tiles.scores[lateral] > 0).sum()),
            tile_inlier_fraction=0.0,
            tile_residual_um=float("inf"),
            **base,  # type: ignore[arg-type]
        )
    usable = int((fit.usable & lateral).sum())
    inliers = int((fit.inliers & lateral).sum())
    points = _field_points(stacks)
    zeros = np.zeros((len(points), 1))
    # what the tiles say is left: the terms the fit applied. A scale change it
    # held (not significant, or the tiles disagree on it: the images differ)
    # counts by its uncertainty, in the posterior covariance
    residual_lateral = np.linalg.norm(
        fit.shift_at(np.hstack([zeros, points]))[:, 1:], axis=1
    )
    covariance = _posterior(fit)
    sigma_lateral = _lateral_sigma_um(fit, points, covariance)
    z_all = centred_axis(stacks.confocal_shape[0], stacks.confocal_voxel_um[0])
    z_um = z_all[stacks.signal_slice]
    z_points = np.column_stack([z_um, np.zeros((len(z_um), 2))])
    residual_axial = np.abs(fit.shift_at(z_points)[:, 0])
    sigma_axial = _axial_sigma_um(fit, z_um, covariance)
    return RegistrationQuality(
        tiles_usable=usable,
        tile_inlier_fraction=inliers / max(usable, 1),
        tile_residual_um=fit.lateral_residual_um,
        predicted_lateral_rms_um=float(
            np.sqrt(np.mean(residual_lateral**2 + sigma_lateral**2))
        ),
        predicted_lateral_max_um=float(
            np.max(np.hypot(residual_lateral, 2 * sigma_lateral))
        ),
        predicted_axial_rms_um=float(
            np.sqrt(np.mean(residual_axial**2 + sigma_axial**2))
        ),
        predicted_axial_max_um=float(np.max(np.hypot(residual_axial, 2 * sigma_axial))),
        lateral_scale_measured=fit.lateral_scale_measurable,
        lateral_scale_trusted=fit.lateral_scale_trusted,
        axial_scale_measured=fit.axial_scale_measurable,
        axial_signal_span_um=fit.axial_lever_um,
        **base,  # type: ignore[arg-type]
    )
