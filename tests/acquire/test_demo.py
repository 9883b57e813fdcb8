"""The demo: the whole workflow hands-off, its report checked against thresholds."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from acquire_helpers import pairscope, writer_locks_held_elsewhere

from acquire.config.bundled import bundled_config
from acquire.errors import UserError
from acquire.workflows.demo import QUICK_PLAN, bundled_model, run_demo

if TYPE_CHECKING:
    from pathlib import Path


def test_demo_configs_and_model_are_found_as_package_resources() -> None:
    for filename in ("demo_widefield.cfg", "demo_confocal.cfg"):
        resource = bundled_config(filename)
        assert resource.is_file()
        assert "Property,Core,Initialize,1" in resource.read_text(encoding="utf-8")
    model = bundled_model()
    assert model.stat().st_size < 10 * 1024 * 1024


def test_a_missing_shipped_config_is_a_user_error() -> None:
    with pytest.raises(UserError, match=r"hardware_configs/nothing\.cfg is missing"):
        bundled_config("nothing.cfg")


def test_bad_input_is_refused_before_touching_the_disk(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="--seed"):
        run_demo(tmp_path / "out", seed=-1)
    with pytest.raises(UserError, match="--positions"):
        run_demo(tmp_path / "out", positions=1)
    with pytest.raises(UserError, match="--sample-medium 'honey'"):
        run_demo(tmp_path / "out", sample_medium="honey")
    assert list(tmp_path.iterdir()) == []
    # an output folder holding other data: one message, exit 2, nothing touched
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    proc = pairscope("demo", "--out", other, "--quick")
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "already holds data" in proc.stderr
    assert [p.name for p in other.iterdir()] == ["notes.txt"]


@pytest.mark.slow
def test_quick_demo_meets_its_thresholds(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    proc = pairscope("demo", "--out", out, "--quick", "--seed", "3")
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    # relocation and registration against the simulator's truth
    assert report["relocation"]["targets"] == QUICK_PLAN.n_positions
    assert report["relocation"]["lateral_rms_um"] <= 1.0
    # the quality gate may flag a pair (too little structure); most must pass
    assert report["registration"]["accepted"] >= QUICK_PLAN.n_positions - 1
    assert report["registration"]["lateral_rms_px"] <= 0.2
    # the model against the confocal, on cells it never saw: better than the
    # raw wide-field and than Richardson-Lucy with the known PSF
    mean = report["enhancement"]["mean"]
    assert mean["model"]["psnr_db"] > mean["richardson_lucy"]["psnr_db"]
    assert mean["model"]["ssim"] > mean["richardson_lucy"]["ssim"]
    assert mean["model"]["psnr_db"] > mean["widefield"]["psnr_db"]
    assert mean["model"]["pearson_r"] > mean["widefield"]["pearson_r"]
    assert report["checks"]["model_beats_richardson_lucy"]
    assert report["live"]["enhanced"] + report["live"]["dropped"] >= 1
    assert report["checks"]["relocation"] and report["checks"]["registration"]
    for figure in ("fiducial_map", "pair_montage", "enhancement"):
        png = out / "figures" / f"{figure}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = (out / "report.md").read_text(encoding="utf-8")
    assert "figures/fiducial_map.png" in text and "| model |" in text
    # the report says which sample medium the scopes imaged through
    assert report["sample_medium"] == {
        "name": "matched",
        "refractive_index": None,
        "matched_to_immersion": True,
    }
    assert "Sample medium: matched to the immersion oil" in text
    assert [p.name for p in tmp_path.iterdir()] == ["demo"]
    # the output can be moved as a whole: nothing in it records a path into
    # the hidden work folder it was built in
    for record in [*out.rglob("*.json"), *out.rglob("*.sqlite")]:
        assert b".partial" not in record.read_bytes(), record


def test_work_folders_of_stopped_demos_are_removed_but_not_a_running_ones(
    tmp_path: Path,
) -> None:
    from acquire.workflows.demo import remove_abandoned_partials

    out = tmp_path / "demo"
    stopped = tmp_path / ".demo.0badc0de.partial"  # a killed demo's leftovers
    (stopped / "widefield").mkdir(parents=True)
    (stopped / "widefield" / "stack.bin").write_bytes(b"x" * 1000)
    running = tmp_path / ".demo.5eedf00d.partial"
    running.mkdir()
    other = tmp_path / ".other.0badc0de.partial"  # another output's: not ours
    other.mkdir()
    with writer_locks_held_elsewhere(running):
        assert remove_abandoned_partials(out) == [stopped]
    assert not stopped.exists() and running.is_dir() and other.is_dir()
    # once that demo is gone too, its folder is abandoned
    assert remove_abandoned_partials(out) == [running]


def test_the_model_must_beat_richardson_lucy_on_psnr_and_ssim() -> None:
    from acquire.workflows.demo_report import _checks

    def checks(model: dict[str, float], rl: dict[str, float]) -> bool:
        metrics = {
            "relocation": {"lateral_rms_um": 0.1},
            "registration": {"accepted": 1, "lateral_rms_px": 0.1},
            "enhancement": {"mean": {"model": model, "richardson_lucy": rl}},
        }
        return _checks(metrics)["model_beats_richardson_lucy"]

    assert checks({"psnr_db": 40, "ssim": 0.9}, {"psnr_db": 38, "ssim": 0.8})
    # the issue-21 case: more PSNR, less SSIM
    won_psnr_lost_ssim = (
        {"psnr_db": 31.7, "ssim": 0.805},
        {"psnr_db": 31.6, "ssim": 0.832},
    )
    assert not checks(*won_psnr_lost_ssim)
    assert not checks({"psnr_db": 30, "ssim": 0.9}, {"psnr_db": 31, "ssim": 0.8})
    assert not checks({}, {})  # nothing scored
