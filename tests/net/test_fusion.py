"""Folding BatchNorm/Scale/ReLU into the convolution before them (brewnet/net/fusion.py): the
fused net's blobs equal the unfused net's, only whole in-place chains that nothing learns
through fold, and whatever watches the layers one by one sees them run one by one. The chains
read the weights as they are at each forward (shared with a training net, loaded, written
from Python) and follow shape changes; only a per-channel Scale folds. In training, a
BatchNorm with batch statistics, its Scale and ReLU run as one forward and one backward
(the last section)."""

import numpy as np
import pytest
from google.protobuf import text_format

from brewnet import kernels
from brewnet.errors import NetError
from brewnet.net import TEST, TRAIN, Net
from brewnet.net.fusion import FusedActivation, FusedNormalization
from brewnet.proto import caffe_pb2

INPUT = ('layer { name: "data" type: "Input" top: "data" '
         'input_param { shape { dim: 2 dim: 8 dim: 9 dim: 9 } } }\n')


def conv(name, bottom, n, k=3, pad=1, extra=""):
    return (f'layer {{ name: "{name}" type: "Convolution" bottom: "{bottom}" top: "{name}" '
            f'convolution_param {{ num_output: {n} kernel_size: {k} pad: {pad} {extra} '
            'weight_filler { type: "gaussian" std: 0.3 } '
            'bias_filler { type: "gaussian" std: 0.3 } } }\n')


def bn(name, blob, top=None, extra=""):
    return (f'layer {{ name: "{name}" type: "BatchNorm" bottom: "{blob}" top: "{top or blob}" '
            f'{extra} }}\n')


def scale(name, blob, bias=True, top=None):
    return (f'layer {{ name: "{name}" type: "Scale" bottom: "{blob}" top: "{top or blob}" '
            f'scale_param {{ bias_term: {str(bias).lower()} }} }}\n')


def relu(name, blob, slope=0.0, top=None):
    return (f'layer {{ name: "{name}" type: "ReLU" bottom: "{blob}" top: "{top or blob}" '
            f'relu_param {{ negative_slope: {slope} }} }}\n')


# ResNet's bottleneck layout: conv (no bias) -> BatchNorm -> Scale -> ReLU in place, a 1x1
# branch without ReLU, a shortcut, Eltwise sum, ReLU.
RESNET = (INPUT + conv("c1", "data", 8, extra="bias_term: false") + bn("bn1", "c1")
          + scale("sc1", "c1") + relu("r1", "c1")
          + conv("c2", "c1", 8, k=1, pad=0, extra="bias_term: false") + bn("bn2", "c2")
          + scale("sc2", "c2")
          + 'layer { name: "sum" type: "Eltwise" bottom: "c2" bottom: "data" top: "sum" }\n'
          + relu("r2", "sum"))
# MobileNet's: depthwise 3x3 (group == channels), pointwise 1x1, each with BatchNorm and
# Scale; ReLU after the depthwise only.
MOBILENET = (INPUT + conv("dw", "data", 8, extra="group: 8 bias_term: false")
             + bn("bn_dw", "dw") + scale("sc_dw", "dw") + relu("r_dw", "dw")
             + conv("pw", "dw", 12, k=1, pad=0, extra="bias_term: false")
             + bn("bn_pw", "pw") + scale("sc_pw", "pw")
             + conv("c3", "pw", 6, extra="stride: 2") + relu("r3", "c3"))
# The partial chains: Scale without bias, BatchNorm alone, Scale alone, a leaky ReLU, a
# convolution with a bias and one with patch rows (kw * C >= 32).
PARTIAL = (INPUT + conv("a", "data", 8) + scale("sa", "a", bias=False) + relu("ra", "a", 0.1)
           + conv("b", "a", 8, extra="bias_term: false") + bn("bnb", "b")
           + conv("c", "b", 16, k=5, pad=2) + scale("sc", "c")
           + conv("d", "c", 4, k=1, pad=0) + bn("bnd", "d") + relu("rd", "d", 0.2))


def make(text, phase=TEST, **kwargs):
    return Net(text_format.Parse(text, caffe_pb2.NetParameter()), phase, **kwargs)


def randomize(net, seed=1):
    """Random weights and plausible BatchNorm statistics (moving-average factor 2, so the
    stored sums are divided), and a random input."""
    rng = np.random.default_rng(seed)
    for layer in net.layers:
        if layer.type == "BatchNorm":
            c = layer.blobs[0].data.shape[0]
            layer.blobs[0].data[...] = rng.normal(0, 0.5, c)
            layer.blobs[1].data[...] = rng.uniform(0.5, 2.0, c)
            layer.blobs[2].data[...] = 2
        else:
            for blob in layer.blobs:
                blob.data[...] = rng.normal(0, 0.5, blob.shape)
    net.blobs["data"].data[...] = rng.standard_normal(net.blobs["data"].shape)


def twins(text, phase=TEST, **kwargs):
    """The net fused and unfused, with the same weights and input."""
    fused, plain = make(text, phase, **kwargs), make(text, phase, fuse=False, **kwargs)
    randomize(fused)
    randomize(plain)
    return fused, plain


def assert_same_blobs(a, b, rtol=1e-5):
    for name in a.blobs:
        x, y = a.blobs[name].data, b.blobs[name].data
        scale_ = max(float(np.abs(y).max()), 1e-6)
        assert np.abs(x - y).max() <= rtol * scale_, name


def assert_same_diffs(a, b, rtol=2e-5):
    """Every blob's and parameter's gradient within ``rtol`` of the largest of ``b``'s."""
    for name in a.blobs:
        x, y = a.blobs[name].diff, b.blobs[name].diff
        assert np.abs(x - y).max() <= rtol * max(float(np.abs(y).max()), 1e-6), name
    for name in a.params:
        for j, (x, y) in enumerate(zip(a.params[name], b.params[name], strict=True)):
            scale_ = max(float(np.abs(y.diff).max()), 1e-6)
            assert np.abs(x.diff - y.diff).max() <= rtol * scale_, (name, j)


def chains(net):
    return {net._layer_names[i]: net._layer_names[c.last] for i, c in net.plan.fused.items()}


def test_resnet_block_fuses_each_conv_chain_and_matches_unfused():
    fused, plain = twins(RESNET)
    assert chains(fused) == {"c1": "r1", "c2": "sc2", "sum": "r2"}
    assert plain.plan.fused == {}
    fused.forward()
    plain.forward()
    assert_same_blobs(fused, plain)


def test_mobilenet_block_depthwise_pointwise_and_conv_relu_fuse():
    fused, plain = twins(MOBILENET)
    assert chains(fused) == {"dw": "r_dw", "pw": "sc_pw", "c3": "r3"}
    assert fused.layers[1]._kind == "depthwise" and fused.layers[5]._kind == "pointwise"
    fused.forward()
    plain.forward()
    assert_same_blobs(fused, plain)


