"""pycaffe's ``caffe.Layer``, exported as ``brewnet.Layer``: the base class a user's Python
layer subclasses, plus ``BlobVec``, the ``blobs`` list whose ``add_blob`` lets such a layer own
learnable parameters. The net wraps instances with ``brewnet.layers.python_layer``."""

from __future__ import annotations

from .blob import Blob
from .proto import caffe_pb2


class BlobVec(list):
    """A list of :class:`~brewnet.blob.Blob` with pycaffe's ``add_blob(*shape)``."""

    def add_blob(self, *shape: int) -> None:
        """Append a zero-filled blob of ``shape`` (a learnable parameter of a Python layer)."""
        self.append(Blob(tuple(int(d) for d in shape)))


class Layer:
    """Base class of user-written layers (``python_param { module layer param_str }``).

    Before ``setup`` the net sets ``self.param_str`` (the prototxt's string) and ``self.phase``
    (0 = TRAIN, 1 = TEST). Subclasses override ``setup``, ``reshape``, ``forward`` and
    ``backward(top, propagate_down, bottom)``; blobs are brewnet Blobs with pycaffe's
    ``data``/``diff``/``reshape(*dims)``.
    """

    def __init__(self, param: caffe_pb2.LayerParameter | None = None):
        self.layer_param = param if param is not None else caffe_pb2.LayerParameter()
        self.blobs: BlobVec = BlobVec()
        self.param_str: str = self.layer_param.python_param.param_str
        self.phase: int = self.layer_param.phase

    @property
    def type(self) -> str:
        return "Python"

    def setup(self, bottom: list[Blob], top: list[Blob]) -> None:
        """Read ``self.param_str`` and create parameters; nothing by default."""

    def reshape(self, bottom: list[Blob], top: list[Blob]) -> None:
        """Shape the tops from the bottoms; nothing by default."""

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        raise NotImplementedError(f"{type(self).__name__} defines no forward(bottom, top)")

    def backward(self, top: list[Blob], propagate_down: list[bool],
                 bottom: list[Blob]) -> None:
        raise NotImplementedError(f"{type(self).__name__} defines no "
                                  "backward(top, propagate_down, bottom)")

