"""Weight fillers (Caffe's ``filler.hpp``): initial values for learnable blobs.

``fill(param, shape)`` returns a float32 array drawn from the global generator
(:mod:`brewnet.rng`), so ``set_random_seed`` fixes every initialisation of a run. The default
``FillerParameter`` is ``constant`` with value 0: a layer without ``weight_filler`` starts at zero,
exactly as in Caffe.

Fan sizes follow Caffe's legacy blob accessors: ``fan_in = count / shape[0]`` and
``fan_out = count / shape[1]`` (a missing axis counts as 1).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import rng
from ..errors import NetError
from ..proto import caffe_pb2

_VarianceNorm = caffe_pb2.FillerParameter


def fill(param: caffe_pb2.FillerParameter, shape: tuple[int, ...], xp: Any = np) -> Any:
    """A float32 array of ``shape`` filled as ``param`` says, allocated with ``xp``.

    Raises NetError for an unknown type or settings Caffe refuses (e.g. ``sparse`` on a filler
    other than gaussian); callers add the layer name.
    """
    shape = tuple(int(d) for d in shape)
    check_filler(param)
    maker = _FILLERS[param.type]
    count = math.prod(shape)
    if count == 0:
        raise NetError(f"cannot fill an empty blob of shape {shape}")
    values = maker(param, shape, count)
    return xp.asarray(values.astype(np.float32, copy=False).reshape(shape))


def check_filler(param: caffe_pb2.FillerParameter) -> None:
    """Raise NetError for an unknown type or ``sparse`` on a non-gaussian filler: what Caffe's
    GetFiller refuses at setup, before any shape is known."""
    if param.type not in _FILLERS:
        raise NetError(f"unknown filler type '{param.type}'; known types: "
                       + ", ".join(sorted(_FILLERS)))
    if param.type != "gaussian" and param.sparse != -1:
        raise NetError(f"the '{param.type}' filler does not support sparse; only gaussian does")


def _legacy_dim(shape: tuple[int, ...], axis: int) -> int:
    # Caffe's num()/channels(): an axis the blob lacks counts as 1.
    return shape[axis] if axis < len(shape) else 1


def _fan(param: caffe_pb2.FillerParameter, shape: tuple[int, ...], count: int) -> float:
    """The n of xavier/msra: fan_in, fan_out or their mean, per ``variance_norm``."""
    fan_in = count // _legacy_dim(shape, 0)
    fan_out = count // _legacy_dim(shape, 1)
    if param.variance_norm == _VarianceNorm.AVERAGE:
        return (fan_in + fan_out) / 2.0
    if param.variance_norm == _VarianceNorm.FAN_OUT:
        return float(fan_out)
    return float(fan_in)


def _uniform(low: float, high: float, count: int) -> np.ndarray:
    if low > high:
        raise NetError(f"uniform filler needs min <= max, got min {low} > max {high}")
    draw = rng.generator().random(count, dtype=np.float32)
    return np.float32(low) + np.float32(high - low) * draw


def _gaussian(mean: float, std: float, count: int) -> np.ndarray:
    if not std > 0:
        raise NetError(f"gaussian filler needs std > 0, got {std}")
    return np.float32(mean) + np.float32(std) * rng.generator().standard_normal(
        count, dtype=np.float32)


def _constant(param, shape, count):
    return np.full(count, param.value, dtype=np.float32)


def _uniform_filler(param, shape, count):
    return _uniform(param.min, param.max, count)


def _gaussian_filler(param, shape, count):
    values = _gaussian(param.mean, param.std, count)
    if param.sparse < -1:
        raise NetError(f"gaussian filler sparse must be >= -1, got {param.sparse}")
    if param.sparse >= 0:
        # Caffe divides by shape(0) (the number of outputs of an InnerProduct weight), although
        # its comment speaks of inputs; we keep the arithmetic, not the comment.
        p = param.sparse / shape[0] if shape else float(param.sparse)
        if p > 1:
            raise NetError(f"gaussian filler sparse {param.sparse} exceeds shape[0] = "
                           f"{shape[0] if shape else 1}; the keep probability would exceed 1")
        values *= rng.generator().random(count) < p
    return values


def _positive_unitball(param, shape, count):
    values = _uniform(0.0, 1.0, count).reshape(_legacy_dim(shape, 0), -1)
    values /= values.sum(axis=1, keepdims=True)
    return values


def _xavier(param, shape, count):
    scale = math.sqrt(3.0 / _fan(param, shape, count))
    return _uniform(-scale, scale, count)


def _msra(param, shape, count):
    return _gaussian(0.0, math.sqrt(2.0 / _fan(param, shape, count)), count)


def _bilinear(param, shape, count):
    """The (K, K) kernel of bilinear upsampling, the same for every (out, in) pair."""
    if len(shape) != 4:
        raise NetError(f"bilinear filler needs a 4-d blob, got shape {shape}")
    if shape[2] != shape[3]:
        raise NetError(f"bilinear filler needs a square kernel, got {shape[2]}x{shape[3]}")
    size = shape[3]
    f = math.ceil(size / 2.0)
    # Caffe's centre since BVLC PR #5713: symmetric for every K (the older
    # (2f - 1 - f % 2) / 2f was off-centre for K = 3, 6, 7, ...).
    c = (size - 1) / (2.0 * f)
    ramp = 1.0 - np.abs(np.arange(size, dtype=np.float64) / f - c)
    kernel = np.outer(ramp, ramp).astype(np.float32)
    return np.broadcast_to(kernel, shape).copy()


_FILLERS: dict[str, Callable[[caffe_pb2.FillerParameter, tuple[int, ...], int], np.ndarray]] = {
    "constant": _constant,
    "uniform": _uniform_filler,
    "gaussian": _gaussian_filler,
    "positive_unitball": _positive_unitball,
    "xavier": _xavier,
    "msra": _msra,
    "bilinear": _bilinear,
}