@pytest.mark.parametrize("batch", [2, 1])
def test_partial_chains_scale_without_bias_bn_only_scale_only_leaky_relu(batch):
    """Batch 1 takes the patch-row layer (c) through per-sample columns instead."""
    fused, plain = twins(PARTIAL.replace("dim: 2", f"dim: {batch}"))
    assert chains(fused) == {"a": "ra", "b": "bnb", "c": "sc", "d": "rd"}
    assert fused.layers[fused._layer_names.index("c")]._patch_rows
    fused.forward()
    plain.forward()
    assert_same_blobs(fused, plain)


def test_chain_not_in_place_does_not_fuse():
    text = (INPUT + conv("c", "data", 8) + bn("bn", "c", top="n") + scale("s", "n")
            + relu("r", "n"))
    fused, plain = twins(text)
    assert chains(fused) == {}  # BatchNorm writes another blob: conv's own top stays visible
    text = INPUT + conv("c", "data", 8) + bn("bn", "c") + relu("r", "c", top="out")
    fused, plain = twins(text)
    assert chains(fused) == {"c": "bn"}  # the ReLU out of place stays a step of its own
    fused.forward()
    plain.forward()
    assert_same_blobs(fused, plain)


def compiled() -> bool:
    """Whether the compiled kernels run, so that batch-statistics chains fold."""
    return kernels.enabled(np)


def test_force_backward_and_train_nets_do_not_fold_convolutions():
    """Only the shortcut add and its ReLU, which keep nothing from forward, fold in every
    phase."""
    assert chains(make("force_backward: true\n" + RESNET)) == {"sum": "r2"}
    # TRAIN: BatchNorm uses batch statistics, and a loss makes every layer learn: only the
    # batch-statistics chains fold (the last section).
    train = RESNET + ('layer { name: "loss" type: "EuclideanLoss" bottom: "sum" '
                      'bottom: "data" top: "loss" }\n')
    normalization = {"bn1": "r1", "bn2": "sc2"} if compiled() else {}
    assert chains(make(train, TRAIN)) == {**normalization, "sum": "r2"}
    # Fixed statistics but something learns through the chain: still not fused.
    learning = train.replace('type: "BatchNorm"', 'type: "BatchNorm" '
                             'batch_norm_param { use_global_stats: true }')
    assert chains(make(learning, TRAIN)) == {"sum": "r2"}


def test_a_loss_weight_in_a_chain_stops_it():
    text = INPUT + conv("c", "data", 8) + relu("r", "c").replace("}\n", "loss_weight: 1 }\n")
    assert chains(make(text)) == {}


def test_params_assigned_between_forwards_are_honoured():
    fused, plain = twins(RESNET)
    fused.forward()
    plain.forward()
    rng = np.random.default_rng(5)
    for name, j in (("bn1", 0), ("bn1", 1), ("bn1", 2), ("sc1", 0), ("sc1", 1), ("c1", 0),
                    ("bn2", 1)):
        values = rng.uniform(0.5, 1.5, fused.params[name][j].data.shape)
        fused.params[name][j].data[...] = values
        plain.params[name][j].data[...] = values
    fused.forward()
    plain.forward()
    assert_same_blobs(fused, plain)


def test_moving_average_factor_zero_is_read_as_caffe_does():
    fused, plain = twins(PARTIAL)
    for net in (fused, plain):
        net.params["bnb"][2].data[...] = 0  # Caffe: statistics scaled by 0, not divided
    fused.forward()
    plain.forward()
    assert_same_blobs(fused, plain)


def test_callbacks_see_every_layer_run_unfused():
    fused, plain = twins(RESNET)
    seen = {}

    def after(i):
        seen[fused._layer_names[i]] = fused.blobs["c1"].data.copy()
    with fused.hooked(after_forward=after):
        fused.forward()
    plain.forward(end="c1")
    # Right after the convolution its top holds the convolution alone, before BatchNorm.
    np.testing.assert_allclose(seen["c1"], plain.blobs["c1"].data, rtol=1e-6)
    assert len(seen) == len(fused.layers)


def test_a_forward_range_ending_inside_a_chain_runs_it_layer_by_layer():
    fused, plain = twins(RESNET)
    fused.forward(end="sc1")
    plain.forward(end="sc1")
    assert_same_blobs(fused, plain)  # Scale's output, not the ReLU's
    fused.forward(start="r1")  # starting inside a chain: its head is not run again
    plain.forward(start="r1")
    assert_same_blobs(fused, plain)


def test_deconvolution_is_not_fused():
    text = INPUT + conv("d", "data", 4).replace('"Convolution"', '"Deconvolution"') \
        + bn("bn", "d") + relu("r", "d")
    assert chains(make(text)) == {}


@pytest.mark.parametrize("how", ["env", "keyword"])
def test_opt_out(monkeypatch, how):
    if how == "env":
        monkeypatch.setenv("BREWNET_FUSE", "0")
        net = make(RESNET)
    else:
        net = make(RESNET, fuse=False)
    assert net.plan.fused == {}
    monkeypatch.setenv("BREWNET_FUSE", "0")
    assert chains(make(RESNET, fuse=True)) == {"c1": "r1", "c2": "sc2", "sum": "r2"}  # keyword


# --- weights that change after the net was built and fused ---------------------------------


def fill_input(net, seed):
    """A new random input (of the data blob's current shape) in ``net``."""
    data = net.blobs["data"]
    data.data[...] = np.random.default_rng(seed).standard_normal(data.shape)


def test_a_test_net_sharing_a_training_nets_weights_reads_them_after_solver_steps():
    """pycaffe's ``solver.test_nets[0].share_with(solver.net)``: the TEST net's fused chains
    read the weights and BatchNorm statistics the TRAIN net's steps have since moved (SGD
    updates them in place; TRAIN BatchNorm updates its running sums in place), not those
    of its first, fused forward: after three steps it equals an unfused TEST net sharing
    the same arrays."""
    from brewnet.solver import SGDSolver

    loss = ('layer { name: "loss" type: "EuclideanLoss" bottom: "sum" bottom: "data" '
            'top: "loss" include { phase: TRAIN } }\n')
    param = caffe_pb2.SolverParameter(base_lr=0.01, momentum=0.9, lr_policy="fixed",
                                      max_iter=100, test_iter=[1], test_interval=1000,
                                      test_initialization=False, display=0)
    text_format.Parse(RESNET + loss, param.net_param)
    solver = SGDSolver(param)
    randomize(solver.net)  # BatchNorm statistics as after some training (factor 2)
    fused = solver.test_nets[0]
    plain = make(RESNET, fuse=False)
    assert chains(fused) == {"c1": "r1", "c2": "sc2", "sum": "r2"}
    for net in (fused, plain):
        net.share_with(solver.net)
        fill_input(net, 3)
    fused.forward()
    before = fused.blobs["sum"].data.copy()
    stats = solver.net.params["bn1"][0].data.copy()
    solver.step(3)
    assert np.abs(solver.net.params["bn1"][0].data - stats).max() > 1e-3  # statistics moved
    for name in fused.params:  # still the train net's arrays, which the steps updated
        for mine, theirs in zip(fused.params[name], solver.net.params[name], strict=True):
            assert np.shares_memory(mine.data, theirs.data), name
    fused.forward()
    plain.forward()
    assert np.abs(fused.blobs["sum"].data - before).max() > 1e-2  # and the output with them
    assert_same_blobs(fused, plain)


