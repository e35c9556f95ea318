"""The Python layer (pycaffe's PythonLayer protocol): a user class named by
``python_param { module layer param_str }`` subclassing ``brewnet.Layer``, run only when the
caller opts in (Net / get_solver / ``brewnet solve --allow-python-layers``)."""

import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format

import brewnet
from brewnet.cli import main as cli
from brewnet.errors import BrewnetError, NetError
from brewnet.layers.python_layer import PythonLayer
from brewnet.net import TEST, TRAIN, Net
from brewnet.proto import caffe_pb2
from brewnet.proto.textio import read_net
from tests.gradcheck import blobs_from, check_gradient, make_layer, setup_layer

MODULE = "bn_test_pylayers"

# Written by the test into a temporary module: the kind of code a pycaffe user writes.
SOURCE = textwrap.dedent('''
    import numpy as np
    import brewnet as caffe

    class Scale(caffe.Layer):
        """y = w * x with one learnable scalar w, initialised from param_str."""

        def setup(self, bottom, top):
            if len(bottom) != 1:
                raise Exception("Scale takes one bottom")
            self.seen = (self.param_str, self.phase)
            self.blobs.add_blob(1)
            self.blobs[0].data[...] = float(self.param_str)
            self.reshapes = 0

        def reshape(self, bottom, top):
            self.reshapes += 1
            top[0].reshape(*bottom[0].data.shape)

        def forward(self, bottom, top):
            top[0].data[...] = self.blobs[0].data[0] * bottom[0].data

        def backward(self, top, propagate_down, bottom):
            self.blobs[0].diff[0] += np.sum(top[0].diff * bottom[0].data)
            if propagate_down[0]:
                bottom[0].diff[...] = self.blobs[0].data[0] * top[0].diff

    class SquaredDistance(caffe.Layer):
        """loss = sum((a - b)^2) / num / 2, the pycaffe examples' Euclidean loss."""

        def reshape(self, bottom, top):
            self.delta = np.zeros_like(bottom[0].data)
            top[0].reshape(1)

        def forward(self, bottom, top):
            self.delta[...] = bottom[0].data - bottom[1].data
            top[0].data[...] = np.sum(self.delta ** 2) / bottom[0].num / 2.0

        def backward(self, top, propagate_down, bottom):
            for i, sign in ((0, 1), (1, -1)):
                if propagate_down[i]:
                    bottom[i].diff[...] = sign * self.delta / bottom[i].num

    class NotALayer:
        pass
''')

NET = f"""
force_backward: true
layer {{ name: "x" type: "Input" top: "x" input_param {{ shape {{ dim: 2 dim: 3 }} }} }}
layer {{ name: "t" type: "Input" top: "t" input_param {{ shape {{ dim: 2 dim: 3 }} }} }}
layer {{ name: "scale" type: "Python" bottom: "x" top: "y"
        python_param {{ module: "{MODULE}" layer: "Scale" param_str: "2" }}
        param {{ lr_mult: 3 decay_mult: 0 }} }}
layer {{ name: "loss" type: "EuclideanLoss" bottom: "y" bottom: "t" top: "loss" }}
"""


