"""brewnet: Caffe's declarative nets and solvers, rebuilt on NumPy (CPU) and CuPy (GPU).

This module is pycaffe's facade, so ``import brewnet as caffe`` runs pycaffe code:
``caffe.Net``, ``caffe.TRAIN``/``TEST``, ``caffe.get_solver``, ``caffe.SGDSolver``,
``caffe.NetSpec``, ``caffe.layers``/``caffe.params`` (``L``/``P``), ``caffe.proto.caffe_pb2``,
``caffe.set_mode_cpu()`` and friends.
"""

from . import layers, proto
from .backend import set_device, set_mode_cpu, set_mode_gpu
from .blob import Blob
from .errors import BrewnetError
from .layers.registry import layer_type_list
from .net import TEST, TRAIN, Net
from .netspec import NetSpec, params, to_proto
from .pylayer import Layer
from .rng import set_random_seed
from .solver import (
    AdaDeltaSolver,
    AdaGradSolver,
    AdamSolver,
    NesterovSolver,
    RMSPropSolver,
    SGDSolver,
    Solver,
    get_solver,
)

__version__ = "0.1.0"

__all__ = [
    "AdaDeltaSolver", "AdaGradSolver", "AdamSolver", "Blob", "BrewnetError", "Layer", "Net",
    "NesterovSolver", "NetSpec", "RMSPropSolver", "SGDSolver", "Solver", "TEST", "TRAIN",
    "__version__", "get_solver", "layer_type_list", "layers", "params", "proto",
    "set_device", "set_mode_cpu", "set_mode_gpu", "set_random_seed", "to_proto",
]
