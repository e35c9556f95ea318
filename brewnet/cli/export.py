"""``brewnet export onnx NET WEIGHTS OUT.onnx [--batch N] [--shape TOP=C,H,W]``: a deploy net
(given, or derived from a train_val as ``brewnet deploy`` does) with its trained weights as an
ONNX model, for onnxruntime and the other runtimes that read ONNX."""

from __future__ import annotations

import argparse
import math

from ..errors import BrewnetError
from .deploy import add_shape_argument


def run_onnx(args: argparse.Namespace) -> int:
    from ..export import export_onnx
    from ..export.onnx_graph import check_exportable
    from ..net import TEST, Net
    from ..net.deploy import derive_deploy, reads_data_sources
    from ..proto.textio import read_net_located
    if args.batch is not None and args.batch <= 0:
        raise BrewnetError(f"--batch must be a positive number, got {args.batch}")
    param, layout = read_net_located(args.net)
    preprocessing = []
    if reads_data_sources(param):  # a train_val: export its deploy net
        deployment = derive_deploy(param, batch=args.batch, shapes=dict(args.shape),
                                   source=args.net, layout=layout)
        param, preprocessing = deployment.net, deployment.preprocessing
    elif args.shape:
        raise BrewnetError(f"--shape gives the records of a train_val's data layers; "
                           f"{args.net} has none (set the Input shapes in it instead)")
    check_exportable(param)
    net = Net(param, TEST, weights=args.weights, source=args.net)
    try:
        if args.batch is not None:
            for name in net.inputs:
                blob = net.blobs[name]
                if not blob.shape:
                    raise BrewnetError(f"input '{name}' is 0-d: it has no batch axis for --batch")
                blob.reshape(args.batch, *blob.shape[1:])
            net.reshape()
        model = export_onnx(net, args.out, opset=args.opset)
    finally:
        net.close()
    graph = model.graph
    params = sum(math.prod(t.dims) for t in graph.initializer if t.data_type == 1)  # FLOAT
    inputs = ", ".join(f"{i.name} {[d.dim_value for d in i.type.tensor_type.shape.dim]}"
                       for i in graph.input)
    outputs = ", ".join(o.name for o in graph.output)
    print(f"{args.out}: {len(graph.node)} ONNX nodes, {params} weights; inputs {inputs}; "
          f"outputs {outputs}")
    if preprocessing:
        print("Its inputs arrive preprocessed, as the TEST-phase data layers delivered them:")
    for line in preprocessing:
        print(f"  {line}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    export = sub.add_parser("export", help="write a net with its weights for other runtimes")
    formats = export.add_subparsers(dest="format", required=True, metavar="FORMAT")
    onnx = formats.add_parser("onnx", help="an ONNX model (needs the onnx package)")
    onnx.add_argument("net", help="deploy prototxt, or a train_val one: its deploy net is "
                      "derived as `brewnet deploy` does")
    onnx.add_argument("weights", help=".caffemodel (or .caffemodel.h5) with the trained weights")
    onnx.add_argument("out", help="the .onnx file to write")
    onnx.add_argument("--batch", type=int, help="batch size of the exported inputs (default: "
                      "the first axis of each Input shape in the prototxt)")
    onnx.add_argument("--opset", type=int, default=17,
                      help="ONNX opset to declare, 13 or later (default 17)")
    add_shape_argument(onnx)
    onnx.set_defaults(func=run_onnx)
