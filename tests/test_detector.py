"""brewnet.Detector, pycaffe's caffe.Detector: windows of image files cropped (with R-CNN's
context padding when asked), warped to the input size and classified; selective search is
refused with a message."""

import numpy as np
import pytest

import brewnet as caffe
from brewnet import io
from brewnet import layers as L
from brewnet.errors import BrewnetError

MEAN = np.array([0.1, 0.2, 0.3], np.float32)


@pytest.fixture
def model(tmp_path):
    """A deploy net Input (2, 3, 6, 6) → InnerProduct 4 → Softmax with saved weights, and a
    16×16 PNG image."""
    Image = pytest.importorskip("PIL.Image")
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[2, 3, 6, 6]))
    n.score = L.InnerProduct(n.data, num_output=4, weight_filler=dict(type="gaussian", std=1))
    n.prob = L.Softmax(n.score)
    (tmp_path / "deploy.prototxt").write_text(str(n.to_proto()))
    net = caffe.Net(str(tmp_path / "deploy.prototxt"), caffe.TEST)
    net.save(str(tmp_path / "w.caffemodel"))
    pixels = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "street.png")
    return str(tmp_path / "deploy.prototxt"), str(tmp_path / "w.caffemodel"), net, \
        str(tmp_path / "street.png")


def make(model, **kw):
    return caffe.Detector(model[0], model[1], mean=MEAN, raw_scale=255,
                          channel_swap=(2, 1, 0), input_scale=0.5, **kw)


def reference(net, crop):
    x = (crop.transpose(2, 0, 1)[::-1] * 255 - MEAN[:, None, None]) * 0.5
    z = net.params["score"][0].data @ x.ravel() + net.params["score"][1].data
    e = np.exp(z - z.max())
    return e / e.sum()


def test_detect_windows(model):
    """detect_windows: one {'window', 'prediction', 'filename'} per window, in order; each
    prediction is the net's output for the window warped to 6×6 (3 windows, 2 batches)."""
    det = make(model)
    windows = [(0, 0, 8, 8), (2, 3, 14, 9), (5, 5, 16, 16)]
    found = det.detect_windows([(model[3], windows)])
    image = io.load_image(model[3])
    assert [d["filename"] for d in found] == [model[3]] * 3
    for d, (y0, x0, y1, x1) in zip(found, windows, strict=True):
        assert tuple(d["window"]) == (y0, x0, y1, x1)
        expected = reference(model[2], io.resize_image(image[y0:y1, x0:x1], (6, 6)))
        np.testing.assert_allclose(d["prediction"], expected, rtol=1e-4, atol=1e-6)
    assert det.detect_windows([]) == []


def test_crop_with_context_padding(model):
    """context_pad 1 on a 6-pixel input: the box grows by 6/4 about the window's centre; a
    window well inside the image warps the grown box; one at the corner leaves a mean-filled
    margin that preprocesses to zero (R-CNN's arithmetic, as pycaffe)."""
    det = make(model, context_pad=1)
    image = io.load_image(model[3])
    assert list(det.crop_dims) == [6, 6, 3]
    inner = det.crop(image, (4, 4, 8, 8))  # box (3, 3, 10, 10)
    np.testing.assert_allclose(inner, io.resize_image(image[3:10, 3:10], (6, 6)), atol=1e-6)
    corner = det.crop(image, (0, 0, 4, 4))  # box (-1, -1, 6, 6): one row and column off
    assert corner.shape == (6, 6, 3)
    np.testing.assert_allclose(corner[1:, 1:], io.resize_image(image[0:6, 0:6], (5, 5)),
                               atol=1e-6)
    np.testing.assert_allclose(corner[0], np.broadcast_to(MEAN[::-1] / 255, (6, 3)),
                               atol=1e-7)
    x = det.transformer.preprocess("data", corner)
    assert np.allclose(x[:, 0, :], 0, atol=1e-5) and np.allclose(x[:, :, 0], 0, atol=1e-5)


def test_crop_without_context_is_the_window(model):
    """Without context_pad the crop is the window's pixels (max exclusive)."""
    image = io.load_image(model[3])
    np.testing.assert_array_equal(make(model).crop(image, (1, 2, 5, 9)), image[1:5, 2:9])


def test_selective_search_is_refused(model):
    """detect_selective_search names the missing MATLAB package and points to
    detect_windows."""
    with pytest.raises(BrewnetError, match="detect_windows"):
        make(model).detect_selective_search([model[3]])
