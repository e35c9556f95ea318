"""Every public name of pycaffe's surface (issue 8) exists on ``brewnet`` and behaves as
pycaffe's does (caffe_facts.md §1), one test per name or small family of names."""

import importlib.metadata
import logging
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import brewnet as caffe
from brewnet import backend
from brewnet import layers as L
from brewnet.errors import BrewnetError, NetError, ShapeError
from brewnet.log import get_logger


# ----------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------
def write(path: Path, proto) -> str:
    path.write_text(str(proto))
    return str(path)


def mlp_spec(batch: int = 4, loss: bool = False, force_backward: bool = False):
    """data (batch, 5) → ip (3) → softmax prob [→ SoftmaxWithLoss with a label input]."""
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[batch, 5]))
    n.ip = L.InnerProduct(n.data, num_output=3, weight_filler=dict(type="gaussian", std=0.5),
                          bias_filler=dict(type="gaussian", std=0.5))
    n.prob = L.Softmax(n.ip)
    if loss:
        n.label = L.Input(shape=dict(dim=[batch]))
        n.loss = L.SoftmaxWithLoss(n.ip, n.label)
    proto = n.to_proto()
    proto.force_backward = force_backward
    return proto


def softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


# ----------------------------------------------------------------------------------------
# module level
# ----------------------------------------------------------------------------------------
PYCAFFE_NAMES = [
    "__version__", "Timer", "init_log", "log", "layer_type_list", "set_random_seed",
    "set_mode_cpu", "set_mode_gpu", "set_device", "solver_count", "set_solver_count",
    "solver_rank", "set_solver_rank", "set_multiprocess", "has_nccl", "TRAIN", "TEST",
    "Classifier", "Detector", "io", "draw", "coord_map", "NetSpec", "layers", "params",
    "to_proto", "Layer", "Net", "get_solver", "Solver", "SGDSolver", "NesterovSolver",
    "AdaGradSolver", "RMSPropSolver", "AdaDeltaSolver", "AdamSolver", "proto"]


def test_every_pycaffe_module_name_exists():
    """Each module-level name pycaffe exports (caffe_facts.md §1) is an attribute of brewnet,
    and __all__ lists only names that resolve."""
    if not (Path(caffe.__file__).parent / "draw.py").exists():
        pytest.skip("brewnet/draw.py is not written yet")
    missing = [name for name in PYCAFFE_NAMES if not hasattr(caffe, name)]
    assert missing == []
    assert set(PYCAFFE_NAMES) <= set(caffe.__all__)
    assert all(hasattr(caffe, name) for name in caffe.__all__)


def test_version():
    """__version__ is the package's version string (CAFFE_VERSION's counterpart)."""
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", caffe.__version__)
    try:
        assert caffe.__version__ == importlib.metadata.version("brewnet")
    except importlib.metadata.PackageNotFoundError:
        pass


def test_timer_start_stop_ms(glog):
    """Timer: ms is the last start→stop in milliseconds; reading ms stops a running timer;
    a second start while running is ignored; never run reads 0 with a warning (Caffe)."""
    t = caffe.Timer()
    assert t.ms == 0.0 and "never been run" in glog.getvalue()
    t.start()
    time.sleep(0.02)
    t.start()  # ignored: still timing from the first start
    time.sleep(0.01)
    t.stop()
    first = t.ms
    assert 25 <= first < 1000
    time.sleep(0.01)
    assert t.ms == first  # stopped: no longer counting
    t.start()
    time.sleep(0.005)
    running = t.ms  # stops the timer
    assert running >= 4 and not t.running


