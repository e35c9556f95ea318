"""Legacy definitions brought up to date (brewnet/proto/upgrade.py), as Caffe's upgrade_proto."""

from __future__ import annotations

import logging

import pytest

from brewnet.errors import ParseError
from brewnet.log import LOGGER_NAME
from brewnet.proto import caffe_pb2
from brewnet.proto.textio import parse_text, read_net, read_solver
from brewnet.proto.upgrade import (
    SOLVER_TYPES,
    V1_LAYER_TYPES,
    upgrade_net,
    upgrade_solver,
)

V1_NET = """
name: "v1"
layers {
  name: "data" type: DATA top: "data" top: "label"
  data_param { source: "train_lmdb" batch_size: 4 scale: 0.5 mean_file: "mean.binaryproto"
               crop_size: 3 mirror: true }
  include { phase: TRAIN }
}
layers {
  name: "conv" type: CONVOLUTION bottom: "data" top: "conv"
  blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0
  param: "w" param: "b" blob_share_mode: PERMISSIVE
  convolution_param { num_output: 4 kernel_size: 3 weight_filler { type: "xavier" } }
}
layers { name: "relu" type: RELU bottom: "conv" top: "conv" }
layers {
  name: "loss" type: SOFTMAX_LOSS bottom: "conv" bottom: "label" top: "loss"
  loss_weight: 2
}
"""


class _Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def logs():
    """Records logged by brewnet's logger (it does not propagate to the root logger)."""
    handler = _Records()
    logger = logging.getLogger(LOGGER_NAME)
    logger.addHandler(handler)
    yield handler.records
    logger.removeHandler(handler)


def _v1_net() -> caffe_pb2.NetParameter:
    return parse_text(V1_NET, caffe_pb2.NetParameter())


def test_v1_layers_become_layer_with_string_types(logs):
    """V1 `layers` become `layer` with Caffe's V2 type strings, in order, names kept."""
    net = upgrade_net(_v1_net(), "v1.prototxt")
    assert len(net.layers) == 0
    assert [(layer.name, layer.type) for layer in net.layer] == [
        ("data", "Data"), ("conv", "Convolution"), ("relu", "ReLU"),
        ("loss", "SoftmaxWithLoss")]
    assert list(net.layer[3].bottom) == ["conv", "label"]
    assert list(net.layer[2].top) == ["conv"]
    assert net.layer[0].include[0].phase == caffe_pb2.TRAIN
    assert any("V1" in r.getMessage() and "v1.prototxt" in r.getMessage() for r in logs)


def test_v1_blob_settings_become_param_specs():
    """blobs_lr → lr_mult, weight_decay → decay_mult, param → name, blob_share_mode →
    share_mode, gathered per blob into ParamSpec; sub-messages and loss_weight copied."""
    conv = upgrade_net(_v1_net()).layer[1]
    assert [(p.name, p.lr_mult, p.decay_mult) for p in conv.param] == [("w", 1, 1),
                                                                      ("b", 2, 0)]
    assert conv.param[0].share_mode == caffe_pb2.ParamSpec.PERMISSIVE
    assert not conv.param[1].HasField("share_mode")
    assert conv.convolution_param.num_output == 4
    assert conv.convolution_param.weight_filler.type == "xavier"
    assert list(upgrade_net(_v1_net()).layer[3].loss_weight) == [2]


def test_v1_data_transformation_moves_to_transform_param(logs):
    """scale/mean_file/crop_size/mirror of a V1 data layer move into transform_param."""
    data = upgrade_net(_v1_net()).layer[0]
    t = data.transform_param
    assert (t.scale, t.mean_file, t.crop_size, t.mirror) == (0.5, "mean.binaryproto", 3, True)
    for field in ("scale", "mean_file", "crop_size", "mirror"):
        assert not data.data_param.HasField(field)
    assert data.data_param.source == "train_lmdb"
    assert any("transform_param" in r.getMessage() for r in logs)


def test_every_v1_type_has_a_v2_name():
    """The V1 → V2 type table covers every V1LayerType value with distinct names."""
    enum = caffe_pb2.V1LayerParameter.LayerType
    assert set(V1_LAYER_TYPES) == set(enum.values())
    named = [v for k, v in V1_LAYER_TYPES.items() if k != enum.Value("NONE")]
    assert len(set(named)) == len(named) and all(named)
    assert V1_LAYER_TYPES[enum.Value("INNER_PRODUCT")] == "InnerProduct"
    assert V1_LAYER_TYPES[enum.Value("HDF5_DATA")] == "HDF5Data"


