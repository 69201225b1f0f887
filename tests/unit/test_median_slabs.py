"""IFU outlier_detection's median filter in row slabs: the values of stcal's whole-frame call.

That outlier_detection's crf files then equal Spec3Pipeline's is tested end to end
(tests/e2e/test_ifu.py: the main program with slabs, the background program without).
"""

from __future__ import annotations

import shlex
import warnings

import numpy as np
import pytest
from stcal.outlier_detection.utils import medfilt

from spec3flow.dag import StepJob
from spec3flow.median_slabs import ifu_outlier_median_in_slabs, medfilt_in_slabs
from spec3flow.workflow_support import execute_args


def frame(ny: int, nx: int, dtype=np.float64, seed: int = 3) -> np.ndarray:
    """Positive differences with the NaNs an IFU frame has: scattered, whole rows, edges."""
    rng = np.random.default_rng(seed)
    arr = np.abs(rng.normal(size=(ny, nx))).astype(dtype)
    arr[rng.random(arr.shape) < 0.1] = np.nan
    arr[:, :2] = np.nan
    arr[ny // 3 : ny // 3 + 4] = np.nan
    arr[rng.random(arr.shape) < 0.01] = 0.0
    return arr


def whole_frame(arr, kernel):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return medfilt(arr, kernel)


def in_slabs(arr, kernel, slab_pixels):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return medfilt_in_slabs(arr, kernel, slab_pixels)


@pytest.mark.parametrize("shape, kernel, slab_pixels", [
    ((97, 40), (7, 7), 400),     # 10 rows a slab, the last slab short
    ((97, 40), (3, 5), 40),      # one row a slab
    ((50, 33), (9, 3), 33 * 4),  # slabs thinner than the kernel's margin
    ((64, 16), (1, 1), 16 * 8),
    ((20, 30), (7, 7), 10_000),  # one slab: the plain call
])
def test_slabs_give_the_whole_frame_values(shape, kernel, slab_pixels):
    arr = frame(*shape)
    expected = whole_frame(arr, np.array(kernel))
    got = in_slabs(arr, np.array(kernel), slab_pixels)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


def test_float32_frames_keep_their_values_and_type():
    arr = frame(45, 21, np.float32)
    np.testing.assert_array_equal(in_slabs(arr, [5, 5], 21 * 3), whole_frame(arr, [5, 5]))


def test_input_is_not_modified():
    arr = frame(30, 10)
    before = arr.copy()
    in_slabs(arr, [7, 7], 50)
    np.testing.assert_array_equal(arr, before)


def test_shapes_it_does_not_split_go_to_stcal_unchanged():
    cube = frame(4, 12).reshape(2, 4, 6)
    np.testing.assert_array_equal(in_slabs(cube, [3, 3, 3], 6), whole_frame(cube, [3, 3, 3]))


def test_only_ifu_outlier_detection_is_switched_and_only_within_the_block():
    from jwst.outlier_detection import ifu

    original = ifu.medfilt
    with ifu_outlier_median_in_slabs():
        assert ifu.medfilt is medfilt_in_slabs
    assert ifu.medfilt is original
    with pytest.raises(KeyError), ifu_outlier_median_in_slabs():
        raise KeyError("a failing step")
    assert ifu.medfilt is original


@pytest.mark.parametrize("step, setting, flagged", [
    ("outlier_detection", {}, False),
    ("outlier_detection", {"median_filter_in_slabs": True}, False),
    ("outlier_detection", {"median_filter_in_slabs": False}, True),
    ("cube_build", {"median_filter_in_slabs": False}, False),
])
def test_the_config_switch_reaches_the_outlier_jobs_only(step, setting, flagged):
    job = StepJob(step=step, key="k", asn="a.json", inputs=[], outputs=["o.fits"])
    args = shlex.split(execute_args(job, {"execution": setting}))
    assert ("--whole-frame-median" in args) is flagged
