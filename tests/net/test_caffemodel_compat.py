""".caffemodel files shared with BVLC Caffe (brewnet/net/weights.py, Net.save/copy_from).

brewnet's files are checked at the wire level against BVLC's field numbers (not through
brewnet's own schema); Caffe's files are written here through the schema exactly as Caffe
wrote them in each era: current ``layer`` entries with ``shape`` dims, the same with legacy
num/channels/height/width dims, and V1 ``layers`` with enum types, legacy 4-d blobs (an
InnerProduct weight as 1x1xNxK) and a V1 deploy definition with ``input_dim`` fields.
"""

from __future__ import annotations

import numpy as np
import pytest

from brewnet.errors import ShapeError
from brewnet.net import TEST, Net
from brewnet.proto import caffe_pb2

V1 = caffe_pb2.V1LayerParameter

# conv1 (4, 3, 3, 3) on 8x8 -> 6x6, pool -> 3x3, fc (5, 36).
DEPLOY = """
name: "small"
layer { name: "data" type: "Input" top: "data"
  input_param { shape { dim: 2 dim: 3 dim: 8 dim: 8 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 4 kernel_size: 3 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "fc" type: "InnerProduct" bottom: "pool1" top: "fc"
  inner_product_param { num_output: 5 } }
layer { name: "prob" type: "Softmax" bottom: "fc" top: "prob" }
"""

# The same net as BVLC's V1-era deploy files were written: input fields and `layers`.
DEPLOY_V1 = """
name: "small"
input: "data"
input_dim: 2 input_dim: 3 input_dim: 8 input_dim: 8
layers { name: "conv1" type: CONVOLUTION bottom: "data" top: "conv1"
  convolution_param { num_output: 4 kernel_size: 3 } }
layers { name: "relu1" type: RELU bottom: "conv1" top: "conv1" }
layers { name: "pool1" type: POOLING bottom: "conv1" top: "pool1"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layers { name: "fc" type: INNER_PRODUCT bottom: "pool1" top: "fc"
  inner_product_param { num_output: 5 } }
layers { name: "prob" type: SOFTMAX bottom: "fc" top: "prob" }
"""

# A ResNet-style deploy net: BatchNorm's three statistics blobs and Scale's two.
DEPLOY_BN = """
layer { name: "data" type: "Input" top: "data"
  input_param { shape { dim: 2 dim: 3 dim: 5 dim: 5 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 4 kernel_size: 3 bias_term: false } }
layer { name: "bn1" type: "BatchNorm" bottom: "conv1" top: "conv1" }
layer { name: "scale1" type: "Scale" bottom: "conv1" top: "conv1" scale_param { bias_term: true } }
"""


def _trained() -> dict[str, list[np.ndarray]]:
    """Weights as a Caffe run would have left them, in brewnet's (current) shapes."""
    rng = np.random.default_rng(0)

    def r(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float32)

    return {"conv1": [r(4, 3, 3, 3), r(4)], "fc": [r(5, 36), r(5)]}


def _blob(values: np.ndarray, legacy: tuple[int, int, int, int] | None = None,
          double: bool = False) -> caffe_pb2.BlobProto:
    """A BlobProto as Caffe writes it: ``shape`` dims (Blob::ToProto since 2015) or the older
    num/channels/height/width; float ``data`` (``double_data`` from a Blob<double>)."""
    bp = caffe_pb2.BlobProto()
    if legacy is None:
        bp.shape.dim.extend(values.shape)
    else:
        bp.num, bp.channels, bp.height, bp.width = legacy
    (bp.double_data if double else bp.data).extend(values.ravel().tolist())
    return bp


def _legacy_dims(a: np.ndarray) -> tuple[int, int, int, int]:
    """Caffe's 4-d view of a blob: leading axes of 1 (an InnerProduct weight N x K is
    1 x 1 x N x K, a bias N is 1 x 1 x 1 x N)."""
    return (1,) * (4 - a.ndim) + tuple(a.shape)


def _current_caffemodel(weights: dict[str, list[np.ndarray]], legacy: bool = False,
                        double_layer: str | None = None) -> caffe_pb2.NetParameter:
    """A train_val .caffemodel with `layer` entries: data, split, loss and accuracy layers
    around the learned ones, as Caffe's Net::ToProto writes every layer it ran."""
    net = caffe_pb2.NetParameter(name="small")
    net.layer.add(name="mnist", type="Data", top=["data", "label"], phase=caffe_pb2.TRAIN)
    net.layer.add(name="label_mnist_1_split", type="Split", bottom=["label"],
                  top=["label_mnist_1_split_0", "label_mnist_1_split_1"])
    for name, arrays in weights.items():
        layer = net.layer.add(name=name, type="Convolution" if name == "conv1" else
                              "InnerProduct", phase=caffe_pb2.TRAIN)
        layer.param.add(lr_mult=1)
        layer.param.add(lr_mult=2)
        for a in arrays:
            layer.blobs.append(_blob(a, _legacy_dims(a) if legacy else None,
                                     double=name == double_layer))
    net.layer.add(name="relu1", type="ReLU", bottom=["conv1"], top=["conv1"])
    net.layer.add(name="accuracy", type="Accuracy", bottom=["fc", "label_mnist_1_split_0"],
                  top=["accuracy"])
    net.layer.add(name="loss", type="SoftmaxWithLoss", bottom=["fc", "label_mnist_1_split_1"],
                  top=["loss"])
    return net


