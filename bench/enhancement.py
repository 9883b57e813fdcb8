"""Enhancement: training cost, inference speed, effect of live enhancement.

Three measurements of the demo model (``enhance/models/demo_widefield_to_confocal.pt``):

1. Training: wall time, epochs and the kept epoch, read from the checkpoint
   (recorded by ``pairscope train``), with the test-split quality of the
   evaluation report if one is given (``--report``), and the training time to
   the quality bar: of the whole model, or of its filter and U-Net alone if
   their report (``pairscope evaluate --without-coarse-stage``, given as
   ``--unet-report``) already meets the bar.
2. Inference throughput in input voxels per second of
   :func:`enhance.predict.predict_stack` on a 41 x 512 x 512 stack on the
   model's grid (``--quick``: 41 x 128 x 128), on CPU with 1 thread and with
   all threads, and on CUDA if present. Voxel values do not change the cost of
   a convolutional network, so the stack is random (gamma-distributed counts).
3. Live enhancement: the same acquisition on the demo wide-field config with
   real exposure waits (4 cells x 41 planes, 50 ms; ``--quick``: 2 x 11 planes
   on a 128 px sensor) once plain and once with the live enhancer (1 torch
   thread, queue of 1). Acquisition efficiency = frames x exposure / time from
   the acquisition's start to the last raw stack's commit; the ratio
   enhanced/plain is the effect (target: >= 0.95). Enhancement that goes on
   after the last raw stack (the queue draining) is reported separately, with
   the latency per stack and the number of dropped stacks.

Usage::

    python bench/enhancement.py [--quick] [--model PATH] [--report report.json]
        [--unet-report report.json]

Prints a summary and writes ``bench/results/enhancement.json`` (``--quick``:
``enhancement_quick.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CONFIG = ROOT / "hardware_configs" / "demo_widefield.cfg"
MODEL = ROOT / "enhance" / "models" / "demo_widefield_to_confocal.pt"
RESULTS = ROOT / "bench" / "results" / "enhancement.json"
EXPOSURE_MS = 50.0


def training_summary(model: Path, report: Path | None) -> dict[str, Any]:
    """What the checkpoint (and the evaluation report) say about training."""
    from enhance.checkpoint import load_checkpoint

    checkpoint = load_checkpoint(model)
    training = checkpoint.training
    history = training.get("history", [])
    to_best = sum(h["seconds"] for h in history[: training.get("best_epoch", 0)])
    earlier = float(training.get("seconds_total") or 0.0) - float(
        training.get("seconds") or 0.0
    )
    summary: dict[str, Any] = {
        "command_line": " ".join(checkpoint.command_line or ()),
        "seed": checkpoint.seed,
        "device": training.get("device"),
        "seconds": training.get("seconds"),
        "epochs_run": training.get("epochs_run"),
        "best_epoch": training.get("best_epoch"),
        "seconds_to_best_epoch": round(to_best, 1),
        # a model continued from another (train --init): both stages together
        "seconds_total": training.get("seconds_total", training.get("seconds")),
        "seconds_to_best_epoch_total": round(earlier + to_best, 1),
        "continued_from": training.get("continued_from"),
        "val_loss": checkpoint.metrics.get("val_loss"),
        "val_loss_identity": checkpoint.metrics.get("val_loss_identity"),
        "unet": checkpoint.unet.to_dict(),
        "n_parameters": checkpoint.build_model("cpu").n_parameters(),
        "file_mb": round(model.stat().st_size / 1e6, 3),
    }
    summary["unet_seconds_to_best_epoch_total"] = summary["seconds_to_best_epoch_total"]
    if checkpoint.coarse is not None:
        # trained after the U-Net (train --stage coarse): its time adds up
        coarse = checkpoint.coarse.training
        summary["coarse_stage"] = {
            "command_line": " ".join(coarse.get("command_line") or ()),
            "seed": coarse.get("config", {}).get("seed"),
            "config": checkpoint.coarse.config.to_dict(),
            "n_parameters": checkpoint.coarse.build_model("cpu").n_parameters(),
            "setup_seconds": coarse.get("setup_seconds"),
            "seconds": coarse.get("seconds"),
            "epochs_run": coarse.get("epochs_run"),
            "best_epoch": coarse.get("best_epoch"),
            "seconds_to_best_epoch": coarse.get("seconds_to_best_epoch"),
            "val_loss": coarse.get("val_loss"),
            "val_loss_identity": coarse.get("val_loss_identity"),
        }
        summary["coarse_stage"]["seconds_to_best_epoch_total"] = coarse.get(
            "seconds_to_best_epoch_total", coarse.get("seconds_to_best_epoch")
        )
        summary["seconds_to_best_epoch_total"] = round(
            summary["seconds_to_best_epoch_total"]
            + float(summary["coarse_stage"]["seconds_to_best_epoch_total"] or 0.0),
            1,
        )
    if report is not None:
        summary["test_split"] = test_split(report)
    return summary


def test_split(report: Path) -> dict[str, Any]:
    """The test-split summary of a ``pairscope evaluate`` report."""
    data = json.loads(report.read_text())
    return {
        "report": str(
            report.relative_to(ROOT) if report.is_relative_to(ROOT) else report
        ),
        "pairs": len(data["pairs"]),
        "scored_region": data.get("scored_region", "whole stacks"),
        # reports written before evaluate recorded the stage do not say
        "coarse_stage_used": None
        if "coarse_stage" not in data["checkpoint"]
        else data["checkpoint"]["coarse_stage"] is not None,
        "rl_iterations": data["rl_iterations"],
        "rl_tuned_on_pair": data["rl_tuned_on_pair"],
        "mean": data["mean"],
    }


def quality_bar(test: dict[str, Any]) -> dict[str, Any]:
    """Model - RL margins of a test-split summary and whether they meet the bar."""
    model, rl = test["mean"]["model"], test["mean"]["richardson_lucy"]
    return {
        "model_minus_rl_psnr_db": round(model["psnr_db"] - rl["psnr_db"], 3),
        "model_minus_rl_ssim": round(model["ssim"] - rl["ssim"], 4),
        "model_pearson_r": round(model["pearson_r"], 4),
        "met": model["psnr_db"] - rl["psnr_db"] >= 2.0
        and model["ssim"] - rl["ssim"] >= 0.05
        and model["pearson_r"] >= 0.9,
    }


def throughput(model: Path, shape: tuple[int, int, int]) -> dict[str, Any]:
    """Input voxels per second of tiled inference, per device and thread count."""
    import torch

    from enhance.predict import Enhancer

    rng = np.random.default_rng(0)
    stack = rng.gamma(2.0, 100.0, shape).astype(np.float32)
    rows: dict[str, Any] = {}
    default_threads = torch.get_num_threads()
    for threads in sorted({1, default_threads}):
        torch.set_num_threads(threads)
        enhancer = Enhancer(model, device="cpu")
        voxel = enhancer.checkpoint.voxel_size_um
        enhancer.predict(stack[:8, :64, :64], voxel_size_um=voxel)  # warm-up
        result = enhancer.predict(stack, voxel_size_um=voxel)
        rows[f"cpu_{threads}_threads"] = {
            "voxels_per_s": round(result.voxels_per_s),
            "seconds": round(result.seconds, 3),
            "tiles": result.n_tiles,
        }
    torch.set_num_threads(default_threads)
    if torch.cuda.is_available():
        enhancer = Enhancer(model, device="cuda")
        voxel = enhancer.checkpoint.voxel_size_um
        enhancer.predict(stack, voxel_size_um=voxel)
        torch.cuda.synchronize()
        result = enhancer.predict(stack, voxel_size_um=voxel)
        rows["cuda"] = {
            "voxels_per_s": round(result.voxels_per_s),
            "seconds": round(result.seconds, 3),
            "device": torch.cuda.get_device_name(),
        }
    return {"stack_shape": list(shape), "results": rows}


def _config(folder: Path, sensor_px: int) -> Path:
    text = CONFIG.read_text() + (
        f"\n#py Property,Camera,SensorWidthPx,{sensor_px}"
        f"\n#py Property,Camera,SensorHeightPx,{sensor_px}"
        "\n#py Property,Camera,RealTiming,Yes\n"
    )
    path = folder / f"widefield_{sensor_px}.cfg"
    path.write_text(text)
    return path


def _sequence(
    folder: Path, positions: list[tuple[float, float, float]], planes: int
) -> Path:
    data = {
        "stage_positions": [{"x": x, "y": y, "z": z} for x, y, z in positions],
        "z_plan": {"range": 0.25 * (planes - 1), "step": 0.25},
        "channels": [{"config": "GFP", "group": "Channel", "exposure": EXPOSURE_MS}],
        "axis_order": "tpgcz",
    }
    path = folder / "sequence.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


class _Clock:
    """Acquisition start and last raw commit, from the controller's signals."""

    def __init__(self) -> None:
        self.started = 0.0
        self.last_commit = 0.0

    def connect(self, controller: Any) -> None:
        controller.events.started.connect(self._on_started)
        controller.events.stack_committed.connect(self._on_commit)

    def _on_started(self, *_: object) -> None:
        self.started = time.perf_counter()

    def _on_commit(self, *_: object) -> None:
        self.last_commit = time.perf_counter()

    @property
    def acquisition_s(self) -> float:
        return self.last_commit - self.started