@pytest.mark.parametrize("kind", ["caffemodel", "hdf5", "constructor"])
def test_weights_loaded_after_fusion_count(tmp_path, kind):
    """``copy_from`` (a .caffemodel), ``load_hdf5`` after the net was built, fused and run,
    and ``Net(..., weights=)``: the fused forward equals the unfused net that wrote the
    file, on its input."""
    source = make(RESNET, fuse=False)
    randomize(source, seed=7)
    source.forward()
    if kind == "hdf5":
        pytest.importorskip("h5py")
        path = tmp_path / "w.caffemodel.h5"
        source.save_hdf5(path)
    else:
        path = tmp_path / "w.caffemodel"
        source.save(path)
    if kind == "constructor":
        fused = make(RESNET, weights=str(path))
    else:
        fused = make(RESNET)
        randomize(fused, seed=1)
        fused.forward()
        if kind == "caffemodel":
            fused.copy_from(path)
        else:
            fused.load_hdf5(path)
    assert chains(fused) == {"c1": "r1", "c2": "sc2", "sum": "r2"}
    fused.blobs["data"].data[...] = source.blobs["data"].data
    fused.forward()
    assert_same_blobs(fused, source)


@pytest.mark.parametrize("text", [RESNET, MOBILENET, PARTIAL, PARTIAL.replace("dim: 2", "dim: 1")],
                         ids=["resnet", "mobilenet", "partial", "partial-batch-1"])
def test_python_writes_into_params_between_forwards_count_for_every_conv_kind(text):
    """Arrays taken from ``net.params`` before the first forward and changed in place
    afterwards (``*=``, ``[...] =``), and the blob's ``data`` setter: every convolution kind
    (im2col, patch rows at batch 1 and 2, depthwise, pointwise) and every absorbed layer
    reads them at the next forward."""
    fused, plain = twins(text)
    views = {name: [b.data for b in fused.params[name]] for name in fused.params}
    fused.forward()
    plain.forward()
    rng = np.random.default_rng(9)
    for name, arrays in views.items():
        layer_type = fused.layers[fused._layer_names.index(name)].type
        for j, array in enumerate(arrays):
            if layer_type == "BatchNorm" and j == 2:
                factor = np.float32(rng.uniform(0.5, 3))
                array *= factor
                plain.params[name][j].data[...] *= factor
                continue
            low = 0.5 if layer_type == "BatchNorm" else -1.5  # a variance stays positive
            values = rng.uniform(low, 1.5, array.shape).astype(np.float32)
            if j == 0:
                fused.params[name][j].data = values  # the setter writes into the array
            else:
                array[...] = values
            plain.params[name][j].data[...] = values
    fused.forward()
    plain.forward()
    assert_same_blobs(fused, plain)


# --- a frozen backbone in a TRAIN net ---------------------------------------------------------

FROZEN = ' param { lr_mult: 0 } param { lr_mult: 0 } '
GLOBAL = 'batch_norm_param { use_global_stats: true }'


def frozen(name, bottom, n, extra=""):
    """conv (lr_mult 0) -> BatchNorm (use_global_stats) -> Scale (lr_mult 0) -> ReLU, in
    place: a fine-tuning backbone whose layers are fixed."""
    return (conv(name, bottom, n, extra=extra).replace('convolution_param', FROZEN
                                                       + 'convolution_param')
            + bn(f"bn_{name}", name, extra=GLOBAL)
            + scale(f"sc_{name}", name).replace("scale_param", FROZEN + "scale_param")
            + relu(f"r_{name}", name))


EUCLID = ('layer { name: "loss" type: "EuclideanLoss" bottom: "head" bottom: "data" '
          'top: "loss" }\n')
# A head that learns: conv, BatchNorm (batch statistics in TRAIN), Scale, ReLU, then a loss.
HEAD = (conv("head", "f2", 8, extra="bias_term: false") + bn("bn_head", "head")
        + scale("sc_head", "head") + relu("r_head", "head") + EUCLID)
TRAIN_NETS = {
    # The frozen layers come first: nothing before them learns, so they fold as at TEST.
    "frozen-first": (INPUT + frozen("f1", "data", 8) + frozen("f2", "f1", 8, "group: 8")
                     + HEAD, {"f1": "r_f1", "f2": "r_f2"}),
    # A learnable convolution before them: the gradient runs through them, nothing folds.
    "learnable-first": (INPUT + conv("c0", "data", 8) + frozen("f1", "c0", 8)
                        + frozen("f2", "f1", 8, "group: 8") + HEAD, {}),
    # A learnable Scale in the backbone: only conv + BatchNorm before it fold.
    "learnable-scale": (INPUT + frozen("f1", "data", 8)
                        + frozen("f2", "f1", 8).replace(FROZEN + "scale_param", "scale_param")
                        + HEAD, {"f1": "r_f1", "f2": "bn_f2"}),
}


@pytest.mark.parametrize("name", TRAIN_NETS)
def test_frozen_backbone_in_train_folds_only_where_no_gradient_runs(name):
    """TRAIN phase, BatchNorm with use_global_stats and lr_mult 0 on the convolution and the
    Scale: a chain folds exactly when no gradient reaches it (nothing before it learns), and
    forward (every blob, the loss) and backward (every blob's and parameter's gradient, those
    of learnable layers before and after the backbone included) equal the unfused net's.
    Tolerance: fusion rounds ``conv·a + b`` where BatchNorm rounds ``(conv − μ)/σ``, a few
    float32 ulps of the blob's largest value; the gradients carry that through one more
    BatchNorm with batch statistics (measured: 5e-7 of the largest), so 2e-5."""
    text, expected = TRAIN_NETS[name]
    fused, plain = twins(text, TRAIN)
    assert chains(fused) == {**expected, **({"bn_head": "r_head"} if compiled() else {})}
    losses = [net.forward_backward() for net in (fused, plain)]
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-5)
    assert_same_blobs(fused, plain)
    assert_same_diffs(fused, plain)
    learnable = "c0" if name == "learnable-first" else "head"
    assert np.abs(fused.params[learnable][0].diff).max() > 0


