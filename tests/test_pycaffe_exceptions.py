"""Where pycaffe raises a built-in exception, brewnet raises an error that is both a
BrewnetError and that built-in, so pycaffe code's ``except TypeError`` and ``assertRaises``
keep working (issue 16). One test per raise site; each names the line of BVLC/caffe
(commit 9b89154) it mirrors."""

from pathlib import Path

import numpy as np
import pytest

import brewnet as caffe
from brewnet import coord_map as cm
from brewnet import draw
from brewnet import layers as L
from brewnet.errors import (
    BrewnetError,
    DataError,
    NetError,
    ParseError,
    ShapeError,
    SolverError,
    WeightsError,
    pycaffe_kind,
)
from brewnet.proto import caffe_pb2


def raised(builtin: type[Exception], kind: type[BrewnetError], fn, *args, **kwargs) -> str:
    """Call ``fn``; it must raise an error that is both ``builtin`` and ``kind``; return
    its one-line text."""
    with pytest.raises(builtin) as info:
        fn(*args, **kwargs)
    assert isinstance(info.value, kind), type(info.value).__mro__
    text = str(info.value)
    assert "\n" not in text
    return text


def test_pycaffe_kind_is_one_class_per_pair():
    """The same pair gives the same class, whose MRO puts brewnet's error before the
    built-in, and keeps the brewnet error's fields."""
    cls = pycaffe_kind(NetError, TypeError)
    assert cls is pycaffe_kind(NetError, TypeError)
    assert cls.__mro__[1:4] == (NetError, BrewnetError, TypeError)
    error = cls("no good", layer="conv1", layer_type="Convolution")
    assert str(error) == "layer 'conv1' (Convolution): no good" and error.layer == "conv1"


# -- net_spec.py ---------------------------------------------------------------------------
def test_netspec_bottom_not_a_top_is_type_error():
    """net_spec.py:108 (Function.__init__): a bottom that is not a Top (here the tuple an
    ntop=2 layer returns) is TypeError('%s input %d is not a Top (type is %s)')."""
    pair = L.DummyData(ntop=2, shape=[dict(dim=[1])] * 2)
    text = raised(TypeError, NetError, L.Silence, pair, ntop=0)
    assert text.startswith("Silence input 0 is not a Top (type is <class 'tuple'>)")
    assert "unpack the tuple" in text


# -- io.py ---------------------------------------------------------------------------------
def test_blobproto_with_data_but_no_shape_is_value_error():
    """io.py:34 (blobproto_to_array): reshaping values to an empty shape.dim is numpy's
    ValueError."""
    blob = caffe_pb2.BlobProto()
    blob.data.extend([1.0, 2.0])
    text = raised(ValueError, WeightsError, caffe.io.blobproto_to_array, blob)
    assert "holds 2 values but declares no shape" in text
    blob.shape.dim.extend([3])  # a shape that disagrees with the values: the same kind
    assert "declares shape (3,)" in raised(ValueError, WeightsError,
                                           caffe.io.blobproto_to_array, blob)


def test_array_to_datum_of_non_3d_array_is_value_error():
    """io.py:72 (array_to_datum): ValueError('Incorrect array shape.')."""
    text = raised(ValueError, DataError, caffe.io.array_to_datum, np.zeros((2, 2)))
    assert "(C, H, W)" in text and "(2, 2)" in text


def test_transformer_mean_that_does_not_fit_is_value_error():
    """io.py:251 and io.py:258 (Transformer.set_mean): 'Mean channels incompatible with
    input.' and 'Mean shape invalid' are ValueErrors."""
    t = caffe.io.Transformer({"data": (1, 3, 4, 4)})
    assert "2 channels" in raised(ValueError, BrewnetError, t.set_mean, "data", np.zeros(2))
    assert "does not fit" in raised(ValueError, BrewnetError, t.set_mean, "data",
                                    np.zeros((1, 1, 3, 4, 4)))


