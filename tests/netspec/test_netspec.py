"""NetSpec (brewnet/netspec): pycaffe's net_spec semantics."""

from __future__ import annotations

import pytest

from brewnet.errors import NetError
from brewnet.netspec import Function, NetSpec, Top, assign_proto, param_name_dict, to_proto
from brewnet.netspec import layers as L
from brewnet.netspec import params as P
from brewnet.proto import caffe_pb2
from brewnet.proto.textio import parse_text


def test_lenet_layers_tops_and_params(tutorial):
    """Layers come out in dependency order, named after their attributes, with kwargs routed
    to <type>_param and *param keys to the layer; in-place ReLU reuses its bottom's name."""
    net = tutorial.lenet("mnist/mnist_train_lmdb", 64)
    got = [(layer.name, layer.type, list(layer.bottom), list(layer.top)) for layer in net.layer]
    assert got == [
        ("data", "Data", [], ["data", "label"]),
        ("conv1", "Convolution", ["data"], ["conv1"]),
        ("pool1", "Pooling", ["conv1"], ["pool1"]),
        ("conv2", "Convolution", ["pool1"], ["conv2"]),
        ("pool2", "Pooling", ["conv2"], ["pool2"]),
        ("fc1", "InnerProduct", ["pool2"], ["fc1"]),
        ("relu1", "ReLU", ["fc1"], ["fc1"]),
        ("score", "InnerProduct", ["fc1"], ["score"]),
        ("loss", "SoftmaxWithLoss", ["score", "label"], ["loss"]),
    ]
    data, conv1, pool1 = net.layer[0], net.layer[1], net.layer[2]
    assert data.data_param.source == "mnist/mnist_train_lmdb"
    assert data.data_param.batch_size == 64
    assert data.data_param.backend == caffe_pb2.DataParameter.LMDB
    assert data.transform_param.scale == pytest.approx(1 / 255)
    assert conv1.convolution_param.num_output == 20
    assert list(conv1.convolution_param.kernel_size) == [5]  # scalar into a repeated field
    assert conv1.convolution_param.weight_filler.type == "xavier"
    assert pool1.pooling_param.pool == caffe_pb2.PoolingParameter.MAX
    assert net.layer[5].inner_product_param.num_output == 500


def test_printed_proto_parses_back(tutorial):
    """str(n.to_proto()) is valid prototxt that parses back to the same NetParameter."""
    net = tutorial.lenet("train_lmdb", 64)
    assert parse_text(str(net), caffe_pb2.NetParameter()) == net


def test_params_namespace_looks_up_enums():
    """P.X.NAME is enum value NAME of XParameter; bad names say what is valid."""
    assert P.Pooling.MAX == caffe_pb2.PoolingParameter.MAX
    assert P.Pooling.AVE == caffe_pb2.PoolingParameter.AVE
    assert P.Data.LMDB == caffe_pb2.DataParameter.LMDB
    assert P.Phase.TEST == caffe_pb2.TEST
    with pytest.raises(AttributeError, match="did you mean 'MAX'"):
        _ = P.Pooling.MAXX
    with pytest.raises(AttributeError, match="no message 'PoolinParameter'"):
        _ = P.Poolin


def test_ntop_zero_returns_the_function():
    """ntop=0 returns the Function (a layer with no tops), auto-named <Type><k>."""
    n = NetSpec()
    n.data = L.DummyData(shape=dict(dim=[2, 3]))
    silence = L.Silence(n.data, ntop=0)
    assert isinstance(silence, Function)
    n.silence = silence
    net = n.to_proto()
    assert (net.layer[1].name, list(net.layer[1].top)) == ("silence", [])
    assert to_proto(L.Silence(L.DummyData(shape=dict(dim=[1])), ntop=0)).layer[1].name == \
        "Silence1"


def test_ntop_many_returns_tuple_named_per_attribute():
    """ntop>1 returns a tuple of Tops, each top named after its attribute; the layer after
    the first."""
    n = NetSpec()
    n.x = L.DummyData(shape=dict(dim=[4, 6]))
    tops = L.Slice(n.x, ntop=3, slice_point=[1, 3])
    assert isinstance(tops, tuple) and len(tops) == 3 and all(isinstance(t, Top) for t in tops)
    n.a, n.b, n.c = tops
    layer = n.to_proto().layer[1]
    assert (layer.name, list(layer.top)) == ("a", ["a", "b", "c"])
    assert list(layer.slice_param.slice_point) == [1, 3]


