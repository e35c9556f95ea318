"""RNN, LSTM and LSTMUnit: Caffe's recurrent layers (time-major x, cont resets, static input,
expose_hidden, parameter order, BPTT)."""

import math

import numpy as np
import pytest
from google.protobuf import text_format

from brewnet.errors import NetError
from brewnet.proto import caffe_pb2
from brewnet.solver import get_solver
from tests.gradcheck import blobs_from, check_gradient, make_layer, setup_layer

FILL = 'weight_filler { type: "uniform" min: -0.8 max: 0.8 } ' \
       'bias_filler { type: "uniform" min: -0.5 max: 0.5 }'
T, N, D_IN, S, H = 3, 2, 3, 2, 4


def rec_layer(kind: str, expose: bool = False, hidden: int = H):
    return make_layer(f'type: "{kind}" recurrent_param {{ num_output: {hidden} {FILL} '
                      f'expose_hidden: {str(expose).lower()} }}')


def inputs(seed: int, cont0: float = 0.0, static: bool = False):
    """x (T, N, D_IN), cont with a mid-sequence reset for sample 1, optionally x_static (N, S)."""
    r = np.random.default_rng(seed)
    x = r.standard_normal((T, N, D_IN)).astype(np.float32)
    cont = np.ones((T, N), np.float32)
    cont[0] = cont0
    cont[2, 1] = 0  # sample 1 starts a new sequence at t = 2
    out = [x, cont]
    if static:
        out.append(r.standard_normal((N, S)).astype(np.float32))
    return out


def sig(v):
    return 1 / (1 + math.exp(-v))


def ref_rnn(x, cont, xs, h0, params):
    """Step-by-step, unit-by-unit Elman RNN as Caffe's unrolled RNN computes it."""
    w_xh, b_h = params[0], params[1]
    rest = params[2:]
    w_s = None
    if xs is not None:
        w_s, rest = rest[0], rest[1:]
    w_hh, w_ho, b_o = rest
    t_len, n_len, _ = x.shape
    hd = b_h.shape[0]
    o = np.zeros((t_len, n_len, hd))
    h = np.zeros((t_len, n_len, hd))
    for n in range(n_len):
        prev = h0[n].astype(np.float64)
        for t in range(t_len):
            for j in range(hd):
                a = b_h[j] + sum(w_xh[j, k] * x[t, n, k] for k in range(x.shape[2]))
                a += sum(w_hh[j, k] * cont[t, n] * prev[k] for k in range(hd))
                if w_s is not None:
                    a += sum(w_s[j, k] * xs[n, k] for k in range(xs.shape[1]))
                h[t, n, j] = math.tanh(a)
            for j in range(hd):
                o[t, n, j] = math.tanh(b_o[j] + sum(w_ho[j, k] * h[t, n, k] for k in range(hd)))
            prev = h[t, n]
    return o, h


def ref_lstm(x, cont, xs, h0, c0, params):
    """Step-by-step, unit-by-unit LSTM with Caffe's gate order i, f, o, g."""
    w_xc, b_c = params[0], params[1]
    w_s = params[2] if xs is not None else None
    w_hc = params[-1]
    t_len, n_len, _ = x.shape
    hd = w_hc.shape[1]
    hs = np.zeros((t_len, n_len, hd))
    cs = np.zeros((t_len, n_len, hd))
    for n in range(n_len):
        hp, cp = h0[n].astype(np.float64), c0[n].astype(np.float64)
        for t in range(t_len):
            pre = np.zeros(4 * hd)
            for r in range(4 * hd):
                a = b_c[r] + sum(w_xc[r, k] * x[t, n, k] for k in range(x.shape[2]))
                a += sum(w_hc[r, k] * cont[t, n] * hp[k] for k in range(hd))
                if w_s is not None:
                    a += sum(w_s[r, k] * xs[n, k] for k in range(xs.shape[1]))
                pre[r] = a
            for j in range(hd):
                i, f = sig(pre[j]), sig(pre[hd + j])
                o, g = sig(pre[2 * hd + j]), math.tanh(pre[3 * hd + j])
                cs[t, n, j] = cont[t, n] * f * cp[j] + i * g
                hs[t, n, j] = o * math.tanh(cs[t, n, j])
            hp, cp = hs[t, n], cs[t, n]
    return hs, cs


@pytest.mark.parametrize("static", [False, True])
def test_rnn_blob_order_and_shapes(static):
    """RNN's blobs are W_xh (H, D_IN), b_h (H), [W_xh_static (H, S)], W_hh (H, H), W_ho (H, H),
    b_o (H), the order Caffe's unrolled net uses; the top is (T, N, H)."""
    layer = rec_layer("RNN")
    bottom = blobs_from(*inputs(0, static=static))
    top = setup_layer(layer, bottom)
    shapes = [b.data.shape for b in layer.blobs]
    want = [(H, D_IN), (H,)] + ([(H, S)] if static else []) + [(H, H), (H, H), (H,)]
    assert shapes == want
    assert top[0].data.shape == (T, N, H)


