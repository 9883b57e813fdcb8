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

#: End-to-end files, longest first (from ``pytest --durations=0`` on 2 cores).
LONGEST_FIRST = (
    "test_relocation.py",
    "test_demo.py",
    "test_pairing.py",
    "test_gui.py",
    "test_fiducials.py",
    "test_cli.py",
    "test_acquire.py",
)


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Order the collected tests so the longest files come first (stable)."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}

    def key(item: pytest.Item) -> int:
        return rank.get(item.path.name, len(rank))

    items.sort(key=key)