def test_list_and_dict_assignment():
    """A list fills a repeated field, a list of dicts repeated messages, a dict a message;
    non-`param` kwargs missing from <type>_param fall back to LayerParameter fields."""
    top = L.Convolution(L.Input(shape=[dict(dim=[1, 1, 5, 5])]), num_output=2,
                        kernel_size=[3], param=[dict(lr_mult=1), dict(lr_mult=2, decay_mult=0)],
                        bias_filler=dict(type="constant", value=0.1),
                        include=dict(phase=caffe_pb2.TEST), loss_weight=[0.5],
                        propagate_down=[False])
    net = to_proto(top)
    inp, conv = net.layer
    assert list(inp.input_param.shape[0].dim) == [1, 1, 5, 5]
    assert [(p.lr_mult, p.decay_mult) for p in conv.param] == [(1, 1), (2, 0)]
    assert conv.convolution_param.bias_filler.value == pytest.approx(0.1)
    assert conv.include[0].phase == caffe_pb2.TEST
    assert list(conv.loss_weight) == [0.5] and list(conv.propagate_down) == [False]


def test_enum_by_name_and_shared_param_messages():
    """Enum fields accept their value names; Deconvolution uses convolution_param and
    SoftmaxWithLoss softmax_param (Caffe's shared parameter messages)."""
    x = L.Input(shape=dict(dim=[1, 2, 3, 3]))
    net = to_proto(L.Pooling(x, pool="AVE", kernel_size=2),
                   L.Deconvolution(x, num_output=3, kernel_size=2),
                   L.SoftmaxWithLoss(x, x, axis=1, loss_param=dict(ignore_label=-1)))
    pool, deconv, loss = net.layer[1:]
    assert pool.pooling_param.pool == caffe_pb2.PoolingParameter.AVE
    assert deconv.convolution_param.num_output == 3
    assert loss.softmax_param.axis == 1 and loss.loss_param.ignore_label == -1
    assert param_name_dict()["InnerProduct"] == "inner_product"


def test_auto_naming():
    """Without a NetSpec, layers and tops are named <Type><k>, counted per type."""
    data = L.DummyData(shape=dict(dim=[2, 4]))
    ip1 = L.InnerProduct(data, num_output=3)
    ip2 = L.InnerProduct(ip1, num_output=2)
    net = ip2.to_proto()
    assert [(layer.name, list(layer.top)) for layer in net.layer] == [
        ("DummyData1", ["DummyData1"]), ("InnerProduct1", ["InnerProduct1"]),
        ("InnerProduct2", ["InnerProduct2"])]
    assert list(net.layer[2].bottom) == ["InnerProduct1"]


def test_shared_upstream_layer_emitted_once():
    """A layer feeding two branches appears once, before both."""
    n = NetSpec()
    n.x = L.DummyData(shape=dict(dim=[2, 4]))
    n.a = L.ReLU(n.x)
    n.b = L.Sigmoid(n.x)
    n.c = L.Eltwise(n.a, n.b)
    assert [layer.name for layer in n.to_proto().layer] == ["x", "a", "b", "c"]


def test_item_access_matches_attributes():
    """n['x'] = ... and n.x = ... are the same name table."""
    n = NetSpec()
    n["data"] = L.DummyData(shape=dict(dim=[1]))
    assert n.data is n["data"] and n.keys() == ["data"]
    with pytest.raises(AttributeError, match="no top 'dta'; did you mean 'data'"):
        _ = n.dta


def test_unknown_kwarg_names_layer_type_and_suggests():
    """A misspelt keyword fails at the call, naming the layer type and the near miss."""
    with pytest.raises(NetError, match=r"Convolution layer: unknown keyword 'kernal_size'.*"
                                       r"did you mean 'kernel_size'\?"):
        L.Convolution(L.DummyData(shape=dict(dim=[1])), kernal_size=3)
    with pytest.raises(NetError, match="PoolingParameter.pool has no value 'MAXX'"):
        L.Pooling(pool="MAXX")
    with pytest.raises(NetError, match="weight_filler is a FillerParameter message"):
        L.InnerProduct(weight_filler="xavier")
    with pytest.raises(TypeError, match=r"ReLU input 0 is not a Top \(type is <class 'str'>\); "
                                        "pass a layer's output"):
        L.ReLU("data")


def test_assign_proto_rules():
    """assign_proto: scalar → [scalar] for repeated fields, dict → message, list → repeated."""
    conv = caffe_pb2.ConvolutionParameter()
    assign_proto(conv, "pad", 1)
    assign_proto(conv, "stride", [1, 2])
    assign_proto(conv, "weight_filler", {"type": "gaussian", "std": 0.01})
    assert list(conv.pad) == [1] and list(conv.stride) == [1, 2]
    assert conv.weight_filler.std == pytest.approx(0.01)


def test_brewnet_layers_is_pycaffe_L():
    """`from brewnet import layers as L; L.Convolution(...)` builds NetSpec layers."""
    from brewnet import layers as package_layers

    top = package_layers.Convolution(L.DummyData(shape=dict(dim=[1])), num_output=1)
    assert isinstance(top, Top) and top.fn.type_name == "Convolution"