@pytest.mark.parametrize("static", [False, True])
def test_lstm_blob_order_and_shapes(static):
    """LSTM's blobs are W_xc (4H, D_IN), b_c (4H), [W_xc_static (4H, S)], W_hc (4H, H); with
    expose_hidden the extra tops h_T, c_T are (1, N, H)."""
    layer = rec_layer("LSTM", expose=True)
    x = inputs(0, static=static)
    x += [np.zeros((1, N, H), np.float32)] * 2
    bottom = blobs_from(*x)
    top = setup_layer(layer, bottom, 3)
    shapes = [b.data.shape for b in layer.blobs]
    assert shapes == [(4 * H, D_IN), (4 * H,)] + ([(4 * H, S)] if static else []) + [(4 * H, H)]
    assert [t.data.shape for t in top] == [(T, N, H), (1, N, H), (1, N, H)]


@pytest.mark.parametrize("static", [False, True])
def test_rnn_forward_matches_reference(static):
    """h_t = tanh(W_hh·(cont_t·h_{t-1}) + W_xh·x_t + b_h [+ W_xh_static·x_static]),
    o_t = tanh(W_ho·h_t + b_o), with h reset where cont is 0 (mid-sequence too)."""
    layer = rec_layer("RNN", expose=True)
    arrs = inputs(1, cont0=1.0, static=static)
    h0 = np.random.default_rng(5).standard_normal((1, N, H)).astype(np.float32)
    bottom = blobs_from(*arrs, h0)
    top = setup_layer(layer, bottom, 2)
    layer.forward(bottom, top)
    params = [b.data for b in layer.blobs]
    o, h = ref_rnn(arrs[0], arrs[1], arrs[2] if static else None, h0[0], params)
    np.testing.assert_allclose(top[0].data, o, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(top[1].data[0], h[-1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("static", [False, True])
def test_lstm_forward_matches_reference(static):
    """Gates W_xc·x_t + b_c [+ W_xc_static·x_static] + W_hc·(cont_t·h_{t-1}) in order i, f,
    o, g; c_t = cont_t·f⊙c_{t-1} + i⊙g, h_t = o⊙tanh(c_t); resets where cont is 0."""
    layer = rec_layer("LSTM", expose=True)
    arrs = inputs(2, cont0=1.0, static=static)
    r = np.random.default_rng(6)
    h0 = r.standard_normal((1, N, H)).astype(np.float32)
    c0 = r.standard_normal((1, N, H)).astype(np.float32)
    bottom = blobs_from(*arrs, h0, c0)
    top = setup_layer(layer, bottom, 3)
    layer.forward(bottom, top)
    params = [b.data for b in layer.blobs]
    hs, cs = ref_lstm(arrs[0], arrs[1], arrs[2] if static else None, h0[0], c0[0], params)
    np.testing.assert_allclose(top[0].data, hs, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(top[1].data[0], hs[-1], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(top[2].data[0], cs[-1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["RNN", "LSTM"])
def test_hidden_state_carries_over_between_forwards(kind):
    """Without expose_hidden the final state of one forward is the initial state of the next
    (Caffe copies h_T into h_0); cont = 0 at t = 0 discards it, cont = 1 keeps it."""
    layer = rec_layer(kind)
    x, cont = inputs(3, cont0=1.0)
    bottom = blobs_from(x, cont)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    first = top[0].data.copy()
    layer.forward(bottom, top)
    assert not np.allclose(top[0].data, first)
    bottom[1].data[0] = 0
    layer.forward(bottom, top)
    a = top[0].data.copy()
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, a, rtol=1e-6)
    fresh = rec_layer(kind)
    fresh.blobs = layer.blobs
    top2 = setup_layer(fresh, bottom)
    bottom[1].data[0] = 1  # zero initial state on a fresh layer equals a reset
    fresh.forward(bottom, top2)
    bottom[1].data[0] = 0
    np.testing.assert_allclose(top2[0].data, a, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["RNN", "LSTM"])
@pytest.mark.parametrize("static", [False, True])
def test_gradient(kind, static):
    """BPTT gradients for x, x_static and every parameter match central differences
    (cont = 0 at t = 0, so the carried-over state does not enter)."""
    layer = rec_layer(kind)
    bottom = blobs_from(*inputs(4, static=static))
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top, check_bottom=[0] + ([2] if static else []))


@pytest.mark.parametrize("kind", ["RNN", "LSTM"])
def test_gradient_expose_hidden(kind):
    """With expose_hidden, gradients reach h_0 (and c_0) and flow back from the h_T (c_T)
    tops; x_static and the parameters are checked too."""
    layer = rec_layer(kind, expose=True)
    n_states = 2 if kind == "LSTM" else 1
    r = np.random.default_rng(8)
    states = [r.standard_normal((1, N, H)).astype(np.float32) for _ in range(n_states)]
    bottom = blobs_from(*inputs(5, cont0=1.0, static=True), *states)
    top = setup_layer(layer, bottom, 1 + n_states)
    check_gradient(layer, bottom, top, check_bottom=[0, 2] + [3 + k for k in range(n_states)])


def test_param_gradients_accumulate():
    """Backward adds into parameter diffs (iter_size / shared weights), as Caffe does."""
    layer = rec_layer("LSTM")
    bottom = blobs_from(*inputs(6))
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    top[0].diff[...] = 1
    for p in layer.blobs:
        p.diff[...] = 0
    layer.backward(top, [True, False], bottom)
    once = [p.diff.copy() for p in layer.blobs]
    layer.backward(top, [True, False], bottom)
    for p, g in zip(layer.blobs, once, strict=True):
        np.testing.assert_allclose(p.diff, 2 * g, rtol=1e-5, atol=1e-6)


def test_no_gradient_to_cont():
    """Caffe refuses to backpropagate to the sequence indicators."""
    layer = rec_layer("RNN")
    bottom = blobs_from(*inputs(7))
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    with pytest.raises(NetError, match="sequence indicators"):
        layer.backward(top, [True, True], bottom)
    assert not layer.allow_force_backward(1)


def test_wrong_bottom_count_is_an_error():
    """RNN takes x, cont, [x_static]; a fourth bottom without expose_hidden is an error."""
    layer = rec_layer("RNN")
    bottom = blobs_from(*inputs(7, static=True), np.zeros((1, N, H), np.float32))
    with pytest.raises(NetError, match="bottoms"):
        setup_layer(layer, bottom)


def lstm_unit_inputs(seed: int):
    r = np.random.default_rng(seed)
    c_prev = r.standard_normal((1, N, H)).astype(np.float32)
    x = r.standard_normal((1, N, 4 * H)).astype(np.float32)
    cont = np.array([[1.0, 0.0]], np.float32)
    return c_prev, x, cont


def test_lstm_unit_forward():
    """LSTMUnit: c = cont·f⊙c_prev + i⊙g, h = o⊙tanh(c), x holding i, f, o, g pre-activations."""
    c_prev, x, cont = lstm_unit_inputs(9)
    layer = make_layer('type: "LSTMUnit"')
    bottom = blobs_from(c_prev, x, cont)
    top = setup_layer(layer, bottom, 2)
    layer.forward(bottom, top)
    assert layer.blobs == []
    for n in range(N):
        for j in range(H):
            i, f = sig(x[0, n, j]), sig(x[0, n, H + j])
            o, g = sig(x[0, n, 2 * H + j]), math.tanh(x[0, n, 3 * H + j])
            c = cont[0, n] * f * c_prev[0, n, j] + i * g
            assert top[0].data[0, n, j] == pytest.approx(c, rel=1e-5, abs=1e-6)
            assert top[1].data[0, n, j] == pytest.approx(o * math.tanh(c), rel=1e-5, abs=1e-6)


def test_lstm_unit_gradient():
    """LSTMUnit's gradients for c_prev and the gate pre-activations match central
    differences, with gradients arriving at both tops."""
    layer = make_layer('type: "LSTMUnit"')
    bottom = blobs_from(*lstm_unit_inputs(10))
    top = setup_layer(layer, bottom, 2)
    check_gradient(layer, bottom, top, check_bottom=[0, 1])


NET = """
name: "seq"
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 3 dim: 2 dim: 3 } } }
layer { name: "cont" type: "Input" top: "cont" input_param { shape { dim: 3 dim: 2 } } }
layer { name: "y" type: "Input" top: "y" input_param { shape { dim: 3 dim: 2 dim: 2 } } }
layer { name: "lstm" type: "LSTM" bottom: "x" bottom: "cont" top: "h"
  recurrent_param { num_output: 4 weight_filler { type: "uniform" min: -0.1 max: 0.1 }
    bias_filler { type: "constant" value: 0 } } }
layer { name: "ip" type: "InnerProduct" bottom: "h" top: "ip"
  inner_product_param { num_output: 2 axis: 2 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "ip" bottom: "y" top: "loss" }
"""


def test_net_lstm_trains():
    """Input x/cont → LSTM → InnerProduct → EuclideanLoss builds and takes SGD steps with a
    finite loss, updating the LSTM's weights."""
    sp = caffe_pb2.SolverParameter()
    text_format.Parse('base_lr: 0.1 lr_policy: "fixed" max_iter: 2 display: 0 '
                      'random_seed: 3', sp)
    text_format.Parse(NET, sp.net_param)
    solver = get_solver(sp)
    net = solver.net
    assert [b.data.shape for b in net.params["lstm"]] == [(16, 3), (16,), (16, 4)]
    r = np.random.default_rng(0)
    net.blobs["x"].data[...] = r.standard_normal((3, 2, 3))
    net.blobs["cont"].data[...] = np.array([[0, 0], [1, 1], [1, 0]], np.float32)
    net.blobs["y"].data[...] = r.standard_normal((3, 2, 2))
    w_before = net.params["lstm"][0].data.copy()
    solver.step(2)
    loss = float(net.blobs["loss"].data)
    assert np.isfinite(loss)
    assert not np.allclose(net.params["lstm"][0].data, w_before)
