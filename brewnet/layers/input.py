"""Input: the net's entry points (pycaffe's ``net.inputs``), blobs the user fills directly."""

from __future__ import annotations

from ..blob import MAX_AXES, Blob
from .base import Layer
from .registry import register


def check_shape(layer: Layer, dims: tuple[int, ...], what: str, field: str) -> None:
    """Caffe's Blob::Reshape checks as a NetError naming the layer and the ``*_param`` block
    (``field``) that gave the shape: every dim >= 0 (0 is an empty blob) and at most 32 axes."""
    if any(d < 0 for d in dims):
        raise layer.error(f"{what} {list(dims)} has a negative dim; every dim must be >= 0",
                          field=field)
    if len(dims) > MAX_AXES:
        raise layer.error(f"{what} has {len(dims)} axes; a blob has at most {MAX_AXES}",
                          field=field)


@register
class Input(Layer):
    """No bottoms; each top gets its ``input_param.shape`` at setup (one shape per top, or one
    shape for all). Afterwards the user owns the shape: reshaping the top blob and calling
    ``net.reshape()`` keeps the new shape, as in pycaffe."""

    type = "Input"
    exact_num_bottom = 0
    min_top = 1

    def setup(self, bottom: list[Blob], top: list[Blob]) -> None:
        shapes = self.param.input_param.shape
        if len(shapes) not in (0, 1, len(top)):
            raise self.error(f"input_param gives {len(shapes)} shapes for {len(top)} tops; "
                             "give one shape, one per top, or none", field="input_param")
        for i, t in enumerate(top):
            if shapes:
                dims = tuple(int(d) for d in shapes[i if len(shapes) > 1 else 0].dim)
                check_shape(self, dims, f"input_param shape for top {i}", "input_param")
                t.reshape(dims)

    def reshape(self, bottom: list[Blob], top: list[Blob]) -> None:
        """Nothing: the tops keep whatever shape they have."""

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        """Nothing: the data is written into the tops from outside."""

    def backward(self, top: list[Blob], propagate_down: list[bool],
                 bottom: list[Blob]) -> None:
        """Nothing: there are no bottoms to send gradients to."""