def test_transformer_refusals_are_exceptions():
    """io.py:119, io.py:200 and io.py:218 raise plain Exception (an unknown input, a
    transpose or channel swap of the wrong length): a BrewnetError is one."""
    t = caffe.io.Transformer({"data": (1, 3, 4, 4)})
    for call in (lambda: t.set_raw_scale("image", 255), lambda: t.set_transpose("data", (1, 0)),
                 lambda: t.set_channel_swap("data", (1, 0))):
        with pytest.raises(Exception) as info:  # noqa: B017 - pycaffe's own type
            call()
        assert isinstance(info.value, BrewnetError)


# -- pycaffe.py ----------------------------------------------------------------------------
def test_forward_keywords_that_are_not_the_inputs_are_exceptions(tmp_path):
    """pycaffe.py:123 and pycaffe.py:171 raise plain Exception when the keyword arrays are
    not exactly the net's inputs (outputs for backward): a BrewnetError is one."""
    net = input_net(tmp_path)
    with pytest.raises(Exception, match="must name exactly") as info:
        net.forward(image=np.zeros((2, 1, 3, 3), np.float32))
    assert isinstance(info.value, NetError)
    with pytest.raises(Exception, match="must name exactly"):
        net.backward(data=np.zeros((2, 1, 3, 3), np.float32))


def input_net(tmp_path: Path) -> caffe.Net:
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[2, 1, 3, 3]))
    n.out = L.ReLU(n.data)
    path = tmp_path / "net.prototxt"
    path.write_text(str(n.to_proto()))
    return caffe.Net(str(path), caffe.TEST)


def test_forward_array_of_wrong_shape_is_value_error_naming_both_shapes(tmp_path):
    """pycaffe.py:129 (_Net_forward): ``self.blobs[in_].data[...] = blob`` fails with numpy's
    ValueError when the array does not fit; brewnet's names the blob and both shapes."""
    net = input_net(tmp_path)
    text = raised(ValueError, ShapeError, net.forward, data=np.zeros((2, 9), np.float32))
    assert "'data'" in text and "(2, 9)" in text and "(2, 1, 3, 3)" in text
    # a batch-size mismatch (pycaffe.py:128, 'Input is not batch sized') is the same kind
    assert "batch size" in raised(ValueError, ShapeError, net.forward,
                                  data=np.zeros((3, 1, 3, 3), np.float32))
    # an array that broadcasts is still accepted, as numpy's assignment accepts it
    assert net.forward(data=np.ones((2, 1, 1, 3), np.float32))["out"].sum() == 18


def test_forward_array_of_wrong_dtype_is_value_error_naming_both_shapes(tmp_path):
    """pycaffe.py:129: numpy cannot write strings into the float32 blob (ValueError);
    brewnet says so before trying, with the blob's name and both shapes."""
    net = input_net(tmp_path)
    text = raised(ValueError, NetError, net.forward, data=np.full((2, 1, 3, 3), "x"))
    assert "'data'" in text and "<U1" in text and text.count("(2, 1, 3, 3)") == 2


def test_backward_diff_of_wrong_shape_is_value_error(tmp_path):
    """pycaffe.py:177 (_Net_backward): ``self.blobs[top].diff[...] = diff``, as forward."""
    net = input_net(tmp_path)
    net.forward()
    text = raised(ValueError, ShapeError, net.backward, out=np.zeros((2, 4), np.float32))
    assert "'out'" in text and "(2, 4)" in text


# -- coord_map.py --------------------------------------------------------------------------
def test_coord_map_of_unconnected_tops_is_runtime_error():
    """coord_map.py:168 (coord_map_from_to): RuntimeError('Could not compute map between
    tops; are they connected by spatial layers?')."""
    a = L.Input(shape=dict(dim=[1, 1, 8, 8]))
    b = L.Input(shape=dict(dim=[1, 1, 8, 8]))
    assert "share no input" in raised(RuntimeError, NetError, cm.coord_map_from_to, a, b)
    assert "share no input" in raised(RuntimeError, NetError, cm.crop, a, b)


