"""Percentile normalisation of stacks, as recorded in a model checkpoint.

Every stack, wide-field input and confocal target alike, is mapped with its own
percentiles: ``(x - p_low) / (p_high - p_low)``, so its background sits near 0
and its bright structures near 1 (CARE's choice). The two modalities then share
a scale without any fit between them, and the same rule applies at prediction
time, where no confocal exists. The network thus learns to produce a stack
that looks like the confocal *normalised by its own percentiles*.

Output units: :func:`enhance.predict.enhance_stack` maps the network output back
with the *input* stack's percentiles, so an enhanced stack lies on the
wide-field stack's intensity scale (its 1st..99.8th percentile range maps onto
the confocal-like prediction's 0..1). It is not a calibrated photon count;
compare intensities only after a fit (see :mod:`enhance.metrics`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from enhance.errors import EnhanceError

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["PercentileNormalization", "StackScale"]


@dataclass(frozen=True)
class StackScale:
    """The two intensities that map to 0 and 1 for one stack."""

    low: float
    high: float


@dataclass(frozen=True)
class PercentileNormalization:
    """Per-stack percentile normalisation.

    Attributes
    ----------
    low_percentile : float
        Percentile mapped to 0.
    high_percentile : float
        Percentile mapped to 1.
    min_range : float
        Smallest ``p_high - p_low`` used; a flatter stack (blank field) is
        divided by this instead, so noise is not amplified without bound.

    """

    low_percentile: float = 1.0
    high_percentile: float = 99.8
    min_range: float = 1e-6

    def __post_init__(self) -> None:
        if not 0 <= self.low_percentile < self.high_percentile <= 100:
            raise EnhanceError(
                f"percentiles {self.low_percentile}, {self.high_percentile} must "
                "satisfy 0 <= low < high <= 100"
            )
        if self.min_range <= 0:
            raise EnhanceError(f"min_range {self.min_range} must be > 0")

    def scale(self, stack: NDArray[np.floating[Any]]) -> StackScale:
        """The percentiles of ``stack`` (ignoring nothing: stacks must be finite)."""
        low, high = np.percentile(
            stack, [self.low_percentile, self.high_percentile]
        ).tolist()
        return StackScale(low=float(low), high=float(high))

    def _span(self, scale: StackScale) -> float:
        return max(scale.high - scale.low, self.min_range)

    def apply(
        self, stack: NDArray[np.floating[Any]], scale: StackScale | None = None
    ) -> NDArray[np.float32]:
        """Normalised float32 copy of ``stack`` (its own percentiles by default)."""
        scale = self.scale(stack) if scale is None else scale
        out = (
            np.asarray(stack, dtype=np.float32) - np.float32(scale.low)
        ) / np.float32(self._span(scale))
        return out.astype(np.float32, copy=False)

    def invert(
        self, normalised: NDArray[np.floating[Any]], scale: StackScale
    ) -> NDArray[np.float32]:
        """Map normalised values back onto the intensity scale ``scale``."""
        out = np.asarray(normalised, dtype=np.float32) * np.float32(
            self._span(scale)
        ) + np.float32(scale.low)
        return out.astype(np.float32, copy=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dictionary, with the rule spelled out for readers."""
        return {"method": "percentile", **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PercentileNormalization:
        """Inverse of :meth:`to_dict`."""
        data = dict(data)
        method = data.pop("method", "percentile")
        if method != "percentile":
            raise EnhanceError(f"unknown normalisation method {method!r}")
        known = {f.name for f in fields(cls)}
        if set(data) - known:
            raise EnhanceError(
                f"unknown normalisation settings {sorted(set(data) - known)}"
            )
        return cls(**data)