def test_init_log_three_forms(tmp_path, monkeypatch, glog):
    """init_log() keeps the level; init_log(level) sets glog's minimum level; init_log(level,
    False) logs to a glog-named file in GLOG_log_dir (errors also on stderr)."""
    logger = get_logger()
    try:
        caffe.init_log()
        assert logger.level == logging.INFO
        caffe.init_log(1)
        caffe.log("dropped at WARNING level")
        assert "dropped" not in glog.getvalue()
        monkeypatch.setenv("GLOG_log_dir", str(tmp_path))
        path = caffe.init_log(0, False)
        caffe.log("into the file")
        assert Path(path).parent == tmp_path and ".log.INFO." in Path(path).name
        assert re.search(r"^I\d{4} [\d:.]+ \d+ \S+:\d+\] into the file$",
                         Path(path).read_text(), re.M)
        assert caffe.init_log(0, True) is None
    finally:
        caffe.init_log(0, True)
    own = [h for h in logger.handlers if h.get_name() == "brewnet"]
    assert len(own) == 1 and isinstance(own[0], logging.StreamHandler)


def test_log_writes_one_info_line(glog):
    """caffe.log(s) is LOG(INFO) << s: one glog INFO line naming the caller's file."""
    caffe.log("hello from pycaffe")
    line = glog.getvalue().strip()
    assert re.fullmatch(r"I\d{4} [\d:.]+ \d+ test_pycaffe_surface\.py:\d+\] hello from pycaffe",
                        line)
    assert caffe.log.get_logger() is get_logger()  # still the module as well


def test_layer_type_list_sorted():
    """layer_type_list(): the registered types, sorted, Python layer included."""
    types = caffe.layer_type_list()
    assert types == sorted(set(types))
    assert {"Convolution", "InnerProduct", "Python", "SoftmaxWithLoss"} <= set(types)


def test_set_random_seed_fixes_fillers(tmp_path):
    """set_random_seed: the same seed gives the same filled weights, another seed others."""
    path = write(tmp_path / "net.prototxt", mlp_spec())

    def weights(seed):
        caffe.set_random_seed(seed)
        return caffe.Net(path, caffe.TEST).params["ip"][0].data.copy()

    assert np.array_equal(weights(3), weights(3))
    assert not np.array_equal(weights(3), weights(4))


def test_set_mode_and_device():
    """set_mode_cpu/set_mode_gpu switch the global mode; without CuPy and a device, GPU mode
    is refused with a clear message; set_device records the id."""
    caffe.set_mode_cpu()
    assert backend.mode() == "cpu"
    caffe.set_device(0)
    if backend.cupy_or_none() is None:
        with pytest.raises(BrewnetError, match="CuPy"):
            caffe.set_mode_gpu()
        assert backend.mode() == "cpu"
    else:
        caffe.set_mode_gpu()
        assert backend.mode() == "gpu"
        caffe.set_mode_cpu()


def test_solver_count_rank_multiprocess_nccl():
    """Count 1 and rank 0 by default, settable and read back; has_nccl() says whether CuPy's
    NCCL is usable."""
    assert caffe.solver_count() == 1 and caffe.solver_rank() == 0
    assert caffe.has_nccl() is (backend.cupy_or_none() is not None)
    try:
        caffe.set_solver_count(2)
        caffe.set_solver_rank(1)
        caffe.set_multiprocess(True)
        assert (caffe.solver_count(), caffe.solver_rank(), backend.multiprocess()) == (2, 1, True)
        with pytest.raises(BrewnetError, match="outside 0..1"):
            caffe.set_solver_rank(2)
        with pytest.raises(BrewnetError, match="at least 1"):
            caffe.set_solver_count(0)
    finally:
        caffe.set_solver_rank(0)
        caffe.set_solver_count(1)
        caffe.set_multiprocess(False)


def test_phases():
    """TRAIN and TEST are caffe_pb2.Phase's 0 and 1."""
    assert (caffe.TRAIN, caffe.TEST) == (0, 1)
    assert caffe.TEST == caffe.proto.caffe_pb2.Phase.Value("TEST")


def test_reexported_modules_and_classes():
    """io, Classifier and Detector are brewnet's modules and classes, as pycaffe re-exports
    them; Classifier and Detector are Nets."""
    import brewnet.io

    assert caffe.io is brewnet.io and callable(caffe.io.Transformer)
    assert issubclass(caffe.Classifier, caffe.Net) and issubclass(caffe.Detector, caffe.Net)