def test_crop_with_scale_mismatch_is_assertion_error():
    """coord_map.py:179 (crop): assert (a == 1).all(), 'scale mismatch on crop'."""
    a = L.Input(shape=dict(dim=[1, 1, 8, 8]))
    pooled = L.Pooling(a, kernel_size=2, stride=2)
    assert "scales differ" in raised(AssertionError, NetError, cm.crop, pooled, a)


def test_crop_with_negative_offset_is_assertion_error():
    """coord_map.py:180 (crop): assert (b <= 0).all(), 'cannot crop negative offset'."""
    a = L.Input(shape=dict(dim=[1, 1, 8, 8]))
    smaller = L.Convolution(a, num_output=1, kernel_size=3)
    assert "negative offset" in raised(AssertionError, NetError, cm.crop, smaller, a)


def test_crop_with_fractional_offset_is_assertion_error():
    """coord_map.py:181 (crop): assert (np.round(b) == b).all(), 'cannot crop noninteger
    offset'."""
    a = L.Input(shape=dict(dim=[1, 1, 8, 8]))
    even = L.Convolution(a, num_output=1, kernel_size=2)
    assert "whole number" in raised(AssertionError, NetError, cm.crop, a, even)


# -- draw.py -------------------------------------------------------------------------------
def test_lr_mult_of_a_layer_without_one_is_value_error():
    """draw.py:79 (get_layer_lr_mult): ValueError('%s layers do not have a learning rate
    multiplier') for layers other than Convolution, Deconvolution and InnerProduct."""
    relu = caffe_pb2.LayerParameter(name="relu1", type="ReLU")
    text = raised(ValueError, NetError, draw.get_layer_lr_mult, relu)
    assert "ReLU layers do not have a learning rate multiplier" in text


def test_lr_mult_of_more_than_two_param_specs_is_value_error():
    """draw.py:98 (get_layer_lr_mult): ValueError('Could not parse the learning rate
    multiplier') when a layer has more than two param specs."""
    conv = caffe_pb2.LayerParameter(name="conv1", type="Convolution")
    for _ in range(3):
        conv.param.add(lr_mult=1)
    assert "3 param specs" in raised(ValueError, NetError, draw.get_layer_lr_mult, conv)


def test_drawing_a_layer_with_include_and_exclude_is_value_error():
    """draw.py:222 (get_pydot_graph with a phase): ValueError('layer ... has both include
    and exclude specified.')."""
    net = caffe_pb2.NetParameter()
    layer = net.layer.add(name="relu1", type="ReLU", bottom=["x"], top=["x"])
    layer.include.add(phase=caffe.TRAIN)
    layer.exclude.add(phase=caffe.TEST)
    pytest.importorskip("pydot")
    text = raised(ValueError, NetError, draw.get_pydot_graph, net, "LR", phase=caffe.TRAIN)
    assert "include and exclude" in text


# -- detector.py ---------------------------------------------------------------------------
def test_selective_search_is_import_error():
    """detector.py:115 (detect_selective_search): ``import
    selective_search_ijcv_with_python`` fails with ImportError where it is not installed;
    brewnet never has it."""
    detector = caffe.Detector.__new__(caffe.Detector)  # the refusal needs no net
    text = raised(ImportError, BrewnetError, detector.detect_selective_search, ["a.jpg"])
    assert "detect_windows" in text


# -- _caffe.cpp (the C++ bindings) ---------------------------------------------------------
def test_net_of_missing_file_is_runtime_error(tmp_path):
    """_caffe.cpp:81 (CheckFile): RuntimeError('Could not open file ...')."""
    missing = tmp_path / "missing.prototxt"
    text = raised(RuntimeError, ParseError, caffe.Net, str(missing), caffe.TEST)
    assert str(missing) in text and "cannot open file" in text


