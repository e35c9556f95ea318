"""OpenCV's INTER_LINEAR in NumPy (brewnet/data/resize.py): hand-computed cases, and OpenCV
itself when it is installed."""

import numpy as np
import pytest

from brewnet.data.resize import resize_linear


def test_same_size_is_a_copy():
    """OpenCV copies when the size does not change; so does resize_linear."""
    img = np.arange(12, dtype=np.uint8).reshape(1, 3, 4)
    out = resize_linear(img, 3, 4)
    np.testing.assert_array_equal(out, img)
    assert out is not img


def test_two_by_two_upscaled_by_hand():
    """2×2 → 4×4: pixel centres map to -0.25, 0.25, 0.75, 1.25; columns past the edges take
    the edge pixel; inside, weights 3/4 and 1/4 (OpenCV's 11-bit 1536 and 512)."""
    img = np.array([[[0, 100], [200, 40]]], dtype=np.uint8)
    rows = np.array([[0, 25, 75, 100], [200, 160, 80, 40]], dtype=np.float64)
    expected = np.stack([rows[0], 0.75 * rows[0] + 0.25 * rows[1],
                         0.25 * rows[0] + 0.75 * rows[1], rows[1]])
    np.testing.assert_array_equal(resize_linear(img, 4, 4)[0], np.floor(expected + 0.5))


def test_halving_averages_two_by_two_blocks():
    """An exact 2× reduction averages each 2×2 block, rounding half up (OpenCV's result)."""
    img = np.array([[[0, 1, 10, 20], [2, 3, 30, 41]]], dtype=np.uint8)
    np.testing.assert_array_equal(resize_linear(img, 1, 2), [[[2, 25]]])


def test_channels_are_resized_alike():
    """Each plane of a (C, H, W) image is resized on its own."""
    img = np.random.default_rng(0).integers(0, 256, (3, 9, 7), dtype=np.uint8)
    out = resize_linear(img, 5, 11)
    for c in range(3):
        np.testing.assert_array_equal(out[c], resize_linear(img[c:c + 1], 5, 11)[0])


SIZES = [((37, 53), (20, 31)), ((20, 31), (37, 53)), ((64, 64), (32, 32)),
         ((100, 80), (227, 227)), ((256, 340), (227, 227)), ((7, 9), (7, 30)), ((5, 5), (1, 1)),
         ((1, 1), (4, 6)), ((300, 200), (256, 256)), ((3, 250), (17, 16))]


@pytest.mark.parametrize(("src", "dst"), SIZES)
@pytest.mark.parametrize("channels", [1, 3])
def test_matches_opencv_within_one_level(src, dst, channels):
    """Against cv2.resize(INTER_LINEAR) itself, skipped where OpenCV is not installed."""
    cv2 = pytest.importorskip("cv2")
    img = np.random.default_rng(sum(src) + sum(dst)).integers(0, 256, (channels, *src),
                                                              dtype=np.uint8)
    ref = cv2.resize(np.ascontiguousarray(img.transpose(1, 2, 0)), dst[::-1],
                     interpolation=cv2.INTER_LINEAR)
    ref = ref.reshape(*dst, channels).transpose(2, 0, 1)
    diff = np.abs(resize_linear(img, *dst).astype(int) - ref)
    assert diff.max() <= 1