@pytest.fixture
def pymodule(tmp_path, monkeypatch):
    """The user's module on sys.path (as PYTHONPATH would put it), forgotten afterwards."""
    (tmp_path / f"{MODULE}.py").write_text(SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop(MODULE, None)
    yield tmp_path
    sys.modules.pop(MODULE, None)


def net_param(text: str = NET) -> caffe_pb2.NetParameter:
    return text_format.Parse(text, caffe_pb2.NetParameter())


def test_forward_backward_and_param_diff_through_the_net(pymodule):
    """pycaffe protocol: param_str and phase are set before setup; the user's add_blob
    parameter is a learnable param with its lr_mult/decay_mult; forward gives y = w x; the net's
    backward reaches x through the user's backward, and param diffs accumulate (Caffe's
    Net::Backward does not clear them)."""
    net = Net(net_param(), TRAIN, allow_python_layers=True)
    layer = net.layers[net._layer_names.index("scale")]
    assert isinstance(layer, PythonLayer) and layer.type == "Python"
    user = layer.user_layer
    assert user.seen == ("2", TRAIN)
    assert user.reshapes == 1  # Caffe's Layer::SetUp: LayerSetUp, then Reshape once
    assert [tuple(b.data.shape) for b in net.params["scale"]] == [(1,)]
    assert net.params_lr == [3.0] and net.params_weight_decay == [0.0]

    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3)).astype(np.float32)
    t = rng.standard_normal((2, 3)).astype(np.float32)
    net.blobs["x"].data[...] = x
    net.blobs["t"].data[...] = t
    out = net.forward()
    np.testing.assert_allclose(net.blobs["y"].data, 2 * x, rtol=1e-6)
    expected_loss = np.sum((2 * x - t) ** 2) / 2 / 2
    np.testing.assert_allclose(out["loss"], expected_loss, rtol=1e-5)

    net.backward()
    dy = (2 * x - t) / 2
    np.testing.assert_allclose(net.blobs["x"].diff, 2 * dy, rtol=1e-5, atol=1e-6)
    dw = np.sum(dy * x)
    np.testing.assert_allclose(net.params["scale"][0].diff, [dw], rtol=1e-5)
    net.backward()
    np.testing.assert_allclose(net.params["scale"][0].diff, [2 * dw], rtol=1e-5)


def test_phase_reaches_the_user_layer_as_an_int(pymodule):
    """python_layer.hpp: ``self.phase`` is the layer's phase as an int (TEST = 1)."""
    net = Net(net_param(), TEST, allow_python_layers=True)
    user = net.layers[net._layer_names.index("scale")].user_layer
    assert user.seen == ("2", 1) and type(user.phase) is int


def test_gradient_of_the_wrapped_layer(pymodule):
    """Backward through the wrapper matches numerical gradients (bottom and the add_blob
    parameter): the wrapper hands top diffs, propagate_down and bottoms to the user."""
    layer = make_layer(f'type: "Python" python_param {{ module: "{MODULE}" layer: "Scale" '
                       'param_str: "1.5" }')
    bottom = blobs_from(np.random.default_rng(1).standard_normal((2, 4)).astype(np.float32))
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top)


def test_refused_without_the_opt_in(pymodule):
    """A prototxt naming a Python layer runs code: without allow_python_layers the net
    refuses before importing anything, naming the layer, module, class and the opt-in."""
    with pytest.raises(NetError) as e:
        Net(net_param(), TRAIN)
    msg = str(e.value)
    for part in ("scale", MODULE, "Scale", "allow_python_layers=True", "--allow-python-layers",
                 "brewnet.allow_python_layers(True)", "BREWNET_ALLOW_PYTHON_LAYERS=1"):
        assert part in msg
    assert MODULE not in sys.modules


@pytest.fixture
def process_grant(monkeypatch):
    """No process-wide grant before the test, and none left after it."""
    monkeypatch.delenv("BREWNET_ALLOW_PYTHON_LAYERS", raising=False)
    brewnet.allow_python_layers(False)
    yield
    brewnet.allow_python_layers(False)


def test_environment_variable_grants_the_whole_process(pymodule, process_grant, monkeypatch):
    """BREWNET_ALLOW_PYTHON_LAYERS=1 lets unchanged pycaffe code (Net(file, phase), no
    keyword) build Python layers; 0 refuses, as unset does."""
    monkeypatch.setenv("BREWNET_ALLOW_PYTHON_LAYERS", "1")
    assert Net(net_param(), TRAIN).layers[2].type == "Python"
    monkeypatch.setenv("BREWNET_ALLOW_PYTHON_LAYERS", "0")
    with pytest.raises(NetError, match="BREWNET_ALLOW_PYTHON_LAYERS=1"):
        Net(net_param(), TRAIN)


def test_environment_variable_with_another_value_is_an_error(pymodule, process_grant,
                                                              monkeypatch):
    """A value other than 1, 0 or empty ("yes") is neither silently a grant nor a refusal:
    the error names the variable, its value and the values it takes."""
    monkeypatch.setenv("BREWNET_ALLOW_PYTHON_LAYERS", "yes")
    with pytest.raises(BrewnetError, match="BREWNET_ALLOW_PYTHON_LAYERS is 'yes'; set it to 1"):
        Net(net_param(), TRAIN)
    assert MODULE not in sys.modules


