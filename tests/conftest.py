"""Suite-wide test settings: the longest files start first.

The suite runs on two processes (pytest-xdist, ``--dist loadfile``: each file
stays on one process, so its module fixtures are built once). Files are handed
out in collection order, so the end-to-end files, which take most of the time,
go first; otherwise one of them can start last and run alone at the end.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest

#: The longest files, longest first (``pytest --durations=0`` on 2 cores,
#: summed per file: 147, 137, 121, 69, 50, 48, 46 and 36 s). Started in this
#: order (``--no-loadscope-reorder`` in pyproject.toml), the two processes end
#: within seconds of each other.
LONGEST_FIRST = (
    "test_demo.py",
    "test_relocation.py",
    "test_pairing.py",
    "test_fiducials.py",
    "test_gui.py",
    "test_optics.py",
    "test_sim_pairs.py",
    "test_enhance_cli.py",
)


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Order the collected tests so the longest files come first (stable)."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}

    def key(item: pytest.Item) -> int:
        return rank.get(item.path.name, len(rank))

    items.sort(key=key)
