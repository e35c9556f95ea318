"""Warnings for legal but suspicious nets, and errors located in a prototxt (or, for a net
built from a NetParameter, naming the layer only)."""

from __future__ import annotations

import pytest

from brewnet import TEST, TRAIN, Net
from brewnet.errors import NetError
from brewnet.proto import caffe_pb2
from brewnet.proto.textio import parse_text

INPUTS = '''layer { name: "data" type: "Input" top: "data" top: "label"
  input_param { shape { dim: 2 dim: 3 } shape { dim: 2 } } }
'''
IP = 'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" {spec}' \
    ' inner_product_param { num_output: 2 } }\n'
LOSS = 'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }\n'


def build(tmp_path, text: str, phase: int = TRAIN, name: str = "net.prototxt", **kw) -> Net:
    path = tmp_path / name
    path.write_text(text)
    return Net(str(path), phase, **kw)


def messages(net: Net) -> list[str]:
    return [str(w) for w in net.warnings]


def test_clean_train_net_has_no_warnings(tmp_path):
    """Inputs, a layer feeding a loss, an Accuracy output and an unused label-like data top:
    nothing to warn about."""
    acc = 'layer { name: "acc" type: "Accuracy" bottom: "ip" bottom: "label" top: "acc" }\n'
    net = build(tmp_path, INPUTS + IP.replace("{spec}", "") + LOSS + acc)
    assert net.warnings == []


def test_dangling_computation_in_a_train_net(tmp_path):
    """A non-loss layer whose top nobody uses, in a TRAIN net, is a warning at its top line;
    the same net in TEST (where outputs are what one looks at) is not."""
    side = 'layer { name: "side" type: "ReLU" bottom: "data"\n  top: "side" }\n'
    text = INPUTS + IP.replace("{spec}", "") + LOSS + side
    net = build(tmp_path, text)
    assert messages(net) == [
        f"{tmp_path / 'net.prototxt'}:6:3: layer 'side' (ReLU): top 'side' is used by no layer "
        "and adds no loss, so training computes it for nothing; feed it to a loss, remove the "
        "layer, or end it in a Silence layer"]
    assert build(tmp_path, text, TEST).warnings == []


def test_learning_rate_zero_everywhere(tmp_path):
    """lr_mult 0 on every parameter of a TRAIN net: training would change nothing."""
    spec = "param { lr_mult: 0 } param { lr_mult: 0 }"
    net = build(tmp_path, INPUTS + IP.replace("{spec}", spec) + LOSS)
    assert any("every parameter has lr_mult 0" in m for m in messages(net))


def test_param_block_of_another_type(tmp_path):
    """A *_param block the layer type never reads is a warning at that block, naming the
    block the settings belong in."""
    relu = 'layer { name: "r" type: "ReLU" bottom: "ip" top: "r"\n  pooling_param { pool: MAX } }\n'
    net = build(tmp_path, INPUTS + IP.replace("{spec}", "") + relu, TEST)
    assert messages(net) == [f"{tmp_path / 'net.prototxt'}:5:3: layer 'r' (ReLU): pooling_param "
                             "is ignored by ReLU layers; its settings go in relu_param"]


def test_shared_message_only_on_the_types_that_read_it(tmp_path):
    """loss_param configures SoftmaxWithLoss but EuclideanLoss reads no *_param block, so
    there (only) it is flagged."""
    pair = 'layer { name: "e" type: "EuclideanLoss" bottom: "ip" bottom: "ip2" top: "e"\n' \
        '  loss_param { normalization: VALID } }\n'
    ip2 = IP.replace("{spec}", "").replace('"ip"', '"ip2"')
    softmax = LOSS.replace('top: "loss"', 'top: "loss" loss_param { ignore_label: 0 }')
    net = build(tmp_path, INPUTS + IP.replace("{spec}", "") + ip2 + softmax + pair)
    assert messages(net) == [f"{tmp_path / 'net.prototxt'}:7:3: layer 'e' (EuclideanLoss): "
                             "loss_param is ignored by EuclideanLoss layers; EuclideanLoss "
                             "takes no *_param block"]


def test_weights_that_match_no_layer_and_layers_without_weights(tmp_path):
    """Fine-tuning: source layers with weights that match no layer are listed by name; net
    layers with parameters that got nothing are warned about at their line."""
    trained = build(tmp_path, INPUTS + IP.replace("{spec}", "") + LOSS, name="a.prototxt")
    model = str(tmp_path / "a.caffemodel")
    trained.save(model)
    renamed = INPUTS + IP.replace("{spec}", "").replace('name: "ip"', 'name: "ip_new"') + LOSS
    net = build(tmp_path, renamed, weights=model)
    path = tmp_path / "net.prototxt"
    assert messages(net) == [
        f"{path}: {model} has weights for layers that match no layer of this net: ip; rename "
        "layers to use them",
        f"{path}:3:1: layer 'ip_new' (InnerProduct): got no weights from {model}; it starts "
        "from its fillers"]


def test_net_from_a_netparameter_names_the_layer_only():
    """No file behind a NetParameter (NetSpec): the error has the layer, not a position."""
    param = parse_text(INPUTS + 'layer { name: "r" type: "ReLU" bottom: "dta" top: "r" }',
                       caffe_pb2.NetParameter())
    with pytest.raises(NetError) as info:
        Net(param, TEST)
    e = info.value
    assert (e.file, e.line, e.layer, e.layer_type) == (None, None, "r", "ReLU")
    assert str(e) == "layer 'r' (ReLU): bottom 'dta' (index 0) is not produced by any layer; " \
        "did you mean 'data'?"


def test_positions_survive_phase_filtering_and_splits(tmp_path):
    """Layers left out by phase rules and Split layers inserted by the compiler do not shift
    the line an error names."""
    text = (INPUTS
            + 'layer { name: "t" type: "ReLU" bottom: "data" top: "t" include { phase: TRAIN } }\n'
            + 'layer { name: "a" type: "ReLU" bottom: "data" top: "a" }\n'
            + 'layer { name: "b" type: "Flatten" bottom: "data" top: "b" }\n'
            + 'layer { name: "bad" type: "Eltwise" bottom: "a" top: "e" }\n')
    with pytest.raises(NetError) as info:
        build(tmp_path, text, TEST)
    assert (info.value.line, info.value.layer) == (6, "bad")