def test_draw_and_coord_map_load_lazily():
    """draw and coord_map are attributes of the package, but `import brewnet` imports neither
    (so it needs no pydot)."""
    code = "import sys, brewnet; print('pydot' in sys.modules, 'brewnet.draw' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "False"]
    assert callable(caffe.coord_map.crop) and callable(caffe.coord_map.coord_map_from_to)
    if (Path(caffe.__file__).parent / "draw.py").exists():
        pytest.importorskip("pydot")
        assert callable(caffe.draw.draw_net_to_file)
    with pytest.raises(AttributeError):
        caffe.no_such_name  # noqa: B018


def test_netspec_layers_params_to_proto():
    """NetSpec, layers (L), params (P) and to_proto as pycaffe's net_spec: P.Pooling.MAX is
    the enum value, to_proto(top) names layers by type."""
    n = caffe.NetSpec()
    n.data = caffe.layers.Input(shape=dict(dim=[1, 1, 4, 4]))
    n.pool = caffe.layers.Pooling(n.data, kernel_size=2, pool=caffe.params.Pooling.MAX)
    proto = n.to_proto()
    assert [lp.type for lp in proto.layer] == ["Input", "Pooling"]
    assert proto.layer[1].pooling_param.pool == caffe.proto.caffe_pb2.PoolingParameter.MAX
    loose = caffe.to_proto(L.ReLU(L.Input(shape=dict(dim=[2]))))
    assert [lp.type for lp in loose.layer] == ["Input", "ReLU"]


class ScaleByParam(caffe.Layer):
    """y = a * x with one learnable scalar a, owned through blobs.add_blob."""

    def setup(self, bottom, top):
        self.blobs.add_blob(1)
        self.blobs[0].data[...] = float(self.param_str)

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].shape)

    def forward(self, bottom, top):
        top[0].data[...] = self.blobs[0].data * bottom[0].data

    def backward(self, top, propagate_down, bottom):
        self.blobs[0].diff[...] += (top[0].diff * bottom[0].data).sum()
        if propagate_down[0]:
            bottom[0].diff[...] = self.blobs[0].data * top[0].diff


def test_layer_base_class_and_blobvec_add_blob():
    """caffe.Layer subclasses run as Python layers; param_str and phase are set before setup;
    BlobVec.add_blob gives the layer a parameter that net.params lists and backward fills."""
    n = caffe.NetSpec()
    n.x = L.Input(shape=dict(dim=[2, 3]))
    n.y = L.Python(n.x, module=__name__, layer="ScaleByParam", param_str="2.5")
    n.loss = L.EuclideanLoss(n.y, L.Input(shape=dict(dim=[2, 3]), name="t"))
    net = caffe.Net(n.to_proto(), caffe.TRAIN, allow_python_layers=True)
    user = net.layer_dict["y"].user_layer
    assert user.phase == caffe.TRAIN and user.param_str == "2.5"
    assert [b.shape for b in net.params["y"]] == [[1]]
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    net.blobs["x"].data[...] = x
    net.forward()
    assert np.allclose(net.blobs["y"].data, 2.5 * x)
    net.backward()
    # d/da of sum((a x - 0)^2) / (2N) = sum(a x * x) / N
    assert np.isclose(net.params["y"][0].diff[0], (2.5 * x * x).sum() / 2, rtol=1e-5)


# ----------------------------------------------------------------------------------------
# Net
# ----------------------------------------------------------------------------------------
def test_net_constructor_forms(tmp_path, glog):
    """Net(file, phase), Net(file, phase, weights=w), the legacy Net(file, w, phase), and
    level/stages selecting layers by NetStateRule; a missing file is an error naming it."""
    spec = mlp_spec()
    spec.layer.add().CopyFrom(caffe.proto.caffe_pb2.LayerParameter(
        name="extra", type="ReLU", bottom=["ip"], top=["extra"],
        include=[caffe.proto.caffe_pb2.NetStateRule(stage=["deploy"], min_level=1)]))
    path = write(tmp_path / "net.prototxt", spec)
    net = caffe.Net(path, caffe.TEST)
    assert "extra" not in net.blobs and net.phase == caffe.TEST
    assert "extra" in caffe.Net(path, caffe.TEST, level=1, stages=["deploy"]).blobs
    assert "extra" not in caffe.Net(path, caffe.TEST, level=0, stages=["deploy"]).blobs
    net.params["ip"][0].data[...] = 7
    net.save(str(tmp_path / "w.caffemodel"))
    for loaded in (caffe.Net(path, caffe.TEST, weights=str(tmp_path / "w.caffemodel")),
                   caffe.Net(path, str(tmp_path / "w.caffemodel"), caffe.TEST)):
        assert (loaded.params["ip"][0].data == 7).all()
    assert glog.getvalue().count("DEPRECATION WARNING") == 1  # the legacy form only
    with pytest.raises(BrewnetError, match="nothere.prototxt"):
        caffe.Net(str(tmp_path / "nothere.prototxt"), caffe.TEST)


