"""The compiler (Caffe's Net::Init) and pycaffe's Net API on small nets built from prototxt."""

import numpy as np
import pytest
from google.protobuf import text_format

import brewnet
from brewnet.errors import NetError, ShapeError, WeightsError
from brewnet.net import TEST, TRAIN, Net
from brewnet.proto import caffe_pb2

INPUTS = """
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 4 dim: 3 } } }
layer { name: "y" type: "Input" top: "y" input_param { shape { dim: 4 } } }
"""


def ip(name, bottom, n, extra=""):
    return (f'layer {{ name: "{name}" type: "InnerProduct" bottom: "{bottom}" top: "{name}" '
            f'{extra} inner_product_param {{ num_output: {n} weight_filler {{ type: "gaussian" '
            f'std: 0.5 }} bias_filler {{ type: "gaussian" std: 0.5 }} }} }}\n')


def net_from(text: str, phase=TRAIN) -> Net:
    return Net(text_format.Parse(text, caffe_pb2.NetParameter()), phase)


def feed(net, seed=0):
    rng = np.random.default_rng(seed)
    net.blobs["x"].data[...] = rng.standard_normal((4, 3))
    net.blobs["y"].data[...] = rng.integers(0, 5, 4)


MLP = INPUTS + ip("ip1", "x", 6) + """
layer { name: "relu" type: "ReLU" bottom: "ip1" top: "ip1" }
""" + ip("ip2", "ip1", 5) + """
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "y" top: "loss" }
"""


def test_blob_and_param_tables_as_pycaffe_lists_them():
    """net.blobs lists blobs in creation order (in-place tops are not new blobs), the loss is
    a 0-d blob, net.params lists only layers with parameters, outputs are Caffe's."""
    net = net_from(MLP)
    assert [(k, tuple(v.data.shape)) for k, v in net.blobs.items()] == [
        ("x", (4, 3)), ("y", (4,)), ("ip1", (4, 6)), ("ip2", (4, 5)), ("loss", ())]
    assert [(k, [tuple(b.data.shape) for b in v]) for k, v in net.params.items()] == [
        ("ip1", [(6, 3), (6,)]), ("ip2", [(5, 6), (5,)])]
    assert net.inputs == ["x", "y"] and net.outputs == ["loss"]
    assert net.layers[3].type == "ReLU" and net.top_names["relu"] == ["ip1"]
    assert net.bottom_names["loss"] == ["ip2", "y"]
    assert net.blob_loss_weights["loss"] == 1.0 and net.blob_loss_weights["ip2"] == 0.0


def test_in_place_layer_shares_the_blob():
    """top == bottom makes the ReLU write into the same Blob object."""
    net = net_from(MLP)
    relu = net._layer_names.index("relu")
    assert net.top_vecs[relu][0] is net.bottom_vecs[relu][0] is net.blobs["ip1"]


def numeric_input_grad(net, eps=1e-2):
    x = net.blobs["x"].data
    grad = np.zeros_like(x, dtype=np.float64)
    for idx in np.ndindex(x.shape):
        old = float(x[idx])
        x[idx] = old + eps
        plus = net.forward_loss()
        x[idx] = old - eps
        minus = net.forward_loss()
        x[idx] = old
        grad[idx] = (plus - minus) / (2 * eps)
    return grad


def test_whole_net_gradient_matches_numerical_with_force_backward():
    """force_backward makes the net compute the input's gradient; it equals the numerical
    gradient of the net's loss (checks wiring, in-place ReLU and loss weight together)."""
    brewnet.set_random_seed(8)
    net = net_from("force_backward: true\n" + MLP)
    feed(net, 8)
    weights, bias = net.params["ip1"][0].data, net.params["ip1"][1].data
    # Precondition: no ReLU input within reach of its kink at 0 (seed chosen for that).
    assert np.abs(net.blobs["x"].data @ weights.T + bias).min() > 0.2
    net.forward_backward()
    analytic = net.blobs["x"].diff.copy()
    assert np.abs(analytic).sum() > 0
    np.testing.assert_allclose(analytic, numeric_input_grad(net), rtol=2e-2, atol=2e-3)


