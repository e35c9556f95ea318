"""BVLC's own prototxt files (../shared/reference/bvlc) as a compatibility corpus: every net
parses and, where brewnet has all its layer types, compiles in both phases with the blob
shapes BVLC Caffe reports. Skips cleanly when ../shared is absent."""

from pathlib import Path

import numpy as np
import pytest

from brewnet.data.datum import array_to_datum
from brewnet.data.lmdb_source import write_lmdb
from brewnet.errors import NetError
from brewnet.layers.registry import layer_type_list
from brewnet.net import TEST, TRAIN, Net
from brewnet.net.state import filter_net
from brewnet.proto import caffe_pb2
from brewnet.proto.binaryio import write_binary
from brewnet.proto.textio import read_net

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "reference" / "bvlc"
NETS = sorted(p for p in CORPUS.rglob("*.prototxt") if "solver" not in p.name) \
    if CORPUS.is_dir() else []

# Blob shapes as BVLC Caffe logs them ("Top shape: ...") for these nets.
LENET = {"conv1": (64, 20, 24, 24), "pool1": (64, 20, 12, 12), "conv2": (64, 50, 8, 8),
         "pool2": (64, 50, 4, 4), "ip1": (64, 500), "ip2": (64, 10)}
CIFAR_QUICK = {"conv1": (100, 32, 32, 32), "pool1": (100, 32, 16, 16),
               "conv2": (100, 32, 16, 16), "pool2": (100, 32, 8, 8), "conv3": (100, 64, 8, 8),
               "pool3": (100, 64, 4, 4), "ip1": (100, 64), "ip2": (100, 10)}


def caffenet(n: int) -> dict:
    """CaffeNet's shapes for a batch of ``n`` (227x227 crops), as Caffe logs them."""
    return {"conv1": (n, 96, 55, 55), "pool1": (n, 96, 27, 27), "norm1": (n, 96, 27, 27),
            "conv2": (n, 256, 27, 27), "pool2": (n, 256, 13, 13), "norm2": (n, 256, 13, 13),
            "conv3": (n, 384, 13, 13), "conv4": (n, 384, 13, 13), "conv5": (n, 256, 13, 13),
            "pool5": (n, 256, 6, 6), "fc6": (n, 4096), "fc7": (n, 4096), "fc8": (n, 1000)}


EXPECTED = {
    ("examples/mnist/lenet_train_test.prototxt", TRAIN): {
        "data": (64, 1, 28, 28), "label": (64,), **LENET, "loss": ()},
    ("examples/mnist/lenet_train_test.prototxt", TEST): {
        "data": (100, 1, 28, 28), "ip2_ip2_0_split_1": (100, 10), "accuracy": (), "loss": (),
        "label_mnist_1_split_0": (100,)},
    ("examples/mnist/lenet.prototxt", TEST): {"data": (64, 1, 28, 28), **LENET,
                                              "prob": (64, 10)},
    ("examples/cifar10/cifar10_quick_train_test.prototxt", TRAIN): {
        "data": (100, 3, 32, 32), **CIFAR_QUICK, "loss": ()},
    ("examples/cifar10/cifar10_quick.prototxt", TEST): {
        "data": (1, 3, 32, 32), "pool3": (1, 64, 4, 4), "prob": (1, 10)},
    ("examples/net_surgery/conv.prototxt", TEST): {"conv": (1, 3, 96, 96)},
    ("models/bvlc_reference_caffenet/deploy.prototxt", TEST): {
        "data": (10, 3, 227, 227), **caffenet(10), "prob": (10, 1000)},
    ("models/bvlc_reference_caffenet/train_val.prototxt", TRAIN): {
        "data": (256, 3, 227, 227), "label": (256,), **caffenet(256), "loss": ()},
    ("models/bvlc_reference_caffenet/train_val.prototxt", TEST): {
        "data": (50, 3, 227, 227), **caffenet(50), "accuracy": (), "loss": ()},
}

# Nets whose TEST phase needs a stage to have any data (as their solvers' test_state give).
TEST_STAGES = {"examples/mnist/mnist_autoencoder.prototxt": ["test-on-test"]}

# What the Data layers of the corpus read: (C, H, W) by dataset folder.
DATASETS = {"mnist": (1, 28, 28), "cifar10": (3, 32, 32), "imagenet": (3, 256, 256)}


