"""One what-and-how-to-fix message, whichever package raises it."""

from __future__ import annotations

import pytest

from acquire.errors import UserError
from acquire.storage.errors import DatasetError
from correlate.errors import HintedError
from correlate.pairdb.errors import PairDatabaseError
from enhance.errors import CheckpointError, EnhanceError


@pytest.mark.parametrize(
    "kind", [UserError, DatasetError, PairDatabaseError, EnhanceError, CheckpointError]
)
def test_every_package_prints_what_then_how_to_fix(kind: type[HintedError]) -> None:
    error = kind("the file x.cfg is missing. ", "  Give an existing .cfg.")
    assert isinstance(error, HintedError)
    assert (error.what, error.hint) == (
        "the file x.cfg is missing",
        "Give an existing .cfg.",
    )
    assert str(error) == "the file x.cfg is missing. Give an existing .cfg."
    assert str(kind("nothing to add")) == "nothing to add."


def test_database_errors_stay_value_errors() -> None:
    # callers written before the shared base caught them as ValueError
    assert issubclass(PairDatabaseError, ValueError)
