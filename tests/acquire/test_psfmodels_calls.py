"""psfmodels in short calls: the same planes, no call longer than its share."""

from __future__ import annotations

import threading

import numpy as np
import psfmodels
import pytest

from acquire.sim.psfmodels_calls import PIXELS_PER_CALL, vectorial_psf_planes

OPTIONS = {
    "dxy": 0.1,
    "wvl": 0.52,
    "params": {"NA": 1.3, "ni": 1.515, "ni0": 1.515, "ns": 1.33},
    "normalize": False,
}


def test_short_calls_give_one_calls_planes_bit_for_bit() -> None:
    zv = np.linspace(-4.0, 4.0, 23)
    nx = 129  # 7 planes per call: 4 calls, the last one short
    assert PIXELS_PER_CALL // (nx * nx) == 7
    whole = np.asarray(psfmodels.vectorial_psf(zv.copy(), nx=nx, **OPTIONS))
    np.testing.assert_array_equal(vectorial_psf_planes(zv, nx=nx, **OPTIONS), whole)
    assert vectorial_psf_planes(np.zeros(0), nx=nx, **OPTIONS).shape == (0, nx, nx)
    with pytest.raises(ValueError, match="normalize=False"):
        vectorial_psf_planes(zv, nx=nx, dxy=0.1, wvl=0.52)


@pytest.fixture
def planes_per_call(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of planes of each psfmodels call made in this process."""
    calls: list[int] = []
    real = psfmodels.vectorial_psf

    def counting(zv: np.ndarray, **options: object) -> np.ndarray:
        calls.append(len(zv))
        return np.asarray(real(zv, **options))  # type: ignore[arg-type]

    monkeypatch.setattr(psfmodels, "vectorial_psf", counting)
    return calls


def test_no_call_computes_more_than_its_share(planes_per_call: list[int]) -> None:
    # psfmodels holds the interpreter lock for a whole call (measured: 0.44 s
    # without a 1 ms ticker thread running, for 64 planes of 129 px), so the
    # length of the longest call is what other threads wait
    for nx, n_planes in ((65, 100), (129, 48), (513, 3)):
        planes_per_call.clear()
        vectorial_psf_planes(np.linspace(-4, 4, n_planes), nx=nx, **OPTIONS)
        assert sum(planes_per_call) == n_planes
        # a plane bigger than the share still goes in one call of its own
        assert max(planes_per_call) * nx * nx <= max(PIXELS_PER_CALL, nx * nx)


def test_planes_for_a_worker_thread_come_from_the_helper_process(
    planes_per_call: list[int],
) -> None:
    # a worker thread (the window's) gets its planes from the helper process,
    # whose interpreter lock is its own (here 401 x 401 planes, each more than
    # a call's share); the values are psfmodels' own, bit for bit
    zv = np.array([-1.5, 0.0, 2.0])
    nx = 401
    assert nx * nx > PIXELS_PER_CALL
    whole = np.asarray(psfmodels.vectorial_psf(zv.copy(), nx=nx, **OPTIONS))
    planes_per_call.clear()
    results: dict[str, object] = {}

    def worker() -> None:
        try:
            results["planes"] = vectorial_psf_planes(zv, nx=nx, **OPTIONS)
            vectorial_psf_planes(zv, nx=nx, **{**OPTIONS, "dxy": -0.1})
        except ValueError as error:
            results["error"] = str(error)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(timeout=120)
    np.testing.assert_array_equal(results["planes"], whole)
    assert planes_per_call == []  # nothing computed in this process
    # the helper's failures come back as this process's error
    assert "helper process: ValueError: dxy must be" in str(results.get("error"))
    # the main thread computes large planes itself
    np.testing.assert_array_equal(vectorial_psf_planes(zv, nx=nx, **OPTIONS), whole)
    assert planes_per_call == [1, 1, 1]


def test_without_a_helper_process_a_worker_thread_computes_the_planes_itself(
    monkeypatch: pytest.MonkeyPatch,
    planes_per_call: list[int],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # no interpreter to start the helper with (an embedded Python, say): the
    # planes are computed in this process, once the failure is logged
    from acquire.sim import psfmodels_calls

    monkeypatch.setattr(psfmodels_calls, "_HELPER", psfmodels_calls._Helper())  # noqa: SLF001
    monkeypatch.setattr(psfmodels_calls.sys, "executable", "/nonexistent/python")
    zv = np.array([0.0, 1.0])
    whole = np.asarray(psfmodels.vectorial_psf(zv.copy(), nx=65, **OPTIONS))
    planes_per_call.clear()
    results: list[np.ndarray] = []
    thread = threading.Thread(
        target=lambda: results.append(vectorial_psf_planes(zv, nx=65, **OPTIONS))
    )
    thread.start()
    thread.join(timeout=60)
    np.testing.assert_array_equal(results[0], whole)
    assert planes_per_call == [2]
    assert "PSF helper process failed" in caplog.text