def test_mixed_layer_and_layers_is_refused():
    """A net with both `layer` and `layers` is refused, as Caffe's UpgradeV1Net does."""
    net = _v1_net()
    net.layer.add(name="x", type="ReLU")
    with pytest.raises(ParseError, match="mixes current 'layer' and legacy V1 'layers'"):
        upgrade_net(net, "mixed.prototxt")


# A V0 net in Caffe's oldest format: every setting flat in `layer`, padding as its own layer,
# lower-case type names, the input as net fields.
V0_NET = """
name: "v0"
input: "data" input_dim: 2 input_dim: 3 input_dim: 12 input_dim: 12
layers { layer { name: "pad1" type: "padding" pad: 2 } bottom: "data" top: "pad1" }
layers {
  layer { name: "conv1" type: "conv" num_output: 4 kernelsize: 3 stride: 2 group: 1
          biasterm: false weight_filler { type: "gaussian" std: 0.01 }
          blobs_lr: 1 weight_decay: 1 }
  bottom: "pad1" top: "conv1"
}
layers { layer { name: "relu1" type: "relu" } bottom: "conv1" top: "conv1" }
layers { layer { name: "pool1" type: "pool" pool: AVE kernelsize: 2 stride: 2 }
         bottom: "conv1" top: "pool1" }
layers { layer { name: "norm1" type: "lrn" local_size: 3 alpha: 0.001 beta: 0.5 k: 2 }
         bottom: "pool1" top: "norm1" }
layers { layer { name: "fc" type: "innerproduct" num_output: 5
                 bias_filler { type: "constant" value: 1 } }
         bottom: "norm1" top: "fc" }
layers { layer { name: "drop" type: "dropout" dropout_ratio: 0.25 } bottom: "fc" top: "fc" }
layers { layer { name: "prob" type: "softmax" } bottom: "fc" top: "prob" }
"""

V0_DATA = """
layers { layer { name: "mnist" type: "data" source: "train_lmdb" batchsize: 64 scale: 0.5
                 meanfile: "m.binaryproto" cropsize: 20 mirror: true rand_skip: 3 }
         top: "data" top: "label" }
layers { layer { name: "list" type: "images" source: "list.txt" batchsize: 2 new_height: 8
                 new_width: 9 shuffle_images: true }
         top: "img" top: "lbl" }
"""

# The same net as it reads today (what Caffe's upgrade_net_proto_text writes).
V0_NET_UPGRADED = """
name: "v0"
layer { name: "input" type: "Input" top: "data"
        input_param { shape { dim: 2 dim: 3 dim: 12 dim: 12 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        param { lr_mult: 1 decay_mult: 1 }
        convolution_param { num_output: 4 bias_term: false pad: 2 kernel_size: 3 group: 1
                            stride: 2 weight_filler { type: "gaussian" std: 0.01 } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param { pool: AVE kernel_size: 2 stride: 2 } }
layer { name: "norm1" type: "LRN" bottom: "pool1" top: "norm1"
        lrn_param { local_size: 3 alpha: 0.001 beta: 0.5 k: 2 } }
layer { name: "fc" type: "InnerProduct" bottom: "norm1" top: "fc"
        inner_product_param { num_output: 5 bias_filler { type: "constant" value: 1 } } }
layer { name: "drop" type: "Dropout" bottom: "fc" top: "fc"
        dropout_param { dropout_ratio: 0.25 } }
layer { name: "prob" type: "Softmax" bottom: "fc" top: "prob" }
"""


def test_v0_net_is_upgraded_to_current_layers(logs):
    """V0 → V1 → current, as Caffe's UpgradeV0Net: flat settings move into each type's
    parameter message, the padding layer's pad moves into the conv it fed (which now reads
    the padding's input), and the input fields become an Input layer."""
    net = upgrade_net(parse_text(V0_NET, caffe_pb2.NetParameter()), "v0.prototxt")
    assert net == parse_text(V0_NET_UPGRADED, caffe_pb2.NetParameter())
    assert any("Upgraded V0 layer definitions" in r.getMessage() for r in logs)


