"""A convolution's epilogue per output channel: ``y = act(y·a + b)``, ``act`` Caffe's ReLU
``max(v, 0) + slope·min(v, 0)`` (``slope`` 1: none). With fixed statistics a BatchNorm and a
Scale after a convolution are such an affine map, so ``brewnet.net.fusion`` has the
convolution write this in its own pass over the top instead of three more layers' passes.

Shapes: ``y`` ``(N, G, M/G, S)`` (the top as the GEMMs see it), ``a``, ``b`` ``(G, M/G)``.
The compiled kernel (``brewnet.kernels.epilogue``) does it in one pass; the NumPy body is
its reference and serves CuPy.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import cores, kernels
from .neuron import relu


def apply(xp: Any, y: Any, a: Any, b: Any, slope: np.float32) -> None:
    """``y = act(y·a + b)`` in place, ``y`` ``(N, ...)`` split over the cores by sample."""
    if kernels.enabled(xp):
        from ..kernels.epilogue import affine
        cores.split(xp, y.shape[0], lambda p, q: affine(y[p:q], a, b, slope))
        return
    shape = (1, *a.shape, 1)
    y *= a.reshape(shape)
    y += b.reshape(shape)
    if slope != 1:
        relu(xp, y, y, slope)