def _v1_caffemodel(weights: dict[str, list[np.ndarray]]) -> caffe_pb2.NetParameter:
    """A V1 .caffemodel (BVLC's 2014 model-zoo files): `layers` with enum types, blobs_lr and
    weight_decay lists, data-layer transformation fields, and every blob 4-d legacy."""
    net = caffe_pb2.NetParameter(name="small")
    data = net.layers.add(name="data", type=V1.DATA, top=["data", "label"])
    data.data_param.source = "train_lmdb"
    data.data_param.scale = 0.00390625
    conv = net.layers.add(name="conv1", type=V1.CONVOLUTION, bottom=["data"], top=["conv1"],
                          blobs_lr=[1, 2], weight_decay=[1, 0])
    conv.convolution_param.num_output = 4
    conv.convolution_param.kernel_size.append(3)
    net.layers.add(name="relu1", type=V1.RELU, bottom=["conv1"], top=["conv1"])
    pool = net.layers.add(name="pool1", type=V1.POOLING, bottom=["conv1"], top=["pool1"])
    pool.pooling_param.kernel_size = 2
    pool.pooling_param.stride = 2
    fc = net.layers.add(name="fc", type=V1.INNER_PRODUCT, bottom=["pool1"], top=["fc"],
                        blobs_lr=[1, 2], weight_decay=[1, 0])
    fc.inner_product_param.num_output = 5
    net.layers.add(name="loss", type=V1.SOFTMAX_LOSS, bottom=["fc", "label"], top=["loss"])
    for layer in (conv, fc):
        for a in weights[layer.name]:
            layer.blobs.append(_blob(a, _legacy_dims(a)))
    return net


def _assert_loaded(net: Net, weights: dict[str, list[np.ndarray]]) -> None:
    for name, arrays in weights.items():
        for blob, a in zip(net.params[name], arrays, strict=True):
            assert tuple(blob.shape) == a.shape
            np.testing.assert_array_equal(np.asarray(blob.data), a)


@pytest.fixture
def deploy(tmp_path):
    path = tmp_path / "deploy.prototxt"
    path.write_text(DEPLOY)
    return path


@pytest.mark.parametrize("legacy", [False, True], ids=["shape-dims", "legacy-4d-dims"])
def test_bvlc_caffemodel_loads_by_layer_name(tmp_path, deploy, legacy):
    """A Caffe-trained train_val .caffemodel loads into a deploy net (pycaffe's
    Net(def, weights, phase) and copy_from): learned layers by name, data/split/loss/accuracy
    layers ignored, blobs stored with shape dims or with legacy num/channels/height/width
    (the InnerProduct weight as 1x1x5x36), and double_data read as Caffe's FromProto does."""
    weights = _trained()
    path = tmp_path / "trained.caffemodel"
    path.write_bytes(_current_caffemodel(weights, legacy, double_layer="fc")
                     .SerializeToString())
    _assert_loaded(Net(str(deploy), str(path), TEST), weights)
    net = Net(str(deploy), TEST)
    net.copy_from(path)
    _assert_loaded(net, weights)


def test_v1_caffemodel_with_legacy_shapes_loads(tmp_path, deploy):
    """A V1 .caffemodel is upgraded on load as Caffe does (enum types, blobs_lr), and its 4-d
    legacy blobs fill the current-format net's 4-d, 2-d and 1-d parameters; the loaded net
    computes exactly what the same weights give from a current-format file."""
    weights = _trained()
    old, new = tmp_path / "v1.caffemodel", tmp_path / "current.caffemodel"
    old.write_bytes(_v1_caffemodel(weights).SerializeToString())
    new.write_bytes(_current_caffemodel(weights).SerializeToString())
    from_v1 = Net(str(deploy), str(old), TEST)
    _assert_loaded(from_v1, weights)
    x = np.random.default_rng(1).standard_normal((2, 3, 8, 8)).astype(np.float32)
    expected = np.array(Net(str(deploy), str(new), TEST).forward(data=x)["prob"])
    np.testing.assert_array_equal(from_v1.forward(data=x)["prob"], expected)


def test_v1_deploy_definition_and_v1_weights(tmp_path):
    """The fully legacy pair, a V1 deploy prototxt with input/input_dim fields and a V1
    .caffemodel, loads: both are upgraded and every learned layer matches by name."""
    weights = _trained()
    model, path = tmp_path / "deploy_v1.prototxt", tmp_path / "v1.caffemodel"
    model.write_text(DEPLOY_V1)
    path.write_bytes(_v1_caffemodel(weights).SerializeToString())
    net = Net(str(model), str(path), TEST)
    assert net.inputs == ["data"] and tuple(net.blobs["prob"].shape) == (2, 5)
    _assert_loaded(net, weights)


