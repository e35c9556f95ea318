"""Split insertion reproduces Caffe's InsertSplits: where, how many, and the names."""

from google.protobuf import text_format

from brewnet.net.splits import insert_splits
from brewnet.proto import caffe_pb2


def parse(text):
    return text_format.Parse(text, caffe_pb2.NetParameter())


def test_lenet_test_phase_splits_ip2_and_label():
    """A top read by two layers gets a Split '<blob>_<layer>_<i>_split' with tops
    '..._split_<k>', consumers renamed in order (as BVLC names them in LeNet's TEST net)."""
    net = insert_splits(parse("""
      layer { name: "mnist" type: "Data" top: "data" top: "label" }
      layer { name: "ip2" type: "InnerProduct" bottom: "data" top: "ip2" }
      layer { name: "accuracy" type: "Accuracy" bottom: "ip2" bottom: "label" top: "accuracy" }
      layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
    """))
    assert [lp.name for lp in net.layer] == [
        "mnist", "label_mnist_1_split", "ip2", "ip2_ip2_0_split", "accuracy", "loss"]
    split = net.layer[1]
    assert split.type == "Split" and list(split.bottom) == ["label"]
    assert list(split.top) == ["label_mnist_1_split_0", "label_mnist_1_split_1"]
    assert list(net.layer[4].bottom) == ["ip2_ip2_0_split_0", "label_mnist_1_split_0"]
    assert list(net.layer[5].bottom) == ["ip2_ip2_0_split_1", "label_mnist_1_split_1"]


def test_in_place_chain_splits_the_latest_version():
    """Consumers resolve to the latest producer of a name, so an in-place ReLU's output is
    what gets split, under the ReLU's name."""
    net = insert_splits(parse("""
      layer { name: "in" type: "Input" top: "x" }
      layer { name: "relu" type: "ReLU" bottom: "x" top: "x" }
      layer { name: "a" type: "ReLU" bottom: "x" top: "a" }
      layer { name: "b" type: "ReLU" bottom: "x" top: "b" }
    """))
    assert [lp.name for lp in net.layer] == ["in", "relu", "x_relu_0_split", "a", "b"]
    assert list(net.layer[3].bottom) == ["x_relu_0_split_0"]
    assert list(net.layer[4].bottom) == ["x_relu_0_split_1"]


def test_explicit_loss_weight_counts_as_a_use_and_moves_to_split_top_0():
    """A top with loss_weight that also feeds a layer is split; the loss sits on split top 0,
    which no bottom takes, and the producer's loss weights are cleared (Caffe's
    clear_loss_weight)."""
    net = insert_splits(parse("""
      layer { name: "in" type: "Input" top: "x" }
      layer { name: "p" type: "ReLU" bottom: "x" top: "y" loss_weight: 0.5 }
      layer { name: "c" type: "ReLU" bottom: "y" top: "z" }
    """))
    assert [lp.name for lp in net.layer] == ["in", "p", "y_p_0_split", "c"]
    assert list(net.layer[1].loss_weight) == []
    assert list(net.layer[2].loss_weight) == [0.5, 0.0]
    assert list(net.layer[3].bottom) == ["y_p_0_split_1"]


def test_single_consumer_gets_no_split():
    net = insert_splits(parse("""
      layer { name: "in" type: "Input" top: "x" }
      layer { name: "r" type: "ReLU" bottom: "x" top: "y" }
    """))
    assert [lp.name for lp in net.layer] == ["in", "r"]


def test_unknown_bottom_is_left_for_the_compiler_to_report():
    """An unresolved bottom is passed through unchanged (the compiler names it, with hints)."""
    net = insert_splits(parse('layer { name: "r" type: "ReLU" bottom: "nope" top: "y" }'))
    assert list(net.layer[0].bottom) == ["nope"]