def test_split_sums_gradients_of_all_consumers():
    """A blob read by two layers gets a Caffe-named Split; its gradient is the sum of both
    consumers' gradients (checked numerically), and each loss counts with its weight."""
    text = "force_backward: true\n" + INPUTS + ip("a", "x", 5) + ip("b", "x", 5) + """
    layer { name: "la" type: "SoftmaxWithLoss" bottom: "a" bottom: "y" top: "la" }
    layer { name: "lb" type: "SoftmaxWithLoss" bottom: "b" bottom: "y" top: "lb"
            loss_weight: 0.5 }
    """
    net = net_from(text)
    assert "x_x_0_split" in net._layer_names and "y_y_0_split" in net._layer_names
    assert list(net.blobs)[:4] == ["x", "x_x_0_split_0", "x_x_0_split_1", "y"]
    feed(net)
    loss = net.forward_backward()
    assert loss == pytest.approx(float(net.blobs["la"].data) + 0.5 * float(net.blobs["lb"].data),
                                 rel=1e-6)
    np.testing.assert_allclose(net.blobs["x"].diff, numeric_input_grad(net), rtol=2e-2,
                               atol=2e-3)


def test_backward_plan():
    """Inputs get no gradient without force_backward; a layer feeding only a non-loss output
    (accuracy) is skipped; lr_mult 0 params get no gradient; propagate_down: false stops
    the gradient at that bottom."""
    text = INPUTS + ip("frozen", "x", 6, 'param { lr_mult: 0 } param { lr_mult: 0 }') + \
        ip("side", "x", 5) + ip("ip2", "frozen", 5) + """
    layer { name: "acc" type: "Accuracy" bottom: "side" bottom: "y" top: "acc" }
    layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "y" top: "loss" }
    """
    net = net_from(text)
    need = dict(zip(net._layer_names, net.layer_need_backward, strict=True))
    assert need["frozen"] is False  # no learnable params and its input needs no gradient
    assert need["side"] is False and need["acc"] is False
    assert need["ip2"] is True and need["loss"] is True
    assert net.bottom_need_backward[net._layer_names.index("ip2")] == [False]
    forced = net_from("force_backward: true\n" + INPUTS + ip("ip", "x", 5) + """
    layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "y" top: "loss" }""")
    feed(forced)
    forced.forward_backward()
    assert np.abs(forced.blobs["x"].diff).sum() > 0  # force_backward reaches the input
    stop = net_from(INPUTS + ip("ip1", "x", 6) + ip("ip2", "ip1", 5, "propagate_down: false")
                    + """
    layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "y" top: "loss" }""")
    need = dict(zip(stop._layer_names, stop.layer_need_backward, strict=True))
    assert need["ip1"] is False and need["ip2"] is True  # nothing below ip2 reaches the loss
    feed(stop)
    stop.clear_param_diffs()
    stop.forward_backward()
    assert np.abs(stop.params["ip2"][0].diff).sum() > 0
    assert np.all(stop.params["ip1"][0].diff == 0)


def test_shared_parameters_by_name():
    """Two layers naming the same ParamSpec share one Blob; it is learnable once; its
    gradient is the sum of both uses."""
    text = INPUTS + ip("a", "x", 5, 'param { name: "w" } param { name: "b" }') + \
        ip("b", "x", 5, 'param { name: "w" } param { name: "b" }') + """
    layer { name: "la" type: "SoftmaxWithLoss" bottom: "a" bottom: "y" top: "la" }
    layer { name: "lb" type: "SoftmaxWithLoss" bottom: "b" bottom: "y" top: "lb" }"""
    net = net_from(text)
    assert net.params["a"][0] is net.params["b"][0]
    assert len(net.learnable_params) == 2
    feed(net)
    net.clear_param_diffs()
    net.forward_backward()
    np.testing.assert_allclose(net.blobs["la"].data, net.blobs["lb"].data)
    single = net_from(INPUTS + ip("a", "x", 5) + """
    layer { name: "la" type: "SoftmaxWithLoss" bottom: "a" bottom: "y" top: "la" }""")
    feed(single)
    for s, d in zip(single.params["a"], net.params["a"], strict=True):
        s.data[...] = d.data
    single.clear_param_diffs()
    single.forward_backward()
    np.testing.assert_allclose(net.params["a"][0].diff, 2 * single.params["a"][0].diff,
                               rtol=1e-5)


