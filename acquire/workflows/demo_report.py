"""The demo's report: relocation, registration and enhancement against the truth.

Everything the controller measured is compared with the simulator's ground
truth, which the controller never reads: where each cell really is on the
wide-field stage. Figures are PNG (Pillow); ``report.md`` shows them with a
metrics table, ``report.json`` holds the numbers and the thresholds CI checks.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from acquire.hardware.microscope import use_scope
from acquire.storage.session import load_session
from correlate.pairdb import PairDatabase
from correlate.stage.relocation_map import draw_fiducial_map

if TYPE_CHECKING:
    from collections.abc import Callable

    from pymmcore_plus import CMMCorePlus

    from acquire.workflows.paired_run import PairedRunResult
    from correlate.stage.transform import StageTransform

__all__ = ["THRESHOLDS", "DemoRecord", "write_report"]

THRESHOLDS = {
    "relocation_lateral_rms_um_max": 1.0,
    "registration_lateral_rms_px_max": 0.2,
    "model_psnr_above_richardson_lucy": True,
}
"""What the demo must show (checked by CI on ``--quick``)."""


@dataclass
class DemoRecord:
    """What the demo did, for the report."""

    work: Path
    plan: Any
    seed: int
    model: Path
    confocal_config: Path
    widefield_config: Path
    session: Path
    cells: list[tuple[int, tuple[float, float, float]]]
    paired: PairedRunResult
    live: Any
    timings: dict[str, float]
    sample_medium: str = "matched"
    #: the wide-field scope, if still open (else its config is loaded again)
    widefield_core: CMMCorePlus | None = None


def _rms(values: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(values)))) if values.size else float("nan")


def _truth(record: DemoRecord) -> dict[str, np.ndarray]:
    """Where each cell really is on the wide-field stage (simulator truth)."""
    from acquire.sim import groundtruth

    with use_scope(record.widefield_config, record.widefield_core) as core:
        return {
            f"cell{c:02d}": np.asarray(
                groundtruth.stage_position_of_cell(core, c, height_um=2.0)
            )
            for c, _ in record.cells
        }


def _relocation(record: DemoRecord, truth: dict[str, np.ndarray]) -> dict[str, Any]:
    got = {t.name: t for t in record.paired.relocated}
    lateral = np.array(
        [np.hypot(*(np.asarray(got[n].stage_xyz_um[:2]) - truth[n][:2])) for n in got]
    )
    axial = np.array([abs(got[n].stage_xyz_um[2] - truth[n][2]) for n in got])
    predicted = np.array([got[n].predicted_tre_um for n in got])
    return {
        "targets": len(got),
        "lateral_rms_um": _rms(lateral),
        "lateral_max_um": float(lateral.max()),
        "axial_rms_um": _rms(axial),
        "predicted_tre_rms_um": _rms(predicted),
    }


def _registration(
    record: DemoRecord, truth: dict[str, np.ndarray], pixel_um: float
) -> dict[str, Any]:
    accepted = [o for o in record.paired.outcomes if o.accepted]
    lateral = np.array(
        [
            np.hypot(
                *(np.asarray(o.measured_stage_xyz_um[:2]) - truth[o.position_name][:2])
            )
            for o in accepted
        ]
    )
    axial = np.array(
        [abs(o.measured_stage_xyz_um[2] - truth[o.position_name][2]) for o in accepted]
    )
    starts = np.array([o.start_offset_um for o in accepted])
    return {
        "pairs": len(record.paired.outcomes),
        "accepted": len(accepted),
        "lateral_rms_px": _rms(lateral) / pixel_um,
        "lateral_max_px": float(lateral.max()) / pixel_um if lateral.size else None,
        "axial_rms_um": _rms(axial),
        "widefield_pixel_um": pixel_um,
        "stack_start_offset_um": [round(float(s), 3) for s in starts],
    }


def _enhancement(record: DemoRecord, say: Callable[[str], None]) -> dict[str, Any]:
    from enhance.data import TrainingPair, crop_yx, trim_to_overlap
    from enhance.evaluation import evaluate

    db = PairDatabase.open(record.work / "pairs")
    pairs = []
    for r in db.records():
        wf, cf = db.load(r.pair_id)
        crop = record.plan.evaluation_crop_px
        # as `pairscope evaluate` does: planes registration filled with zeros
        # (outside the wide-field stack) are no data to score or filter
        pair = trim_to_overlap(
            TrainingPair(r.pair_id, r.cell_id, wf, cf, r.voxel_size_um)
        )
        pairs.append(pair if crop is None else crop_yx(pair, crop))
    if not pairs:
        return {"error": "no accepted pair to evaluate"}
    say(f"evaluating the model against Richardson-Lucy on {len(pairs)} pairs")
    report = evaluate(
        record.model,
        pairs,
        out_dir=record.work / "evaluation",
        rl_tuning_pair=pairs[0],
        rl_candidates=record.plan.rl_candidates,
    )
    mean = dict(report.mean)
    return {
        "pairs": len(pairs),
        "crop_px": record.plan.evaluation_crop_px,
        "rl_iterations": report.rl_iterations,
        "model_voxels_per_s": report.model_voxels_per_s,
        "mean": {
            name: {
                "psnr_db": m.psnr_db,
                "ssim": m.ssim,
                "nrmse": m.nrmse,
                "pearson_r": m.pearson_r,
            }
            for name, m in mean.items()
        },
        "figure": str(report.figure_png),
    }


def _fiducial_map(record: DemoRecord, path: Path) -> Path:
    session = load_session(record.session)
    transform: StageTransform = record.paired.transform
    targets_a = np.array([t.stage_xyz_um for t in session.targets])
    covariances = transform.predicted_covariance_um2(targets_a)
    return draw_fiducial_map(
        path,
        marks_xy_um={k: v[:2] for k, v in record.paired.marks_b.items()},
        targets_xy_um={t.name: t.stage_xyz_um[:2] for t in record.paired.relocated},
        covariances_um2=list(covariances),
        title="wide-field stage: fiducials, relocated cells, predicted error",
    )


def _medium(name: str) -> dict[str, Any]:
    """The sample medium both simulated scopes used, with its index."""
    from acquire.sim.psf import SAMPLE_MEDIUM_INDEX

    index = SAMPLE_MEDIUM_INDEX.get(name)
    return {
        "name": name,
        "refractive_index": index,
        "matched_to_immersion": index is None,
    }


def write_report(record: DemoRecord, *, say: Callable[[str], None]) -> dict[str, Any]:
    """Compute the demo's metrics, draw its figures, write ``report.md``.

    Returns
    -------
    dict
        The metrics (also written to ``report.json`` by the caller).

    """
    figures = record.work / "figures"
    figures.mkdir()
    truth = _truth(record)
    pixel_um = float(record.paired.widefield_pixel_um)
    metrics: dict[str, Any] = {
        "seed": record.seed,
        "sample_medium": _medium(record.sample_medium),
        "model": str(record.model),
        "relocation": _relocation(record, truth),
        "registration": _registration(record, truth, pixel_um),
        "live": {
            "enhanced": record.live.enhanced,
            "dropped": record.live.dropped,
            "latency_s": [round(s, 2) for s in record.live.latencies_s],
        },
        "thresholds": THRESHOLDS,
    }
    metrics["enhancement"] = _enhancement(record, say)
    _fiducial_map(record, figures / "fiducial_map.png")
    db = PairDatabase.open(record.work / "pairs")
    accepted = db.records()
    if accepted:
        db.write_montage(accepted[0].pair_id, figures / "pair_montage.png")
    figure = metrics["enhancement"].get("figure")
    if figure:
        shutil.copyfile(figure, figures / "enhancement.png")
        # relative: the run folder is renamed into place once it is complete
        metrics["enhancement"]["figure"] = "figures/enhancement.png"
    metrics["checks"] = _checks(metrics)
    (record.work / "report.md").write_text(_markdown(metrics), encoding="utf-8")
    return metrics


def _checks(metrics: dict[str, Any]) -> dict[str, bool]:
    mean = metrics["enhancement"].get("mean", {})
    model, rl = mean.get("model", {}), mean.get("richardson_lucy", {})
    # NaN (nothing scored) compares False: the check fails
    beats = all(
        model.get(name, float("nan")) > rl.get(name, float("nan"))
        for name in ("psnr_db", "ssim")
    )
    return {
        "relocation": metrics["relocation"]["lateral_rms_um"]
        <= THRESHOLDS["relocation_lateral_rms_um_max"],
        "registration": metrics["registration"]["accepted"] > 0
        and metrics["registration"]["lateral_rms_px"]
        <= THRESHOLDS["registration_lateral_rms_px_max"],
        "model_beats_richardson_lucy": beats,
    }


def _medium_line(medium: dict[str, Any]) -> str:
    if medium["matched_to_immersion"]:
        return (
            "Sample medium: matched to the immersion oil (no depth-dependent "
            "aberration or focal shift)."
        )
    return (
        f"Sample medium: {medium['name']} (n = {medium['refractive_index']:.3f}) "
        "on both scopes, under oil objectives: depth-dependent aberration and "
        "focal shift."
    )


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _markdown(m: dict[str, Any]) -> str:
    rel, reg = m["relocation"], m["registration"]
    lines = [
        "# pairscope demo report",
        "",
        f"Specimen seed {m['seed']}; model `{Path(m['model']).name}`. All errors "
        "are against the simulator's ground truth, which the controller never reads.",
        "",
        _medium_line(m["sample_medium"]),
        "",
        "## Relocation (confocal -> wide-field)",
        "",
        "![fiducial map](figures/fiducial_map.png)",
        "",
        "| targets | lateral RMS um | lateral max um | axial RMS um "
        "| predicted TRE RMS um |",
        "|---|---|---|---|---|",
        f"| {rel['targets']} | {rel['lateral_rms_um']:.3f} "
        f"| {rel['lateral_max_um']:.3f} | {rel['axial_rms_um']:.3f} "
        f"| {rel['predicted_tre_rms_um']:.3f} |",
        "",
        "## Registration (on the fly, into the paired database)",
        "",
        "![pair montage](figures/pair_montage.png)",
        "",
        "| pairs | accepted | lateral RMS (WF px) | lateral max (WF px) "
        "| axial RMS um |",
        "|---|---|---|---|---|",
        f"| {reg['pairs']} | {reg['accepted']} | {reg['lateral_rms_px']:.3f} "
        f"| {_number(reg['lateral_max_px'])} | {reg['axial_rms_um']:.3f} |",
        "",
        "## Enhancement (model vs Richardson-Lucy vs raw wide-field)",
        "",
        "![enhancement](figures/enhancement.png)",
        "",
    ]
    enhancement = m["enhancement"]
    if "mean" in enhancement:
        lines += [
            f"{enhancement['pairs']} pairs of cells the model never saw"
            + (
                f" (central {enhancement['crop_px']} px)"
                if enhancement["crop_px"]
                else ""
            )
            + f"; Richardson-Lucy with {enhancement['rl_iterations']} iterations.",
            "",
            "| method | PSNR dB | SSIM | NRMSE | Pearson r |",
            "|---|---|---|---|---|",
        ]
        for name, s in enhancement["mean"].items():
            lines.append(
                f"| {name} | {s['psnr_db']:.2f} | {s['ssim']:.3f} | {s['nrmse']:.3f} "
                f"| {s['pearson_r']:.3f} |"
            )
    else:
        lines.append(enhancement.get("error", ""))
    live = m["live"]
    lines += [
        "",
        "## Live enhancement",
        "",
        f"{live['enhanced']} stacks enhanced while acquiring, {live['dropped']} "
        f"dropped; latency per stack {live['latency_s']} s.",
        "",
        "## Checks",
        "",
        *[f"- {name}: {'pass' if ok else 'FAIL'}" for name, ok in m["checks"].items()],
        "",
    ]
    return "\n".join(lines)