def test_v0_data_layers_get_their_fields_and_transform_param():
    """V0's source/batchsize/rand_skip/new_* go to the data type's message; scale,
    meanfile, cropsize and mirror to transform_param."""
    data, images = upgrade_net(parse_text(V0_DATA, caffe_pb2.NetParameter())).layer
    assert data.type == "Data" and data.data_param == caffe_pb2.DataParameter(
        source="train_lmdb", batch_size=64, rand_skip=3)
    assert data.transform_param == caffe_pb2.TransformationParameter(
        scale=0.5, mean_file="m.binaryproto", crop_size=20, mirror=True)
    assert images.type == "ImageData" and images.image_data_param == \
        caffe_pb2.ImageDataParameter(source="list.txt", batch_size=2, new_height=8,
                                     new_width=9, shuffle=True)


def test_v0_field_on_the_wrong_type_is_dropped_and_reported(logs):
    """A V0 setting the layer's type never read is dropped with an error line, as Caffe
    (which still writes the upgrade); ``problems`` collects them."""
    net = parse_text('layers { layer { name: "r" type: "relu" num_output: 3 } bottom: "x" '
                     'top: "x" } input: "x" input_dim: 1 input_dim: 1 input_dim: 1 '
                     'input_dim: 1', caffe_pb2.NetParameter())
    problems: list[str] = []
    layer = upgrade_net(net, "v0.prototxt", problems).layer[1]
    assert layer.type == "ReLU" and not layer.HasField("relu_param")
    assert problems == ["V0 layer 'r': parameter num_output does not apply to type \"relu\"; "
                        "dropped"]
    assert any(r.levelno == logging.ERROR and "num_output" in r.getMessage() for r in logs)


@pytest.mark.parametrize(("text", "match"), [
    ('layers { layer { name: "c" type: "convolution" } }', r"unknown type \"convolution\""),
    ('layers { layer { name: "c" type: "conv" } } layers { name: "r" type: RELU }',
     "mixes V0"),
    ('layers { layer { name: "c" type: "conv" } bottom: "nowhere" top: "c" }',
     "reads blob 'nowhere'"),
    ('input: "x" layers { layer { name: "p" type: "padding" pad: 1 } bottom: "x" top: "p" } '
     'layers { layer { name: "r" type: "relu" } bottom: "p" top: "r" }',
     "padding can only feed one-input conv or pool layers"),
])
def test_bad_v0_nets_are_one_clear_error(text, match):
    with pytest.raises(ParseError, match=match):
        upgrade_net(parse_text(text, caffe_pb2.NetParameter()))


def test_input_dim_becomes_input_layer_first(logs):
    """`input` + `input_dim` (4 per input) become an Input layer named "input", put first."""
    net = parse_text('input: "data" input_dim: 10 input_dim: 3 input_dim: 227 input_dim: 227\n'
                     'input: "aux" input_dim: 10 input_dim: 1 input_dim: 1 input_dim: 1\n'
                     'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" }',
                     caffe_pb2.NetParameter())
    upgrade_net(net)
    first = net.layer[0]
    assert (first.name, first.type, list(first.top)) == ("input", "Input", ["data", "aux"])
    assert [list(s.dim) for s in first.input_param.shape] == [[10, 3, 227, 227], [10, 1, 1, 1]]
    assert net.layer[1].name == "ip"
    assert not (net.input or net.input_dim or net.input_shape)
    assert any("Input layer" in r.getMessage() for r in logs)


def test_input_shape_becomes_input_layer():
    """`input` + `input_shape` become an Input layer with those shapes."""
    net = parse_text('input: "x" input_shape { dim: 2 dim: 5 }', caffe_pb2.NetParameter())
    layer = upgrade_net(net).layer[0]
    assert layer.type == "Input" and list(layer.input_param.shape[0].dim) == [2, 5]


def test_bare_input_is_dropped():
    """A bare `input` with no shape (old .caffemodel files) is simply removed."""
    net = caffe_pb2.NetParameter(input=["data"])
    assert len(upgrade_net(net).layer) == 0 and not net.input


def test_input_dim_count_mismatch_is_an_error():
    """input_dim must hold 4 values per input."""
    net = caffe_pb2.NetParameter(input=["data"], input_dim=[1, 2, 3])
    with pytest.raises(ParseError, match="4 input_dim values"):
        upgrade_net(net, "deploy.prototxt")