def test_phase_filtering_and_layer_phase():
    """Layers are kept per include/exclude rules for the net's phase."""
    text = INPUTS + ip("ip", "x", 5) + """
    layer { name: "acc" type: "Accuracy" bottom: "ip" bottom: "y" top: "acc"
            include { phase: TEST } }
    layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "y" top: "loss" }"""
    assert "acc" not in net_from(text, TRAIN)._layer_names
    test_net = net_from(text, TEST)
    assert "acc" in test_net._layer_names and test_net.outputs == ["acc", "loss"]


def test_forward_start_end_and_inputs_by_keyword():
    """forward(**inputs) copies arrays into the inputs; end= returns that layer's tops."""
    net = net_from(MLP)
    x = np.ones((4, 3), np.float32)
    out = net.forward(x=x, y=np.zeros(4, np.float32))
    assert set(out) == {"loss"} and out["loss"].shape == ()
    partial = net.forward(end="ip1")
    assert set(partial) == {"ip1"}
    with pytest.raises(NetError, match="must name exactly the net's inputs"):
        net.forward(x=x)
    again = net.forward(start="ip2")
    assert again["loss"] == pytest.approx(float(out["loss"]))


@pytest.mark.parametrize("text, match", [
    (INPUTS + 'layer { name: "c" type: "Convolutoin" bottom: "x" top: "c" }',
     "layer 'c'.*unknown layer type 'Convolutoin'; did you mean 'Convolution'"),
    (INPUTS + 'layer { name: "r" type: "ReLU" bottom: "z" top: "r" }'
     + 'layer { name: "z" type: "ReLU" bottom: "x" top: "z" }',
     "layer 'r'.*bottom 'z'.*produced later, by layer 'z'"),
    (INPUTS + 'layer { name: "r" type: "ReLU" bottom: "xx" top: "r" }',
     "bottom 'xx'.*did you mean 'x'"),
    (INPUTS + 'layer { name: "r" type: "ReLU" bottom: "x" top: "y" }',
     "top 'y' is produced by more than one layer"),
    (INPUTS + 'layer { name: "f" type: "Flatten" bottom: "x" top: "x" }',
     "cannot run in place"),
])
def test_compiler_errors_name_the_layer(text, match):
    with pytest.raises(NetError, match=match):
        net_from(text)


def test_weights_round_trip_and_shape_mismatch(tmp_path):
    """save writes a .caffemodel that copy_from (and Net(..., weights=)) loads exactly; a
    layer whose shape differs is refused with both shapes and the fix."""
    model = tmp_path / "mlp.prototxt"
    model.write_text(MLP)
    net = Net(str(model), TRAIN)
    net.save(tmp_path / "w.caffemodel")
    other = Net(str(model), str(tmp_path / "w.caffemodel"), TRAIN)  # pycaffe's legacy order
    for name in ("ip1", "ip2"):
        for a, b in zip(net.params[name], other.params[name], strict=True):
            np.testing.assert_array_equal(a.data, b.data)
    wider = tmp_path / "wider.prototxt"
    wider.write_text(MLP.replace("num_output: 6", "num_output: 7"))
    with pytest.raises(ShapeError, match=r"layer 'ip1'.*\(6, 3\).*\(7, 3\).*rename"):
        Net(str(wider), TRAIN, weights=str(tmp_path / "w.caffemodel"))
    (tmp_path / "bad.caffemodel").write_bytes(
        (tmp_path / "w.caffemodel").read_bytes()[:100])
    with pytest.raises(WeightsError, match="bad.caffemodel"):
        net.copy_from(tmp_path / "bad.caffemodel")