def test_private_forward_backward_ranges():
    """_forward(s, e) runs layers s..e and returns their loss; _backward(s, e) runs s down
    to e."""
    net = caffe.Net(mlp_spec(loss=True), caffe.TRAIN)
    net.blobs["data"].data[...] = np.random.default_rng(0).standard_normal((4, 5))
    last = len(net.layers) - 1
    assert net._forward(0, last - 1) == 0.0
    loss = net._forward(last, last)
    assert loss > 0 and np.isclose(loss, float(net.blobs["loss"].data))
    net._backward(last, last)
    assert net.bottom_vecs[last][0].diff.any() and not net.params["ip"][0].diff.any()
    net._backward(last - 1, 0)
    assert net.params["ip"][0].diff.any()


def test_forward_all_batches_pads_and_trims():
    """forward_all splits N=10 rows into batches of 4 (the last zero-padded) and returns the
    10 rows of every output, equal to softmax(x W^T + b) computed independently."""
    net = caffe.Net(mlp_spec(), caffe.TEST)
    seen = []
    net.after_forward(lambda i: seen.append(net.blobs["data"].data.copy()) if i == 0 else None)
    x = np.random.default_rng(1).standard_normal((10, 5)).astype(np.float32)
    out = net.forward_all(data=x)
    w, b = net.params["ip"][0].data, net.params["ip"][1].data
    assert set(out) == {"prob"} and out["prob"].shape == (10, 3)
    np.testing.assert_allclose(out["prob"], softmax(x @ w.T + b), rtol=1e-5, atol=1e-6)
    assert len(seen) == 3 and not seen[2][2:].any()  # 2 padding rows of zeros
    both = net.forward_all(blobs=["ip"], data=x)
    np.testing.assert_allclose(both["ip"], x @ w.T + b, rtol=1e-5, atol=1e-5)
    with pytest.raises(NetError, match="exactly the net's inputs"):
        net.forward_all(data=x, ip=x)


def test_forward_all_stacks_a_scalar_loss_per_batch():
    """A 0-d output (a loss) cannot be split by rows: one value per batch is returned."""
    net = caffe.Net(mlp_spec(loss=True), caffe.TEST)
    x = np.random.default_rng(2).standard_normal((8, 5)).astype(np.float32)
    out = net.forward_all(data=x, label=np.zeros(8, np.float32))
    assert out["loss"].shape == (2,) and out["prob"].shape == (8, 3)
    with pytest.raises(ShapeError, match="different numbers of rows"):
        net.forward_all(data=x, label=np.zeros(6, np.float32))


