"""A numerical gradient checker in the manner of Caffe's GradientChecker.

The objective is ``sum_i <w_i, top_i>`` with fixed random weights ``w_i`` (so every top
element contributes with a different weight); the analytic gradient is what the layer's
backward produces with ``top_i.diff = w_i``; the numeric one is a central difference.
An element passes when ``|analytic - numeric| <= threshold * max(|analytic|, |numeric|, 1)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from google.protobuf import text_format

from brewnet import rng
from brewnet.blob import Blob
from brewnet.layers.registry import layer_class
from brewnet.proto import caffe_pb2


def make_layer(text: str, phase: int = caffe_pb2.TRAIN):
    """Build a layer from a LayerParameter in prototxt text, e.g. ``'type: "ReLU"'``."""
    param = text_format.Parse(text, caffe_pb2.LayerParameter())
    if not param.name:
        param.name = param.type.lower()
    return layer_class(param.type)(param, phase)


def blobs_from(*arrays: np.ndarray) -> list[Blob]:
    out = []
    for a in arrays:
        b = Blob(a.shape)
        b.data[...] = a
        out.append(b)
    return out


def setup_layer(layer, bottom: list[Blob], num_top: int = 1) -> list[Blob]:
    """``num_top`` new tops for ``layer``, set up on ``bottom`` by the layer's own contract
    (blob counts, setup, reshape, loss weights) as the compiler does; every parameter
    gradient wanted."""
    top = [Blob() for _ in range(num_top)]
    layer.set_up(bottom, top)
    layer.param_propagate_down = [True] * len(layer.blobs)
    return top



def forward_backward(layer, bottom: list[Blob], top_diff) -> list[Blob]:
    """Set ``layer`` up on ``bottom``, run forward, then backward from ``top_diff`` into the
    bottom diff; returns the top. The one pass that tests checking a gradient by hand need."""
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    top[0].diff[...] = top_diff
    layer.backward(top, [True], bottom)
    return top


def run_in_place(layer, x: np.ndarray, top_diff: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``layer`` with top == bottom on ``x``: its output, and its bottom diff from
    ``top_diff``, to compare with the out-of-place pass."""
    (blob,) = blobs_from(x)
    layer.setup([blob], [blob])
    layer.reshape([blob], [blob])
    layer.forward([blob], [blob])
    output = blob.data.copy()
    blob.diff[...] = top_diff
    layer.backward([blob], [True], [blob])
    return output, blob.diff


def check_flat_order(layer, shape: tuple[int, ...]) -> None:
    """Assert that ``layer`` (Reshape, Flatten) turns a (2, 3, 4, 5) bottom into ``shape``
    with the values in their flat order, and passes the top diff back in that order."""
    x = np.arange(120, dtype=np.float32).reshape(2, 3, 4, 5)
    bottom = blobs_from(x)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    assert top[0].data.shape == shape
    np.testing.assert_array_equal(top[0].data.reshape(-1), x.reshape(-1))
    top[0].diff[...] = -top[0].data
    layer.backward(top, [True], bottom)
    np.testing.assert_array_equal(bottom[0].diff, -x)

def check_gradient(layer, bottom: list[Blob], top: list[Blob],
                   check_bottom: Sequence[int] | None = None, check_params: bool = True,
                   stepsize: float = 1e-2, threshold: float = 1e-2, seed: int = 1701,
                   kink: float = 0.0, kink_range: float = -1.0) -> None:
    """Assert that ``layer``'s backward matches central differences of its forward.

    ``check_bottom`` lists the bottom indices to check (default: all); elements within
    ``kink_range`` of ``kink`` (non-differentiable points such as ReLU's 0) are skipped.
    """
    if check_bottom is None:
        check_bottom = range(len(bottom))
    weights_rng = np.random.default_rng(seed)

    def run_forward() -> None:
        rng.set_random_seed(seed)  # same dropout masks etc. on every evaluation
        layer.run_forward(bottom, top)  # its loss is ignored: the objective is weighted here

    run_forward()
    weights = [weights_rng.standard_normal(t.data.shape).astype(np.float32) for t in top]
    if layer.is_loss:  # a loss's objective is its own (weighted) output
        weights = [np.ones(t.data.shape, np.float32) for t in top]

    def objective() -> float:
        run_forward()
        return float(sum(np.sum(w.astype(np.float64) * t.data) for w, t in zip(weights, top,
                                                                            strict=True)))

    # Analytic gradients.
    run_forward()
    for b in bottom:  # cleared first: a top may share a bottom's diff (a layer in place)
        b.diff[...] = 0
    for w, t in zip(weights, top, strict=True):
        t.diff[...] = w
    for p in layer.blobs:
        p.diff[...] = 0
    propagate = [i in check_bottom for i in range(len(bottom))]
    layer.backward(top, propagate, bottom)
    targets: list[tuple[str, Blob, np.ndarray]] = [
        (f"bottom[{i}]", bottom[i], bottom[i].diff.copy()) for i in check_bottom]
    if check_params:
        targets += [(f"param[{j}]", p, p.diff.copy()) for j, p in enumerate(layer.blobs)]

    for label, blob, analytic in targets:
        flat = blob.data.reshape(-1)
        for idx in range(flat.size):
            x = float(flat[idx])
            if kink_range > 0 and abs(x - kink) < kink_range:
                continue
            flat[idx] = x + stepsize
            plus = objective()
            flat[idx] = x - stepsize
            minus = objective()
            flat[idx] = x
            numeric = (plus - minus) / (2 * stepsize)
            a = float(analytic.reshape(-1)[idx])
            scale = max(abs(a), abs(numeric), 1.0)
            assert abs(a - numeric) <= threshold * scale, (
                f"{layer.type} {label} element {idx}: analytic {a:.6g} vs numeric {numeric:.6g}")