def test_allow_python_layers_grants_until_withdrawn(pymodule, process_grant):
    """brewnet.allow_python_layers(True) grants every later net and solver of the process;
    allow_python_layers(False) withdraws it (a net's own keyword still grants)."""
    brewnet.allow_python_layers(True)
    assert Net(net_param(), TRAIN).layers[2].type == "Python"
    brewnet.allow_python_layers(False)
    with pytest.raises(NetError, match="opt in"):
        Net(net_param(), TRAIN)
    assert Net(net_param(), TRAIN, allow_python_layers=True).layers[2].type == "Python"


@pytest.mark.parametrize(("module", "cls", "needle"), [
    ("bn_no_such_module_xyz", "Scale", "cannot import Python module 'bn_no_such_module_xyz'"),
    (MODULE, "Missing", "has no class 'Missing'"),
    (MODULE, "NotALayer", "not a subclass of brewnet.Layer"),
])
def test_import_errors_name_layer_and_module(pymodule, module, cls, needle):
    """Caffe's layer factory imports ``module`` and takes ``layer`` from it; a failed import,
    a missing class or a class that is not a Layer is a NetError naming the layer and module."""
    text = NET.replace(f'module: "{MODULE}" layer: "Scale"', f'module: "{module}" layer: "{cls}"')
    with pytest.raises(NetError) as e:
        Net(net_param(text), TRAIN, allow_python_layers=True)
    msg = str(e.value)
    assert needle in msg and "scale" in msg and module in msg


def test_blobs_shared_with_the_user_layer(pymodule):
    """pycaffe's ``self.blobs`` is the layer's own blob vector: weights the net loads land in
    the object the user reads."""
    net = Net(net_param(), TRAIN, allow_python_layers=True)
    layer = net.layers[net._layer_names.index("scale")]
    net.params["scale"][0].data[...] = 5
    assert layer.user_layer.blobs is layer.blobs
    assert float(layer.user_layer.blobs[0].data[0]) == 5
    assert hasattr(layer.blobs, "add_blob")


def test_pycaffe_linreg_example_with_a_user_loss(pymodule):
    """BVLC's examples/pycaffe/linreg.prototxt (loss computed by a Python layer) builds and
    trains a step once its module exists and Python layers are allowed."""
    src = Path(__file__).resolve().parents[3] / "shared/reference/bvlc/examples/pycaffe"
    if not (src / "linreg.prototxt").exists():
        pytest.skip("../shared/reference/bvlc is not present")
    param = read_net(src / "linreg.prototxt")
    for lp in param.layer:
        if lp.type == "Python":
            lp.python_param.module, lp.python_param.layer = MODULE, "SquaredDistance"
    net = Net(param, TRAIN, allow_python_layers=True)
    loss = float(net.forward()["loss"][0])  # the example reshapes its top to (1,)
    d = net.blobs["ipx"].data - net.blobs["ipy"].data
    np.testing.assert_allclose(loss, np.sum(d ** 2) / 10 / 2, rtol=1e-5)
    net.backward()
    np.testing.assert_allclose(net.blobs["ipx"].diff, d / 10, rtol=1e-5, atol=1e-7)
    assert np.any(net.params["ipx"][0].diff != 0)


SOLVER = """
net: "net.prototxt"
base_lr: 0.01 lr_policy: "fixed" max_iter: 2 display: 1
snapshot_after_train: false
"""


def test_cli_flag(pymodule, tmp_path, monkeypatch, capsys):
    """``brewnet solve`` refuses a net with a Python layer (one line naming the opt-in,
    exit status 1) and trains it with --allow-python-layers; get_solver takes the same
    keyword."""
    (tmp_path / "net.prototxt").write_text(NET)
    (tmp_path / "solver.prototxt").write_text(SOLVER)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["solve", "--solver", "solver.prototxt"]) == 1
    err = capsys.readouterr().err
    assert "--allow-python-layers" in err and MODULE in err and "scale" in err
    assert cli.main(["solve", "--solver", "solver.prototxt", "--allow-python-layers"]) == 0
    solver = brewnet.get_solver("solver.prototxt", allow_python_layers=True)
    try:
        solver.step(1)
        assert solver.iter == 1
    finally:
        solver.close()
    with pytest.raises(NetError, match="allow_python_layers"):
        brewnet.SGDSolver("solver.prototxt")