def test_share_with_shares_values_not_gradients():
    """share_with makes a test net read the train net's parameter values."""
    train = net_from(MLP, TRAIN)
    test = net_from(MLP, TEST)
    test.share_with(train)
    train.params["ip1"][0].data[...] = 3.0
    assert float(test.params["ip1"][0].data[0, 0]) == 3.0
    assert test.params["ip1"][0].diff is not train.params["ip1"][0].diff


def test_reshape_propagates_new_input_shape():
    """Reshaping an input blob then net.reshape() gives every blob its new shape."""
    net = net_from(MLP)
    net.blobs["x"].reshape(7, 3)
    net.blobs["y"].reshape(7)
    net.reshape()
    assert net.blobs["ip2"].data.shape == (7, 5)


def test_forward_reshapes_a_layer_only_when_its_blobs_changed(monkeypatch):
    """A layer that reads only its blobs in reshape (InnerProduct, ReLU) is not reshaped
    again by a forward that finds their arrays unchanged; reshaping an input blob (without
    net.reshape(), as Caffe's Forward allows) reaches every layer after it, and the loss
    layer, which does not say so, reshapes at every forward."""
    from brewnet.layers.inner_product import InnerProduct
    from brewnet.layers.loss import SoftmaxWithLoss

    calls = []
    for cls in (InnerProduct, SoftmaxWithLoss):
        original = cls.reshape
        monkeypatch.setattr(cls, "reshape", lambda self, b, t, original=original:
                            calls.append(self.name) or original(self, b, t))
    net = net_from(MLP)
    feed(net)
    net.forward()
    calls.clear()
    net.forward()
    assert calls == ["loss"]
    net.blobs["x"].reshape(7, 3)
    net.blobs["y"].reshape(7)
    calls.clear()
    net.forward()
    assert calls == ["ip1", "ip2", "loss"]
    assert net.blobs["ip2"].data.shape == (7, 5)
    assert net.blobs["loss"].data.shape == ()


def test_an_unchanged_net_skips_comparing_each_layers_blobs(monkeypatch):
    """While no blob anywhere gets new arrays (blob.arrays_epoch), a forward does not even
    compare a layer's blobs with the last ones; once any blob does (here one outside the
    net), each such layer compares them again, and reshapes only those whose blobs changed."""
    from brewnet.blob import Blob
    from brewnet.layers import base

    net = net_from(MLP)
    feed(net)
    net.forward()
    compared = []
    original = base._arrays_key
    monkeypatch.setattr(base, "_arrays_key", lambda b, t: compared.append(1) or original(b, t))
    net.forward()
    assert compared == []
    Blob((4,))
    reshaped = []
    for layer in net.layers:
        monkeypatch.setattr(layer, "reshape", lambda b, t, name=layer.name: reshaped.append(name))
    net.forward()
    assert compared  # compared again, found the same arrays
    # Only the layers that do not say they read only their blobs (inputs, loss) reshaped.
    assert reshaped == ["x", "y", "loss"]
    compared.clear()
    net.forward()
    assert compared == []


def test_pycaffe_constructor_forms(tmp_path):
    model = tmp_path / "m.prototxt"
    model.write_text(MLP)
    assert Net(str(model), brewnet.TEST).phase == TEST
    assert Net(str(model), phase=brewnet.TRAIN).phase == TRAIN
    with pytest.raises(TypeError, match="phase"):
        Net(str(model))


