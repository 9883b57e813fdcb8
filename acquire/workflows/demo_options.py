"""The demo's option values and their checks (no simulator imported).

The command line validates ``--seed`` and ``--sample-medium`` and lists the
media in its help without importing the simulated scopes.
"""

from __future__ import annotations

from acquire.errors import UserError

__all__ = ["SAMPLE_MEDIA", "check_sample_medium", "check_seed"]

SAMPLE_MEDIA = ("matched", "water", "glycerol", "mountant", "oil")
"""Sample media the demo's simulated scopes offer (``SampleMedium``)."""


def check_sample_medium(medium: str) -> None:
    """Refuse a ``--sample-medium`` the simulated scopes do not know."""
    if medium not in SAMPLE_MEDIA:
        raise UserError(
            f"--sample-medium {medium!r} is not a medium the simulated scopes know",
            f"Use one of {', '.join(SAMPLE_MEDIA)}.",
        )


def check_seed(seed: int | None) -> None:
    """Refuse a ``--seed`` outside ``0 <= seed < 2**31``."""
    if seed is not None and not 0 <= seed < 2**31:
        raise UserError(f"--seed {seed} is out of range", "Use 0 <= seed < 2**31.")