# --- Scale variants after BatchNorm -----------------------------------------------------------

SCALES = {  # scale_param, batch, num_output, the layer the chain ends at
    "per-channel": ("axis: 1 num_axes: 1 bias_term: true", 2, 8, "r"),
    "negative-axis": ("axis: -3 bias_term: true", 2, 8, "r"),
    "no-bias": ("bias_term: false", 2, 8, "r"),
    "scalar": ("num_axes: 0 bias_term: true", 2, 8, "bn"),
    "to-the-end": ("num_axes: -1 bias_term: true", 2, 8, "bn"),
    "channels-and-rows": ("num_axes: 2 bias_term: true", 2, 8, "bn"),
    # One value per sample, and the batch is as large as the channel count.
    "batch-axis": ("axis: 0 bias_term: true", 8, 8, "bn"),
    # One value per row, and the rows are as many as the channels (9x9 output).
    "row-axis": ("axis: 2 bias_term: true", 2, 9, "bn"),
    # The factor is a second bottom (one per channel, but a blob, not a parameter).
    "second-bottom": ("axis: 1 bias_term: true", 2, 8, "bn"),
}


@pytest.mark.parametrize("variant", SCALES)
def test_only_a_per_channel_scale_folds_and_every_variant_matches_unfused(variant):
    """A Scale in place after conv + BatchNorm folds when it is one factor (and bias) per
    channel of axis 1 from its own parameters, also written as axis -3; a scalar, a factor
    over more axes, over the batch or over rows (even when their count equals the channel
    count) or from a second bottom does not, and ends the chain (the ReLU after it runs
    alone). The net's blobs equal the unfused net's in every case."""
    scale_param, batch, n, last = SCALES[variant]
    two = variant == "second-bottom"
    factor = ('layer { name: "f" type: "Input" top: "f" input_param { shape { dim: 8 } } }\n'
              if two else "")
    bottoms = 'bottom: "c" bottom: "f"' if two else 'bottom: "c"'
    text = (INPUT.replace("dim: 2 dim: 8", f"dim: {batch} dim: 8") + factor
            + conv("c", "data", n) + bn("bn", "c")
            + f'layer {{ name: "s" type: "Scale" {bottoms} top: "c" '
            f'scale_param {{ {scale_param} }} }}\n' + relu("r", "c"))
    fused, plain = twins(text)
    assert chains(fused) == {"c": last}
    if two:
        for net in (fused, plain):
            net.blobs["f"].data[...] = np.linspace(-1.5, 1.5, 8)
    fused.forward()
    plain.forward()
    assert_same_blobs(fused, plain)


# --- shapes, activations and readers --------------------------------------------------------

NETS = {"resnet": RESNET, "mobilenet": MOBILENET, "partial": PARTIAL}


@pytest.mark.parametrize("compiled", [True, False], ids=["kernels", "numpy"])
@pytest.mark.parametrize("name", NETS)
def test_a_batch_size_change_after_a_fused_forward(monkeypatch, name, compiled):
    """pycaffe's ``net.blobs['data'].reshape(...)`` then ``forward()`` after a fused forward,
    to a larger batch, to batch 1 (where a patch-row layer takes per-sample columns) and
    back: each fused chain reshapes its convolution (and its scratch, the depthwise padding
    included) and equals the unfused net, with the compiled kernels and the NumPy bodies."""
    monkeypatch.setattr("brewnet.kernels.AVAILABLE", compiled)
    fused, plain = twins(NETS[name])
    fused.forward()
    plain.forward()
    for seed, batch in enumerate((3, 1, 2), start=10):
        for net in (fused, plain):
            net.blobs["data"].reshape(batch, 8, 9, 9)
            fill_input(net, seed)
            net.forward()
        assert fused.blobs["data"].shape[0] == batch
        assert all(fused.blobs[k].shape == plain.blobs[k].shape for k in plain.blobs)
        assert_same_blobs(fused, plain)


SLOPES = [0.0, 0.1, -0.5, 1.0, 3.0]
# A chain ending in a ReLU for each way a convolution runs its epilogue: im2col with
# per-sample columns (kw·C = 24), depthwise, pointwise, patch rows (kw·C = 40).
KINDS = (INPUT + conv("a", "data", 8) + bn("bn_a", "a") + scale("sc_a", "a") + relu("r_a", "a")
         + conv("dw", "a", 8, extra="group: 8") + bn("bn_dw", "dw") + relu("r_dw", "dw")
         + conv("pw", "dw", 8, k=1, pad=0) + scale("sc_pw", "pw") + relu("r_pw", "pw")
         + conv("pr", "pw", 16, k=5, pad=2) + bn("bn_pr", "pr") + relu("r_pr", "pr"))


@pytest.mark.parametrize("compiled", [True, False], ids=["kernels", "numpy"])
@pytest.mark.parametrize("batch", [2, 1])
@pytest.mark.parametrize("slope", SLOPES)
def test_relu_negative_slope_folds_for_every_conv_kind(monkeypatch, slope, batch, compiled):
    """ReLU's ``negative_slope`` (0, leaky, negative, 1 — the identity — and above 1) is the
    fused epilogue's, in each convolution kind (at batch 1 the patch-row layer takes
    per-sample columns), with the compiled kernels and the NumPy bodies."""
    monkeypatch.setattr("brewnet.kernels.AVAILABLE", compiled)
    text = KINDS.replace("negative_slope: 0.0", f"negative_slope: {slope}")
    fused, plain = twins(text.replace("dim: 2", f"dim: {batch}"))
    assert chains(fused) == {"a": "r_a", "dw": "r_dw", "pw": "r_pw", "pr": "r_pr"}
    assert [fused.layers[fused._layer_names.index(k)]._kind for k in ("a", "dw", "pw")] \
        == ["im2col", "depthwise", "pointwise"]
    assert fused.layers[fused._layer_names.index("pr")]._patch_rows
    fused.forward()
    plain.forward()
    assert_same_blobs(fused, plain)
    # Negative values are left exactly where the slope keeps their sign.
    assert (fused.blobs["a"].data < 0).any() == (slope > 0)


def eltwise(name, a, b):
    return f'layer {{ name: "{name}" type: "Eltwise" bottom: "{a}" bottom: "{b}" top: "{name}" }}\n'


