"""Elementwise activation layers (Caffe's neuron layers): each top has its bottom's shape and
may be the bottom itself (in place)."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from .. import cores, kernels
from ..blob import Blob
from .base import Layer
from .registry import register
from .scratch import scratch


def relu(xp: Any, x: Any, y: Any, slope: np.float32) -> None:
    """``y = max(x, 0) + slope·min(x, 0)`` (``y`` may be ``x``): the ReLU layer's forward, which
    a layer running an in-place ReLU after itself in one pass (Eltwise) falls back to."""
    if slope == 0:
        if kernels.enabled(xp):
            from ..kernels.elementwise import relu_forward

            xf, yf = x.reshape(-1), y.reshape(-1)
            cores.flat(xp, xf.size, lambda a, b: relu_forward(xf[a:b], yf[a:b]))
            return
        xf, yf = x.reshape(-1), y.reshape(-1)
        cores.flat(xp, xf.size, lambda a, b: xp.maximum(xf[a:b], 0, out=yf[a:b]))
        return
    # Buffers shared by every layer of the thread: kept per layer, the masks alone cost a
    # byte per value of every ReLU's bottom (69 MiB over ResNet-50 at batch 8).
    neg = scratch(xp, "relu.values", x.shape)
    xp.minimum(x, 0, out=neg)
    neg *= slope
    xp.maximum(x, 0, out=y)  # x is read before y overwrites it, elementwise
    y += neg


@register
class ReLU(Layer):
    """y = max(x, 0) + negative_slope·min(x, 0), any shape.

    Backward tests ``bottom.data > 0``; in place that is the output, which keeps the input's
    sign (for negative_slope >= 0), so in-place ReLU is safe as in Caffe.
    """

    type = "ReLU"
    reshape_reads_blobs_only = True
    exact_num_bottom = 1
    exact_num_top = 1
    can_run_in_place = True
    keeps_coordinates = True

    def setup(self, bottom: list[Blob], top: list[Blob]) -> None:
        self.slope = np.float32(self.param.relu_param.negative_slope)

    def reshape(self, bottom: list[Blob], top: list[Blob]) -> None:
        if top[0] is not bottom[0]:
            top[0].reshape_like(bottom[0])

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        relu(bottom[0].xp, bottom[0].data, top[0].data, self.slope)

    def activation_slope(self) -> np.float32:
        """The negative slope, for a convolution that applies this ReLU in its own pass over
        its top (``brewnet.net.fusion``)."""
        return self.slope

    def backward(self, top: list[Blob], propagate_down: list[bool],
                 bottom: list[Blob]) -> None:
        if not propagate_down[0]:
            return
        xp, x = bottom[0].xp, bottom[0].data
        if self.slope == 0 and kernels.enabled(xp):  # one pass, no mask
            from ..kernels.elementwise import relu_backward

            dy, xf, dx = top[0].diff.reshape(-1), x.reshape(-1), bottom[0].diff.reshape(-1)
            cores.flat(xp, xf.size, lambda a, b: relu_backward(dy[a:b], xf[a:b], dx[a:b]))
            return
        positive = xp.greater(x, 0, out=scratch(xp, "relu.mask", x.shape, dtype=bool))
        if self.slope == 0:
            xp.multiply(top[0].diff, positive, out=bottom[0].diff)
            return
        # factor = 1 where x > 0, negative_slope elsewhere
        factor = scratch(xp, "relu.values", x.shape)
        xp.multiply(positive, np.float32(1 - self.slope), out=factor)
        factor += self.slope
        xp.multiply(top[0].diff, factor, out=bottom[0].diff)


def _scratch_like(buffer: Any, like: Any, xp: Any) -> Any:
    """``buffer`` if it still fits ``like`` (shape and array module), else a new float32 one."""
    if buffer is None or buffer.shape != like.shape or not isinstance(buffer, type(like)):
        return xp.empty(like.shape, dtype=np.float32)
    return buffer


def sigmoid_into(x: Any, out: Any, xp: Any) -> Any:
    """out = 1/(1+exp(-x)), written as 0.5·tanh(x/2) + 0.5 (as Caffe's CPU sigmoid): no
    overflow for any float32 x, and exactly 0 or 1 only where float32 rounds there.
    ``out`` may be ``x``."""
    xp.multiply(x, np.float32(0.5), out=out)
    xp.tanh(out, out=out)
    out *= np.float32(0.5)
    out += np.float32(0.5)
    return out


class _Elementwise(Layer):
    """Shared plumbing for the one-bottom, one-top element-wise neurons.

    ``keeps_input``: the backward reads the bottom's values, which an in-place forward has
    overwritten, so forward keeps a copy of the input when top is bottom (as Caffe's PReLU
    does; Caffe's other neurons silently read the output there, brewnet keeps them right).
    """

    reshape_reads_blobs_only = True
    exact_num_bottom = 1
    exact_num_top = 1
    can_run_in_place = True
    keeps_coordinates = True
    keeps_input: ClassVar[bool] = False

    def setup(self, bottom: list[Blob], top: list[Blob]) -> None:
        self._scratch = None  # float32 buffer the size of the bottom, sized in reshape
        self._input = None  # copy of the input for in-place backward
        self.read_params()

    def read_params(self) -> None:
        """Read this type's parameter message (subclasses)."""

    def reshape(self, bottom: list[Blob], top: list[Blob]) -> None:
        if top[0] is not bottom[0]:
            top[0].reshape_like(bottom[0])
        xp = bottom[0].xp
        self._scratch = _scratch_like(self._scratch, bottom[0].data, xp)
        if self.keeps_input and top[0] is bottom[0]:
            self._input = _scratch_like(self._input, bottom[0].data, xp)

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        x = bottom[0].data
        if self.keeps_input and top[0] is bottom[0]:
            self._input[...] = x
            x = self._input
        self.compute(x, top[0].data, bottom[0].xp)

    def input_of(self, top: list[Blob], bottom: list[Blob]) -> Any:
        """The forward's input values, also after an in-place forward."""
        return self._input if top[0] is bottom[0] and self.keeps_input else bottom[0].data

    def compute(self, x: Any, y: Any, xp: Any) -> None:
        raise NotImplementedError

    def backward(self, top: list[Blob], propagate_down: list[bool],
                 bottom: list[Blob]) -> None:
        if not propagate_down[0]:
            return
        slope = self._scratch
        self.slope(self.input_of(top, bottom), top[0].data, slope, bottom[0].xp)
        bottom[0].xp.multiply(top[0].diff, slope, out=bottom[0].diff)

    def slope(self, x: Any, y: Any, out: Any, xp: Any) -> None:
        """out = dy/dx elementwise, from the input ``x`` and the output ``y``."""
        raise NotImplementedError


@register
class Sigmoid(_Elementwise):
    """y = 1/(1+exp(-x)), any shape; backward dx = dy·y·(1-y).

    Backward reads only the output, so in-place Sigmoid is safe as in Caffe.
    """

    type = "Sigmoid"

    def compute(self, x: Any, y: Any, xp: Any) -> None:
        sigmoid_into(x, y, xp)

    def slope(self, x: Any, y: Any, out: Any, xp: Any) -> None:
        xp.subtract(np.float32(1), y, out=out)
        out *= y


@register
class TanH(_Elementwise):
    """y = tanh(x), any shape; backward dx = dy·(1-y²).

    Backward reads only the output, so in-place TanH is safe as in Caffe.
    """

    type = "TanH"

    def compute(self, x: Any, y: Any, xp: Any) -> None:
        xp.tanh(x, out=y)

    def slope(self, x: Any, y: Any, out: Any, xp: Any) -> None:
        xp.multiply(y, y, out=out)
        xp.subtract(np.float32(1), out, out=out)


@register
class AbsVal(_Elementwise):
    """y = |x|; backward dy·sign(x) (0 at x = 0). Caffe refuses in-place AbsVal: the output's
    sign no longer tells the input's."""

    type = "AbsVal"
    can_run_in_place = False

    def compute(self, x: Any, y: Any, xp: Any) -> None:
        xp.abs(x, out=y)

    def slope(self, x: Any, y: Any, out: Any, xp: Any) -> None:
        xp.sign(x, out=out)


@register
class BNLL(_Elementwise):
    """Binomial normal log likelihood, softplus: y = log(1 + e^x), computed as
    x + log(1 + e^-x) for x > 0 so it never overflows; backward dy·σ(x)."""

    type = "BNLL"
    keeps_input = True

    def compute(self, x: Any, y: Any, xp: Any) -> None:
        t = self._scratch
        xp.abs(x, out=t)
        xp.negative(t, out=t)
        xp.exp(t, out=t)  # e^-|x| in (0, 1]
        xp.log1p(t, out=t)
        xp.maximum(x, 0, out=y)
        y += t

    def slope(self, x: Any, y: Any, out: Any, xp: Any) -> None:
        sigmoid_into(x, out, xp)


@register
class ELU(_Elementwise):
    """y = x for x > 0, α(e^x − 1) otherwise; backward dy for x > 0, dy·(y + α) otherwise."""

    type = "ELU"
    keeps_input = True

    def read_params(self) -> None:
        self.alpha = np.float32(self.param.elu_param.alpha)

    def compute(self, x: Any, y: Any, xp: Any) -> None:
        t = self._scratch
        xp.minimum(x, 0, out=t)
        xp.expm1(t, out=t)
        t *= self.alpha
        xp.maximum(x, 0, out=y)
        y += t

    def slope(self, x: Any, y: Any, out: Any, xp: Any) -> None:
        xp.add(y, self.alpha, out=out)
        xp.copyto(out, np.float32(1), where=x > 0)


def _log_base(layer: Layer, base: float) -> float:
    """ln(base) for the Exp/Log ``base`` field: -1 means e; anything else must be positive."""
    if base == -1:
        return 1.0
    if base <= 0:
        raise layer.error(f"base {base:g} must be positive, or -1 for base e")
    return math.log(base)


@register
class Exp(_Elementwise):
    """y = base^(shift + scale·x) = outer·e^(inner·x) with inner = ln(base)·scale and
    outer = base^shift (base -1 means e); backward dy·y·inner, from the output only."""

    type = "Exp"

    def read_params(self) -> None:
        p = self.param.exp_param
        log_base = _log_base(self, p.base)
        self.inner = np.float32(log_base * p.scale)
        self.outer = np.float32(1.0 if p.shift == 0 else math.exp(log_base * p.shift))

    def compute(self, x: Any, y: Any, xp: Any) -> None:
        xp.multiply(x, self.inner, out=y)
        xp.exp(y, out=y)
        if self.outer != 1:
            y *= self.outer

    def slope(self, x: Any, y: Any, out: Any, xp: Any) -> None:
        xp.multiply(y, self.inner, out=out)


class _OfShiftScale(_Elementwise):
    """Log and Power apply their function to shift + scale·x (``read_params`` sets both)."""

    keeps_input = True

    def _inner(self, x: Any, out: Any, xp: Any) -> Any:
        xp.multiply(x, self.scale, out=out)
        if self.shift != 0:
            out += self.shift
        return out


@register
class Log(_OfShiftScale):
    """y = log_base(shift + scale·x) (base -1 means e); backward
    dy·scale / ((shift + scale·x)·ln(base))."""

    type = "Log"

    def read_params(self) -> None:
        p = self.param.log_param
        self.base_scale = np.float32(1.0 / _log_base(self, p.base))
        self.scale = np.float32(p.scale)
        self.shift = np.float32(p.shift)

    def compute(self, x: Any, y: Any, xp: Any) -> None:
        xp.log(self._inner(x, y, xp), out=y)
        if self.base_scale != 1:
            y *= self.base_scale

    def slope(self, x: Any, y: Any, out: Any, xp: Any) -> None:
        xp.divide(self.scale * self.base_scale, self._inner(x, out, xp), out=out)


@register
class Power(_OfShiftScale):
    """y = (shift + scale·x)^power. When power·scale == 0 the output is the constant
    1 (power 0) or shift^power and the gradient is 0; power 1 has the constant slope scale;
    otherwise dy·power·scale·(shift + scale·x)^(power−1)."""

    type = "Power"

    def read_params(self) -> None:
        p = self.param.power_param
        self.power = np.float32(p.power)
        self.scale = np.float32(p.scale)
        self.shift = np.float32(p.shift)
        self.diff_scale = np.float32(p.power * p.scale)

    def compute(self, x: Any, y: Any, xp: Any) -> None:
        if self.diff_scale == 0:
            y[...] = np.float32(1) if self.power == 0 else self.shift ** self.power
            return
        self._inner(x, y, xp)
        if self.power != 1:
            xp.power(y, self.power, out=y)

    def slope(self, x: Any, y: Any, out: Any, xp: Any) -> None:
        if self.diff_scale == 0 or self.power == 1:
            out[...] = self.diff_scale
            return
        self._inner(x, out, xp)
        if self.power != 2:
            xp.power(out, self.power - 1, out=out)
        out *= self.diff_scale


@register
class Threshold(_Elementwise):
    """y = 1 if x > threshold else 0. No backward (Caffe's is NOT_IMPLEMENTED)."""

    type = "Threshold"

    def read_params(self) -> None:
        self.threshold = np.float32(self.param.threshold_param.threshold)

    def compute(self, x: Any, y: Any, xp: Any) -> None:
        y[...] = x > self.threshold

    def backward(self, top: list[Blob], propagate_down: list[bool],
                 bottom: list[Blob]) -> None:
        Layer.backward(self, top, propagate_down, bottom)


@register
class Clip(_Elementwise):
    """y = min(max(x, min), max); backward passes dy where min <= x <= max (both inclusive,
    as Caffe's clip_layer) and 0 elsewhere."""

    type = "Clip"
    keeps_input = True

    def read_params(self) -> None:
        p = self.param.clip_param
        if not (p.HasField("min") and p.HasField("max")):
            raise self.error("clip_param needs both min and max", field="clip_param")
        if p.min > p.max:
            raise self.error(f"clip_param min {p.min:g} is above max {p.max:g}; swap them",
                             field="clip_param")
        self.low, self.high = np.float32(p.min), np.float32(p.max)

    def compute(self, x: Any, y: Any, xp: Any) -> None:
        xp.clip(x, self.low, self.high, out=y)

    def slope(self, x: Any, y: Any, out: Any, xp: Any) -> None:
        inside = (x >= self.low) & (x <= self.high)
        out[...] = inside


@register
class Swish(_Elementwise):
    """y = x·σ(βx); backward dy·(βy + σ(βx)·(1 − βy)), from the output and the kept σ(βx)."""

    type = "Swish"

    def read_params(self) -> None:
        self.beta = np.float32(self.param.swish_param.beta)
        self._sig = None

    def reshape(self, bottom: list[Blob], top: list[Blob]) -> None:
        super().reshape(bottom, top)
        self._sig = _scratch_like(self._sig, bottom[0].data, bottom[0].xp)

    def compute(self, x: Any, y: Any, xp: Any) -> None:
        xp.multiply(x, self.beta, out=self._sig)
        sigmoid_into(self._sig, self._sig, xp)
        xp.multiply(x, self._sig, out=y)

    def slope(self, x: Any, y: Any, out: Any, xp: Any) -> None:
        # βy + σ(1 − βy) = βy·(1 − σ) + σ
        xp.subtract(np.float32(1), self._sig, out=out)
        out *= y
        out *= self.beta
        out += self._sig
