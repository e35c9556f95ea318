"""Bias and Scale: broadcasting a learned (or second-bottom) operand over axis..axis+num_axes,
with Caffe's default fillers (Bias 0, Scale 1) and optional bias_term on Scale."""

import numpy as np
import pytest

from brewnet.errors import ShapeError
from tests.gradcheck import blobs_from, check_gradient, make_layer, setup_layer


def sample(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def reference(x: np.ndarray, operand: np.ndarray, axis: int, op) -> np.ndarray:
    """Loop over every element, picking the operand entry by the covered axes."""
    out = np.empty(x.shape)
    k = operand.ndim
    for idx in np.ndindex(*x.shape):
        out[idx] = op(float(x[idx]), float(operand[idx[axis:axis + k]]))
    return out


CASES = [  # (param text, bottom shape, operand shape, axis)
    ("", (2, 3, 4), (3,), 1),
    ("axis: 0 num_axes: 2", (2, 3, 4), (2, 3), 0),
    ("axis: -1", (2, 3, 4), (4,), 2),
    ("axis: 1 num_axes: -1", (2, 3, 2, 2), (3, 2, 2), 1),
    ("num_axes: 0", (2, 3), (), 1),
]


def _layer(kind: str, params: str, extra: str = ""):
    field = "bias_param" if kind == "Bias" else "scale_param"
    filler = 'filler { type: "gaussian" std: 1 }'
    return make_layer(f'type: "{kind}" {field} {{ {params} {filler} {extra} }}')


@pytest.mark.parametrize("kind", ["Bias", "Scale"])
def test_default_fillers(kind):
    """Without a filler Caffe's Bias starts at 0 and Scale at 1; Scale's bias at 0."""
    field = "bias_param" if kind == "Bias" else "scale_param"
    extra = f"{field} {{ bias_term: true }}" if kind == "Scale" else ""
    layer = make_layer(f'type: "{kind}" {extra}')
    setup_layer(layer, blobs_from(sample((2, 3, 4))))
    assert layer.blobs[0].data.shape == (3,)
    np.testing.assert_array_equal(layer.blobs[0].data, 0 if kind == "Bias" else 1)
    if kind == "Scale":
        assert len(layer.blobs) == 2
        np.testing.assert_array_equal(layer.blobs[1].data, 0)


@pytest.mark.parametrize("kind", ["Bias", "Scale"])
@pytest.mark.parametrize("params,shape,pshape,axis", CASES)
def test_forward_learned(kind, params, shape, pshape, axis):
    """One bottom: the operand has shape bottom.shape[axis:axis+num_axes] and broadcasts."""
    x = sample(shape)
    layer = _layer(kind, params)
    bottom = blobs_from(x)
    top = setup_layer(layer, bottom)
    assert layer.blobs[0].data.shape == pshape
    layer.forward(bottom, top)
    op = (lambda a, b: a + b) if kind == "Bias" else (lambda a, b: a * b)
    np.testing.assert_allclose(top[0].data, reference(x, layer.blobs[0].data, axis, op),
                               rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kind", ["Bias", "Scale"])
@pytest.mark.parametrize("params,shape,pshape,axis", CASES[:4])
def test_gradient_learned(kind, params, shape, pshape, axis):
    """Backward to the bottom and the parameter (summed over the other axes) match numerics."""
    layer = _layer(kind, params)
    bottom = blobs_from(sample(shape))
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top)


def test_scale_with_bias_term_forward_and_gradient():
    """Scale{bias_term} is y = x·s + b with blobs [s, b]; all three gradients check."""
    layer = _layer("Scale", "", 'bias_term: true bias_filler { type: "gaussian" std: 1 }')
    x = sample((2, 3, 2))
    bottom = blobs_from(x)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    s, b = layer.blobs[0].data, layer.blobs[1].data
    np.testing.assert_allclose(top[0].data, x * s[None, :, None] + b[None, :, None], rtol=1e-6,
                               atol=1e-6)
    check_gradient(layer, bottom, top)


@pytest.mark.parametrize("kind", ["Bias", "Scale"])
def test_two_bottoms(kind):
    """Two bottoms: bottom[1] is the operand (axis 0 here covering (2, 3)), no parameters, and
    its gradient is written (not accumulated) into bottom[1].diff."""
    field = "bias_param" if kind == "Bias" else "scale_param"
    layer = make_layer(f'type: "{kind}" {field} {{ axis: 0 }}')
    x, v = sample((2, 3, 4)), sample((2, 3), seed=1)
    bottom = blobs_from(x, v)
    top = setup_layer(layer, bottom)
    assert layer.blobs == []
    layer.forward(bottom, top)
    op = (lambda a, b: a + b) if kind == "Bias" else (lambda a, b: a * b)
    np.testing.assert_allclose(top[0].data, reference(x, v, 0, op), rtol=1e-6, atol=1e-6)
    check_gradient(layer, bottom, top)
    bottom[1].diff[...] = 100
    top[0].diff[...] = 1
    layer.backward(top, [False, True], bottom)
    want = 4 * np.ones((2, 3)) if kind == "Bias" else x.sum(axis=2)
    np.testing.assert_allclose(bottom[1].diff, want, rtol=1e-5)


def test_scale_two_bottoms_with_bias_term():
    """Scale with two bottoms and bias_term has one parameter blob, the bias."""
    layer = make_layer('type: "Scale" scale_param { bias_term: true '
                       'bias_filler { type: "gaussian" std: 1 } }')
    bottom = blobs_from(sample((2, 3, 2)), sample((3,), seed=2))
    top = setup_layer(layer, bottom)
    assert len(layer.blobs) == 1 and layer.blobs[0].data.shape == (3,)
    check_gradient(layer, bottom, top)


@pytest.mark.parametrize("kind", ["Bias", "Scale"])
def test_in_place_matches_out_of_place(kind):
    """top == bottom gives the same output and gradients (Scale keeps the input for s's)."""
    x = sample((2, 3, 4))
    dy = sample((2, 3, 4), seed=7)
    results = []
    for in_place in (False, True):
        layer = _layer(kind, "")
        (blob,) = blobs_from(x)
        if in_place:
            top = [blob]
            layer.setup([blob], top)
            layer.reshape([blob], top)
            layer.param_propagate_down = [True]
        else:
            top = setup_layer(layer, [blob])
        layer.blobs[0].data[...] = np.array([0.5, -2, 3], np.float32)
        layer.forward([blob], top)
        out = top[0].data.copy()
        top[0].diff[...] = dy
        layer.backward(top, [True], [blob])
        results.append((out, blob.diff.copy(), layer.blobs[0].diff.copy()))
    for a, b in zip(*results, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)


@pytest.mark.parametrize("kind", ["Bias", "Scale"])
def test_mismatched_second_bottom_is_a_shape_error(kind):
    """bottom[1]'s shape must equal bottom[0]'s axes from axis on."""
    layer = make_layer(f'type: "{kind}"')
    with pytest.raises(ShapeError, match="must match"):
        setup_layer(layer, blobs_from(sample((2, 3, 4)), sample((4,))))


def test_num_axes_past_the_end_is_a_shape_error():
    """axis + num_axes beyond the bottom's axes is refused, naming both."""
    layer = make_layer('type: "Bias" bias_param { axis: 1 num_axes: 3 }')
    with pytest.raises(ShapeError, match="num_axes 3"):
        setup_layer(layer, blobs_from(sample((2, 3, 4))))