def test_a_blob_with_a_second_reader_holds_what_caffe_holds():
    """Readers of a chain's blob besides the chain: an out-of-place ReLU and an Eltwise both
    reading the Scale's output (a Split after the Scale) leave the ReLU out of the chain,
    and ``net.blobs['c']`` holds the Scale's output, negative values included, as Caffe's;
    two readers after a whole in-place chain (a Split after its ReLU) see its end, also
    after a batch-size change reallocates the convolution's top (the Split's tops share the
    new array). A reader between the convolution and its in-place BatchNorm would make the
    BatchNorm a second producer of the blob, which Caffe and brewnet refuse."""
    text = (INPUT + conv("c", "data", 8) + bn("bn", "c") + scale("s", "c")
            + relu("r", "c", top="out") + eltwise("sum", "c", "out"))
    fused, plain = twins(text)
    assert chains(fused) == {"c": "s"}
    fused.forward()
    plain.forward()
    assert_same_blobs(fused, plain)
    assert (fused.blobs["c"].data < 0).any()
    text = (INPUT + conv("c", "data", 8) + bn("bn", "c") + scale("s", "c") + relu("r", "c")
            + conv("d", "c", 8, k=1, pad=0) + eltwise("sum", "c", "d"))
    fused, plain = twins(text)
    assert chains(fused) == {"c": "r"}
    assert any(layer.type == "Split" for layer in fused.layers)
    for batch in (2, 3):
        for net in (fused, plain):
            net.blobs["data"].reshape(batch, 8, 9, 9)
            fill_input(net, batch)
            net.forward()
        assert_same_blobs(fused, plain)
    pool = ('layer { name: "p" type: "Pooling" bottom: "c" top: "p" '
            'pooling_param { pool: MAX kernel_size: 2 } }\n')
    with pytest.raises(NetError, match="produced by more than one layer"):
        make(INPUT + conv("c", "data", 8) + pool + bn("bn", "c") + relu("r", "c"))


IN_1D = ('layer { name: "data" type: "Input" top: "data" '
         'input_param { shape { dim: 2 dim: 8 dim: 20 } } }\n')
ONE_D = {  # num_output, kernel, pad, extra, (kind, patch rows)
    "im2col": (8, 3, 1, "", ("im2col", False)),
    "depthwise": (8, 3, 1, "group: 8", ("depthwise", False)),
    "pointwise": (8, 1, 0, "", ("pointwise", False)),
    "patch-rows": (16, 5, 2, "", ("im2col", True)),
}


@pytest.mark.parametrize("kind", ONE_D)
def test_one_dimensional_convolutions_fold(kind):
    """A 1-d convolution (bottom ``(N, C, W)``, a 2-d one over a height of 1) folds its
    BatchNorm, Scale and ReLU in each kind and equals the unfused net."""
    n, k, pad, extra, expected = ONE_D[kind]
    text = (IN_1D + conv("c", "data", n, k=k, pad=pad, extra=extra) + bn("bn", "c")
            + scale("s", "c") + relu("r", "c", 0.1))
    fused, plain = twins(text)
    assert chains(fused) == {"c": "r"}
    assert (fused.layers[1]._kind, fused.layers[1]._patch_rows) == expected
    fused.forward()
    plain.forward()
    assert_same_blobs(fused, plain)


def test_batch_statistics_in_a_test_net_do_not_fold_into_the_convolution():
    """``use_global_stats: false`` in a TEST net: BatchNorm normalizes by the batch's
    statistics (and updates its running sums), no fixed map, so the convolution's chain ends
    before it; BatchNorm, Scale and ReLU fold as a batch-statistics chain instead."""
    text = (INPUT + conv("c", "data", 8)
            + bn("bn", "c", extra="batch_norm_param { use_global_stats: false }")
            + scale("s", "c") + relu("r", "c"))
    fused, plain = twins(text)
    assert chains(fused) == ({"bn": "r"} if compiled() else {})
    fused.forward()
    plain.forward()
    assert_same_blobs(fused, plain)
    for j in range(3):
        np.testing.assert_array_equal(fused.params["bn"][j].data, plain.params["bn"][j].data)


# --- TEST nets with a loss: fused forward, replayed before backward ---------------------------

RESNET_LOSS = RESNET + ('layer { name: "loss" type: "EuclideanLoss" bottom: "sum" '
                        'bottom: "data" top: "loss" }\n')


def test_a_test_net_with_a_loss_folds_and_replays_its_chains_before_backward():
    """A train_val net's TEST phase: Caffe marks its layers as needing backward (a loss, lr_mult
    1), which a solver never runs but pycaffe may. Its chains fold; the first backward after a
    fused forward runs them layer by layer again, so every gradient (blobs, parameters,
    Scale's included, which reads the input Scale kept at its own forward) equals the unfused
    net's. A second forward with another input makes stale state visible if nothing replays."""
    fused, plain = twins(RESNET_LOSS)
    assert chains(fused) == {"c1": "r1", "c2": "sc2", "sum": "r2"}
    assert {fused._layer_names[head] for head, chain in fused.plan.fused.items()
            if chain.replay} == {"c1", "c2"}  # the sum and its ReLU keep nothing to replay
    for seed in (2, 3):  # the first forward's state must not survive into the backward
        rng = np.random.default_rng(seed)
        x = rng.standard_normal(fused.blobs["data"].shape).astype(np.float32)
        losses = [net.forward(data=x)["loss"] for net in (fused, plain)]
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-5)
    assert_same_blobs(fused, plain)
    for net in (fused, plain):
        net.backward()
    assert_same_diffs(fused, plain)
    assert np.abs(fused.params["sc1"][0].diff).max() > 0


def test_replay_happens_once_and_only_for_a_backward_that_reaches_the_chain():
    """A backward that stops after the chains leaves them due; the one reaching them replays
    each once; a second backward without a forward replays nothing (the layers still hold
    that forward's state)."""
    fused, plain = twins(RESNET_LOSS)
    for net in (fused, plain):
        net.forward()
    heads = set(fused.plan.fused)
    # loss..sum reaches the Eltwise + ReLU chain only (nothing to replay); sc2..c2 the
    # second convolution's.
    due = [heads - {fused._layer_names.index("sum")}, {fused._layer_names.index("c1")}, set(),
           set()]
    for (start, end), left in zip([("loss", "sum"), ("sc2", "c2"), (None, None),
                                   (None, None)], due, strict=True):
        for net in (fused, plain):  # parameter gradients add up over backward calls
            net.backward(start=start, end=end)
        assert fused._replays_due == left
    assert_same_diffs(fused, plain)



SHAPE = "shape { dim: 2 dim: 3 dim: 50 dim: 70 }"
SUM_INPUT = ('layer { name: "in" type: "Input" top: "a" top: "b" '
             f'input_param {{ {SHAPE} {SHAPE} }} }}\n')


def eltwise_of(bottoms, top, extra=""):
    tops = " ".join(f'bottom: "{b}"' for b in bottoms)
    return f'layer {{ name: "{top}" type: "Eltwise" {tops} top: "{top}" {extra} }}\n'