def test_forward_backward_all():
    """forward_backward_all feeds input rows and output-diff rows in the same padded batches;
    the input diffs equal dy W (the InnerProduct's gradient), padding dropped."""
    net = caffe.Net(mlp_spec(force_backward=True), caffe.TEST)
    net.blobs["ip"].diff[...] = 0
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 5)).astype(np.float32)
    dprob = rng.standard_normal((6, 3)).astype(np.float32)
    outs, diffs = net.forward_backward_all(data=x, prob=dprob)
    w, b = net.params["ip"][0].data, net.params["ip"][1].data
    p = softmax(x @ w.T + b)
    dip = p * (dprob - (dprob * p).sum(1, keepdims=True))
    assert outs["prob"].shape == (6, 3) and diffs["data"].shape == (6, 5)
    np.testing.assert_allclose(outs["prob"], p, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(diffs["data"], dip @ w, rtol=1e-4, atol=1e-5)
    with pytest.raises(NetError, match="neither inputs"):
        net.forward_backward_all(data=x, nonsense=x)


def test_clear_param_diffs():
    """clear_param_diffs zeroes every learnable parameter's gradient."""
    net = caffe.Net(mlp_spec(loss=True), caffe.TRAIN)
    net.blobs["data"].data[...] = 1
    net.forward()
    net.backward()
    assert net.params["ip"][0].diff.any()
    net.clear_param_diffs()
    assert not any(b.diff.any() for blobs in net.params.values() for b in blobs)


def test_blob_loss_weights():
    """blob_loss_weights: every blob by name, 1 for the loss layer's top, 0 elsewhere."""
    net = caffe.Net(mlp_spec(loss=True), caffe.TRAIN)
    assert list(net.blob_loss_weights) == list(net.blobs)
    assert net.blob_loss_weights["loss"] == 1.0
    assert not any(v for k, v in net.blob_loss_weights.items() if k != "loss")


def test_raw_index_accessors():
    """_blob_names/_blobs list every blob (split tops too); _inputs/_outputs/_bottom_ids/
    _top_ids are indices into them; an in-place top has its bottom's index."""
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[2, 3]))
    n.a = L.ReLU(n.data, in_place=True)
    n.b = L.InnerProduct(n.data, num_output=2)
    n.c = L.InnerProduct(n.data, num_output=2)
    net = caffe.Net(n.to_proto(), caffe.TEST)
    names = net._blob_names
    assert names == list(net.blobs) and [b for b in net._blobs] == list(net.blobs.values())
    assert any("split" in name for name in names)
    assert [names[i] for i in net._inputs] == net.inputs == ["data"]
    assert [names[i] for i in net._outputs] == net.outputs == ["b", "c"]
    relu = net._layer_names.index("a")
    assert net._bottom_ids(relu) == net._top_ids(relu) == [names.index("data")]
    for i in range(len(net.layers)):
        assert [names[k] for k in net._top_ids(i)] == net.top_names[net._layer_names[i]]
        assert [names[k] for k in net._bottom_ids(i)] == net.bottom_names[net._layer_names[i]]


def test_forward_backward_callbacks():
    """before/after_forward and before/after_backward are called with each layer index, in
    Caffe's order; the backward ones also for layers that need no backward."""
    net = caffe.Net(mlp_spec(loss=True), caffe.TRAIN)
    calls = []
    for hook in ("before_forward", "after_forward", "before_backward", "after_backward"):
        getattr(net, hook)(lambda i, hook=hook: calls.append((hook, i)))
    n = len(net.layers)
    net.forward()
    assert calls == [(h, i) for i in range(n) for h in ("before_forward", "after_forward")]
    calls.clear()
    net.backward()
    assert calls == [(h, i) for i in reversed(range(n))
                     for h in ("before_backward", "after_backward")]
    assert not net.layer_need_backward[0]  # the Input layer: called all the same


def test_set_input_arrays_memory_data():
    """set_input_arrays hands arrays to a MemoryData first layer, served batch by batch;
    a net without one refuses."""
    n = caffe.NetSpec()
    n.data, n.label = L.MemoryData(batch_size=2, channels=1, height=2, width=2, ntop=2)
    net = caffe.Net(n.to_proto(), caffe.TEST)
    data = np.arange(16, dtype=np.float32).reshape(4, 1, 2, 2)
    net.set_input_arrays(data, np.array([5, 6, 7, 8], np.float32))
    net.forward()
    net.forward()
    assert np.array_equal(net.blobs["data"].data, data[2:])
    assert net.blobs["label"].data.ravel().tolist() == [7, 8]
    with pytest.raises(NetError, match="MemoryData"):
        caffe.Net(mlp_spec(), caffe.TEST).set_input_arrays(data, data[:, 0, 0, 0])