def memory_net(tmp_path: Path, first: str = "MemoryData") -> caffe.Net:
    n = caffe.NetSpec()
    if first == "MemoryData":
        n.data, n.label = L.MemoryData(batch_size=2, channels=1, height=2, width=2, ntop=2)
    else:
        n.data = L.Input(shape=dict(dim=[2, 1, 2, 2]))
    n.out = L.ReLU(n.data)
    path = tmp_path / "net.prototxt"
    path.write_text(str(n.to_proto()))
    return caffe.Net(str(path), caffe.TEST)


def test_set_input_arrays_refusals_are_runtime_errors(tmp_path):
    """_caffe.cpp:89-104 (CheckContiguousArray), :173, :186 and :190 (Net_SetInputArrays):
    each refusal is a std::runtime_error, which Python sees as RuntimeError."""
    net = memory_net(tmp_path)
    labels = np.zeros(2, np.float32)
    bad = [np.zeros((2, 1, 2), np.float32),                   # not 4-d
           np.zeros((2, 1, 2, 2), np.float64),                # not float32
           np.zeros((2, 1, 2, 4), np.float32)[..., ::2],      # not C-contiguous
           np.zeros((2, 3, 2, 2), np.float32),                # wrong channels
           np.zeros((4, 1, 2, 2), np.float32),                # first dims differ
           ]
    for data in bad:
        raised(RuntimeError, NetError, net.set_input_arrays, data, labels)
    odd = np.zeros((3, 1, 2, 2), np.float32)
    assert "multiple of batch_size" in raised(RuntimeError, NetError, net.set_input_arrays,
                                              odd, np.zeros(3, np.float32))
    text = raised(RuntimeError, NetError, memory_net(tmp_path, "Input").set_input_arrays,
                  odd, labels)
    assert "MemoryData" in text


def test_blob_reshape_with_non_integer_is_type_error():
    """_caffe.cpp:251 (Blob_Reshape): ``bp::extract<int>`` of a float or a str fails with
    TypeError; brewnet no longer truncates 2.5 to 2 or converts "2"."""
    blob = caffe.Blob((1,))
    text = raised(TypeError, ShapeError, blob.reshape, 2.5, 1, 8, 8)
    assert "2.5 is a float" in text
    assert "'2' is a str" in raised(TypeError, ShapeError, blob.reshape, "2", 1)
    assert "is a float" in raised(TypeError, ShapeError, blob.reshape, (2.0, 1))
    blob.reshape(np.int64(2), 3)  # integers of any kind are fine
    blob.reshape((2, 3))
    assert blob.shape == [2, 3]


def test_solver_step_with_non_integer_is_type_error(tmp_path):
    """_caffe.cpp:508 (``.def("step", &Solver<Dtype>::Step)``): Boost.Python's
    ArgumentError, a TypeError, for step("2"); brewnet no longer converts it."""
    n = caffe.NetSpec()
    n.data, n.label = L.DummyData(shape=[dict(dim=[2, 3]), dict(dim=[2])], ntop=2)
    n.ip = L.InnerProduct(n.data, num_output=2)
    n.loss = L.SoftmaxWithLoss(n.ip, n.label)
    (tmp_path / "train.prototxt").write_text(str(n.to_proto()))
    (tmp_path / "solver.prototxt").write_text(
        f'train_net: "{tmp_path / "train.prototxt"}" base_lr: 0.1 lr_policy: "fixed" '
        f'max_iter: 2 snapshot_prefix: "{tmp_path / "s"}"')
    solver = caffe.SGDSolver(str(tmp_path / "solver.prototxt"))
    text = raised(TypeError, SolverError, solver.step, "2")
    assert "step('2')" in text and "is a str" in text
    raised(TypeError, SolverError, solver.step, 1.0)
    assert solver.iter == 0
    solver.step(np.int64(1))
    assert solver.iter == 1