@pytest.mark.parametrize("slope", [0.0, 0.1])
def test_eltwise_sum_and_its_relu_run_as_one_pass_bit_for_bit(slope):
    """ResNet's shortcut add and the ReLU after it; NaN, infinities and signed zeros too."""
    text = SUM_INPUT + eltwise_of("ab", "s") + relu("r", "s", slope)
    fused, plain = make(text), make(text, fuse=False)
    assert chains(fused) == {"s": "r"}
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((2, *fused.blobs["a"].shape))
    a.reshape(-1)[:6] = [np.nan, np.inf, -np.inf, -0.0, 0.0, -1.0]
    b.reshape(-1)[:6] = [1.0, -np.inf, -1.0, -0.0, -0.0, 1.0]
    for net in (fused, plain):
        net.blobs["a"].data[...] = a
        net.blobs["b"].data[...] = b
        with np.errstate(invalid="ignore"):
            net.forward()
    np.testing.assert_array_equal(fused.blobs["s"].data.view(np.int32),
                                  plain.blobs["s"].data.view(np.int32))


def test_eltwise_that_is_not_a_plain_sum_or_relu_out_of_place_does_not_fuse():
    for extra in ("eltwise_param { operation: PROD }", "eltwise_param { operation: MAX }",
                  "eltwise_param { coeff: 1 coeff: -1 }"):
        assert chains(make(SUM_INPUT + eltwise_of("ab", "s", extra) + relu("r", "s"))) == {}
    assert chains(make(SUM_INPUT + eltwise_of("ab", "s") + relu("r", "s", top="t"))) == {}
    three = SUM_INPUT.replace('top: "b"', 'top: "b" top: "c"').replace(SHAPE, SHAPE * 2, 1)
    assert chains(make(three + eltwise_of("abc", "s") + relu("r", "s"))) == {}


@pytest.mark.parametrize("bias", [False, True])
def test_batch_4_3x3_chains_run_winograd_and_match_unfused(monkeypatch, bias):
    """From batch 4 (9x9 planes) a folded 3x3 stride-1 convolution runs Winograd's F(2x2, 3x3)
    (brewnet/layers/winograd.py): a ResNet chain and a conv + ReLU one equal the unfused
    net's blobs up to rounding, odd extents and groups included."""
    from brewnet import kernels
    from brewnet.layers import winograd

    calls = []
    original = winograd.forward_affine
    monkeypatch.setattr(winograd, "forward_affine",
                        lambda *args: calls.append(1) or original(*args))
    extra = "" if bias else "bias_term: false"
    text = (INPUT.replace("dim: 2", "dim: 4") + conv("c1", "data", 16, extra=extra)
            + bn("bn1", "c1") + scale("sc1", "c1") + relu("r1", "c1")
            + conv("c2", "c1", 8, extra=extra + " group: 2") + relu("r2", "c2", 0.1))
    fused, plain = twins(text)
    assert chains(fused) == {"c1": "r1", "c2": "r2"}
    fused.forward()
    assert len(calls) == (2 if kernels.enabled(np) else 0)
    plain.forward()  # its convolutions' own forwards run Winograd too, the epilogue after
    assert len(calls) == (4 if kernels.enabled(np) else 0)
    assert_same_blobs(fused, plain)


# --- training: BatchNorm with batch statistics, Scale and ReLU as one forward and backward ----

LOSS = ('layer {{ name: "loss" type: "EuclideanLoss" bottom: "{}" bottom: "target" '
        'top: "loss" }}\n')
TARGET = ('layer { name: "target" type: "Input" top: "target" '
          'input_param { shape { dim: 2 dim: 8 dim: 9 dim: 9 } } }\n')
NOBIAS = "bias_term: false"  # a bias before BatchNorm has a gradient of ~0: noise only


def trained(body, out):
    """``body`` after the input, then a 1x1 convolution of its blob ``out`` and a Euclidean
    loss: a training net whose chains have a gradient above them."""
    return (INPUT + TARGET + body + conv("out", out, 8, k=1, pad=0, extra=NOBIAS)
            + LOSS.format("out"))


BLOCK = (conv("c", "data", 8, extra=NOBIAS) + bn("bn", "c") + scale("s", "c")
         + relu("r", "c"))
LEARN0 = ' param { lr_mult: 0 } '
TRAIN_CHAINS = {  # body, the blob it ends with, the chains (first: last)
    "resnet-block": (RESNET.replace(INPUT, ""), "sum",
                     {"bn1": "r1", "bn2": "sc2", "sum": "r2"}),
    "no-scale-bias": (BLOCK.replace("bias_term: true", "bias_term: false"), "c",
                      {"bn": "r"}),
    "no-relu": (BLOCK.replace(relu("r", "c"), ""), "c", {"bn": "s"}),
    "bn-not-in-place": (conv("c", "data", 8, extra=NOBIAS) + bn("bn", "c", top="n")
                        + scale("s", "n") + relu("r", "n"), "n", {"bn": "r"}),
    "bn-not-in-place-no-relu": (conv("c", "data", 8, extra=NOBIAS) + bn("bn", "c", top="n")
                                + scale("s", "n"), "n", {"bn": "s"}),
    "scale-lr-mult-0": (BLOCK.replace('"Scale"', '"Scale"' + LEARN0 + LEARN0), "c",
                        {"bn": "r"}),
    "scale-factor-lr-mult-0": (BLOCK.replace('"Scale"', '"Scale"' + LEARN0), "c",
                               {"bn": "r"}),
    "leaky-relu": (BLOCK.replace("negative_slope: 0.0", "negative_slope: 0.1"), "c",
                   {"bn": "r"}),
    "negative-slope": (BLOCK.replace("negative_slope: 0.0", "negative_slope: -0.5"), "c",
                       {"bn": "r"}),
    # Two readers after the chain: a Split hands the ReLU's output (and takes back both
    # gradients).
    "split-after": (BLOCK + conv("d", "c", 8, k=1, pad=0, extra=NOBIAS)
                    + eltwise("sum", "c", "d"), "sum", {"bn": "r"}),
    # Nothing below the BatchNorm learns: its bottom gets no gradient, the ReLU's is left
    # in the blob's diff.
    "frozen-first": (BLOCK.replace('"Convolution"', '"Convolution"' + LEARN0), "c",
                     {"bn": "r"}),
    "frozen-first-no-relu": (BLOCK.replace('"Convolution"', '"Convolution"' + LEARN0)
                             .replace(relu("r", "c"), ""), "c", {"bn": "s"}),
    # propagate_down false on the BatchNorm: the Scale's gradient stays in the blob's diff.
    "bn-propagate-down-false": (BLOCK.replace(bn("bn", "c"),
                                              bn("bn", "c", extra="propagate_down: false")),
                                "c", {"bn": "r"}),
    # propagate_down false on the ReLU: nothing runs backward below it; the steps run one
    # by one (and do nothing).
    "relu-propagate-down-false": (BLOCK.replace('relu_param', 'propagate_down: false '
                                                'relu_param'), "c", {"bn": "r"}),
}
# (dx, dtop, folds_backward) of each variant's (first) chain.
TRAIN_BACKWARD = {"resnet-block": (True, None, True), "no-scale-bias": (True, None, True),
                  "no-relu": (True, None, True), "bn-not-in-place": (True, "scaled", True),
                  "bn-not-in-place-no-relu": (True, "scaled", True),
                  "scale-lr-mult-0": (True, None, True),
                  "scale-factor-lr-mult-0": (True, None, True),
                  "leaky-relu": (True, None, True), "negative-slope": (True, None, True),
                  "split-after": (True, None, True), "frozen-first": (False, "masked", True),
                  "frozen-first-no-relu": (False, None, True),
                  "bn-propagate-down-false": (False, "scaled", True),
                  "relu-propagate-down-false": (False, "masked", False)}


