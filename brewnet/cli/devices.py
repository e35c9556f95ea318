"""Device choice shared by the commands that run nets: Caffe's ``-gpu`` flag and
``solver_mode``."""

from __future__ import annotations

from collections.abc import Callable

from ..errors import BrewnetError
from ..log import log
from ..proto import caffe_pb2


def parse_gpus(value: str, device_count: Callable[[], int]) -> list[int]:
    """Caffe's ``-gpu``: ``all``, ``0`` or ``0,1`` (``-1`` or empty: the CPU). ``device_count``
    is asked only for ``all``. A value that is none of these is a BrewnetError."""
    value = value.strip()
    if value in ("", "-1"):
        return []
    if value == "all":
        return list(range(device_count()))
    ids = []
    for part in value.split(","):
        part = part.strip()
        if not part.isdigit():
            raise BrewnetError(f"--gpu {value}: '{part}' is not a device number; give e.g. "
                               "--gpu 0, --gpu 0,1 or --gpu all (omit it for the CPU)")
        ids.append(int(part))
    return ids


def gpu_count() -> int:
    """How many CUDA devices CuPy sees; a BrewnetError when there is no usable one."""
    from .. import backend
    cp = backend.cupy_or_none()
    count = cp.cuda.runtime.getDeviceCount() if cp is not None else 0
    if not count:
        raise BrewnetError("GPU mode needs CuPy and a CUDA device: pip install "
                           "'brewnet[gpu]', or omit --gpu to run on the CPU")
    return int(count)


def choose_device(gpu_flag: str | None, param: caffe_pb2.SolverParameter) -> int | None:
    """Set the compute mode as Caffe's train does and return the GPU id (None: the CPU).

    ``--gpu`` wins; without it, ``solver_mode: GPU`` asks for ``device_id`` (Caffe's rule),
    falling back to the CPU with a warning when CuPy or a device is missing. brewnet drives
    one device: of several ids, the first is used.
    """
    from .. import backend
    if gpu_flag is None:
        # solver_mode defaults to GPU in the schema: only an explicit setting counts (Caffe).
        if not (param.HasField("solver_mode")
                and param.solver_mode == caffe_pb2.SolverParameter.GPU):
            return None
        if backend.cupy_or_none() is None:
            log.warning("the solver sets solver_mode: GPU but CuPy or a CUDA device is not "
                        "available; training on the CPU")
            return None
        ids = [int(param.device_id)]
    else:
        ids = parse_gpus(gpu_flag, gpu_count)
        if not ids:
            return None
    if len(ids) > 1:
        log.info(f"GPUs {','.join(map(str, ids))} requested; brewnet uses one device: "
                 f"GPU {ids[0]}")
    count = gpu_count()
    if ids[0] >= count:
        raise BrewnetError(f"GPU {ids[0]} does not exist: {count} device(s) found, numbered "
                           f"0 to {count - 1}")
    backend.set_mode_gpu()
    backend.set_device(ids[0])
    log.info(f"Using GPU {ids[0]}")
    return ids[0]