def live_effect(
    model: Path, *, n_cells: int, planes: int, sensor_px: int
) -> dict[str, Any]:
    """The same acquisition without and with the live enhancer."""
    from acquire.hardware.microscope import scope, snap
    from acquire.sim import groundtruth
    from acquire.workflows.acquisition import AcquisitionRequest, run_acquisition
    from acquire.workflows.live_enhance import run_live_enhancement

    with tempfile.TemporaryDirectory(prefix="pairscope-bench-") as tmp:
        folder = Path(tmp)
        config = _config(folder, sensor_px)
        with scope(config) as core:
            positions = [
                groundtruth.stage_position_of_cell(core, c, height_um=0.0)
                for c in range(n_cells)
            ]
            snap(core)  # build the specimen and PSF tables outside the timing
        sequence = _sequence(folder, positions, planes)
        n_frames = n_cells * planes
        exposure_s = n_frames * EXPOSURE_MS / 1000

        plain_clock = _Clock()
        plain = run_acquisition(
            AcquisitionRequest(sequence, config, folder / "plain"),
            connect=plain_clock.connect,
        )
        live_clock = _Clock()
        started = time.perf_counter()
        live = run_live_enhancement(
            AcquisitionRequest(sequence, config, folder / "live"),
            model,
            queue_size=1,
            threads=1,
            connect=live_clock.connect,
        )
        total_s = time.perf_counter() - started
        if plain.status != "complete" or live.acquisition.status != "complete":
            raise RuntimeError("a benchmark acquisition did not complete")
        plain_eff = exposure_s / plain_clock.acquisition_s
        live_eff = exposure_s / live_clock.acquisition_s
        return {
            "config": f"{CONFIG.name}, {sensor_px} px sensor, RealTiming Yes",
            "stacks": n_cells,
            "planes": planes,
            "exposure_ms": EXPOSURE_MS,
            "frames": n_frames,
            "plain_acquisition_s": round(plain_clock.acquisition_s, 3),
            "live_acquisition_s": round(live_clock.acquisition_s, 3),
            "efficiency_plain": round(plain_eff, 4),
            "efficiency_live": round(live_eff, 4),
            "efficiency_ratio": round(live_eff / plain_eff, 4),
            "enhanced": live.enhanced,
            "dropped": live.dropped,
            "failed": live.failed,
            # LiveEnhancer times each stack from the start of its enhancement
            # (resampling included) to its commit; queue waits are not in it
            "processing_s_per_stack": [round(v, 2) for v in live.latencies_s],
            "drain_after_last_raw_s": round(
                total_s - (live_clock.last_commit - started), 2
            ),
            "enhanced_voxels_per_stack": _grid_voxels(model, planes, sensor_px, config),
        }


