"""Evaluation of a model against the classical baseline on test pairs.

For every test pair three stacks are scored against the confocal (see
:mod:`enhance.metrics` for the intensity matching and the metrics): the raw
wide-field stack, its Richardson-Lucy deconvolution with the wide-field PSF,
and the model's enhancement. The RL iteration count is given, or tuned on a
pair (see :func:`enhance.deconvolution.tune_iterations`; pass a validation
pair, since tuning on a test pair flatters the baseline).

``score_crop_yx`` scores only the central pixels of each stack while every
method still runs on the whole stack. Cropping the pairs before evaluating
instead (``pairscope evaluate --crop-yx``, faster) cuts the cells at the
crop's edges: both RL and the model then lack the light and the context from
beyond the edge, which a field centred on its cell does not.

Outputs in ``out_dir``: ``report.md`` (tables), ``report.json`` (everything,
machine-readable) and ``comparison.png`` (one pair: XY slice at the middle
plane and XZ slice at the middle row, columns raw WF | RL | model | confocal,
all intensity-matched to the confocal and shown with the confocal's 0.5 to
99.8 percentile display range; XZ stretched to square voxels).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from PIL import Image, ImageDraw

from enhance.checkpoint import FORMAT_VERSION, Checkpoint
from enhance.data import TrainingPair, central_yx_window
from enhance.deconvolution import DEFAULT_CANDIDATES, richardson_lucy, tune_iterations
from enhance.errors import EnhanceError
from enhance.metrics import ImageMetrics, image_metrics, match_intensity
from enhance.predict import Enhancer
from enhance.psf import WidefieldOptics, default_psf_shape, widefield_psf

__all__ = ["LINEAR_FILTER", "METHODS", "EvaluationReport", "PairEvaluation", "evaluate"]

METHODS = ("widefield", "richardson_lucy", "model")
LINEAR_FILTER = "linear_filter"
"""Extra method scored for a two-channel model: its learned linear filter
alone (what the U-Net starts from), to show what the network adds."""
_LABELS = {
    "widefield": "raw WF",
    "richardson_lucy": "RL",
    "model": "model",
    LINEAR_FILTER: "linear filter (model's first stage)",
    "confocal": "confocal",
}


@dataclass(frozen=True)
class PairEvaluation:
    """Scores of the three methods on one test pair."""

    pair_id: str
    cell_id: str
    metrics: dict[str, ImageMetrics]


@dataclass(frozen=True)
class EvaluationReport:
    """Outcome of :func:`evaluate`.

    Attributes
    ----------
    pairs : tuple of PairEvaluation
        Per-pair scores.
    mean : dict of str to ImageMetrics
        Mean over pairs, per method.
    rl_iterations : int
        Richardson-Lucy iterations used.
    rl_tuning_psnr_db : dict of int to float
        PSNR of each candidate count on the tuning pair (empty if given).
    model_voxels_per_s : float
        Model throughput over all test stacks (tiling and normalisation included).
    report_md, report_json, figure_png : Path
        Files written.

    """

    pairs: tuple[PairEvaluation, ...]
    mean: dict[str, ImageMetrics]
    rl_iterations: int
    rl_tuning_psnr_db: dict[int, float]
    model_voxels_per_s: float
    report_md: Path
    report_json: Path
    figure_png: Path


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, float):
        return _finite_or_none(obj)
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    return obj


def _mean_metrics(items: Sequence[ImageMetrics]) -> ImageMetrics:
    def mean(name: str) -> float:
        return float(np.mean([getattr(m, name) for m in items]))

    return ImageMetrics(mean("psnr_db"), mean("ssim"), mean("nrmse"), mean("pearson_r"))


def _to_uint8(image: NDArray[np.float64], low: float, high: float) -> NDArray[np.uint8]:
    scaled = (image - low) / max(high - low, 1e-12)
    return np.asarray(np.clip(scaled, 0, 1) * 255 + 0.5, dtype=np.uint8)


def _comparison_figure(
    stacks: dict[str, NDArray[np.float64]],
    voxel_size_um: tuple[float, float, float],
    path: Path,
) -> None:
    confocal = stacks["confocal"]
    low, high = np.percentile(confocal, [0.5, 99.8]).tolist()
    nz, ny, nx = confocal.shape
    stretch = voxel_size_um[0] / voxel_size_um[2]
    xz_height = max(1, round(nz * stretch))
    label_h, gap = 14, 4
    panel_w = nx
    width = 4 * panel_w + 3 * gap
    height = label_h + ny + gap + xz_height
    canvas = Image.new("L", (width, height), color=0)
    draw = ImageDraw.Draw(canvas)
    for column, name in enumerate(
        ("widefield", "richardson_lucy", "model", "confocal")
    ):
        left = column * (panel_w + gap)
        stack = stacks[name]
        xy = Image.fromarray(_to_uint8(stack[nz // 2], low, high))
        xz = Image.fromarray(_to_uint8(stack[:, ny // 2, :], low, high)).resize(
            (nx, xz_height), Image.Resampling.BILINEAR
        )
        canvas.paste(xy, (left, label_h))
        canvas.paste(xz, (left, label_h + ny + gap))
        draw.text((left + 2, 1), _LABELS[name], fill=255)
    canvas.save(path, format="PNG")


def _markdown(report: dict[str, Any]) -> str:
    def row(label: str, m: dict[str, float | None]) -> str:
        cells = [
            f"{v:.3f}" if isinstance(v, float) else "inf"
            for v in (m["psnr_db"], m["ssim"], m["nrmse"], m["pearson_r"])
        ]
        return f"| {label} | " + " | ".join(cells) + " |"

    header = "| method | PSNR (dB) | SSIM | NRMSE | Pearson r |\n|---|---|---|---|---|"
    ck, optics = report["checkpoint"], report["optics"]
    lines = [
        "# Enhancement evaluation",
        "",
        f"Model trained on {len(ck['provenance']['train_pair_ids'])} pairs "
        f"(catalog sha256 {ck['provenance']['catalog_sha256']}), "
        f"voxel size {ck['voxel_size_um']} um, "
        f"pairscope {ck['software_version']}.",
        f"Test pairs: {len(report['pairs'])}. "
        f"Richardson-Lucy: {report['rl_iterations']} "
        f"iterations, PSF NA {optics['numerical_aperture']}, "
        f"n {optics['immersion_index']}, "
        f"emission {optics['emission_wavelength_um']} um.",
        "Every stack is affinely matched (least squares) to the confocal before "
        "scoring; data range = confocal max - min. "
        f"Scored: {report['scored_region']}.",
        "",
        "## Mean over test pairs",
        "",
        header,
        *(row(_LABELS[m], report["mean"][m]) for m in report["methods"]),
        "",
        "## Per pair",
        "",
    ]
    for pair in report["pairs"]:
        lines += [f"### {pair['pair_id']} (cell {pair['cell_id']})", "", header]
        lines += [row(_LABELS[m], pair["metrics"][m]) for m in report["methods"]]
        lines.append("")
    lines.append(f"Model throughput: {report['model_voxels_per_s']:.3g} voxels/s.")
    return "\n".join(lines) + "\n"


def evaluate(
    checkpoint: Checkpoint | Enhancer | str | os.PathLike[str],
    test_pairs: Sequence[TrainingPair],
    *,
    out_dir: str | os.PathLike[str],
    optics: WidefieldOptics | None = None,
    psf_shape: tuple[int, int, int] | None = None,
    rl_iterations: int | None = None,
    rl_tuning_pair: TrainingPair | None = None,
    rl_candidates: Sequence[int] = DEFAULT_CANDIDATES,
    rl_background: float = 0.0,
    tile_shape: tuple[int, int, int] | None = None,
    overlap: tuple[int, int, int] | None = None,
    batch_size: int = 1,
    device: str | torch.device | None = None,
    figure_pair_id: str | None = None,
    score_crop_yx: int | None = None,
) -> EvaluationReport:
    """Score raw WF, Richardson-Lucy and the model on test pairs and write a report.

    Parameters
    ----------
    checkpoint : Checkpoint or Enhancer or str or path-like
        The model.
    test_pairs : sequence of TrainingPair
        Test split, at the model's voxel size.
    out_dir : str or path-like
        Folder for ``report.md``, ``report.json`` and ``comparison.png``.
    optics : WidefieldOptics, optional
        Wide-field optics for the RL PSF (default 40x/1.3 oil, 520 nm).
    psf_shape : tuple of int, optional
        PSF shape; ``None``: :func:`enhance.psf.default_psf_shape`.
    rl_iterations : int, optional
        Fixed RL iteration count; ``None``: tuned on ``rl_tuning_pair`` (or,
        without one, on the first test pair) over ``rl_candidates``.
    rl_tuning_pair : TrainingPair, optional
        Pair (from the validation split) to tune RL on.
    rl_candidates : sequence of int
        Iteration counts tried when tuning.
    rl_background : float
        Camera offset subtracted before RL.
    tile_shape, overlap, batch_size, device
        Passed to :func:`enhance.predict.predict_stack`.
    figure_pair_id : str, optional
        Pair shown in ``comparison.png`` (default: the first).
    score_crop_yx : int, optional
        Score (and show) only the central ``score_crop_yx`` x ``score_crop_yx``
        pixels of every stack; the methods still run on the whole stacks.

    Returns
    -------
    EvaluationReport

    Raises
    ------
    EnhanceError
        If there are no test pairs, a pair's voxel size does not fit the model,
        or ``figure_pair_id`` is not among them.

    """
    if not test_pairs:
        raise EnhanceError(
            "the test split holds no pairs", "add pairs to the test split"
        )
    if score_crop_yx is not None and score_crop_yx < 1:
        raise EnhanceError(
            f"score_crop_yx must be a positive pixel count, got {score_crop_yx}"
        )
    ids = [p.pair_id for p in test_pairs]
    shown = ids[0] if figure_pair_id is None else figure_pair_id
    if shown not in ids:
        raise EnhanceError(f"figure pair {shown!r} is not among the test pairs")
    optics = WidefieldOptics() if optics is None else optics
    enhancer = (
        checkpoint
        if isinstance(checkpoint, Enhancer)
        else Enhancer(checkpoint, device=device)
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    transfer = enhancer.checkpoint.transfer
    methods = METHODS if transfer is None else (*METHODS, LINEAR_FILTER)

    def psf_for(pair: TrainingPair) -> NDArray[np.float32]:
        shape = psf_shape or default_psf_shape(
            pair.widefield.shape, pair.voxel_size_um, optics
        )
        return widefield_psf(optics, voxel_size_um=pair.voxel_size_um, shape=shape)

    tuning: dict[int, float] = {}
    # a tuning pair that is also scored (the demos) keeps the tuning run's
    # estimate at the chosen count, and its time: no second identical run
    tuning_run: tuple[TrainingPair, NDArray[np.float32], float] | None = None
    if rl_iterations is None:
        tune_on = rl_tuning_pair if rl_tuning_pair is not None else test_pairs[0]
        start = time.perf_counter()
        result = tune_iterations(
            tune_on.widefield,
            tune_on.confocal,
            psf_for(tune_on),
            candidates=rl_candidates,
            background=rl_background,
        )
        rl_iterations, tuning = result.iterations, result.psnr_db
        tuned_on = tune_on.pair_id
        tuning_run = (tune_on, result.estimate, time.perf_counter() - start)
    else:
        tuned_on = None

    evaluations: list[PairEvaluation] = []
    model_seconds = 0.0
    model_voxels = 0
    rl_seconds = 0.0
    for pair in test_pairs:
        scored = (
            (slice(None),) * 3
            if score_crop_yx is None
            else central_yx_window(pair.confocal.shape, score_crop_yx)
        )
        target = np.asarray(pair.confocal, dtype=np.float64)[scored]
        if tuning_run is not None and pair is tuning_run[0]:
            _, rl, seconds = tuning_run
        else:
            start = time.perf_counter()
            rl = richardson_lucy(
                pair.widefield,
                psf_for(pair),
                iterations=rl_iterations,
                background=rl_background,
            )
            seconds = time.perf_counter() - start
        rl_seconds += seconds
        prediction = enhancer.predict(
            pair.widefield,
            voxel_size_um=pair.voxel_size_um,
            tile_shape=tile_shape,
            overlap=overlap,
            batch_size=batch_size,
        )
        model_seconds += prediction.seconds
        model_voxels += pair.n_voxels
        outputs = {
            "widefield": pair.widefield[scored],
            "richardson_lucy": rl[scored],
            "model": prediction.image[scored],
        }
        if transfer is not None:
            norm = enhancer.checkpoint.normalization
            outputs[LINEAR_FILTER] = transfer.apply(
                norm.apply(np.asarray(pair.widefield, dtype=np.float32))
            )[scored]
        evaluations.append(
            PairEvaluation(
                pair_id=pair.pair_id,
                cell_id=pair.cell_id,
                metrics={
                    name: image_metrics(outputs[name], target) for name in methods
                },
            )
        )
        if pair.pair_id == shown:
            figure_stacks = {
                name: match_intensity(outputs[name], target) for name in METHODS
            }
            figure_stacks["confocal"] = target
            figure_voxel = pair.voxel_size_um
    figure_png = out / "comparison.png"
    _comparison_figure(figure_stacks, figure_voxel, figure_png)

    mean = {m: _mean_metrics([e.metrics[m] for e in evaluations]) for m in methods}
    voxels_per_s = model_voxels / max(model_seconds, 1e-9)
    ck = enhancer.checkpoint
    payload: dict[str, Any] = {
        "checkpoint": {
            "format_version": FORMAT_VERSION,
            "voxel_size_um": list(ck.voxel_size_um),
            "provenance": ck.provenance.to_dict(),
            "software_version": ck.software_version,
            "created_utc": ck.created_utc,
            "seed": ck.seed,
            "unet": ck.unet.to_dict(),
            "coarse_stage": None if ck.coarse is None else ck.coarse.config.to_dict(),
        },
        "optics": optics.to_dict(),
        "intensity_matching": "least-squares affine fit of each stack to the confocal",
        "scored_region": "whole stacks"
        if score_crop_yx is None
        else f"central {score_crop_yx} x {score_crop_yx} px of the whole-stack results",
        "rl_iterations": rl_iterations,
        "rl_tuned_on_pair": tuned_on,
        "rl_tuning_psnr_db": {str(k): v for k, v in tuning.items()},
        "rl_seconds": rl_seconds,
        "model_voxels_per_s": voxels_per_s,
        "device": str(enhancer.device),
        "methods": list(methods),
        "mean": {m: mean[m].to_dict() for m in methods},
        "pairs": [
            {
                "pair_id": e.pair_id,
                "cell_id": e.cell_id,
                "metrics": {m: e.metrics[m].to_dict() for m in methods},
            }
            for e in evaluations
        ],
        "figure_pair_id": shown,
    }
    payload = _jsonable(payload)
    report_json = out / "report.json"
    report_json.write_text(
        json.dumps(payload, indent=2, allow_nan=False) + "\n", encoding="utf-8"
    )
    report_md = out / "report.md"
    report_md.write_text(_markdown(payload), encoding="utf-8")
    return EvaluationReport(
        pairs=tuple(evaluations),
        mean=mean,
        rl_iterations=rl_iterations,
        rl_tuning_psnr_db=tuning,
        model_voxels_per_s=voxels_per_s,
        report_md=report_md,
        report_json=report_json,
        figure_png=figure_png,
    )