def iterate(nets, seeds=(2, 3)):
    """forward_backward on each net once per seed, with that seed's input and target; the
    losses of the last."""
    losses = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        x, t = (rng.standard_normal((2, 8, 9, 9)).astype(np.float32) for _ in range(2))
        losses = []
        for net in nets:
            net.blobs["data"].data[...] = x
            net.blobs["target"].data[...] = t
            losses.append(net.forward_backward())
    return losses


def assert_same_training(fused, plain):
    """Every blob's values and every parameter's (BatchNorm's statistics included) bit for
    bit: the fused forward computes each value as the layers do. Every gradient to float32
    rounding: BatchNorm's means are the Scale's sums times its factor, not sums of the
    rounded products."""
    for name in plain.blobs:
        np.testing.assert_array_equal(fused.blobs[name].data, plain.blobs[name].data, name)
    for name in plain.params:
        for j, (x, y) in enumerate(zip(fused.params[name], plain.params[name], strict=True)):
            np.testing.assert_array_equal(x.data, y.data, f"{name}[{j}]")
    assert_same_diffs(fused, plain)


@pytest.mark.parametrize("variant", TRAIN_CHAINS)
def test_training_chains_fold_forward_and_backward_and_match_unfused(variant):
    """Each variant of BatchNorm (batch statistics) -> Scale -> ReLU in a TRAIN net folds
    (ReLU-less, bias-less, BatchNorm out of place, frozen Scale parameters, leaky and
    negative slopes, a Split after it, nothing learning below it, propagate_down false);
    after two iterations with different inputs the loss, every blob's data and diff, every
    parameter gradient and BatchNorm's statistics equal the unfused net's. The backward runs
    as one step except where propagate_down stops the ReLU."""
    if not compiled():
        pytest.skip("batch-statistics chains fold only with the compiled kernels")
    body, out, expected = TRAIN_CHAINS[variant]
    fused, plain = twins(trained(body, out), TRAIN)
    assert chains(fused) == expected
    first = fused.plan.fused[min(fused.plan.fused)]
    assert isinstance(first, FusedNormalization)
    assert (first.dx, first.dtop, first.folds_backward) == TRAIN_BACKWARD[variant]
    losses = iterate((fused, plain))
    assert losses[0] == losses[1]
    assert_same_training(fused, plain)
    assert fused._backward_folds == {i for i, c in fused.plan.fused.items()
                                     if c.folds_backward}
    learned = {"scale-lr-mult-0": [False, False], "scale-factor-lr-mult-0": [False, True],
               "relu-propagate-down-false": [False, False]}
    grads = fused.params["s" if "s" in fused.params else "sc1"]
    assert [bool(np.abs(b.diff).max() > 0) for b in grads] == learned.get(
        variant, [True] * len(grads))


@pytest.mark.parametrize("use_kernels", [True, False], ids=["kernels", "numpy"])
def test_without_the_kernels_nothing_folds_and_training_matches(monkeypatch, use_kernels):
    """With ``BREWNET_KERNELS=numpy`` (the NumPy bodies) the chains run layer by layer; with
    or without the kernels the fused net trains as the unfused one."""
    monkeypatch.setattr("brewnet.kernels.AVAILABLE", use_kernels)
    body, out, expected = TRAIN_CHAINS["resnet-block"]
    fused, plain = twins(trained(body, out), TRAIN)
    assert chains(fused) == (expected if use_kernels else {"sum": "r2"})
    losses = iterate((fused, plain))
    assert losses[0] == losses[1]
    assert_same_training(fused, plain)


def test_what_does_not_fold_in_training():
    """A Scale that is not one factor per channel of its own (a second bottom, a scalar) and
    fixed statistics in a learning net leave the layers one by one; a loss weight on the
    ReLU, or the ReLU out of place, ends the chain at the Scale."""
    if not compiled():
        pytest.skip("batch-statistics chains fold only with the compiled kernels")
    factor = ('layer { name: "f" type: "Input" top: "f" input_param { shape { dim: 8 } } }\n'
              + conv("c", "data", 8) + bn("bn", "c")
              + 'layer { name: "s" type: "Scale" bottom: "c" bottom: "f" top: "c" }\n')
    scalar = BLOCK.replace("bias_term: true", "num_axes: 0 bias_term: true")
    fixed = BLOCK.replace('"BatchNorm"', '"BatchNorm" ' + GLOBAL)
    for body in (factor, scalar, fixed):
        assert chains(make(trained(body, "c"), TRAIN)) == {}
    weighted = BLOCK.replace("relu_param", "loss_weight: 1 relu_param")  # the net's loss
    assert chains(make(INPUT + weighted, TRAIN)) == {"bn": "s"}
    out_of_place = BLOCK.replace(relu("r", "c"), relu("r", "c", top="o"))
    assert chains(make(trained(out_of_place, "o"), TRAIN)) == {"bn": "s"}


def test_callbacks_see_forward_and_backward_run_layer_by_layer():
    """Hooks on the backward after a fused forward, and on the forward before an unhooked
    backward: the callbacks see every layer, the chain's steps run one by one from what the
    fused forward left (BatchNorm's normalized batch and divisor, the Scale's input, the
    ReLU's output), and the results equal the unfused net's."""
    if not compiled():
        pytest.skip("batch-statistics chains fold only with the compiled kernels")
    body, out, _ = TRAIN_CHAINS["resnet-block"]
    fused, plain = twins(trained(body, out), TRAIN)
    iterate((fused, plain), seeds=(2,))
    seen = []
    fused.forward()
    with fused.hooked(before_backward=seen.append):
        fused.backward()
    with fused.hooked(after_forward=seen.append):
        fused.forward()
    assert fused._backward_folds == set()
    fused.backward()
    for _ in range(2):
        plain.forward()
        plain.backward()
    steps = list(range(len(fused.layers)))
    assert seen == steps[::-1] + steps
    assert_same_training(fused, plain)


