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

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from enhance.checkpoint import FORMAT_VERSION, Checkpoint
from enhance.data import TrainingPair, central_yx_window
from enhance.deconvolution import DEFAULT_CANDIDATES, richardson_lucy, tune_iterations
from enhance.errors import EnhanceError
from enhance.evaluation_report import LINEAR_FILTER, comparison_figure, write_report
from enhance.metrics import ImageMetrics, image_metrics, match_intensity
from enhance.predict import Enhancer
from enhance.psf import WidefieldOptics, default_psf_shape, widefield_psf

if TYPE_CHECKING:
    import os
    from collections.abc import Callable, Sequence

    import torch
    from numpy.typing import NDArray

__all__ = ["METHODS", "EvaluationReport", "PairEvaluation", "evaluate"]

METHODS = ("widefield", "richardson_lucy", "model")


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


def _mean_metrics(items: Sequence[ImageMetrics]) -> ImageMetrics:
    def mean(name: str) -> float:
        return float(np.mean([getattr(m, name) for m in items]))

    return ImageMetrics(mean("psnr_db"), mean("ssim"), mean("nrmse"), mean("pearson_r"))


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
    progress: Callable[[int, int], None] | None = None,
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
    progress : callable, optional
        Called as ``progress(done, total)`` when a step ends: RL tuning (if
        any) counts as one step, then each pair.

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
    baseline = _Baseline(optics, psf_shape, rl_background)
    steps = len(test_pairs) + (1 if rl_iterations is None else 0)
    done = 0

    def step_done() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, steps)

    if rl_iterations is None:
        baseline.tune(
            rl_tuning_pair if rl_tuning_pair is not None else test_pairs[0],
            rl_candidates,
        )
        step_done()
    else:
        baseline.iterations = rl_iterations

    evaluations: list[PairEvaluation] = []
    model_seconds = 0.0
    model_voxels = 0
    for pair in test_pairs:
        scored = _score_pair(
            pair,
            enhancer,
            baseline,
            methods=methods,
            score_crop_yx=score_crop_yx,
            tile_shape=tile_shape,
            overlap=overlap,
            batch_size=batch_size,
        )
        evaluations.append(scored.evaluation)
        model_seconds += scored.model_seconds
        model_voxels += pair.n_voxels
        if pair.pair_id == shown:
            figure_stacks = {
                name: match_intensity(scored.outputs[name], scored.target)
                for name in METHODS
            }
            figure_stacks["confocal"] = scored.target
            figure_voxel = pair.voxel_size_um
        step_done()
    figure_png = out / "comparison.png"
    comparison_figure(figure_stacks, figure_voxel, figure_png)

    mean = {m: _mean_metrics([e.metrics[m] for e in evaluations]) for m in methods}
    voxels_per_s = model_voxels / max(model_seconds, 1e-9)
    payload = _payload(
        enhancer,
        optics,
        baseline,
        methods=methods,
        mean=mean,
        evaluations=evaluations,
        voxels_per_s=voxels_per_s,
        score_crop_yx=score_crop_yx,
        figure_pair_id=shown,
    )
    report_json, report_md = write_report(out, payload)
    return EvaluationReport(
        pairs=tuple(evaluations),
        mean=mean,
        rl_iterations=baseline.iterations,
        rl_tuning_psnr_db=baseline.tuning_psnr_db,
        model_voxels_per_s=voxels_per_s,
        report_md=report_md,
        report_json=report_json,
        figure_png=figure_png,
    )


@dataclass(frozen=True, eq=False)
class _ScoredPair:
    evaluation: PairEvaluation
    outputs: dict[str, NDArray[np.float32]]
    target: NDArray[np.float64]
    model_seconds: float


