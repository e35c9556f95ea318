"""What every update rule does to the raw gradients first (Caffe's ``SGDSolver::ClipGradients``,
``Normalize`` and ``Regularize``): the steps shared by SGD, Nesterov, AdaGrad, RMSProp, AdaDelta
and Adam, applied in place to each learnable blob's ``diff``.

Scalars are float32 (Caffe's Dtype) so the arithmetic rounds as Caffe's does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..blob import Blob
from ..errors import SolverError
from ..log import log
from .report import num

REGULARIZATION_TYPES = ("L2", "L1")


def clip_gradients(params: Sequence[Blob], clip: float) -> None:
    """Scale all diffs by ``clip/‖g‖`` when the global L2 norm ‖g‖ over every learnable blob
    exceeds ``clip``; a negative ``clip`` (the default -1) turns clipping off."""
    c = np.float32(clip)
    if c < 0:
        return
    sumsq = np.float32(0)
    for p in params:
        d = p.diff.ravel()
        sumsq += np.float32(float(d.dot(d)))  # float(): also fetches a CuPy scalar
    norm = np.float32(np.sqrt(sumsq))
    if norm > c:
        scale = c / norm
        log.info(f"Gradient clipping: scaling down gradients (L2 norm {num(norm)} > {num(c)}) "
                 f"by scale factor {num(scale)}")
        for p in params:
            p.diff[...] *= scale


def normalize(blob: Blob, iter_size: int) -> None:
    """Average the gradient accumulated over ``iter_size`` forward/backward passes
    (Caffe multiplies by the float 1/iter_size)."""
    if iter_size != 1:
        blob.diff[...] *= np.float32(1) / np.float32(iter_size)


def unknown_regularization(kind: str) -> str:
    """The message for a regularization_type Caffe does not know, which the solver's checks
    report at the field and ``regularize`` raises if the setting changed after them."""
    return f"unknown regularization_type '{kind}'; use one of: " + ", ".join(REGULARIZATION_TYPES)


def regularize(blob: Blob, local_decay: Any, kind: str, scratch: Any) -> None:
    """Weight decay coupled into the gradient: L2 adds λ·w, L1 adds λ·sign(w);
    ``local_decay`` λ = weight_decay·decay_mult; ``scratch`` is a buffer shaped like the blob."""
    if not local_decay:
        return
    xp = blob.xp
    if kind == "L2":
        xp.multiply(blob.data, local_decay, out=scratch)
    elif kind == "L1":
        xp.sign(blob.data, out=scratch)
        scratch *= local_decay
    else:
        raise SolverError(unknown_regularization(kind))
    blob.diff[...] += scratch
