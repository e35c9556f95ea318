"""Binary protobuf files (brewnet/proto/binaryio.py)."""

from __future__ import annotations

import numpy as np
import pytest

from brewnet.errors import WeightsError
from brewnet.proto import caffe_pb2
from brewnet.proto.binaryio import read_binary, read_net_binary, write_binary


def _weights() -> caffe_pb2.NetParameter:
    net = caffe_pb2.NetParameter(name="tiny")
    layer = net.layer.add(name="ip", type="InnerProduct")
    blob = layer.blobs.add()
    blob.shape.dim.extend([4, 3])
    blob.data.extend(np.arange(12, dtype=np.float32))
    return net


def test_round_trip(tmp_path):
    """write_binary then read_binary gives back an equal message."""
    path = tmp_path / "tiny.caffemodel"
    write_binary(path, _weights())
    assert read_binary(path, caffe_pb2.NetParameter) == _weights()


def test_truncated_file_raises_weights_error_naming_file(tmp_path):
    """A truncated .caffemodel raises WeightsError naming the file, and the message passed in
    is left empty rather than half-parsed."""
    path = tmp_path / "cut.caffemodel"
    data = _weights().SerializeToString()
    path.write_bytes(data[: len(data) - 7])
    target = caffe_pb2.NetParameter(name="keep-out")
    with pytest.raises(WeightsError, match=r"cut\.caffemodel: truncated or corrupted"):
        read_binary(path, target)
    assert target == caffe_pb2.NetParameter()


def test_text_file_given_as_binary_hints_at_text(tmp_path):
    """A prototxt passed where binary weights belong is reported as text."""
    path = tmp_path / "net.prototxt"
    path.write_text('name: "x"\nlayer { name: "a" }\n')
    with pytest.raises(WeightsError, match="looks like text"):
        read_binary(path, caffe_pb2.NetParameter)


def test_missing_and_empty_files(tmp_path):
    """A missing or empty weights file raises WeightsError naming the path."""
    with pytest.raises(WeightsError, match="none.caffemodel: cannot open"):
        read_binary(tmp_path / "none.caffemodel", caffe_pb2.NetParameter)
    (tmp_path / "empty.binaryproto").write_bytes(b"")
    with pytest.raises(WeightsError, match="empty.binaryproto: file is empty"):
        read_binary(tmp_path / "empty.binaryproto", caffe_pb2.BlobProto)


def test_v1_caffemodel_is_upgraded_with_its_blobs(tmp_path):
    """read_net_binary upgrades V1 weights (old model-zoo files) keeping every blob."""
    old = caffe_pb2.NetParameter(name="old")
    v1 = old.layers.add(name="fc", type=caffe_pb2.V1LayerParameter.INNER_PRODUCT)
    v1.blobs.add().data.extend([1.0, 2.0])
    v1.blobs.add().data.extend([3.0])
    path = tmp_path / "old.caffemodel"
    write_binary(path, old)
    net = read_net_binary(path)
    assert len(net.layers) == 0
    assert net.layer[0].type == "InnerProduct"
    assert [list(b.data) for b in net.layer[0].blobs] == [[1.0, 2.0], [3.0]]