def _score_pair(
    pair: TrainingPair,
    enhancer: Enhancer,
    baseline: _Baseline,
    *,
    methods: Sequence[str],
    score_crop_yx: int | None,
    tile_shape: tuple[int, int, int] | None,
    overlap: tuple[int, int, int] | None,
    batch_size: int,
) -> _ScoredPair:
    """Run every method on one pair and score it against the confocal."""
    scored = (
        (slice(None),) * 3
        if score_crop_yx is None
        else central_yx_window(pair.confocal.shape, score_crop_yx)
    )
    target = np.asarray(pair.confocal, dtype=np.float64)[scored]
    prediction = enhancer.predict(
        pair.widefield,
        voxel_size_um=pair.voxel_size_um,
        tile_shape=tile_shape,
        overlap=overlap,
        batch_size=batch_size,
    )
    outputs = {
        "widefield": pair.widefield[scored],
        "richardson_lucy": baseline.deconvolve(pair)[scored],
        "model": prediction.image[scored],
    }
    transfer = enhancer.checkpoint.transfer
    if transfer is not None:
        norm = enhancer.checkpoint.normalization
        outputs[LINEAR_FILTER] = transfer.apply(
            norm.apply(np.asarray(pair.widefield, dtype=np.float32))
        )[scored]
    evaluation = PairEvaluation(
        pair_id=pair.pair_id,
        cell_id=pair.cell_id,
        metrics={name: image_metrics(outputs[name], target) for name in methods},
    )
    return _ScoredPair(evaluation, outputs, target, prediction.seconds)


class _Baseline:
    """Richardson-Lucy with the wide-field PSF: tuned once, run per pair.

    A tuning pair that is also scored (the demos) keeps the tuning run's
    estimate at the chosen count, and its time: no second identical run.
    """

    def __init__(
        self,
        optics: WidefieldOptics,
        psf_shape: tuple[int, int, int] | None,
        background: float,
    ) -> None:
        self.optics = optics
        self.psf_shape = psf_shape
        self.background = background
        self.iterations = 0
        self.tuning_psnr_db: dict[int, float] = {}
        self.tuned_on: str | None = None
        self.seconds = 0.0
        self._tuning_run: tuple[TrainingPair, NDArray[np.float32], float] | None = None

    def psf_for(self, pair: TrainingPair) -> NDArray[np.float32]:
        shape = self.psf_shape or default_psf_shape(
            pair.widefield.shape, pair.voxel_size_um, self.optics
        )
        return widefield_psf(self.optics, voxel_size_um=pair.voxel_size_um, shape=shape)

    def tune(self, pair: TrainingPair, candidates: Sequence[int]) -> None:
        start = time.perf_counter()
        result = tune_iterations(
            pair.widefield,
            pair.confocal,
            self.psf_for(pair),
            candidates=candidates,
            background=self.background,
        )
        self.iterations, self.tuning_psnr_db = result.iterations, result.psnr_db
        self.tuned_on = pair.pair_id
        self._tuning_run = (pair, result.estimate, time.perf_counter() - start)

    def deconvolve(self, pair: TrainingPair) -> NDArray[np.float32]:
        if self._tuning_run is not None and pair is self._tuning_run[0]:
            _, estimate, seconds = self._tuning_run
        else:
            start = time.perf_counter()
            estimate = richardson_lucy(
                pair.widefield,
                self.psf_for(pair),
                iterations=self.iterations,
                background=self.background,
            )
            seconds = time.perf_counter() - start
        self.seconds += seconds
        return estimate


def _payload(
    enhancer: Enhancer,
    optics: WidefieldOptics,
    baseline: _Baseline,
    *,
    methods: Sequence[str],
    mean: dict[str, ImageMetrics],
    evaluations: Sequence[PairEvaluation],
    voxels_per_s: float,
    score_crop_yx: int | None,
    figure_pair_id: str,
) -> dict[str, Any]:
    """Everything the report says, as plain values."""
    ck = enhancer.checkpoint
    return {
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
        "rl_iterations": baseline.iterations,
        "rl_tuned_on_pair": baseline.tuned_on,
        "rl_tuning_psnr_db": {str(k): v for k, v in baseline.tuning_psnr_db.items()},
        "rl_seconds": baseline.seconds,
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
        "figure_pair_id": figure_pair_id,
    }