def test_save_hdf5_load_hdf5(tmp_path):
    """save_hdf5 / load_hdf5 round-trip every parameter."""
    pytest.importorskip("h5py")
    caffe.set_random_seed(5)
    a = caffe.Net(mlp_spec(), caffe.TEST)
    b = caffe.Net(mlp_spec(), caffe.TEST)
    a.save_hdf5(str(tmp_path / "w.caffemodel.h5"))
    b.load_hdf5(str(tmp_path / "w.caffemodel.h5"))
    for name in a.params:
        for pa, pb in zip(a.params[name], b.params[name], strict=True):
            assert np.array_equal(pa.data, pb.data)


def test_share_with():
    """share_with: the other net's parameter arrays become this net's (writes show in both)."""
    a = caffe.Net(mlp_spec(), caffe.TEST)
    b = caffe.Net(mlp_spec(batch=2), caffe.TEST)
    b.share_with(a)
    a.params["ip"][0].data[...] = 3
    assert (b.params["ip"][0].data == 3).all()


def test_outputs_in_caffe_order():
    """outputs are the unconsumed blobs in std::set (lexicographic) order, as Caffe's
    net_output_blobs_, whatever the definition order."""
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 2]))
    n.zeta = L.ReLU(n.data)
    n.alpha = L.Sigmoid(n.data)
    net = caffe.Net(n.to_proto(), caffe.TEST)
    assert net.outputs == ["alpha", "zeta"]
    assert list(net.forward()) == ["alpha", "zeta"]  # forward's dict follows that order


# ----------------------------------------------------------------------------------------
# Blob
# ----------------------------------------------------------------------------------------
def test_blob_shape_count_legacy_and_reshape():
    """shape is a list copy; count the product; num/channels/height/width pad missing axes
    with 1 and refuse more than 4 axes; reshape(*dims) takes positional dims."""
    net = caffe.Net(mlp_spec(), caffe.TEST)
    blob = net.blobs["ip"]
    shape = blob.shape
    shape.append(9)
    assert blob.shape == [4, 3] and blob.count == 12
    assert (blob.num, blob.channels, blob.height, blob.width) == (4, 3, 1, 1)
    blob.reshape(1, 2, 3, 4, 5)
    assert blob.shape == [1, 2, 3, 4, 5] and blob.count == 120
    with pytest.raises(ValueError, match="at most 4 axes"):
        _ = blob.num


def test_blob_data_and_diff_are_views_into_the_net():
    """Writes into blob.data / params' data land in the net: the next forward uses them."""
    net = caffe.Net(mlp_spec(), caffe.TEST)
    net.blobs["data"].data[...] = 1
    net.params["ip"][0].data[...] = 0
    net.params["ip"][1].data[...] = np.array([0, 0, np.log(2)], np.float32)
    view = net.blobs["prob"].data
    net.forward()
    np.testing.assert_allclose(view, np.tile([0.25, 0.25, 0.5], (4, 1)), rtol=1e-6)
    net.blobs["ip"].diff[0, 0] = 4
    assert net.blob_loss_weights is not None and net.blobs["ip"].diff[0, 0] == 4


# ----------------------------------------------------------------------------------------
# Solver
# ----------------------------------------------------------------------------------------
def solver_files(tmp_path: Path, **extra) -> str:
    """A solver on an MLP fed constant DummyData (deterministic across runs)."""
    n = caffe.NetSpec()
    n.data, n.label = L.DummyData(shape=[dict(dim=[4, 5]), dict(dim=[4])],
                                  data_filler=[dict(type="constant", value=0.5),
                                               dict(type="constant", value=1)], ntop=2)
    n.ip = L.InnerProduct(n.data, num_output=3, weight_filler=dict(type="xavier"))
    n.loss = L.SoftmaxWithLoss(n.ip, n.label)
    fields = dict(base_lr=0.1, momentum=0.9, lr_policy="fixed", max_iter=4, random_seed=7,
                  snapshot_prefix=str(tmp_path / "snap"))
    s = caffe.proto.caffe_pb2.SolverParameter(
        train_net=write(tmp_path / "train.prototxt", n.to_proto()), **{**fields, **extra})
    return write(tmp_path / "solver.prototxt", s)