def test_partial_ranges_run_what_they_cover_and_match_unfused():
    """pycaffe's ranges: a forward ending inside a chain, one starting inside it (after a
    fused forward: the Scale runs again on the ReLU's output and keeps a copy as its input,
    so the chain's backward must not fold), backwards ending and starting inside a chain,
    and a second backward without a forward, each as the unfused net computes them."""
    if not compiled():
        pytest.skip("batch-statistics chains fold only with the compiled kernels")
    body, out, _ = TRAIN_CHAINS["resnet-block"]
    fused, plain = twins(trained(body, out), TRAIN)
    heads = {fused._layer_names[i]: i for i in fused.plan.fused}
    iterate((fused, plain), seeds=(2,))
    calls = [("forward", {"end": "sc1"}), ("forward", {"start": "r1"}),
             ("backward", {}),  # the first chain ran one by one, the second fused
             ("forward", {}), ("forward", {"start": "sc1"}), ("backward", {}),
             ("forward", {}), ("backward", {"end": "sc1"}), ("backward", {"start": "bn1"}),
             ("backward", {"start": "sc2"}), ("backward", {})]
    second, both = {heads["bn2"]}, {heads["bn1"], heads["bn2"]}
    due = [second, second, second, both, second, second, both, both, both, both, both]
    for (method, ranges), left in zip(calls, due, strict=True):
        for net in (fused, plain):
            getattr(net, method)(**ranges)
        assert fused._backward_folds == left, (method, ranges)
        assert_same_training(fused, plain)


def test_solver_steps_through_folded_chains_match_unfused(monkeypatch):
    """SGD with momentum for three iterations (the solver's own nets, BREWNET_FUSE=0 for the
    unfused one): every weight and BatchNorm statistic after them equals the unfused run's
    to float32 rounding."""
    from brewnet.solver import SGDSolver

    body, out, expected = TRAIN_CHAINS["resnet-block"]
    solvers = []
    for fuse in ("1", "0"):
        monkeypatch.setenv("BREWNET_FUSE", fuse)
        param = caffe_pb2.SolverParameter(base_lr=0.01, momentum=0.9, lr_policy="fixed",
                                          max_iter=100, display=0)
        text_format.Parse(trained(body, out), param.net_param)
        solver = SGDSolver(param)
        randomize(solver.net)
        fill_input(solver.net, 4)
        solver.net.blobs["target"].data[...] = 0.5
        solver.step(3)
        solvers.append(solver)
    fused, plain = (s.net for s in solvers)
    assert chains(fused) == (expected if compiled() else {"sum": "r2"})
    assert chains(plain) == {}
    for name in plain.params:
        for x, y in zip(fused.params[name], plain.params[name], strict=True):
            scale_ = max(float(np.abs(y.data).max()), 1e-6)
            assert np.abs(x.data - y.data).max() <= 1e-6 * scale_, name  # measured 1e-7



# --- training: a convolution and the ReLU in place on its top ---------------------------------

WIDE = ('layer { name: "data" type: "Input" top: "data" '
        'input_param { shape { dim: 4 dim: 16 dim: 9 dim: 9 } } }\n'
        'layer { name: "target" type: "Input" top: "target" '
        'input_param { shape { dim: 4 dim: 8 dim: 9 dim: 9 } } }\n')
CONV_KINDS = {  # convolution_param beyond num_output: (kind, Winograd, patch rows)
    "winograd-3x3": ("num_output: 8 kernel_size: 3 pad: 1", ("im2col", True, True)),
    "winograd-5x5": ("num_output: 8 kernel_size: 5 pad: 2", ("im2col", True, True)),
    "patch-rows": ("num_output: 8 kernel_size: 3 pad: 2 dilation: 2",
                   ("im2col", False, True)),
    "columns": ("num_output: 8 kernel_size: 3 pad: 2 dilation: 2 group: 8 bias_term: false",
                ("im2col", False, False)),
    "pointwise": ("num_output: 8 kernel_size: 1", ("pointwise", False, False)),
    "depthwise": ("num_output: 16 kernel_size: 3 pad: 1 group: 16",
                  ("depthwise", False, False)),
}


@pytest.mark.parametrize("use_kernels", [True, False], ids=["kernels", "numpy"])
@pytest.mark.parametrize("slope", [0.0, 0.1])
@pytest.mark.parametrize("kind", CONV_KINDS)
def test_training_conv_and_relu_fold_forward_bit_for_bit(monkeypatch, kind, slope,
                                                         use_kernels):
    """A learning convolution of every kind with a ReLU in place on its top runs the ReLU in
    the pass that writes the top (FusedActivation; without the kernels the two forwards as
    written), in TRAIN too: the convolution's backward reads its bottom and the top's
    gradient, the ReLU's its output, as unfused. The epilogue computes the value the layers
    do, so after two iterations every blob's data and diff and every parameter and gradient
    equal the unfused net's bit for bit; the ReLU layer's own forward never runs."""
    monkeypatch.setattr("brewnet.kernels.AVAILABLE", use_kernels)
    param, path = CONV_KINDS[kind]
    text = (WIDE + 'layer { name: "c" type: "Convolution" bottom: "data" top: "c" '
            f'convolution_param {{ {param} weight_filler {{ type: "gaussian" std: 0.3 }} '
            'bias_filler { type: "gaussian" std: 0.3 } } }\n' + relu("r", "c", slope)
            + conv("out", "c", 8, k=1, pad=0, extra=NOBIAS) + LOSS.format("out"))
    fused, plain = twins(text, TRAIN)
    assert chains(fused) == {"c": "r"}
    assert isinstance(fused.plan.fused[2], FusedActivation)
    layer = fused.layers[2]
    if use_kernels:
        assert (layer._kind, layer._winograd_forward(np), layer._patch_rows) == path
    relu_runs = []
    relu_layer = fused.layers[3]
    object.__setattr__(relu_layer, "forward",
                       lambda *args, f=relu_layer.forward: relu_runs.append(1) or f(*args))
    for seed in (2, 3):
        rng = np.random.default_rng(seed)
        x, t = rng.standard_normal((4, 16, 9, 9)), rng.standard_normal((4, 8, 9, 9))
        for net in (fused, plain):
            net.blobs["data"].data[...] = x
            net.blobs["target"].data[...] = t
            net.forward_backward()
    assert relu_runs == []
    assert (plain.blobs["c"].data < 0).any() == (slope != 0)
    for name in plain.blobs:
        np.testing.assert_array_equal(fused.blobs[name].data, plain.blobs[name].data, name)
        np.testing.assert_array_equal(fused.blobs[name].diff, plain.blobs[name].diff, name)
    for name in plain.params:
        for x, y in zip(fused.params[name], plain.params[name], strict=True):
            np.testing.assert_array_equal(x.data, y.data, name)
            np.testing.assert_array_equal(x.diff, y.diff, name)
