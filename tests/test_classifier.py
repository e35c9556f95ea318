"""brewnet.Classifier, pycaffe's caffe.Classifier: images resized to image_dims, ten crops (or
the centre one), preprocessed in the Transformer's order and classified in padded batches;
checked against a NumPy reference of the same steps written out by hand."""

import numpy as np
import pytest

import brewnet as caffe
from brewnet import io
from brewnet import layers as L
from brewnet.errors import BrewnetError

MEAN = np.array([0.1, 0.2, 0.3], np.float32)


@pytest.fixture
def deploy(tmp_path):
    """A deploy net Input (4, 3, 6, 6) → InnerProduct 5 → Softmax, with saved weights."""
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[4, 3, 6, 6]))
    n.score = L.InnerProduct(n.data, num_output=5, weight_filler=dict(type="gaussian", std=1),
                             bias_filler=dict(type="gaussian", std=1))
    n.prob = L.Softmax(n.score)
    model = tmp_path / "deploy.prototxt"
    model.write_text(str(n.to_proto()))
    caffe.set_random_seed(0)
    net = caffe.Net(str(model), caffe.TEST)
    net.save(str(tmp_path / "w.caffemodel"))
    return str(model), str(tmp_path / "w.caffemodel"), net


def reference_scores(net, crop):
    """Softmax(W x + b) of one 6×6×3 crop after transpose, BGR swap, ×255, −mean, ×0.01."""
    x = (crop.transpose(2, 0, 1)[::-1] * 255 - MEAN[:, None, None]) * 0.01
    z = net.params["score"][0].data @ x.ravel() + net.params["score"][1].data
    e = np.exp(z - z.max())
    return e / e.sum()


def make(deploy, **kw):
    model, weights, _ = deploy
    return caffe.Classifier(model, weights, image_dims=(8, 8), mean=MEAN, input_scale=0.01,
                            raw_scale=255, channel_swap=(2, 1, 0), **kw)


def test_predict_oversample_averages_ten_crops(deploy):
    """predict(oversample=True): each image resized to 8×8, the 4 corner and centre 6×6 crops
    and their mirrors scored, and the 10 scores averaged (30 crops in 8 padded batches)."""
    rng = np.random.default_rng(0)
    images = [rng.random((10, 12, 3)), rng.random((8, 8, 3)), rng.random((5, 7, 3))]
    clf = make(deploy)
    got = clf.predict(images)
    assert got.shape == (3, 5)
    for im, scores in zip(images, got, strict=True):
        r = io.resize_image(im, (8, 8))
        crops = [r[y:y + 6, x:x + 6] for y, x in ((0, 0), (0, 2), (2, 0), (2, 2), (1, 1))]
        crops += [c[:, ::-1] for c in crops]
        expected = np.mean([reference_scores(deploy[2], c) for c in crops], axis=0)
        np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-6)


def test_predict_centre_crop(deploy):
    """predict(oversample=False) scores the centre crop alone."""
    image = np.random.default_rng(1).random((8, 8, 3))
    got = make(deploy).predict([image], oversample=False)
    np.testing.assert_allclose(got[0], reference_scores(deploy[2], image[1:7, 1:7]),
                               rtol=1e-4, atol=1e-6)


def test_classifier_is_a_test_net_with_its_transformer(deploy):
    """The Classifier is a TEST-phase Net with the weights loaded; its transformer is set up
    for the first input; image_dims defaults to the input size."""
    model, weights, net = deploy
    clf = caffe.Classifier(model, weights)
    assert clf.phase == caffe.TEST and clf.inputs == ["data"]
    assert np.array_equal(clf.params["score"][0].data, net.params["score"][0].data)
    assert clf.transformer.transpose["data"] == (2, 0, 1)
    assert list(clf.image_dims) == list(clf.crop_dims) == [6, 6]
    assert clf.predict(np.zeros((2, 6, 6, 3))).shape == (2, 5)


def test_classifier_on_image_files(deploy, tmp_path):
    """load_image → predict, the pycaffe classify.py flow, on a PNG file."""
    Image = pytest.importorskip("PIL.Image")
    pixels = np.random.default_rng(2).integers(0, 256, (9, 9, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "cat.png")
    image = caffe.io.load_image(str(tmp_path / "cat.png"))
    scores = make(deploy).predict([image])
    assert scores.shape == (1, 5) and np.isclose(scores.sum(), 1, atol=1e-5)


def test_classifier_refusals(deploy):
    """image_dims smaller than the input, and predict with no images, are clear errors."""
    model, weights, _ = deploy
    with pytest.raises(BrewnetError, match="image_dims"):
        caffe.Classifier(model, weights, image_dims=(4, 4))
    with pytest.raises(BrewnetError, match="no images"):
        make(deploy).predict([])
