"""Neuron layers: ReLU (Caffe's rectifier with negative_slope), Sigmoid and TanH, in place and
not."""

import math

import numpy as np
import pytest

from tests.gradcheck import (
    blobs_from,
    check_gradient,
    forward_backward,
    make_layer,
    run_in_place,
    setup_layer,
)


def relu_layer(slope: float = 0.0):
    return make_layer(f'type: "ReLU" relu_param {{ negative_slope: {slope} }}')


def sample(shape=(2, 3, 4)) -> np.ndarray:
    return np.random.default_rng(0).standard_normal(shape).astype(np.float32)


def reference(x: np.ndarray, slope: float) -> np.ndarray:
    out = np.empty_like(x)
    for i, v in enumerate(x.reshape(-1)):
        out.reshape(-1)[i] = v if v > 0 else slope * v
    return out


@pytest.mark.parametrize("slope", [0.0, 0.1, 2.0])
def test_forward(slope):
    """y = max(x, 0) + negative_slope·min(x, 0)."""
    x = sample()
    layer = relu_layer(slope)
    bottom = blobs_from(x)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, reference(x, slope), rtol=1e-6)
    assert top[0].data.dtype == np.float32


@pytest.mark.parametrize("slope", [0.0, 0.1])
def test_gradient(slope):
    """Backward is dy where x > 0 and negative_slope·dy elsewhere (kink at 0 skipped)."""
    layer = relu_layer(slope)
    bottom = blobs_from(sample((2, 3, 2)))
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top, kink=0.0, kink_range=0.02)


@pytest.mark.parametrize("slope", [0.0, 0.1])
def test_in_place_matches_out_of_place(slope):
    """With top == bottom the forward rewrites the blob and the backward, reading the output's
    sign, gives the same gradient as the out-of-place layer."""
    x = sample()
    dy = np.random.default_rng(1).standard_normal(x.shape).astype(np.float32)
    layer = relu_layer(slope)
    bottom = blobs_from(x)
    top = forward_backward(layer, bottom, dy)

    output, grad = run_in_place(relu_layer(slope), x, dy)
    np.testing.assert_array_equal(output, top[0].data)
    np.testing.assert_array_equal(grad, bottom[0].diff)
    assert relu_layer().can_run_in_place


def test_no_propagate_down_leaves_bottom_diff():
    """propagate_down false writes nothing into the bottom diff."""
    layer = relu_layer()
    bottom = blobs_from(sample())
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    bottom[0].diff[...] = 5
    layer.backward(top, [False], bottom)
    assert np.all(bottom[0].diff == 5)


# -- Sigmoid and TanH -----------------------------------------------------------------------

SMOOTH = {"Sigmoid": lambda v: 1 / (1 + math.exp(-v)), "TanH": math.tanh}
SMOOTH_SLOPE = {"Sigmoid": lambda y: y * (1 - y), "TanH": lambda y: 1 - y * y}


def smooth_reference(kind: str, x: np.ndarray) -> np.ndarray:
    """Elementwise in float64, one value at a time."""
    f = SMOOTH[kind]
    return np.array([f(float(v)) for v in x.reshape(-1)]).reshape(x.shape)


@pytest.mark.parametrize("kind", ["Sigmoid", "TanH"])
def test_smooth_forward(kind):
    """Sigmoid is 1/(1+exp(-x)) and TanH is tanh(x), elementwise, in float32."""
    x = sample((2, 3, 4)) * 3
    layer = make_layer(f'type: "{kind}"')
    bottom = blobs_from(x)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    assert top[0].data.dtype == np.float32 and top[0].data.shape == x.shape
    np.testing.assert_allclose(top[0].data, smooth_reference(kind, x), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("kind", ["Sigmoid", "TanH"])
def test_smooth_forward_saturates_without_overflow(kind):
    """Large |x| (to ±FLT_MAX) gives the limits 0/1 (Sigmoid) or ±1 (TanH), finite and
    without overflow warnings."""
    big = np.float32(np.finfo(np.float32).max)
    x = np.array([-big, -1e4, -100, -30, 0, 30, 100, 1e4, big], np.float32)
    layer = make_layer(f'type: "{kind}"')
    bottom = blobs_from(x)
    top = setup_layer(layer, bottom)
    with np.errstate(all="raise"):
        layer.forward(bottom, top)
    y = top[0].data
    low = 0.0 if kind == "Sigmoid" else -1.0
    np.testing.assert_allclose(y[[0, 1, 2, 6, 7, 8]], [low, low, low, 1, 1, 1], atol=1e-7)
    np.testing.assert_allclose(y, smooth_reference(kind, x.clip(-100, 100)), atol=1e-7)


@pytest.mark.parametrize("kind", ["Sigmoid", "TanH"])
def test_smooth_gradient(kind):
    """Backward dy·y·(1-y) (Sigmoid) and dy·(1-y²) (TanH) match numerical gradients."""
    layer = make_layer(f'type: "{kind}"')
    bottom = blobs_from(sample((2, 3, 2)) * 2)
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top, stepsize=1e-2, threshold=1e-2)


