"""The flags shared by the commands that build one net from a prototxt (``test``, ``time``):
Caffe's ``--model``, ``--phase``, ``--gpu``, ``--level``, ``--stage``, and how they become a
:class:`~brewnet.net.Net`."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ..proto import caffe_pb2
from .devices import choose_device

if TYPE_CHECKING:
    from ..net import Net

PHASES = {"TRAIN": caffe_pb2.TRAIN, "TEST": caffe_pb2.TEST}


def split_list(value: str | None) -> list[str]:
    """``"a, b,"`` → ``["a", "b"]``: Caffe's comma-separated flag values."""
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def add_net_arguments(p: argparse.ArgumentParser, default_phase: str) -> None:
    p.add_argument("--model", required=True, help="net prototxt")
    p.add_argument("--phase", choices=sorted(PHASES), default=default_phase,
                   help=f"the net's phase (default {default_phase}, as Caffe)")
    p.add_argument("--gpu", help="GPU to use (CuPy): an id, a comma-separated list or 'all' "
                   "(brewnet uses the first); omit it for the CPU")
    p.add_argument("--level", type=int, default=0, help="the net's state level (NetState "
                   "rules)")
    p.add_argument("--stage", help="comma-separated stages of the net's state")
    p.add_argument("--allow-python-layers", "--allow_python_layers",
                   dest="allow_python_layers", action="store_true",
                   help="let `type: \"Python\"` layers import and run the modules they name")
    add_memory_flag(p)


def add_memory_flag(p: argparse.ArgumentParser) -> None:
    """``--ignore-memory-limit``: build nets that need more memory than is available (the
    command runs with BREWNET_IGNORE_MEMORY_LIMIT set; see cli/main.py)."""
    p.add_argument("--ignore-memory-limit", "--ignore_memory_limit", dest="ignore_memory_limit",
                   action="store_true", help="build the nets even when they need more memory "
                   "than the machine has available (refused by default, before allocating)")


def open_net(args: argparse.Namespace, weights: str | None = None) -> tuple[Net, int | None]:
    """The net the flags describe, on the device ``--gpu`` names (a net has no solver_mode:
    the CPU unless ``--gpu`` is given, as Caffe's test and time); returns it and the GPU id."""
    from ..net import Net
    device = choose_device(args.gpu, caffe_pb2.SolverParameter())
    net = Net(args.model, phase=PHASES[args.phase], level=args.level,
              stages=split_list(args.stage), weights=weights,
              allow_python_layers=args.allow_python_layers)
    return net, device
