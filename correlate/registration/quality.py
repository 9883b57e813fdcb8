"""Scores of a registration and the gate that accepts or flags it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from correlate.registration.tiles import SimilarityFit, TileShifts


@dataclass(frozen=True)
class RegistrationQuality:
    """How well the registered stacks agree.

    Attributes
    ----------
    ncc : float
        Normalised cross-correlation of the band-passed stacks over the overlap.
    overlap_fraction : float
        Fraction of the confocal stack's voxels that the wide-field stack covers.
    tiles_measured : int
        Tiles of the overlap that were correlated.
    tiles_usable : int
        Measured tiles with enough structure (correlation peak) to be used.
    tile_inlier_fraction : float
        Fraction of the usable tiles that agree with one similarity transform.
    tile_residual_um : float
        Lateral RMS disagreement of the agreeing tiles, um.
    median_tile_score : float
        Median normalised tile correlation peak.

    """

    ncc: float
    overlap_fraction: float
    tiles_measured: int
    tiles_usable: int
    tile_inlier_fraction: float
    tile_residual_um: float
    median_tile_score: float

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
    tile_inlier_um : float
        Disagreement up to which a tile counts as agreeing, um.
    max_tile_residual_um : float
        Largest RMS disagreement of the agreeing tiles, um.

    """

    min_overlap_fraction: float = 0.5
    min_ncc: float = 0.2
    min_tiles: int = 6
    min_tile_inlier_fraction: float = 0.6
    min_tile_score: float = 0.5
    tile_inlier_um: float = 0.06
    max_tile_residual_um: float = 0.08

    def judge(self, quality: RegistrationQuality) -> tuple[bool, str]:
        """Accept or flag, with the reason."""
        inliers = round(quality.tile_inlier_fraction * quality.tiles_usable)
        problems = []
        if quality.overlap_fraction < self.min_overlap_fraction:
            problems.append(
                f"overlap {quality.overlap_fraction:.2f} < "
                f"{self.min_overlap_fraction:.2f}"
            )
        if quality.ncc < self.min_ncc:
            problems.append(f"NCC {quality.ncc:.3f} < {self.min_ncc:.3f}")
        if inliers < self.min_tiles:
            problems.append(f"{inliers} agreeing tiles < {self.min_tiles}")
        if quality.tile_inlier_fraction < self.min_tile_inlier_fraction:
            problems.append(
                f"tile agreement {quality.tile_inlier_fraction:.2f} < "
                f"{self.min_tile_inlier_fraction:.2f}"
            )
        if quality.tile_residual_um > self.max_tile_residual_um:
            problems.append(
                f"tile residual {quality.tile_residual_um:.3f} um > "
                f"{self.max_tile_residual_um:.3f} um"
            )
        if problems:
            return False, "flagged: " + "; ".join(problems)
        return True, (
            f"accepted: NCC {quality.ncc:.3f}, overlap "
            f"{quality.overlap_fraction:.2f}, {inliers}/{quality.tiles_usable} "
            "tiles agree"
        )


def assess(
    confocal_band: NDArray[np.float32],
    widefield_band: NDArray[np.float32],
    mask: NDArray[np.bool_],
    tiles: TileShifts | None,
    fit: SimilarityFit | None,
) -> RegistrationQuality:
    """Scores of the final alignment on the working grid."""
    overlap = float(mask.mean())
    n = int(mask.sum())
    ncc = 0.0
    if n:
        weights = mask.astype(np.float32)
        a = confocal_band * weights
        b = widefield_band * weights
        mean_a, mean_b = float(a.sum()) / n, float(b.sum()) / n
        cov = float(np.vdot(a, b)) / n - mean_a * mean_b
        var_a = float(np.vdot(a, a)) / n - mean_a**2
        var_b = float(np.vdot(b, b)) / n - mean_b**2
        if var_a > 0 and var_b > 0:
            ncc = cov / float(np.sqrt(var_a * var_b))
    measured = 0 if tiles is None else len(tiles.scores)
    usable = 0
    inlier_fraction = 0.0
    residual = float("inf")
    if fit is not None and measured:
        usable = int(fit.usable.sum())
        inlier_fraction = float(fit.inliers.sum() / max(usable, 1))
        residual = fit.residual_rms_um
    score = float(np.median(tiles.scores)) if tiles is not None and measured else 0.0
    return RegistrationQuality(
        ncc=ncc,
        overlap_fraction=overlap,
        tiles_measured=measured,
        tiles_usable=usable,
        tile_inlier_fraction=inlier_fraction,
        tile_residual_um=residual,
        median_tile_score=score,
    )
