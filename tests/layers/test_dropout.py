"""Dropout: Caffe's inverted dropout (train scales by 1/(1-p); test is the identity)."""

import numpy as np
import pytest

from brewnet import rng
from brewnet.errors import NetError
from brewnet.proto import caffe_pb2
from tests.gradcheck import blobs_from, check_gradient, make_layer, setup_layer


def dropout_layer(ratio: float = 0.5, phase: int = caffe_pb2.TRAIN):
    return make_layer(f'type: "Dropout" dropout_param {{ dropout_ratio: {ratio} }}', phase)


def sample(shape=(4, 50)) -> np.ndarray:
    return np.random.default_rng(0).standard_normal(shape).astype(np.float32) + 3


def expected_mask(seed: int, shape, ratio: float) -> np.ndarray:
    """The keep mask the layer draws after set_random_seed(seed): uniform float32 >= p."""
    rng.set_random_seed(seed)
    return rng.generator().random(shape, dtype=np.float32) >= np.float32(ratio)


@pytest.mark.parametrize("ratio", [0.5, 0.2])
def test_train_forward_is_inverted_dropout(ratio):
    """In TRAIN, y = x·mask/(1-p) with mask ~ Bernoulli(1-p) from brewnet.rng."""
    x = sample()
    layer = dropout_layer(ratio)
    bottom = blobs_from(x)
    top = setup_layer(layer, bottom)
    rng.set_random_seed(3)
    layer.forward(bottom, top)
    keep = expected_mask(3, x.shape, ratio)
    np.testing.assert_allclose(top[0].data, np.where(keep, x / (1 - ratio), 0), rtol=1e-6)
    assert abs(keep.mean() - (1 - ratio)) < 0.1


def test_test_phase_is_identity():
    """In TEST, y = x and dx = dy."""
    x = sample()
    layer = dropout_layer(0.5, caffe_pb2.TEST)
    bottom = blobs_from(x)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, x)
    top[0].diff[...] = 2
    layer.backward(top, [True], bottom)
    assert np.all(bottom[0].diff == 2)


def test_gradient():
    """Backward applies the forward's mask and scale (gradcheck reseeds before each pass)."""
    layer = dropout_layer(0.3)
    bottom = blobs_from(sample((2, 6)))
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top)


def test_in_place():
    """With top == bottom the same mask scales the data and, in backward, the diff."""
    x = sample()
    layer = dropout_layer(0.5)
    (blob,) = blobs_from(x)
    layer.setup([blob], [blob])
    layer.reshape([blob], [blob])
    rng.set_random_seed(5)
    layer.forward([blob], [blob])
    keep = expected_mask(5, x.shape, 0.5)
    np.testing.assert_allclose(blob.data, np.where(keep, 2 * x, 0), rtol=1e-6)
    blob.diff[...] = 1
    layer.backward([blob], [True], [blob])
    np.testing.assert_array_equal(blob.diff, np.where(keep, 2, 0).astype(np.float32))
    assert layer.can_run_in_place


def test_schema_has_only_dropout_ratio():
    """BVLC's DropoutParameter holds only dropout_ratio: Dropout is always inverted, with one
    scale 1/(1-p) and no test-time scaling."""
    fields = [f.name for f in caffe_pb2.DropoutParameter.DESCRIPTOR.fields]
    assert fields == ["dropout_ratio"]
    layer = dropout_layer(0.2, caffe_pb2.TEST)
    setup_layer(layer, blobs_from(sample()))
    assert layer.scale == np.float32(1 / 0.8)
    assert not hasattr(layer, "scale_train") and not hasattr(layer, "test_scale")


def test_ratio_out_of_range_is_an_error():
    """dropout_ratio must be in [0, 1); 1 would divide by zero."""
    layer = dropout_layer(1.0)
    with pytest.raises(NetError, match="dropout_ratio"):
        setup_layer(layer, blobs_from(sample()))
