"""The demo as a library call: shipped configs, progress and returned rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from acquire.bundled_configs import bundled_config
from acquire.demo import DEMO_SCOPES, GROUND_TRUTH_FILE, QUICK_PLAN, run_demo
from acquire.errors import UserError


def test_demo_configs_are_found_as_package_resources() -> None:
    for filename in DEMO_SCOPES.values():
        resource = bundled_config(filename)
        assert resource.is_file()
        assert "Property,Core,Initialize,1" in resource.read_text(encoding="utf-8")


def test_a_missing_shipped_config_is_a_user_error() -> None:
    with pytest.raises(UserError, match=r"hardware_configs/nothing\.cfg is missing"):
        bundled_config("nothing.cfg")


def test_run_demo_refuses_a_bad_seed_before_touching_the_disk(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="--seed"):
        run_demo(tmp_path / "out", seed=-1)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_quick_run_reports_progress_and_returns_the_rows(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    seen: list[tuple[str, int, int]] = []
    rows = run_demo(out, quick=True, seed=3, progress=lambda *args: seen.append(args))
    frames = QUICK_PLAN.n_positions * QUICK_PLAN.n_planes
    for name in DEMO_SCOPES:
        mine = [s for s in seen if s[0] == name]
        assert mine[0] == (name, 0, frames)
        assert mine[-1] == (name, frames, frames)
    assert [row.scope_name for row in rows] == list(DEMO_SCOPES)
    for row in rows:
        assert row.path.parent == out
        assert row.path.is_file()
        assert row.shape == (QUICK_PLAN.n_planes, 512, 512)
    truth = json.loads((out / GROUND_TRUTH_FILE).read_text(encoding="utf-8"))
    assert {s["specimen_seed"] for s in truth["scopes"].values()} == {3}
    assert [p.name for p in tmp_path.iterdir()] == ["demo"]
