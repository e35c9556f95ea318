"""Python: a layer written by the user in Python (pycaffe's PythonLayer). The prototxt names
the class with ``python_param { module layer param_str }``; the class subclasses
``brewnet.Layer`` (pycaffe's ``caffe.Layer``) and this wrapper drives it through the net.

A prototxt naming a Python layer runs arbitrary code when it is loaded, so the net builds one
only when the caller opts in: per net or solver (``allow_python_layers=True``), for the whole
process (:func:`allow_python_layers`, or ``BREWNET_ALLOW_PYTHON_LAYERS=1`` in the environment,
for scripts one cannot edit); :func:`python_layer_refusal` is the error otherwise.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from ..blob import Blob
from ..errors import BrewnetError, NetError
from ..proto import caffe_pb2
from ..pylayer import BlobVec
from ..pylayer import Layer as UserLayer
from .base import Layer
from .registry import register

PYTHON_TYPE = "Python"

ENV_VAR = "BREWNET_ALLOW_PYTHON_LAYERS"
OPT_IN = ("Net(..., allow_python_layers=True), get_solver(..., allow_python_layers=True), "
          "`brewnet solve --allow-python-layers`, or for a whole script "
          f"brewnet.allow_python_layers(True) or the environment variable {ENV_VAR}=1")

_granted = False  # allow_python_layers(True) was called


def allow_python_layers(allow: bool = True) -> None:
    """Let every net this process builds run Python layers (``False`` withdraws it), for a
    script whose Net and get_solver calls should stay as pycaffe wrote them."""
    global _granted
    _granted = bool(allow)


def python_layers_allowed() -> bool:
    """Whether the process granted Python layers: :func:`allow_python_layers` or
    ``BREWNET_ALLOW_PYTHON_LAYERS=1``; any value but 1, 0 or empty is an error."""
    value = os.environ.get(ENV_VAR, "").strip()
    if value not in ("", "0", "1"):
        raise BrewnetError(f"the environment variable {ENV_VAR} is {value!r}; set it to 1 to "
                           "allow Python layers, or to 0 (or unset it) to refuse them")
    return _granted or value == "1"


def python_layer_refusal(lp: caffe_pb2.LayerParameter) -> NetError:
    """The error for a Python layer in a net built without the opt-in."""
    pp = lp.python_param
    return NetError(f"would import and run class '{pp.layer}' from Python module "
                    f"'{pp.module}'; Python layers run only when you opt in: {OPT_IN}",
                    layer=lp.name, layer_type=PYTHON_TYPE)


def _user_layer(lp: caffe_pb2.LayerParameter) -> UserLayer:
    """Import ``python_param.module``, find ``python_param.layer`` in it and construct it with
    the LayerParameter, as Caffe's layer factory does."""
    pp = lp.python_param

    def error(message: str) -> NetError:
        return NetError(message, layer=lp.name, layer_type=PYTHON_TYPE)

    if not pp.module or not pp.layer:
        raise error("python_param needs both `module` (the Python module to import) and "
                    "`layer` (the class in it)", field="python_param")
    try:
        module = importlib.import_module(pp.module)
    except Exception as e:  # ImportError, or the module's own code failing at import time
        raise error(f"cannot import Python module '{pp.module}' (for class '{pp.layer}'): "
                    f"{type(e).__name__}: {e}; put its folder on sys.path or PYTHONPATH") \
            from e
    cls = getattr(module, pp.layer, None)
    where = getattr(module, "__file__", None) or pp.module
    if cls is None:
        raise error(f"Python module '{pp.module}' ({where}) has no class '{pp.layer}'")
    if not (isinstance(cls, type) and issubclass(cls, UserLayer)):
        raise error(f"'{pp.layer}' in Python module '{pp.module}' is not a subclass of "
                    "brewnet.Layer (caffe.Layer)")
    user = cls(lp)
    if not isinstance(getattr(user, "blobs", None), BlobVec):
        user.blobs = BlobVec(getattr(user, "blobs", None) or ())
    return user


@register
class PythonLayer(Layer):
    """Delegates setup/reshape/forward/backward to the user's object; its ``blobs`` are the
    user's ``self.blobs``, so parameters made with ``add_blob`` are learned like any other."""

    type = PYTHON_TYPE
    # Caffe checks nothing for Python layers: counts and in-place use are the user's affair.
    can_run_in_place = True

    def __init__(self, param: caffe_pb2.LayerParameter, phase: int = caffe_pb2.TEST):
        self._user = _user_layer(param)
        own = self._user.blobs  # keep blobs a user's __init__ may have made
        super().__init__(param, phase)
        self._user.blobs = own

    @property
    def blobs(self) -> BlobVec:  # type: ignore[override]
        return self._user.blobs

    @blobs.setter
    def blobs(self, value: list[Blob]) -> None:
        self._user.blobs = value if isinstance(value, BlobVec) else BlobVec(value)

    @property
    def user_layer(self) -> Any:
        """The user's ``brewnet.Layer`` instance."""
        return self._user

    def setup(self, bottom: list[Blob], top: list[Blob]) -> None:
        # Caffe's PythonLayer::LayerSetUp: param_str and phase first, then the user's setup
        # (the net's reshape call that follows is Caffe's Layer::SetUp reshape).
        self._user.param_str = self.param.python_param.param_str
        self._user.phase = int(self.phase)
        self._user.setup(bottom, top)

    def reshape(self, bottom: list[Blob], top: list[Blob]) -> None:
        self._user.reshape(bottom, top)

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        self._user.forward(bottom, top)

    def backward(self, top: list[Blob], propagate_down: list[bool],
                 bottom: list[Blob]) -> None:
        self._user.backward(top, propagate_down, bottom)
