"""Which ranks this process trains with: read from the launcher's environment (mpiexec of MPICH
or Open MPI, or brewnet's own per-GPU launcher) and turned into a communicator; and how a rank
logs (rank 0 as one process would; the others only errors, naming their rank)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np

from ..errors import BrewnetError
from ..log import get_logger
from .comm import SINGLE, Communicator

# (world size, rank, local rank) variables of each launcher, brewnet's own first.
_LAUNCHERS = {
    "brewnet": ("BREWNET_WORLD_SIZE", "BREWNET_RANK", "BREWNET_RANK"),
    "mpiexec": ("PMI_SIZE", "PMI_RANK", "MPI_LOCALRANKID"),  # MPICH, Intel MPI
    "mpirun": ("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_LOCAL_RANK"),
}
UID_VARIABLE = "BREWNET_NCCL_UID"


@dataclass(frozen=True)
class Launch:
    """How this process was started: ``size`` ranks, this one ``rank`` (``local_rank`` on its
    machine, None when the launcher does not say), by ``launcher`` ("none" for one process)."""

    launcher: str
    size: int = 1
    rank: int = 0
    local_rank: int | None = 0


def launched() -> Launch:
    """The launch this process is part of, from its environment."""
    env = os.environ
    for launcher, (size, rank, local) in _LAUNCHERS.items():
        if size in env:
            try:
                n, r = int(env[size]), int(env[rank])
            except (KeyError, ValueError):
                raise BrewnetError(f"{launcher}: ${size} and ${rank} must be integers") \
                    from None
            local_rank = int(env[local]) if env.get(local, "").isdigit() else None
            return Launch(launcher, n, r, local_rank)
    return Launch("none")


def join(launch: Launch, gpus: list[int]) -> tuple[Communicator, int | None]:
    """The communicator of ``launch`` and the GPU this rank uses (None: the CPU): MPI for
    CPU ranks; NCCL when ``gpus`` are given, rank r taking ``gpus[local rank]``."""
    if launch.size == 1:
        return SINGLE, (gpus[0] if gpus else None)
    if not gpus:
        if launch.launcher == "brewnet":
            raise BrewnetError("BREWNET_WORLD_SIZE is set but no --gpu: brewnet's launcher "
                               "runs GPU ranks; use mpiexec for CPU ranks")
        from .mpi import MpiComm
        comm = MpiComm()
        if comm.size != launch.size:
            raise BrewnetError(f"{launch.launcher} started {launch.size} ranks but MPI sees "
                               f"{comm.size}: mpi4py is linked to another MPI than the "
                               "mpiexec used; run the mpiexec of the same MPI (pip install "
                               "'brewnet[mpi]' brings both)")
        return comm, None
    return _nccl_rank(launch, gpus)


def _nccl_rank(launch: Launch, gpus: list[int]) -> tuple[Communicator, int]:
    """Select this rank's GPU, agree on an NCCL unique id and make the clique."""
    from .. import backend
    from . import nccl
    nccl.require_nccl()
    mpi_comm = None
    local = launch.local_rank
    if launch.launcher != "brewnet":
        from .mpi import import_mpi
        world = import_mpi().COMM_WORLD
        mpi_comm = world
        if local is None:  # the ranks sharing this machine's memory are its ranks
            local = world.Split_type(import_mpi().COMM_TYPE_SHARED).Get_rank()
    assert local is not None
    if local >= len(gpus):
        raise BrewnetError(f"rank {launch.rank} is rank {local} on its machine but --gpu "
                           f"names {len(gpus)} GPU(s): start at most {len(gpus)} ranks per "
                           "machine")
    backend.set_mode_gpu()
    backend.set_device(gpus[local])
    if mpi_comm is not None:
        uid = mpi_comm.bcast(nccl.new_uid() if launch.rank == 0 else None, root=0)
    else:
        uid = nccl.uid_from_hex(os.environ.get(UID_VARIABLE, ""))
    return nccl.NcclComm(uid, launch.size, launch.rank), gpus[local]


class _RankPrefix(logging.Filter):
    def __init__(self, rank: int):
        super().__init__()
        self.prefix = f"rank {rank}: "

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and not str(record.msg).startswith(self.prefix):
            record.msg = self.prefix + str(record.msg)
        return True


def log_as_rank(comm: Communicator) -> None:
    """With several ranks: errors name their rank; ranks other than 0 log only errors; rank
    0 logs each rank's process id, since mpiexec reports a process killed by a signal by its pid
    only (the killed rank, or another it ended first while cleaning up)."""
    if comm.size == 1:
        return
    logger = get_logger()
    logger.addFilter(_RankPrefix(comm.rank))
    if comm.rank != 0:
        logger.setLevel(logging.ERROR)
    pids = np.zeros(comm.size, np.int64)
    pids[comm.rank] = os.getpid()
    pids = comm.sum_values(pids)
    logger.info(f"{comm.size} ranks ({comm.engine}), process ids: "
                + ", ".join(f"rank {r} pid {pid}" for r, pid in enumerate(pids)))
