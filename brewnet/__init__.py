"""brewnet: Caffe's declarative nets and solvers, rebuilt on NumPy (CPU) and CuPy (GPU).

This module is pycaffe's facade, so ``import brewnet as caffe`` runs pycaffe code: ``Net``,
``TRAIN``/``TEST``, the solvers and ``get_solver``, ``NetSpec`` with ``layers``/``params``
(``L``/``P``) and ``to_proto``, ``Layer`` for Python layers, ``io``, ``Classifier``,
``Detector``, ``draw``, ``coord_map``, ``proto.caffe_pb2``, ``Timer``, ``init_log``/``log``
and the global settings (``set_mode_cpu``, ``set_random_seed``, ``set_solver_count``...).
brewnet adds ``allow_python_layers(True)``, the process-wide opt-in for Python layers, and
``deploy_net(train_val)``, the deploy net Caffe users write by hand.
"""

# First, before anything loads NumPy: OpenBLAS's kernel choice on this CPU (blas_env).
from . import blas_env  # noqa: F401

# isort: split
from importlib import import_module
from types import ModuleType

from . import io, layers, log, proto
from .backend import (
    has_nccl,
    set_device,
    set_mode_cpu,
    set_mode_gpu,
    set_multiprocess,
    set_solver_count,
    set_solver_rank,
    solver_count,
    solver_rank,
)
from .blob import Blob
from .classifier import Classifier
from .detector import Detector
from .errors import BrewnetError
from .layers.python_layer import allow_python_layers
from .layers.registry import layer_type_list
from .log import init_log
from .net import TEST, TRAIN, Net
from .net.deploy import deploy_net
from .netspec import NetSpec, params, to_proto
from .parallel.pycaffe import MPI, NCCL
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
from .timer import Timer

__version__ = "0.1.0"

# Imported on first use: drawing needs pydot, which ``import brewnet`` must not require.
_LAZY_MODULES = ("coord_map", "draw")


def __getattr__(name: str) -> ModuleType:
    if name in _LAZY_MODULES:
        return import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AdaDeltaSolver", "AdaGradSolver", "AdamSolver", "Blob", "BrewnetError", "Classifier",
    "Detector", "Layer", "MPI", "NCCL", "Net", "NesterovSolver", "NetSpec", "RMSPropSolver",
    "SGDSolver", "Solver", "TEST", "TRAIN", "Timer", "__version__", "allow_python_layers",
    "coord_map", "deploy_net", "draw", "get_solver", "has_nccl", "init_log", "io",
    "layer_type_list", "layers", "log", "params", "proto", "set_device", "set_mode_cpu",
    "set_mode_gpu", "set_multiprocess", "set_random_seed", "set_solver_count", "set_solver_rank",
    "solver_count", "solver_rank", "to_proto",
]