def make_hdf5_source(source: str, root: Path) -> None:
    """A list file naming one tiny .h5 with the hdf5_classification example's datasets:
    data (N, 4) and label (N,) with classes 0 and 1."""
    h5py = pytest.importorskip("h5py")
    if (root / source).exists():
        return
    (root / source).parent.mkdir(parents=True, exist_ok=True)
    h5 = str(Path(source).with_suffix(".h5"))
    with h5py.File(root / h5, "w") as f:
        f["data"] = np.random.default_rng(0).standard_normal((4, 4)).astype(np.float32)
        f["label"] = np.array([0, 1, 1, 1], np.float32)
    (root / source).write_text(h5 + "\n")


def make_sources(param: caffe_pb2.NetParameter, root: Path) -> None:
    """Tiny LMDBs, mean files and HDF5 lists at the relative paths the net names, under
    ``root``."""
    for layer in param.layer:
        if layer.type == "HDF5Data":
            make_hdf5_source(layer.hdf5_data_param.source, root)
        if layer.type != "Data":
            continue
        source = layer.data_param.source
        shape = next(s for k, s in DATASETS.items() if k in source)
        if not (root / source).exists():
            (root / source).parent.mkdir(parents=True, exist_ok=True)
            images = np.zeros((4, *shape), np.uint8)
            write_lmdb(root / source, ((b"%08d" % i, array_to_datum(im, i))
                                       for i, im in enumerate(images)))
        mean = layer.transform_param.mean_file
        if mean and not (root / mean).exists():
            (root / mean).parent.mkdir(parents=True, exist_ok=True)
            bp = caffe_pb2.BlobProto(num=1, channels=shape[0], height=shape[1],
                                     width=shape[2])
            bp.data.extend([0.0] * int(np.prod(shape)))
            write_binary(root / mean, bp)


@pytest.mark.skipif(not NETS, reason="../shared/reference/bvlc is not present")
@pytest.mark.parametrize("path", NETS, ids=lambda p: str(p.relative_to(CORPUS)))
@pytest.mark.parametrize("phase", [TRAIN, TEST], ids=["TRAIN", "TEST"])
def test_corpus_net_compiles_with_caffes_shapes(path, phase, tmp_path, monkeypatch):
    """Every net parses; one whose layer types all exist compiles with Caffe's shapes and
    runs forward and backward; one that needs a layer type brewnet lacks fails with an error
    naming that type."""
    param = read_net(path)
    rel = str(path.relative_to(CORPUS))
    stages = TEST_STAGES.get(rel, []) if phase == TEST else []
    filtered = filter_net(param, caffe_pb2.NetState(phase=phase, stage=stages))
    missing = sorted({lp.type for lp in filtered.layer} - set(layer_type_list()))
    monkeypatch.chdir(tmp_path)
    if missing:
        with pytest.raises(NetError, match="unknown layer type"):
            Net(param, phase, stages=stages)
        pytest.skip(f"layer types not in brewnet yet: {', '.join(missing)}")
    if any(lp.type == "Python" for lp in filtered.layer):  # user code: opt-in, module needed
        with pytest.raises(NetError, match="allow_python_layers=True"):
            Net(param, phase, stages=stages)
        pytest.skip("has a Python layer: refused without allow_python_layers (its module is "
                    "not in the corpus)")
    make_sources(filtered, tmp_path)
    param.force_backward = True  # every layer runs backward, deploy nets included
    net = Net(param, phase, stages=stages)
    try:
        for blob, shape in EXPECTED.get((rel, phase), {}).items():
            assert tuple(net.blobs[blob].data.shape) == shape, blob
        run_forward_backward(net)
    finally:
        net.close()


def run_forward_backward(net: Net) -> None:
    """Forward on random inputs, then backward from random output gradients (loss outputs
    keep their loss weight); every parameter gradient must be finite and some non-zero."""
    rng = np.random.default_rng(0)
    for name in net.inputs:
        net.blobs[name].data[...] = rng.random(net.blobs[name].data.shape)
    net.forward()
    weights = net.blob_loss_weights
    for name in net.outputs:
        if not weights.get(name):
            net.blobs[name].diff[...] = rng.standard_normal(net.blobs[name].data.shape)
    net.clear_param_diffs()
    net._backward(len(net.layers) - 1, 0)
    diffs = [p.diff for p in net.learnable_params]
    assert all(np.isfinite(d).all() for d in diffs)
    assert not diffs or any(np.abs(d).sum() > 0 for d in diffs)
