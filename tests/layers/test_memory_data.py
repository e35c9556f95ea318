"""MemoryData: batches sliced in order from the arrays given to reset (pycaffe's
set_input_arrays), wrapping around, with pycaffe's checks on those arrays."""

import logging

import numpy as np
import pytest
from google.protobuf import text_format

from brewnet.errors import NetError
from brewnet.log import get_logger
from brewnet.net import TEST, Net
from brewnet.proto import caffe_pb2
from tests.gradcheck import make_layer, setup_layer

PARAM = ('type: "MemoryData" top: "data" top: "label" '
         'memory_data_param { batch_size: 2 channels: 3 height: 2 width: 1 }')


def arrays(n=6):
    data = np.arange(n * 6, dtype=np.float32).reshape(n, 3, 2, 1)
    return data, np.arange(n, dtype=np.float32) + 10


def test_setup_shapes_and_batches_wrap():
    """Tops are (batch, C, H, W) and (batch,) at setup; each forward gives the next batch
    (label (batch, 1, 1, 1) as Caffe's Forward reshapes it) and wraps after the last."""
    layer = make_layer(PARAM)
    top = setup_layer(layer, [], 2)
    assert top[0].shape == [2, 3, 2, 1] and top[1].shape == [2]
    data, labels = arrays()
    layer.reset(data, labels)
    for step in range(5):
        start = (2 * step) % 6
        layer.forward([], top)
        np.testing.assert_array_equal(top[0].data, data[start:start + 2])
        assert top[1].shape == [2, 1, 1, 1]
        np.testing.assert_array_equal(top[1].data.reshape(-1), labels[start:start + 2])


def test_arrays_kept_by_reference_and_reset_restarts():
    """Caffe keeps the caller's arrays (writes show up later); reset starts at row 0;
    4-d labels (N, 1, 1, 1) are accepted as given."""
    layer = make_layer(PARAM)
    top = setup_layer(layer, [], 2)
    data, labels = arrays(4)
    layer.reset(data, labels.reshape(4, 1, 1, 1))
    layer.forward([], top)
    data[2:] = -1
    layer.forward([], top)
    assert np.all(top[0].data == -1)
    layer.reset(data, labels)
    layer.forward([], top)
    np.testing.assert_array_equal(top[1].data.reshape(-1), labels[:2])


def test_seek_batch():
    """seek_batch(k) makes the next forward deliver batch k (mod the array length)."""
    layer = make_layer(PARAM)
    top = setup_layer(layer, [], 2)
    data, labels = arrays()
    layer.reset(data, labels)
    layer.seek_batch(4)  # 4 batches of 2 in 6 rows → row 2
    layer.forward([], top)
    np.testing.assert_array_equal(top[1].data.reshape(-1), labels[2:4])


@pytest.mark.parametrize(("data", "labels", "match"), [
    (np.zeros((4, 3, 2), np.float32), np.zeros(4, np.float32), "data array must be 4-d"),
    (np.zeros((4, 3, 2, 1)), np.zeros(4, np.float32), "must be float32"),
    (np.zeros((4, 1, 2, 3), np.float32).transpose(0, 3, 2, 1), np.zeros(4, np.float32),
     "C contiguous"),
    (np.zeros((4, 3, 1, 2), np.float32), np.zeros(4, np.float32), r"must be \(3, 2, 1\)"),
    (np.zeros((4, 3, 2, 1), np.float32), np.zeros(4), "labels array must be float32"),
    (np.zeros((4, 3, 2, 1), np.float32), np.zeros(2, np.float32), "same first dimension"),
    (np.zeros((3, 3, 2, 1), np.float32), np.zeros(3, np.float32), "multiple of batch_size"),
])
def test_reset_checks(data, labels, match):
    """pycaffe's set_input_arrays checks: 4-d, float32, C-contiguous, matching C/H/W, equal
    N, N a multiple of batch_size; each error names the layer."""
    layer = make_layer(PARAM)
    setup_layer(layer, [], 2)
    with pytest.raises(NetError, match=match) as info:
        layer.reset(data, labels)
    assert "memorydata" in str(info.value)


def test_errors_without_arrays_and_bad_param():
    """Forward before reset says to call set_input_arrays; unset dimensions are an error."""
    layer = make_layer(PARAM)
    top = setup_layer(layer, [], 2)
    with pytest.raises(NetError, match="set_input_arrays"):
        layer.forward([], top)
    with pytest.raises(NetError, match="must all be set and positive"):
        setup_layer(make_layer('type: "MemoryData" memory_data_param { batch_size: 2 }'),
                    [], 2)


def test_transform_param_is_ignored_with_warning():
    """Caffe's MemoryDataLayer::Reset does not transform arrays; it warns."""
    layer = make_layer(PARAM + ' transform_param { scale: 0.5 }')
    top = setup_layer(layer, [], 2)
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    get_logger().addHandler(handler)
    try:
        data, labels = arrays()
        layer.reset(data, labels)
    finally:
        get_logger().removeHandler(handler)
    assert any("does not transform" in r.getMessage() for r in records)
    layer.forward([], top)
    np.testing.assert_array_equal(top[0].data, data[:2])


def test_net_set_input_arrays_feeds_the_layer():
    """pycaffe's net.set_input_arrays(data, labels) hands the arrays to the first layer
    (MemoryData), whose batches then flow through the net."""
    text = PARAM.replace('type: "MemoryData"', 'name: "mem" type: "MemoryData"')
    param = text_format.Parse(f"layer {{ {text} }} layer {{ name: \"flat\" type: \"Flatten\" "
                              'bottom: "data" top: "flat" }', caffe_pb2.NetParameter())
    net = Net(param, TEST)
    data, labels = arrays(4)
    net.set_input_arrays(data, labels)
    net.forward()
    net.forward()
    np.testing.assert_array_equal(net.blobs["flat"].data, data[2:].reshape(2, 6))
    np.testing.assert_array_equal(net.blobs["label"].data.reshape(-1), labels[2:])