def _grid_voxels(model: Path, planes: int, sensor_px: int, config: Path) -> int:
    """Voxels of one raw stack once resampled to the model's grid."""
    from acquire.hardware.microscope import scope
    from acquire.sim import groundtruth
    from enhance.checkpoint import load_checkpoint

    voxel = load_checkpoint(model).voxel_size_um
    with scope(config) as core:
        camera = groundtruth.simulated_camera(core)
        pixel = camera.geometry(camera.read_scope_state().objective).pixel_size_um
    side = round(sensor_px * pixel / voxel[1])
    return int(round(planes * 0.25 / voxel[0]) * side * side)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="under a minute")
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument(
        "--report", type=Path, help="report.json of `pairscope evaluate`"
    )
    parser.add_argument(
        "--unet-report",
        type=Path,
        help="report.json of `pairscope evaluate --without-coarse-stage`",
    )
    parser.add_argument(
        "--sensor-px",
        type=int,
        default=512,
        help="camera side of the live run (demo: 512; 41 x 832 x 832 model "
        "voxels per stack)",
    )
    args = parser.parse_args()
    from enhance.checkpoint import load_checkpoint

    created = load_checkpoint(args.model).created_utc
    for option, report in (
        ("--report", args.report),
        ("--unet-report", args.unet_report),
    ):
        if report is not None:
            scored = json.loads(report.read_text())["checkpoint"]["created_utc"]
            if scored != created:
                parser.error(
                    f"{option} {report} scored the model created {scored}, not "
                    f"{args.model} (created {created}); evaluate this model"
                )
    unet_test = None if args.unet_report is None else test_split(args.unet_report)
    if unet_test is not None and unet_test["coarse_stage_used"] is not False:
        scored = (
            "scored a coarse stage"
            if unet_test["coarse_stage_used"]
            else "does not say whether it scored a coarse stage"
        )
        parser.error(
            f"--unet-report {args.unet_report} {scored}; make it with "
            "`pairscope evaluate --without-coarse-stage`"
        )
    import torch

    results: dict[str, Any] = {
        "benchmark": "enhance",
        "model": str(
            args.model.relative_to(ROOT)
            if args.model.is_relative_to(ROOT)
            else args.model
        ),
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "platform": platform.platform(),
        },
        "quick": args.quick,
        "targets": {
            "live_efficiency_ratio": 0.95,
            "quality_bar": "model - RL >= 2 dB PSNR and >= 0.05 SSIM, r >= 0.9",
        },
    }
    results["training"] = training_summary(args.model, args.report)
    shape = (41, 128, 128) if args.quick else (41, 512, 512)
    results["inference"] = throughput(args.model, shape)
    if args.quick:
        live = live_effect(args.model, n_cells=2, planes=11, sensor_px=128)
    else:
        live = live_effect(args.model, n_cells=4, planes=41, sensor_px=args.sensor_px)
    results["live"] = live
    results["meets_targets"] = live["efficiency_ratio"] >= 0.95
    training = results["training"]
    test = training.get("test_split")
    if test is not None:
        results["quality_bar"] = quality_bar(test)
        if results["quality_bar"]["met"]:
            results["time_to_quality_bar"] = {
                "seconds": training["seconds_to_best_epoch_total"],
                "model": "whole model",
            }
    if unet_test is not None:
        training["unet_test_split"] = unet_test
        results["quality_bar_unet_alone"] = quality_bar(unet_test)
        if results["quality_bar_unet_alone"]["met"]:
            results["time_to_quality_bar"] = {
                "seconds": training["unet_seconds_to_best_epoch_total"],
                "model": "filter + U-Net, without the coarse stage",
            }
    out = RESULTS.with_name("enhancement_quick.json") if args.quick else RESULTS
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")

    print(
        f"training: {training['seconds']} s, {training['epochs_run']} epochs, best "
        f"epoch {training['best_epoch']} ({training['device']})"
    )
    for name, row in results["inference"]["results"].items():
        print(f"inference {name}: {row['voxels_per_s'] / 1e6:.3f} Mvoxel/s")
    print(
        f"live: efficiency {live['efficiency_plain']:.3f} plain, "
        f"{live['efficiency_live']:.3f} with enhancer (ratio "
        f"{live['efficiency_ratio']:.3f}); {live['enhanced']} enhanced, "
        f"{live['dropped']} dropped, {live['processing_s_per_stack']} s per stack"
    )
    if "quality_bar" in results:
        bar = results["quality_bar"]
        print(
            f"quality: model - RL {bar['model_minus_rl_psnr_db']:+.2f} dB, "
            f"{bar['model_minus_rl_ssim']:+.4f} SSIM, r {bar['model_pearson_r']:.3f}"
            f" (bar {'met' if bar['met'] else 'not met'})"
        )
    if "time_to_quality_bar" in results:
        reached = results["time_to_quality_bar"]
        print(
            f"training time to the quality bar: {reached['seconds'] / 60:.1f} min "
            f"({reached['model']})"
        )
    print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