def test_shared_parameter_multipliers_follow_caffe():
    """A sharer's lr_mult/decay_mult become the owner's when the owner set none; values set
    on both sides must agree; PERMISSIVE sharing needs only equal counts."""
    text = INPUTS + ip("a", "x", 6, 'param { name: "w" } param { name: "b" }') + \
        ip("b", "x", 6, 'param { name: "w" lr_mult: 2 decay_mult: 0 } param { name: "b" }')
    net = net_from(text)
    assert net.params_lr[0] == 2.0 and net.params_weight_decay[0] == 0.0
    clash = INPUTS + ip("a", "x", 6, 'param { name: "w" decay_mult: 1 }') + \
        ip("b", "x", 6, 'param { name: "w" decay_mult: 0 }')
    with pytest.raises(NetError, match="layer 'b'.*decay_mult 0 here but 1 in its owner"):
        net_from(clash)
    sharer = """
    layer { name: "b" type: "InnerProduct" bottom: "x" top: "b"
            param { name: "w" MODE }
            inner_product_param { num_output: 6 transpose: true bias_term: false } }"""
    base = INPUTS + ip("a", "x", 6, 'param { name: "w" }')
    with pytest.raises(ShapeError, match=r"layer 'b'.*\(6, 3\) there, \(3, 6\) here"):
        net_from(base + sharer.replace("MODE", ""))  # STRICT: full shapes must agree
    net = net_from(base + sharer.replace("MODE", "share_mode: PERMISSIVE"))
    net.params["a"][0].data[...] = np.arange(18).reshape(6, 3)
    np.testing.assert_array_equal(net.params["b"][0].data, np.arange(18).reshape(3, 6))


def test_net_state_of_the_file_is_merged():
    """Net(file, phase, stages=...) starts from the file's own `state {}` (Caffe's ctor)."""
    text = 'state { stage: "deploy" }\n' + INPUTS + """
    layer { name: "dep" type: "ReLU" bottom: "x" top: "d" include { stage: "deploy" } }
    layer { name: "both" type: "ReLU" bottom: "x" top: "e"
            include { stage: "deploy" stage: "extra" } }"""
    param = text_format.Parse(text, caffe_pb2.NetParameter())
    assert "dep" in Net(param, TEST)._layer_names
    assert "both" in Net(param, TEST, stages=["extra"])._layer_names


def test_definition_blobs_are_the_weights():
    """Layers take their weights from LayerParameter.blobs when the definition carries them
    (a NetParameter from to_proto() or a .caffemodel), instead of running fillers."""
    net = net_from(MLP)
    again = Net(net.to_proto(), TRAIN)
    for name in ("ip1", "ip2"):
        for a, b in zip(net.params[name], again.params[name], strict=True):
            np.testing.assert_array_equal(a.data, b.data)


def test_loss_layer_with_two_tops_needs_explicit_weights():
    """Caffe's LossLayer default is one weight: two tops without loss_weight is an error
    with the fix; with `loss_weight: 1 loss_weight: 0` it compiles."""
    two = INPUTS + ip("ip", "x", 5) + """
    layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "y" top: "loss"
            top: "prob" }"""
    with pytest.raises(NetError, match="layer 'loss'.*loss_weight: 1 loss_weight: 0"):
        net_from(two)
    net = net_from(two.replace('top: "prob"', 'top: "prob" loss_weight: 1 loss_weight: 0'))
    assert net.blob_loss_weights["loss"] == 1.0 and net.blob_loss_weights["prob"] == 0.0


def test_unknown_blob_names_in_forward_are_errors():
    net = net_from(MLP)
    with pytest.raises(NetError, match="no blob named 'ip22'.*did you mean 'ip2'"):
        net.forward(blobs=["ip22"])


def test_force_backward_skips_layers_without_a_backward_pass():
    """force_backward asks every layer for input gradients, except from layer types that have
    none (Accuracy): the net runs backward without error and the input gets its gradient."""
    net = net_from("force_backward: true\n" + INPUTS + ip("ip", "x", 5) + """
    layer { name: "acc" type: "Accuracy" bottom: "ip" bottom: "y" top: "acc" }
    layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "y" top: "loss" }""")
    assert net.bottom_need_backward[net._layer_names.index("acc")] == [False, False]
    feed(net)
    net.forward_backward()
    assert np.abs(net.blobs["x"].diff).sum() > 0