def test_solver_param_base_lr_writable(tmp_path):
    """solver.param is the SolverParameter; writing base_lr changes the rate used next."""
    solver = caffe.SGDSolver(solver_files(tmp_path))
    assert solver.param.max_iter == 4 and solver.lr == pytest.approx(0.1)
    solver.param.base_lr = 0.5
    assert solver.lr == pytest.approx(0.5)
    solver.net.forward_backward()
    grad = solver.net.params["ip"][0].diff.copy()
    before = solver.net.params["ip"][0].data.copy()
    solver.apply_update()
    np.testing.assert_allclose(solver.net.params["ip"][0].data, before - 0.5 * grad, rtol=1e-5)


def test_sgd_lr_follows_the_policy(tmp_path):
    """SGDSolver.lr is GetLearningRate at the current iteration (step policy here)."""
    solver = caffe.SGDSolver(solver_files(tmp_path, lr_policy="step", gamma=0.1, stepsize=2))
    assert solver.lr == pytest.approx(0.1)
    solver.step(2)
    assert solver.lr == pytest.approx(0.01)


def test_solver_share_weights(tmp_path):
    """share_weights(net): the net reads the train net's parameter values from then on."""
    solver = caffe.get_solver(solver_files(tmp_path))
    other = caffe.Net(solver.net.param_def, caffe.TEST)
    solver.share_weights(other)
    solver.step(1)
    assert np.array_equal(other.params["ip"][0].data, solver.net.params["ip"][0].data)


def test_apply_update_counts_the_iteration(tmp_path):
    """apply_update: momentum SGD step w ← w − lr·g (first step, V=0) and iter += 1."""
    solver = caffe.SGDSolver(solver_files(tmp_path))
    solver.net.clear_param_diffs()
    solver.net.forward_backward()
    w, g = solver.net.params["ip"][0].data.copy(), solver.net.params["ip"][0].diff.copy()
    solver.apply_update()
    assert solver.iter == 1
    np.testing.assert_allclose(solver.net.params["ip"][0].data, w - 0.1 * g, rtol=1e-5)


def test_add_callback_both_forms(tmp_path):
    """add_callback(on_start, on_gradients_ready) and add_callback(obj) with both methods
    are called once per iteration, on_start before the pass, the other before the update."""
    solver = caffe.SGDSolver(solver_files(tmp_path))
    events = []

    class Hooks:
        def on_start(self):
            events.append(("obj-start", solver.iter))

        def on_gradients_ready(self):
            events.append(("obj-ready", bool(solver.net.params["ip"][0].diff.any())))

    solver.add_callback(lambda: events.append(("fn-start", solver.iter)),
                        lambda: events.append(("fn-ready", solver.iter)))
    solver.add_callback(Hooks())
    solver.step(2)
    assert events == [("fn-start", 0), ("obj-start", 0), ("fn-ready", 0), ("obj-ready", True),
                      ("fn-start", 1), ("obj-start", 1), ("fn-ready", 1), ("obj-ready", True)]
    with pytest.raises(BrewnetError, match="on_gradients_ready"):
        solver.add_callback(object())


def test_snapshot_restore_and_solve_resume(tmp_path):
    """snapshot() writes the model and state; restore() and solve(resume_file) continue to
    the same weights as one uninterrupted run."""
    path = solver_files(tmp_path)
    straight = caffe.SGDSolver(path)
    straight.solve()
    assert straight.iter == 4
    half = caffe.SGDSolver(path)
    half.step(2)
    model, state = half.snapshot()
    assert Path(model).is_file() and Path(state).is_file()
    resumed = caffe.SGDSolver(path)
    resumed.solve(state)
    restored = caffe.SGDSolver(path)
    restored.restore(state)
    assert restored.iter == 2
    restored.step(2)
    for s in (resumed, restored):
        np.testing.assert_allclose(s.net.params["ip"][0].data,
                                   straight.net.params["ip"][0].data, rtol=1e-6)