@pytest.mark.parametrize("kind", ["Sigmoid", "TanH"])
def test_smooth_backward_formula(kind):
    """The bottom diff is exactly the top diff times the slope computed from the output."""
    x = sample((3, 5)) * 2
    dy = np.random.default_rng(2).standard_normal(x.shape).astype(np.float32)
    layer = make_layer(f'type: "{kind}"')
    bottom = blobs_from(x)
    top = forward_backward(layer, bottom, dy)
    y = top[0].data.astype(np.float64)
    np.testing.assert_allclose(bottom[0].diff, dy * SMOOTH_SLOPE[kind](y), rtol=1e-5,
                               atol=1e-7)


@pytest.mark.parametrize("kind", ["Sigmoid", "TanH"])
def test_smooth_in_place_matches_out_of_place(kind):
    """Backward reads only the output, so top == bottom gives the same output and gradient."""
    x = sample() * 2
    dy = np.random.default_rng(3).standard_normal(x.shape).astype(np.float32)
    layer = make_layer(f'type: "{kind}"')
    bottom = blobs_from(x)
    top = forward_backward(layer, bottom, dy)

    inplace = make_layer(f'type: "{kind}"')
    (blob,) = blobs_from(x)
    inplace.setup([blob], [blob])
    inplace.reshape([blob], [blob])
    inplace.forward([blob], [blob])
    np.testing.assert_array_equal(blob.data, top[0].data)
    blob.diff[...] = dy
    inplace.backward([blob], [True], [blob])
    np.testing.assert_array_equal(blob.diff, bottom[0].diff)
    assert inplace.can_run_in_place


@pytest.mark.parametrize("kind", ["Sigmoid", "TanH"])
def test_smooth_reshape_follows_bottom(kind):
    """A new bottom shape reshapes the top and the backward scratch."""
    layer = make_layer(f'type: "{kind}"')
    bottom = blobs_from(sample((2, 3)))
    top = setup_layer(layer, bottom)
    bottom[0].reshape(4, 1, 5)
    bottom[0].data[...] = sample((4, 1, 5))
    layer.reshape(bottom, top)
    layer.forward(bottom, top)
    top[0].diff[...] = 1
    layer.backward(top, [True], bottom)
    assert top[0].data.shape == bottom[0].diff.shape == (4, 1, 5)
    np.testing.assert_allclose(top[0].data, smooth_reference(kind, bottom[0].data), rtol=1e-5,
                               atol=1e-7)


# -- Element-wise neurons with parameters ----------------------------------------------------

def _bnll(v):
    return v + math.log1p(math.exp(-v)) if v > 0 else math.log1p(math.exp(v))


# case (the layer type, or type/variant), parameter text, float64 reference of one value,
# input scale/offset
ELEMENTWISE = {
    "AbsVal": ("", abs, 1.0, 0.0),
    "BNLL": ("", _bnll, 2.0, 0.0),
    "ELU": ("elu_param { alpha: 0.7 }", lambda v: v if v > 0 else 0.7 * math.expm1(v), 1.0,
            0.0),
    "Exp": ("", math.exp, 1.0, 0.0),
    "Exp/base2": ("exp_param { base: 2 scale: 0.5 shift: 1 }", lambda v: 2 ** (1 + 0.5 * v),
                  1.0, 0.0),
    "Log": ("", math.log, 0.3, 2.0),
    "Log/base10": ("log_param { base: 10 scale: 2 shift: 3 }", lambda v: math.log10(3 + 2 * v),
                   0.3, 1.0),
    "Power": ("power_param { power: 3 scale: 0.5 shift: 1 }", lambda v: (1 + 0.5 * v) ** 3,
              1.0, 0.0),
    "Power/square": ("power_param { power: 2 scale: -1 shift: 0.5 }", lambda v: (0.5 - v) ** 2,
                     1.0, 0.0),
    "Power/sqrt": ("power_param { power: 0.5 scale: 2 shift: 1 }",
                   lambda v: math.sqrt(1 + 2 * v), 0.2, 1.0),
    "Power/linear": ("power_param { power: 1 scale: 3 shift: -2 }", lambda v: 3 * v - 2, 1.0,
                     0.0),
    "Power/zero": ("power_param { power: 0 scale: 3 shift: 2 }", lambda v: 1.0, 1.0, 0.0),
    "Power/scale0": ("power_param { power: 2 scale: 0 shift: 3 }", lambda v: 9.0, 1.0, 0.0),
    "Clip": ("clip_param { min: -0.5 max: 0.8 }", lambda v: min(max(v, -0.5), 0.8), 1.0, 0.0),
    "Swish": ("swish_param { beta: 1.5 }", lambda v: v / (1 + math.exp(-1.5 * v)), 2.0, 0.0),
}
KINKS = {"AbsVal": [0.0], "ELU": [0.0], "Clip": [-0.5, 0.8]}


