"""``brewnet draw NET OUT.{png,svg,pdf,dot}``: the layer graph with blob shapes on the edges
(Caffe's ``python/draw_net.py``, with its flags and defaults)."""

from __future__ import annotations

import argparse

from ..proto import caffe_pb2

_PHASES = {"TRAIN": caffe_pb2.TRAIN, "TEST": caffe_pb2.TEST, "ALL": None}


def run(args: argparse.Namespace) -> int:
    from ..draw import draw_net_to_file  # keeps `brewnet --help` light

    print(f"Drawing net to {args.out}")
    draw_net_to_file(args.net, args.out, args.rankdir, phase=_PHASES[args.phase],
                     display_lrm=args.display_lrm)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    draw = sub.add_parser("draw", help="draw a net (or a solver's train net) with Graphviz")
    draw.add_argument("net", help="net prototxt, or a solver prototxt to draw its train net")
    draw.add_argument("out", help="output file; its extension picks the format: .png, .svg, "
                      ".pdf (these need Graphviz's dot program) or .dot (Graphviz source)")
    draw.add_argument("--rankdir", default="LR", choices=("LR", "TB", "BT", "RL"),
                      help="direction of the graph: LR (left to right, the default), TB "
                      "(top to bottom), BT or RL")
    draw.add_argument("--phase", default="ALL", type=str.upper, choices=tuple(_PHASES),
                      help="draw the layers of TRAIN or TEST (NetState rules), or ALL layers "
                      "(the default, as Caffe's draw_net.py)")
    draw.add_argument("--display-lrm", "--display_lrm", dest="display_lrm",
                      action="store_true", help="show the learning-rate multipliers of "
                      "Convolution, Deconvolution and InnerProduct layers")
    draw.set_defaults(func=run)
