"""Metrics, the Richardson-Lucy baseline, the WF PSF and the evaluation report."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage
from scipy.signal import fftconvolve

from enhance.checkpoint import Checkpoint
from enhance.data import TrainingPair
from enhance.deconvolution import (
    richardson_lucy,
    richardson_lucy_series,
    tune_iterations,
)
from enhance.errors import EnhanceError
from enhance.evaluation import evaluate
from enhance.metrics import image_metrics, match_intensity
from enhance.normalization import PercentileNormalization
from enhance.psf import WidefieldOptics, default_psf_shape, widefield_psf
from enhance.unet import UNet3D, UNetConfig

if TYPE_CHECKING:
    from pathlib import Path

VOXEL_UM = (0.25, 0.1, 0.1)
OPTICS = WidefieldOptics(numerical_aperture=1.3, immersion_index=1.518)


def test_psnr_and_nrmse_of_known_noise() -> None:
    rng = np.random.default_rng(0)
    target = rng.uniform(0, 10, (16, 40, 40))
    target[0, 0, 0], target[-1, -1, -1] = 0.0, 10.0  # data range exactly 10
    sigma = 0.1
    noise = rng.normal(0, sigma, target.shape)
    noisy = target + noise
    m = image_metrics(noisy, target, match=False)
    assert m.psnr_db == pytest.approx(10 * np.log10(100 / np.mean(noise**2)), abs=1e-9)
    assert m.psnr_db == pytest.approx(20 * np.log10(10 / sigma), abs=0.15)
    assert m.nrmse == pytest.approx(np.sqrt(np.mean(noise**2)) / 10, rel=1e-9)
    assert m.pearson_r == pytest.approx(
        np.corrcoef(noisy.ravel(), target.ravel())[0, 1]
    )
    assert 0.9 < m.ssim < 1.0
    perfect = image_metrics(target, target)
    assert perfect.ssim == pytest.approx(1.0) and perfect.psnr_db > 200


def test_affine_matching_is_least_squares() -> None:
    rng = np.random.default_rng(1)
    target = rng.random((8, 12, 12))
    prediction = 3 * target + 5 + rng.normal(0, 0.05, target.shape)
    gain, offset = np.polyfit(prediction.ravel(), target.ravel(), 1)
    np.testing.assert_allclose(
        match_intensity(prediction, target), gain * prediction + offset
    )
    scaled = image_metrics(3 * target + 5, target)
    assert scaled.nrmse < 1e-12 and scaled.pearson_r == pytest.approx(1.0)


def test_metrics_refuse_bad_input() -> None:
    with pytest.raises(EnhanceError, match="differ in shape"):
        image_metrics(np.zeros((8, 8, 8)), np.ones((8, 8, 9)))
    with pytest.raises(EnhanceError, match="constant"):
        image_metrics(np.zeros((8, 8, 8)), np.ones((8, 8, 8)))


def test_widefield_psf_width_matches_theory() -> None:
    psf = widefield_psf(OPTICS, voxel_size_um=(0.2, 0.02, 0.02), shape=(11, 101, 101))
    assert psf.sum() == pytest.approx(1.0, rel=1e-5)
    assert np.unravel_index(np.argmax(psf), psf.shape) == (5, 50, 50)
    profile = psf[5, 50]
    above = np.flatnonzero(profile >= profile.max() / 2)
    fwhm_um = (above[-1] - above[0] + 1) * 0.02
    assert fwhm_um == pytest.approx(0.51 * 0.52 / 1.3, rel=0.12)
    # a WF image of a point does not lose flux with defocus
    sums = psf.reshape(11, -1).sum(axis=1)
    assert sums.min() > 0.5 * sums.max()
    with pytest.raises(EnhanceError, match="odd"):
        widefield_psf(OPTICS, voxel_size_um=VOXEL_UM, shape=(10, 31, 31))


def test_richardson_lucy_sharpens_a_blurred_point() -> None:
    psf = widefield_psf(OPTICS, voxel_size_um=VOXEL_UM, shape=(15, 31, 31))
    obj = np.zeros((20, 48, 48))
    obj[10, 24, 24] = 1000.0
    obj[8, 14, 30] = 600.0
    blurred = fftconvolve(obj, psf, mode="same").clip(0, None) + 1e-3
    series = richardson_lucy_series(blurred, psf, iterations=[0, 5, 20, 60])
    np.testing.assert_allclose(series[0], blurred.astype(np.float32), rtol=1e-6)
    peaks = [series[n][10, 24, 24] for n in (0, 5, 20, 60)]
    assert peaks == sorted(peaks) and peaks[-1] > 5 * peaks[0]
    errors = [np.abs(series[n] - obj).sum() for n in (0, 5, 20, 60)]
    assert errors == sorted(errors, reverse=True)  # converging towards the object
    # flux is conserved, values stay non-negative
    assert series[60].sum() == pytest.approx(blurred.sum(), rel=0.02)
    assert series[60].min() >= 0
    single = richardson_lucy(blurred, psf, iterations=20)
    np.testing.assert_allclose(single, series[20])


def synthetic_pair(seed: int, psf: np.ndarray) -> TrainingPair:
    rng = np.random.default_rng(seed)
    shape = (12, 40, 40)
    obj = ndimage.gaussian_filter(rng.random(shape) ** 8, 0.5) * 100
    confocal = fftconvolve(obj, psf**2 / (psf**2).sum(), mode="same").clip(0, None)
    widefield = fftconvolve(obj, psf, mode="same").clip(0, None)
    widefield = rng.poisson(widefield * 50 + 10) / 50.0
    return TrainingPair(
        f"pair{seed}",
        f"cell{seed}",
        widefield.astype(np.float32),
        confocal.astype(np.float32),
        VOXEL_UM,
    )


def identity_checkpoint() -> Checkpoint:
    config = UNetConfig(depth=1, base_channels=2)
    model = UNet3D(config)
    torch.nn.init.zeros_(model.head.weight)
    torch.nn.init.zeros_(model.head.bias)
    return Checkpoint(
        unet=config,
        state_dict=model.state_dict(),
        normalization=PercentileNormalization(),
        voxel_size_um=VOXEL_UM,
    )


def test_evaluate_writes_consistent_reports(tmp_path: Path) -> None:
    psf = widefield_psf(OPTICS, voxel_size_um=VOXEL_UM, shape=(11, 31, 31))
    pairs = [synthetic_pair(seed, psf) for seed in (1, 2)]
    tuning_pair = synthetic_pair(3, psf)
    steps: list[tuple[int, int]] = []
    report = evaluate(
        identity_checkpoint(),
        pairs,
        out_dir=tmp_path / "eval",
        optics=OPTICS,
        psf_shape=(11, 31, 31),
        rl_tuning_pair=tuning_pair,
        rl_candidates=(2, 10),
        figure_pair_id="pair2",
        progress=lambda done, total: steps.append((done, total)),
    )
    # RL tuning, then each pair: one call as each step ends
    assert steps == [(1, 3), (2, 3), (3, 3)]
    expected = tune_iterations(
        tuning_pair.widefield, tuning_pair.confocal, psf, candidates=(2, 10)
    )
    assert report.rl_iterations == expected.iterations
    # the tuning run's estimate is the RL result at the chosen count, exactly
    assert np.array_equal(
        expected.estimate,
        richardson_lucy(tuning_pair.widefield, psf, iterations=expected.iterations),
    )
    # tuned on a scored pair: that pair's RL is the tuning run's, the same
    on_scored = evaluate(
        identity_checkpoint(),
        pairs[:1],
        out_dir=tmp_path / "eval_tuned_on_scored",
        optics=OPTICS,
        psf_shape=(11, 31, 31),
        rl_candidates=(2, 10),
    )
    rl_first = richardson_lucy(
        pairs[0].widefield, psf, iterations=on_scored.rl_iterations
    )
    assert on_scored.pairs[0].metrics["richardson_lucy"] == image_metrics(
        rl_first, pairs[0].confocal
    )
    for pair, scored in zip(pairs, report.pairs, strict=True):
        wf = image_metrics(pair.widefield, pair.confocal)
        assert scored.metrics["widefield"] == wf
        # an identity model gives back the wide-field stack
        assert scored.metrics["model"].psnr_db == pytest.approx(wf.psnr_db, abs=1e-3)
        rl = richardson_lucy(pair.widefield, psf, iterations=report.rl_iterations)
        assert scored.metrics["richardson_lucy"] == image_metrics(rl, pair.confocal)
        # deconvolution brings a blurred stack closer to its sharper partner
        assert scored.metrics["richardson_lucy"].pearson_r > wf.pearson_r
    saved = json.loads(report.report_json.read_text())
    assert saved["rl_iterations"] == report.rl_iterations
    assert saved["pairs"][1]["metrics"]["widefield"]["ssim"] == pytest.approx(
        report.pairs[1].metrics["widefield"].ssim
    )
    assert saved["mean"]["model"]["psnr_db"] == pytest.approx(
        np.mean([p.metrics["model"].psnr_db for p in report.pairs])
    )
    markdown = report.report_md.read_text()
    assert "| raw WF |" in markdown and "| RL |" in markdown and "| model |" in markdown
    image = Image.open(report.figure_png)
    # 4 panels of 40 px, XZ stretched 12 planes x 2.5 = 30 px
    assert image.size == (4 * 40 + 3 * 4, 14 + 40 + 4 + 30)
    panel = np.asarray(image)[14 : 14 + 40]
    assert panel[:, :40].std() > 0 and panel[:, -40:].std() > 0


def test_evaluate_scores_the_centre_of_whole_stack_results(tmp_path: Path) -> None:
    psf = widefield_psf(OPTICS, voxel_size_um=VOXEL_UM, shape=(11, 31, 31))
    pair = synthetic_pair(4, psf)
    steps: list[tuple[int, int]] = []
    report = evaluate(
        identity_checkpoint(),
        [pair],
        out_dir=tmp_path / "eval",
        optics=OPTICS,
        psf_shape=(11, 31, 31),
        rl_iterations=10,
        score_crop_yx=20,
        progress=lambda done, total: steps.append((done, total)),
    )
    assert steps == [(1, 1)]  # a fixed RL count: no tuning step
    centre = (slice(None), slice(10, 30), slice(10, 30))
    scored = report.pairs[0].metrics
    assert scored["widefield"] == image_metrics(
        pair.widefield[centre], pair.confocal[centre]
    )
    whole_rl = richardson_lucy(pair.widefield, psf, iterations=10)
    assert scored["richardson_lucy"] == image_metrics(
        whole_rl[centre], pair.confocal[centre]
    )
    # RL of the cropped pair differs: it lacks the light from beyond the crop
    cropped_rl = richardson_lucy(pair.widefield[centre], psf, iterations=10)
    assert not np.allclose(cropped_rl, whole_rl[centre], rtol=1e-2)
    saved = json.loads(report.report_json.read_text())
    assert saved["scored_region"] == "central 20 x 20 px of the whole-stack results"
    assert Image.open(report.figure_png).size[0] == 4 * 20 + 3 * 4
    with pytest.raises(EnhanceError, match="positive pixel count"):
        evaluate(identity_checkpoint(), [pair], out_dir=tmp_path, score_crop_yx=0)


def test_evaluate_refuses_empty_test_split(tmp_path: Path) -> None:
    with pytest.raises(EnhanceError, match="test split holds no pairs"):
        evaluate(identity_checkpoint(), [], out_dir=tmp_path)


def test_default_psf_shape_is_odd_and_bounded() -> None:
    shape = default_psf_shape((41, 512, 512), VOXEL_UM, OPTICS)
    assert all(s % 2 == 1 for s in shape)
    assert shape[0] == 41 and shape[1] == shape[2] <= 129