def layer_type(key: str) -> str:
    """The type a case tests: the key up to its "/" variant, so no type name is guessed."""
    return key.partition("/")[0]


def elementwise_layer(key: str):
    kind = layer_type(key)
    text, *_ = ELEMENTWISE[key]
    return make_layer(f'type: "{kind}" {text}')


def elementwise_input(key: str, shape=(2, 3, 4), seed=0) -> np.ndarray:
    _, _, spread, offset = ELEMENTWISE[key]
    x = np.random.default_rng(seed).standard_normal(shape) * spread + offset
    for k in KINKS.get(layer_type(key), []):  # keep clear of kinks
        x[np.abs(x - k) < 0.05] += 0.1
    return x.astype(np.float32)


@pytest.mark.parametrize("key", sorted(ELEMENTWISE))
def test_elementwise_forward(key):
    """Each neuron's forward equals its Caffe formula, value by value in float64 (Exp and Log
    with base -1 = e, Power's constant cases power 0 and scale 0)."""
    x = elementwise_input(key)
    layer = elementwise_layer(key)
    bottom = blobs_from(x)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    f = ELEMENTWISE[key][1]
    want = np.array([f(float(v)) for v in x.reshape(-1)]).reshape(x.shape)
    assert top[0].data.dtype == np.float32
    np.testing.assert_allclose(top[0].data, want, rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("key", sorted(ELEMENTWISE))
def test_elementwise_gradient(key):
    """Each neuron's backward matches numerical gradients (power 0 / scale 0 give 0)."""
    layer = elementwise_layer(key)
    bottom = blobs_from(elementwise_input(key, (2, 3, 2)))
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top, stepsize=1e-3, threshold=1e-2)


@pytest.mark.parametrize("key", sorted(k for k in ELEMENTWISE if k != "AbsVal"))
def test_elementwise_in_place_matches_out_of_place(key):
    """top == bottom gives the same output and gradient (layers whose backward reads the
    input keep a copy of it when in place)."""
    x = elementwise_input(key)
    dy = np.random.default_rng(5).standard_normal(x.shape).astype(np.float32)
    layer = elementwise_layer(key)
    bottom = blobs_from(x)
    top = forward_backward(layer, bottom, dy)

    inplace = elementwise_layer(key)
    assert inplace.can_run_in_place
    output, grad = run_in_place(inplace, x, dy)
    np.testing.assert_array_equal(output, top[0].data)
    np.testing.assert_allclose(grad, bottom[0].diff, rtol=1e-6)


def test_absval_refuses_in_place():
    """Caffe's AbsVal refuses in-place computation."""
    assert not make_layer('type: "AbsVal"').can_run_in_place


def test_bnll_large_inputs_are_finite():
    """BNLL is computed stably: y ≈ x for large x, ≈ 0 for very negative x, no overflow."""
    x = np.array([-1e4, -100, 0, 100, 1e4], np.float32)
    layer = make_layer('type: "BNLL"')
    bottom = blobs_from(x)
    top = setup_layer(layer, bottom)
    with np.errstate(over="raise"):
        layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, [0, 0, math.log(2), 100, 1e4], atol=1e-6)


def test_clip_gradient_is_inclusive_at_the_bounds():
    """Caffe's Clip backward passes dy where min <= x <= max, bounds included."""
    x = np.array([-2, -1, 0, 1, 2], np.float32)
    layer = make_layer('type: "Clip" clip_param { min: -1 max: 1 }')
    bottom = blobs_from(x)
    forward_backward(layer, bottom, 3)
    np.testing.assert_array_equal(bottom[0].diff, [0, 3, 3, 3, 0])


def test_threshold_forward_and_no_backward():
    """Threshold is 1 where x > threshold (strictly) else 0; its backward is refused."""
    from brewnet.errors import NetError

    x = np.array([-1, 0.5, 0.6, 2], np.float32)
    layer = make_layer('type: "Threshold" threshold_param { threshold: 0.5 }')
    bottom = blobs_from(x)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, [0, 0, 1, 1])
    layer.backward(top, [False], bottom)
    with pytest.raises(NetError):
        layer.backward(top, [True], bottom)


@pytest.mark.parametrize("text", ['type: "Exp" exp_param { base: 0 }',
                                  'type: "Log" log_param { base: -2 }'])
def test_bad_base_is_an_error(text):
    """Exp and Log need base > 0 or -1 (e), as Caffe's CHECK_GT(base, 0)."""
    from brewnet.errors import NetError

    layer = make_layer(text)
    with pytest.raises(NetError, match="base"):
        setup_layer(layer, blobs_from(sample()))
