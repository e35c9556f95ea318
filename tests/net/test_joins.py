"""Concat bottoms computed in place in the Concat's top at batch 1 (brewnet/net/joins.py):
the joined bottoms are views of their sections, every blob holds what the net without joins
(fuse=False) holds, and only bottoms that nothing else writes after or shares are joined."""

import numpy as np
from google.protobuf import text_format

from brewnet.net import TEST, TRAIN, Net
from brewnet.proto import caffe_pb2


def _input(batch):
    return ('layer { name: "data" type: "Input" top: "data" '
            f'input_param {{ shape {{ dim: {batch} dim: 3 dim: 6 dim: 7 }} }} }}\n')


def _conv(name, bottom, n):
    return (f'layer {{ name: "{name}" type: "Convolution" bottom: "{bottom}" top: "{name}" '
            f'convolution_param {{ num_output: {n} kernel_size: 3 pad: 1 '
            'weight_filler { type: "gaussian" std: 0.3 } '
            'bias_filler { type: "gaussian" std: 0.3 } } }\n')


def _relu(name, blob):
    return f'layer {{ name: "{name}" type: "ReLU" bottom: "{blob}" top: "{blob}" }}\n'


def _concat(bottoms, top="cat"):
    names = " ".join(f'bottom: "{b}"' for b in bottoms)
    return f'layer {{ name: "{top}" type: "Concat" {names} top: "{top}" }}\n'


# Two branches (one with a ReLU in place) and a pooled branch joined along channels, then a
# convolution reading the join.
BRANCHES = (_conv("a", "data", 4) + _relu("ra", "a") + _conv("b", "data", 5)
            + 'layer { name: "p" type: "Pooling" bottom: "data" top: "p" '
              'pooling_param { pool: MAX kernel_size: 3 stride: 1 pad: 1 } }\n'
            + _concat(["a", "b", "p"]) + _conv("after", "cat", 2))


def _pair(text, batch=1, phase=TEST):
    """The net with joins and the same net (same weights) without, one input."""
    nets = [Net(text_format.Parse(_input(batch) + text, caffe_pb2.NetParameter()), phase,
                fuse=fuse) for fuse in (True, False)]
    for layer, twin in zip(nets[0].layers, nets[1].layers, strict=True):
        for blob, other in zip(layer.blobs, twin.blobs, strict=True):
            other.data[...] = blob.data
    x = np.random.default_rng(3).standard_normal(nets[0].blobs["data"].shape)
    for net in nets:
        net.blobs["data"].data[...] = x
        net.forward()
    return nets


def _joined(net):
    cat = net.blobs["cat"].data
    return {name: np.shares_memory(net.blobs[name].data, cat) for name in ("a", "b", "p")}


def _same_blobs(net, plain):
    for name, blob in plain.blobs.items():
        np.testing.assert_array_equal(net.blobs[name].data, blob.data, err_msg=name)


def test_batch_one_bottoms_are_views_of_the_top_with_the_same_values():
    net, plain = _pair(BRANCHES)
    assert _joined(net) == {"a": True, "b": True, "p": True}
    assert not any(np.shares_memory(plain.blobs[n].data, plain.blobs["cat"].data)
                   for n in ("a", "b", "p"))
    _same_blobs(net, plain)
    net.forward()  # a second forward: the producers write into the top directly
    _same_blobs(net, plain)


def test_a_larger_batch_copies_and_a_reshape_back_joins_again():
    net, plain = _pair(BRANCHES, batch=2)
    assert _joined(net) == {"a": False, "b": False, "p": False}
    _same_blobs(net, plain)
    x = np.random.default_rng(4).standard_normal((1, 3, 6, 7)).astype(np.float32)
    for n in (net, plain):
        n.blobs["data"].reshape(*x.shape)
        n.blobs["data"].data[...] = x
        n.forward()
    assert _joined(net) == {"a": True, "b": True, "p": True}
    _same_blobs(net, plain)


def test_a_forward_from_the_concat_reads_what_was_written_to_a_bottom():
    """pycaffe: values written into a bottom before forward(start=concat) reach the top, as
    the copy would carry them."""
    net, plain = _pair(BRANCHES)
    for n in (net, plain):
        n.blobs["b"].data[...] = 7.0
        n.forward(start="cat")
    _same_blobs(net, plain)


def test_shared_or_later_written_bottoms_are_not_joined():
    """"b" also feeds another layer (a Split shares it), the join's top gets a ReLU in place
    (which would change the bottoms' values too): neither is joined, and nothing differs."""
    shared = (_conv("a", "data", 4) + _conv("b", "data", 5) + _concat(["a", "b"])
              + _conv("other", "b", 2))
    net, plain = _pair(shared)
    cat = net.blobs["cat"].data
    assert np.shares_memory(net.blobs["a"].data, cat)
    assert not np.shares_memory(net.blobs["b"].data, cat)
    _same_blobs(net, plain)
    relu_after = _conv("a", "data", 4) + _conv("b", "data", 5) + _concat(["a", "b"]) + _relu(
        "r", "cat")
    net, plain = _pair(relu_after)
    assert not np.shares_memory(net.blobs["a"].data, net.blobs["cat"].data)
    _same_blobs(net, plain)


def test_a_dropout_in_place_after_the_join_keeps_it():
    """A TEST Dropout leaves the top's values as they are (SqueezeNet's drop9)."""
    text = BRANCHES.replace(_conv("after", "cat", 2), (
        'layer { name: "drop" type: "Dropout" bottom: "cat" top: "cat" '
        'dropout_param { dropout_ratio: 0.5 } }\n') + _conv("after", "cat", 2))
    net, plain = _pair(text)
    assert _joined(net) == {"a": True, "b": True, "p": True}
    _same_blobs(net, plain)


def test_training_nets_are_not_joined():
    net, _ = _pair(BRANCHES, phase=TRAIN)
    assert _joined(net) == {"a": False, "b": False, "p": False}
