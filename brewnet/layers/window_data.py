"""WindowData: refused by name. Caffe's R-CNN era layer reads image windows listed in a text
file (with overlap-based foreground/background sampling); brewnet does not read it, and says
how to get the same data in instead of failing as an unknown type."""

from __future__ import annotations

from ..blob import Blob
from .base import Layer
from .registry import register


@register
class WindowDataLayer(Layer):
    """Always refuses at setup, naming the layer and the alternatives."""

    type = "WindowData"
    param_fields = ("window_data_param", "transform_param")  # Caffe's, refused whole
    is_data_source = True

    def setup(self, bottom: list[Blob], top: list[Blob]) -> None:
        raise self.error("WindowData (R-CNN window sampling) is not supported by brewnet; "
                         "crop the windows beforehand and feed them with a Data (LMDB), "
                         "HDF5Data or MemoryData layer")
