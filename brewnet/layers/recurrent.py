"""Caffe's recurrent layers: RNN and LSTM (time-major, with sequence-continuation indicators)
and the single-step LSTMUnit cell.

Caffe builds RNN/LSTM as an unrolled internal net; here the same arithmetic runs directly:
the input transforms are one GEMM over all T·N rows, and only the hidden-to-hidden product
is done per time step. Parameter blobs are in the order Caffe's unrolled net first uses them,
so .caffemodel weights load unchanged:

- RNN:  W_xh (H, I), b_h (H,), [W_xh_static (H, S)], W_hh (H, H), W_ho (H, H), b_o (H,)
- LSTM: W_xc (4H, I), b_c (4H,), [W_xc_static (4H, S)], W_hc (4H, H)

Bottoms: x (T, N, ...), cont (T, N), [x_static (N, ...)], and with ``expose_hidden`` the
initial states (each (1, N, H): h_0 for RNN; h_0, c_0 for LSTM). Tops: the output sequence
(T, N, H) and with ``expose_hidden`` the final states h_T (and c_T). Without
``expose_hidden`` the final state of one forward is the initial state of the next, as in Caffe
(a 0 in cont at t = 0 discards it).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..blob import Blob
from .base import Layer
from .registry import register
from .structure import count


def _sigmoid(x: Any, xp: Any) -> Any:
    """Logistic function, in place on a float32 array."""
    xp.negative(x, out=x)
    xp.exp(x, out=x)
    x += 1
    xp.reciprocal(x, out=x)
    return x


def lstm_cell_forward(gates: Any, c_prev: Any, cont: Any, c: Any, tanh_c: Any, h: Any,
                      xp: Any) -> None:
    """One LSTM step (Caffe's LSTMUnit). ``gates`` (N, 4H) holds the pre-activations in the
    order i, f, o, g and is overwritten by the activations; writes c, tanh(c) and h (N, H).

    c = cont·f⊙c_prev + i⊙g, h = o⊙tanh(c), with i, f, o sigmoid and g tanh.
    """
    hd = c.shape[-1]
    _sigmoid(gates[:, :3 * hd], xp)
    xp.tanh(gates[:, 3 * hd:], out=gates[:, 3 * hd:])
    i, f, o, g = (gates[:, k * hd:(k + 1) * hd] for k in range(4))
    xp.multiply(f, c_prev, out=c)
    c *= cont[:, None]
    c += i * g
    xp.tanh(c, out=tanh_c)
    xp.multiply(o, tanh_c, out=h)


def lstm_cell_backward(gates: Any, c_prev: Any, cont: Any, tanh_c: Any, dc: Any, dh: Any,
                       dgates: Any, dc_prev: Any) -> None:
    """Gradients of one LSTM step: ``dc`` (N, H) is the gradient reaching c from later steps
    (it is updated in place with the path through h), ``dh`` the gradient reaching h; writes
    the pre-activation gradients ``dgates`` (N, 4H) and ``dc_prev`` (N, H)."""
    hd = tanh_c.shape[-1]
    i, f, o, g = (gates[:, k * hd:(k + 1) * hd] for k in range(4))
    di, df, do, dg = (dgates[:, k * hd:(k + 1) * hd] for k in range(4))
    dc += dh * o * (1 - tanh_c * tanh_c)
    cf = cont[:, None]
    # gate gradients, then through each activation's derivative
    di[...] = dc * g * i * (1 - i)
    df[...] = dc * cf * c_prev * f * (1 - f)
    do[...] = dh * tanh_c * o * (1 - o)
    dg[...] = dc * i * (1 - g * g)
    dc_prev[...] = dc * cf * f


class _Recurrent(Layer):
    """Shared bottom/top bookkeeping of RNN and LSTM; subclasses give the state count and
    the per-type parameter specs, forward and backward."""

    min_bottom = 2
    min_top = 1
    num_states = 1  # recurrent states exposed with expose_hidden (h; h and c for LSTM)
    gate_mult = 1  # rows of the input transform per hidden unit

    def setup(self, bottom: list[Blob], top: list[Blob]) -> None:
        rp = self.param.recurrent_param
        if rp.num_output == 0:
            raise self.error("recurrent_param.num_output must be set to a positive number",
                             field="recurrent_param.num_output")
        self.hidden = int(rp.num_output)
        self.expose_hidden = bool(rp.expose_hidden)
        n_extra = len(bottom) - 2 - (self.num_states if self.expose_hidden else 0)
        if n_extra not in (0, 1):
            want = "x, cont, [x_static]" + (", h_0" + (", c_0" if self.num_states == 2 else "")
                                             if self.expose_hidden else "")
            raise self.error(f"takes bottoms {want} but got {len(bottom)} bottoms")
        n_top = 1 + (self.num_states if self.expose_hidden else 0)
        if len(top) != n_top:
            raise self.error(f"needs {n_top} tops (the output sequence"
                             f"{' and the final states' if self.expose_hidden else ''}) but "
                             f"got {len(top)}")
        self.static = n_extra == 1
        xs = tuple(bottom[0].data.shape)
        if len(xs) < 2:
            raise self.shape_error(f"bottom x has shape {xs}; it needs axes (T, N, ...)")
        self.input_dim = count(xs, 2)
        self.static_dim = count(tuple(bottom[2].data.shape), 1) if self.static else 0
        self.init_params(self.input_specs(rp) + self.param_specs(rp), bottom[0].xp)
        self._carry: list[Any] = []

    def input_specs(self, rp: Any) -> list:
        """The input transform's parameters, first in Caffe's blob order: W (gate_mult·H, x's
        size), b (gate_mult·H,) and, with a static input, W_static (gate_mult·H, its size)."""
        g = self.gate_mult * self.hidden
        specs = [((g, self.input_dim), rp.weight_filler, "weight_filler"),
                 ((g,), rp.bias_filler, "bias_filler")]
        if self.static:
            specs.append(((g, self.static_dim), rp.weight_filler, "weight_filler"))
        return specs

    def param_specs(self, rp: Any) -> list:
        """The parameters after the input transform's, in Caffe's blob order."""
        raise NotImplementedError

    def reshape(self, bottom: list[Blob], top: list[Blob]) -> None:
        xp = bottom[0].xp
        xs = tuple(bottom[0].data.shape)
        if len(xs) < 2 or count(xs, 2) != self.input_dim:
            raise self.shape_error(f"bottom x has shape {xs} but the weights expect (T, N) + "
                                   f"{self.input_dim} input features")
        t, n = xs[0], xs[1]
        if tuple(bottom[1].data.shape) != (t, n):
            raise self.shape_error(f"bottom cont has shape {tuple(bottom[1].data.shape)} but "
                                   f"must be (T, N) = {(t, n)}")
        if self.static:
            ss = tuple(bottom[2].data.shape)
            if len(ss) < 1 or ss[0] != n or count(ss, 1) != self.static_dim:
                raise self.shape_error(f"bottom x_static has shape {ss} but must be (N={n}, "
                                       f"...) with {self.static_dim} features")
        first_state = 2 + int(self.static)
        state_shape = (1, n, self.hidden)
        if self.expose_hidden:
            for k in range(self.num_states):
                s = tuple(bottom[first_state + k].data.shape)
                if s != state_shape:
                    raise self.shape_error(f"initial state bottom {first_state + k} has shape "
                                           f"{s} but must be {state_shape}")
            for k in range(self.num_states):
                top[1 + k].reshape(state_shape)
        top[0].reshape((t, n, self.hidden))
        self.t, self.n = t, n
        if not self._carry or self._carry[0].shape != (n, self.hidden):
            self._carry = [xp.zeros((n, self.hidden), np.float32)
                           for _ in range(self.num_states)]
            self._init = [xp.zeros((n, self.hidden), np.float32)
                          for _ in range(self.num_states)]
        g = self.gate_mult * self.hidden
        self._gates = xp.empty((t, n, g), np.float32)  # activations (LSTM) / h (RNN)
        self._hm = xp.empty((t, n, self.hidden), np.float32)  # cont_t·h_{t-1}

    def _initial_states(self, bottom: list[Blob]) -> list[Any]:
        """The states at t = 0: the exposed bottoms, or the last forward's final states."""
        first = 2 + int(self.static)
        for k in range(self.num_states):
            if self.expose_hidden:
                self._init[k][...] = bottom[first + k].data.reshape(self.n, self.hidden)
            else:
                self._init[k][...] = self._carry[k]
        return self._init

    def _input_transform(self, bottom: list[Blob], w: Any, b: Any, w_static: Any,
                         out: Any) -> None:
        """out (T, N, rows) = W·x_t + b (+ W_static·x_static) for all steps in one GEMM."""
        xp = bottom[0].xp
        x = bottom[0].data.reshape(self.t * self.n, self.input_dim)
        xp.matmul(x, w.T, out=out.reshape(self.t * self.n, -1))
        out += b
        if self.static:
            out += xp.matmul(bottom[2].data.reshape(self.n, self.static_dim), w_static.T)

    def _input_backward(self, bottom: list[Blob], propagate_down: list[bool], dpre: Any,
                        w_idx: int, b_idx: int, ws_idx: int | None) -> None:
        """Gradients of the input transform from its output gradient ``dpre`` (T, N, rows)."""
        xp = bottom[0].xp
        want = self.param_propagate_down
        rows = dpre.shape[-1]
        d2 = dpre.reshape(self.t * self.n, rows)
        if want[w_idx]:
            x = bottom[0].data.reshape(self.t * self.n, self.input_dim)
            self.blobs[w_idx].diff += xp.matmul(d2.T, x)
        if want[b_idx]:
            self.blobs[b_idx].diff += d2.sum(axis=0)
        if propagate_down[0]:
            xp.matmul(d2, self.blobs[w_idx].data,
                      out=bottom[0].diff.reshape(self.t * self.n, self.input_dim))
        if self.static:
            dsum = dpre.sum(axis=0)  # x_static feeds every step
            if ws_idx is not None and want[ws_idx]:
                xs = bottom[2].data.reshape(self.n, self.static_dim)
                self.blobs[ws_idx].diff += xp.matmul(dsum.T, xs)
            if propagate_down[2]:
                xp.matmul(dsum, self.blobs[ws_idx].data,
                          out=bottom[2].diff.reshape(self.n, self.static_dim))
        if propagate_down[1]:
            cont = self.param.bottom[1] if len(self.param.bottom) > 1 else None
            raise self.error("cannot backpropagate to the sequence indicators (bottom cont); "
                             "set propagate_down: false for it", blob=cont,
                             field="propagate_down")

    def allow_force_backward(self, bottom_index: int) -> bool:
        return bottom_index != 1


@register
class RNN(_Recurrent):
    """Elman RNN: h_t = tanh(W_hh·(cont_t·h_{t-1}) + W_xh·x_t + b_h [+ W_xh_static·x_static]),
    o_t = tanh(W_ho·h_t + b_o); the top is o."""

    type = "RNN"
    max_bottom = 4
    max_top = 2
    param_fields = ("recurrent_param",)
    num_states = 1
    gate_mult = 1

    def param_specs(self, rp: Any) -> list:
        h = self.hidden
        return [((h, h), rp.weight_filler, "weight_filler"),
                ((h, h), rp.weight_filler, "weight_filler"),
                ((h,), rp.bias_filler, "bias_filler")]

    def _idx(self) -> tuple[int, int, int | None, int, int, int]:
        s = int(self.static)
        return 0, 1, (2 if self.static else None), 2 + s, 3 + s, 4 + s

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        xp = bottom[0].xp
        iw, ib, iws, ihh, iho, ibo = self._idx()
        b = self.blobs
        hs = self._gates  # (T, N, H): the hidden states
        self._input_transform(bottom, b[iw].data, b[ib].data,
                              b[iws].data if iws is not None else None, hs)
        cont = bottom[1].data
        w_hh_t = b[ihh].data.T
        h_prev = self._initial_states(bottom)[0]
        for t in range(self.t):
            hm = self._hm[t]
            xp.multiply(h_prev, cont[t][:, None], out=hm)
            hs[t] += xp.matmul(hm, w_hh_t)
            xp.tanh(hs[t], out=hs[t])
            h_prev = hs[t]
        o = top[0].data.reshape(self.t * self.n, self.hidden)
        xp.matmul(hs.reshape(self.t * self.n, self.hidden), b[iho].data.T, out=o)
        o += b[ibo].data
        xp.tanh(o, out=o)
        self._carry[0][...] = hs[-1]
        if self.expose_hidden:
            top[1].data[0] = hs[-1]

    def backward(self, top: list[Blob], propagate_down: list[bool],
                 bottom: list[Blob]) -> None:
        xp = bottom[0].xp
        iw, ib, iws, ihh, iho, ibo = self._idx()
        b, want = self.blobs, self.param_propagate_down
        hs = self._gates
        th = self.t * self.n
        o = top[0].data.reshape(th, self.hidden)
        do = top[0].diff.reshape(th, self.hidden) * (1 - o * o)
        if want[iho]:
            b[iho].diff += xp.matmul(do.T, hs.reshape(th, self.hidden))
        if want[ibo]:
            b[ibo].diff += do.sum(axis=0)
        dh_all = xp.matmul(do, b[iho].data).reshape(self.t, self.n, self.hidden)
        if self.expose_hidden:
            dh_all[-1] += top[1].diff[0]
        cont = bottom[1].data
        w_hh = b[ihh].data
        dnext = xp.zeros((self.n, self.hidden), np.float32)
        for t in range(self.t - 1, -1, -1):
            d = dh_all[t]  # becomes the pre-activation gradient of step t
            d += dnext
            d *= 1 - hs[t] * hs[t]
            xp.matmul(d, w_hh, out=dnext)
            dnext *= cont[t][:, None]
        if want[ihh]:
            b[ihh].diff += xp.matmul(dh_all.reshape(th, self.hidden).T,
                                     self._hm.reshape(th, self.hidden))
        if self.expose_hidden:
            k = 2 + int(self.static)
            if propagate_down[k]:
                bottom[k].diff[0] = dnext
        self._input_backward(bottom, propagate_down, dh_all, iw, ib, iws)


@register
class LSTM(_Recurrent):
    """LSTM: gates = W_xc·x_t + b_c [+ W_xc_static·x_static] + W_hc·(cont_t·h_{t-1}) in the
    order i, f, o, g, then one LSTMUnit step per t; the top is h."""

    type = "LSTM"
    max_bottom = 5
    max_top = 3
    param_fields = ("recurrent_param",)
    num_states = 2
    gate_mult = 4

    def param_specs(self, rp: Any) -> list:
        return [((4 * self.hidden, self.hidden), rp.weight_filler, "weight_filler")]

    def reshape(self, bottom: list[Blob], top: list[Blob]) -> None:
        super().reshape(bottom, top)
        xp = bottom[0].xp
        self._c = xp.empty((self.t, self.n, self.hidden), np.float32)
        self._tanh_c = xp.empty_like(self._c)

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        xp = bottom[0].xp
        b = self.blobs
        iws = 2 if self.static else None
        ihc = 3 if self.static else 2
        gates = self._gates
        self._input_transform(bottom, b[0].data, b[1].data,
                              b[iws].data if iws is not None else None, gates)
        cont = bottom[1].data
        w_hc_t = b[ihc].data.T
        h0, c0 = self._initial_states(bottom)
        h_prev, c_prev = h0, c0
        hs = top[0].data
        for t in range(self.t):
            hm = self._hm[t]
            xp.multiply(h_prev, cont[t][:, None], out=hm)
            gates[t] += xp.matmul(hm, w_hc_t)
            lstm_cell_forward(gates[t], c_prev, cont[t], self._c[t], self._tanh_c[t], hs[t], xp)
            h_prev, c_prev = hs[t], self._c[t]
        self._carry[0][...] = hs[-1]
        self._carry[1][...] = self._c[-1]
        if self.expose_hidden:
            top[1].data[0] = hs[-1]
            top[2].data[0] = self._c[-1]

    def backward(self, top: list[Blob], propagate_down: list[bool],
                 bottom: list[Blob]) -> None:
        xp = bottom[0].xp
        b, want = self.blobs, self.param_propagate_down
        iws = 2 if self.static else None
        ihc = 3 if self.static else 2
        n, hd = self.n, self.hidden
        cont = bottom[1].data
        dgates = xp.empty_like(self._gates)
        dh = xp.zeros((n, hd), np.float32)
        dc = xp.zeros((n, hd), np.float32)
        if self.expose_hidden:
            dh += top[1].diff[0]
            dc += top[2].diff[0]
        dh_step = xp.empty((n, hd), np.float32)
        dc_prev = xp.empty((n, hd), np.float32)
        w_hc = b[ihc].data
        c0 = self._init[1]
        for t in range(self.t - 1, -1, -1):
            xp.add(top[0].diff[t], dh, out=dh_step)
            c_prev = self._c[t - 1] if t > 0 else c0
            lstm_cell_backward(self._gates[t], c_prev, cont[t], self._tanh_c[t], dc, dh_step,
                               dgates[t], dc_prev)
            dc, dc_prev = dc_prev, dc
            xp.matmul(dgates[t], w_hc, out=dh)
            dh *= cont[t][:, None]
        if want[ihc]:
            th = self.t * n
            b[ihc].diff += xp.matmul(dgates.reshape(th, 4 * hd).T, self._hm.reshape(th, hd))
        if self.expose_hidden:
            k = 2 + int(self.static)
            if propagate_down[k]:
                bottom[k].diff[0] = dh
            if propagate_down[k + 1]:
                bottom[k + 1].diff[0] = dc
        self._input_backward(bottom, propagate_down, dgates, 0, 1, iws)


@register
class LSTMUnit(Layer):
    """One LSTM step: bottoms c_prev (1, N, D), gate pre-activations x (1, N, 4D) in the order
    i, f, o, g, cont (1, N); tops c and h (1, N, D). No parameters."""

    type = "LSTMUnit"
    exact_num_bottom = 3
    exact_num_top = 2

    def reshape(self, bottom: list[Blob], top: list[Blob]) -> None:
        cs = tuple(bottom[0].data.shape)
        if len(cs) != 3 or cs[0] != 1:
            raise self.shape_error(f"bottom c_prev has shape {cs} but must be (1, N, D)")
        n, d = cs[1], cs[2]
        if tuple(bottom[1].data.shape) != (1, n, 4 * d):
            raise self.shape_error(f"bottom x has shape {tuple(bottom[1].data.shape)} but must "
                                   f"be (1, N, 4D) = {(1, n, 4 * d)}")
        if tuple(bottom[2].data.shape) != (1, n):
            raise self.shape_error(f"bottom cont has shape {tuple(bottom[2].data.shape)} but "
                                   f"must be (1, N) = {(1, n)}")
        top[0].reshape(cs)
        top[1].reshape(cs)
        xp = bottom[0].xp
        self._gates = xp.empty((n, 4 * d), np.float32)
        self._tanh_c = xp.empty((n, d), np.float32)

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        xp = bottom[0].xp
        self._gates[...] = bottom[1].data[0]
        lstm_cell_forward(self._gates, bottom[0].data[0], bottom[2].data[0], top[0].data[0],
                          self._tanh_c, top[1].data[0], xp)

    def backward(self, top: list[Blob], propagate_down: list[bool],
                 bottom: list[Blob]) -> None:
        if propagate_down[2]:
            raise self.error("cannot backpropagate to the sequence indicators (bottom cont); "
                             "set propagate_down: false for it", field="propagate_down")
        if not (propagate_down[0] or propagate_down[1]):
            return
        xp = bottom[0].xp
        dc = top[0].diff[0].copy()
        dgates = xp.empty_like(self._gates)
        dc_prev = xp.empty_like(dc)
        lstm_cell_backward(self._gates, bottom[0].data[0], bottom[2].data[0], self._tanh_c, dc,
                           top[1].diff[0], dgates, dc_prev)
        if propagate_down[0]:
            bottom[0].diff[0] = dc_prev
        if propagate_down[1]:
            bottom[1].diff[0] = dgates

    def allow_force_backward(self, bottom_index: int) -> bool:
        return bottom_index != 2