def test_legacy_shape_mismatch_names_the_layer(tmp_path, deploy):
    """A legacy blob that does not fit (fc weights 1x1x5x35 for a net needing 5x36) is a
    ShapeError naming the layer and both shapes, as Caffe's ShapeEquals check refuses it."""
    weights = _trained()
    weights["fc"][0] = weights["fc"][0][:, :35]
    path = tmp_path / "v1.caffemodel"
    path.write_bytes(_v1_caffemodel(weights).SerializeToString())
    with pytest.raises(ShapeError, match=r"layer 'fc'.*\(1, 1, 5, 35\).*\(5, 36\)"):
        Net(str(deploy), str(path), TEST)


def test_resnet_style_statistics_blobs_load(tmp_path):
    """BatchNorm's mean and variance sums (C,) and moving-average factor (1,), and Scale's
    scale and bias (C,), load from a Caffe (ResNet-era) .caffemodel into the deploy net."""
    rng = np.random.default_rng(2)
    values = {"conv1": [rng.standard_normal((4, 3, 3, 3)).astype(np.float32)],
              "bn1": [rng.standard_normal(4).astype(np.float32),
                      rng.uniform(1, 2, 4).astype(np.float32), np.array([999.98], np.float32)],
              "scale1": [rng.standard_normal(4).astype(np.float32),
                         rng.standard_normal(4).astype(np.float32)]}
    param = caffe_pb2.NetParameter(name="resnet")
    for name, arrays in values.items():
        layer = param.layer.add(name=name, type={"conv1": "Convolution", "bn1": "BatchNorm",
                                                 "scale1": "Scale"}[name])
        layer.blobs.extend(_blob(a) for a in arrays)
    model, path = tmp_path / "deploy.prototxt", tmp_path / "resnet.caffemodel"
    model.write_text(DEPLOY_BN)
    path.write_bytes(param.SerializeToString())
    _assert_loaded(Net(str(model), str(path), TEST), values)


# -- brewnet's files, read at the wire level with BVLC caffe.proto's field numbers ------------
def _varint(buf: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, i


def _fields(buf: bytes) -> list[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) of each field of one encoded protobuf message."""
    out, i = [], 0
    while i < len(buf):
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 2:
            size, i = _varint(buf, i)
            value, i = buf[i:i + size], i + size
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, i = buf[i:i + size], i + size
        else:
            raise AssertionError(f"wire type {wire} (groups) in a Caffe message")
        out.append((number, wire, value))
    return out


def _packed_varints(buf: bytes) -> list[int]:
    out, i = [], 0
    while i < len(buf):
        value, i = _varint(buf, i)
        out.append(value)
    return out


# BVLC caffe.proto field numbers.
NET_NAME, NET_LAYER, NET_V1_LAYERS = 1, 100, 2
LAYER_NAME, LAYER_TYPE, LAYER_BLOBS, LAYER_PHASE = 1, 2, 7, 10
BLOB_DATA, BLOB_SHAPE = 5, 7
SHAPE_DIM = 1


def test_brewnet_caffemodel_has_bvlc_layout(tmp_path):
    """Net.save writes what BVLC Caffe's Net::ToProto writes: a NetParameter with one `layer`
    (field 100, never V1 `layers`) per layer run, in order, each with its name, type and phase;
    each parameter as a BlobProto with `shape` (field 7, packed int64 dims) and packed float32
    `data` (field 5) only: no legacy dims, no diff, no double data."""
    model = tmp_path / "bn.prototxt"
    model.write_text(DEPLOY_BN)
    net = Net(str(model), TEST)
    net.params["bn1"][2].data[...] = 3.0
    path = tmp_path / "brewnet.caffemodel"
    net.save(path)
    top = _fields(path.read_bytes())
    assert {number for number, _, _ in top} == {NET_NAME, NET_LAYER}
    layers = [value for number, _, value in top if number == NET_LAYER]
    assert len(layers) == len(net.layers)
    for layer_bytes, (name, layer) in zip(layers, net.layer_dict.items(), strict=True):
        fields = _fields(layer_bytes)
        by_number = {number: value for number, _, value in fields}
        assert by_number[LAYER_NAME].decode() == name
        assert by_number[LAYER_TYPE].decode() == layer.type
        assert by_number[LAYER_PHASE] == caffe_pb2.TEST
        blobs = [value for number, _, value in fields if number == LAYER_BLOBS]
        assert len(blobs) == len(layer.blobs)
        for blob_bytes, blob in zip(blobs, layer.blobs, strict=True):
            blob_fields = _fields(blob_bytes)
            numbers = [number for number, _, _ in blob_fields]
            # no legacy num/channels/height/width (1-4), diff (6), double data/diff (8, 9)
            assert sorted(numbers) == [BLOB_DATA, BLOB_SHAPE]
            values = dict((number, value) for number, _, value in blob_fields)
            (dims,) = [v for n, w, v in _fields(values[BLOB_SHAPE]) if n == SHAPE_DIM and w == 2]
            assert _packed_varints(dims) == list(blob.shape)
            data = np.frombuffer(values[BLOB_DATA], dtype="<f4")
            np.testing.assert_array_equal(data, np.asarray(blob.data).ravel())
