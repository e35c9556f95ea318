"""InnerProduct: Caffe's fully connected layer (axis, transpose, bias_term, given weights)."""

import numpy as np
import pytest

from brewnet.blob import Blob
from brewnet.errors import NetError, ShapeError
from tests.gradcheck import blobs_from, check_gradient, forward_backward, make_layer, setup_layer

GAUSS = 'weight_filler { type: "gaussian" std: 1 } bias_filler { type: "gaussian" std: 1 }'


def ip_layer(extra: str = ""):
    return make_layer(f'type: "InnerProduct" inner_product_param {{ {extra} }}')


def reference(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, axis: int,
              transpose: bool) -> np.ndarray:
    """Slow loop version of top = X·Wᵀ + b over the flattened trailing axes."""
    m = int(np.prod(x.shape[:axis]))
    k = int(np.prod(x.shape[axis:]))
    x2 = x.reshape(m, k).astype(np.float64)
    n = w.shape[1] if transpose else w.shape[0]
    out = np.zeros((m, n))
    for i in range(m):
        for j in range(n):
            for c in range(k):
                out[i, j] += x2[i, c] * (w[c, j] if transpose else w[j, c])
            if b is not None:
                out[i, j] += b[j]
    return out.reshape(x.shape[:axis] + (n,))


@pytest.mark.parametrize("transpose", [False, True])
def test_forward_matches_loop_reference(transpose):
    """top = X·Wᵀ + b with X the bottom flattened from axis 1; W is (N, K), or (K, N) when
    transposed."""
    x = np.random.default_rng(0).standard_normal((2, 3, 2, 2)).astype(np.float32)
    layer = ip_layer(f"num_output: 4 transpose: {str(transpose).lower()} {GAUSS}")
    bottom = blobs_from(x)
    top = setup_layer(layer, bottom)
    assert layer.blobs[0].data.shape == ((12, 4) if transpose else (4, 12))
    assert layer.blobs[1].data.shape == (4,)
    layer.forward(bottom, top)
    assert top[0].data.shape == (2, 4)
    want = reference(x, layer.blobs[0].data, layer.blobs[1].data, 1, transpose)
    np.testing.assert_allclose(top[0].data, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("axis", [2, -1])
def test_axis_keeps_leading_axes(axis):
    """With axis a, K = count(a..) and the top is bottom.shape[:a] + (N,); negative axes count
    from the end."""
    x = np.random.default_rng(1).standard_normal((2, 3, 4)).astype(np.float32)
    layer = ip_layer(f"num_output: 5 axis: {axis} {GAUSS}")
    bottom = blobs_from(x)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    assert top[0].data.shape == (2, 3, 5)
    want = reference(x, layer.blobs[0].data, layer.blobs[1].data, 2, False)
    np.testing.assert_allclose(top[0].data, want, rtol=1e-5, atol=1e-5)


def test_no_bias_has_one_blob_and_default_filler_is_zero():
    """bias_term: false gives a single weight blob; an unset weight_filler is constant 0."""
    layer = ip_layer("num_output: 3 bias_term: false")
    bottom = blobs_from(np.ones((2, 4), np.float32))
    top = setup_layer(layer, bottom)
    assert len(layer.blobs) == 1
    layer.forward(bottom, top)
    assert np.all(top[0].data == 0)


@pytest.mark.parametrize("extra", ["", "transpose: true", "axis: 2", "bias_term: false"])
def test_gradient(extra):
    """Backward matches numerical gradients for the bottom, weights and bias."""
    x = np.random.default_rng(2).standard_normal((2, 3, 2)).astype(np.float32)
    layer = ip_layer(f"num_output: 3 {extra} {GAUSS}")
    bottom = blobs_from(x)
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top)


def test_param_gradients_accumulate_and_respect_param_propagate_down():
    """Parameter diffs are added to (iter_size, sharing); a False param_propagate_down entry
    leaves that parameter's diff untouched."""
    x = np.random.default_rng(3).standard_normal((3, 4)).astype(np.float32)
    layer = ip_layer(f"num_output: 2 {GAUSS}")
    bottom = blobs_from(x)
    top = forward_backward(layer, bottom, np.random.default_rng(4).standard_normal((3, 2)))
    once_w, once_b = layer.blobs[0].diff.copy(), layer.blobs[1].diff.copy()
    np.testing.assert_allclose(once_w, top[0].diff.T @ x, rtol=1e-5)
    np.testing.assert_allclose(once_b, top[0].diff.sum(0), rtol=1e-5)
    layer.backward(top, [True], bottom)
    np.testing.assert_allclose(layer.blobs[0].diff, 2 * once_w, rtol=1e-5)
    layer.param_propagate_down = [False, True]
    layer.backward(top, [False], bottom)
    np.testing.assert_allclose(layer.blobs[0].diff, 2 * once_w, rtol=1e-5)
    np.testing.assert_allclose(layer.blobs[1].diff, 3 * once_b, rtol=1e-5)


def test_given_blobs_are_kept_or_rejected_by_shape():
    """Blobs set before setup (loaded or shared) are not refilled; a wrong shape is a
    ShapeError naming both shapes."""
    layer = ip_layer(f"num_output: 2 {GAUSS}")
    w, b = Blob((2, 3)), Blob((2,))
    w.data[...] = 7
    layer.blobs = [w, b]
    setup_layer(layer, blobs_from(np.ones((1, 3), np.float32)))
    assert np.all(layer.blobs[0].data == 7)
    bad = ip_layer("num_output: 2")
    bad.blobs = [Blob((3, 2)), Blob((2,))]
    with pytest.raises(ShapeError, match=r"\(3, 2\).*\(2, 3\)"):
        setup_layer(bad, blobs_from(np.ones((1, 3), np.float32)))


def test_reshape_rejects_a_different_feature_count():
    """A bottom whose count(axis..) differs from the weights' K is a ShapeError."""
    layer = ip_layer("num_output: 2")
    bottom = blobs_from(np.ones((2, 3), np.float32))
    top = setup_layer(layer, bottom)
    bottom[0].reshape((2, 4))
    with pytest.raises(ShapeError, match="expect 3"):
        layer.reshape(bottom, top)
    bottom[0].reshape((5, 3))  # a new batch size is fine
    layer.reshape(bottom, top)
    assert top[0].data.shape == (5, 2)


@pytest.mark.parametrize(("fillers", "what"), [
    ('weight_filler { type: "xavir" }', "weight_filler"),
    ('bias_filler { type: "gausian" }', "bias_filler"),
])
def test_bad_filler_names_the_layer_and_field(fillers, what):
    """An unknown filler type is a NetError naming the layer and which filler is wrong."""
    layer = make_layer(f'name: "fc" type: "InnerProduct" inner_product_param {{ num_output: 2 '
                       f'{fillers} }}')
    with pytest.raises(NetError, match=f"layer 'fc' \\(InnerProduct\\): {what}: unknown "
                                       "filler type"):
        setup_layer(layer, blobs_from(np.ones((1, 3), np.float32)))