@pytest.mark.parametrize("text,field", [("input_dim: 1 input_dim: 2 input_dim: 3 input_dim: 4",
                                         "input_dim"),
                                        ("input_shape { dim: 2 }", "input_shape")])
def test_input_shapes_without_input_names_are_an_error(text, field):
    """input_shape/input_dim without `input:` names: Caffe upgrades inputs only when `input`
    is set, so the shapes would be silently ignored; brewnet says they need names."""
    net = parse_text(text, caffe_pb2.NetParameter())
    with pytest.raises(ParseError, match=rf"deploy.prototxt: net gives {field} but no `input:` "
                                         "names"):
        upgrade_net(net, "deploy.prototxt")


def test_old_batch_norm_params_are_frozen():
    """BatchNorm with 3 ParamSpecs gets lr_mult = decay_mult = 0 (Caffe's batch-norm upgrade)."""
    net = parse_text('layer { type: "BatchNorm" param { lr_mult: 1 } param { lr_mult: 1 } '
                     'param { lr_mult: 1 } }', caffe_pb2.NetParameter())
    specs = upgrade_net(net).layer[0].param
    assert [(p.lr_mult, p.decay_mult) for p in specs] == [(0, 0)] * 3


def test_current_net_is_untouched(logs):
    """A current-format net needs no upgrade, is unchanged, and nothing is logged."""
    net = parse_text('layer { name: "a" type: "ReLU" }', caffe_pb2.NetParameter())
    before = caffe_pb2.NetParameter()
    before.CopyFrom(net)
    assert upgrade_net(net) == before and not logs


def test_read_net_upgrades_v1_file(tmp_path):
    """read_net applies the upgrades to a V1 prototxt file."""
    path = tmp_path / "v1.prototxt"
    path.write_text(V1_NET)
    assert [layer.type for layer in read_net(path).layer][-1] == "SoftmaxWithLoss"


@pytest.mark.parametrize("enum_name", list(caffe_pb2.SolverParameter.SolverType.keys()))
def test_solver_type_enum_becomes_type_string(enum_name, logs):
    """solver_type: NESTEROV etc. become type: "Nesterov" etc.; the enum is cleared."""
    solver = parse_text(f"solver_type: {enum_name}", caffe_pb2.SolverParameter())
    upgrade_solver(solver)
    expected = {"SGD": "SGD", "NESTEROV": "Nesterov", "ADAGRAD": "AdaGrad",
                "RMSPROP": "RMSProp", "ADADELTA": "AdaDelta", "ADAM": "Adam"}[enum_name]
    assert solver.type == expected and not solver.HasField("solver_type")
    assert SOLVER_TYPES[caffe_pb2.SolverParameter.SolverType.Value(enum_name)] == expected
    assert any(expected in r.getMessage() for r in logs)


@pytest.mark.parametrize("text, warns", [('solver_type: ADAM type: "Nesterov"', True),
                                         ('solver_type: ADAM type: "Adam"', False)])
def test_type_takes_precedence_over_solver_type(text, warns, logs):
    """Both solver_type and type set: `type` wins (Caffe would abort), with a warning naming
    the file and both values when they disagree; the enum is cleared."""
    solver = upgrade_solver(parse_text(text, caffe_pb2.SolverParameter()), "s.prototxt")
    assert not solver.HasField("solver_type")
    assert solver.type == text.split('"')[1]
    warned = [r.getMessage() for r in logs if r.levelname == "WARNING"]
    assert bool(warned) == warns
    if warns:
        assert "s.prototxt" in warned[0] and "ADAM" in warned[0] and "Nesterov" in warned[0]


def test_solver_inline_nets_are_upgraded(tmp_path):
    """read_solver upgrades V1 nets given inline (net_param, train/test_net_param)."""
    path = tmp_path / "solver.prototxt"
    path.write_text("solver_type: ADAGRAD\nnet_param { layers { name: 'r' type: RELU } }\n"
                    "test_net_param { input: 'x' input_dim: 1 input_dim: 1 input_dim: 1 "
                    "input_dim: 1 }\n")
    solver = read_solver(path)
    assert solver.type == "AdaGrad"
    assert solver.net_param.layer[0].type == "ReLU"
    assert solver.test_net_param[0].layer[0].type == "Input"
