"""The deploy net derived from a train_val (brewnet/net/deploy.py): BVLC's own deploy files
reproduced layer for layer, the same scores as the train_val net, and what is pruned."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import brewnet
from brewnet.data.datum import array_to_datum
from brewnet.data.lmdb_source import write_lmdb
from brewnet.errors import BrewnetError, NetError
from brewnet.net import TEST, Net
from brewnet.net.deploy import derive_deploy, reads_data_sources
from brewnet.proto import caffe_pb2
from brewnet.proto.textio import parse_text, read_net

BVLC = Path(__file__).resolve().parents[3] / "shared" / "reference" / "bvlc"
LENET = ("examples/mnist/lenet_train_test.prototxt", "examples/mnist/lenet.prototxt")
CIFAR = ("examples/cifar10/cifar10_quick_train_test.prototxt",
         "examples/cifar10/cifar10_quick.prototxt")
CAFFENET = ("models/bvlc_reference_caffenet/train_val.prototxt",
            "models/bvlc_reference_caffenet/deploy.prototxt")
needs_bvlc = pytest.mark.skipif(not BVLC.is_dir(), reason="../shared/reference/bvlc is absent")


def _layers(param: caffe_pb2.NetParameter) -> list[tuple[str, str, list[str], list[str]]]:
    return [(lp.name, lp.type, list(lp.bottom), list(lp.top)) for lp in param.layer]


def _shapes(net: Net) -> tuple[dict, dict]:
    blobs = {name: tuple(b.shape) for name, b in net.blobs.items()}
    params = {name: [tuple(b.shape) for b in bs] for name, bs in net.params.items()}
    return blobs, params


@needs_bvlc
@pytest.mark.parametrize("files, record, batch", [
    (LENET, (1, 28, 28), 64), (CIFAR, (3, 32, 32), 1), (CAFFENET, (3, 227, 227), 10)],
    ids=["lenet", "cifar10_quick", "caffenet"])
def test_derived_deploy_nets_match_bvlcs_own(files, record, batch):
    """lenet_train_test, cifar10_quick_train_test and CaffeNet's train_val give BVLC's
    lenet.prototxt, cifar10_quick.prototxt and deploy.prototxt: the same layers (names, types,
    bottoms, tops) and, compiled, the same blob and parameter shapes. Their sources do not
    exist here, so one record's shape comes from ``shapes`` and the batch from ``batch``."""
    train_val, deploy = (BVLC / f for f in files)
    derived = brewnet.deploy_net(str(train_val), batch=batch, shapes={"data": record})
    expected = read_net(deploy)
    assert _layers(derived) == _layers(expected)
    assert not reads_data_sources(derived)
    mine, theirs = Net(derived, TEST), Net(expected, TEST)
    try:
        assert _shapes(mine) == _shapes(theirs)
    finally:
        mine.close()
        theirs.close()


def _source(tmp_path: Path, record: tuple[int, int, int], count: int) -> tuple[str, str]:
    """An LMDB of ``count`` random uint8 records and a random mean image of their shape."""
    rng = np.random.default_rng(0)
    records = ((f"{i:08d}", array_to_datum(rng.integers(0, 256, record, dtype=np.uint8), i % 10))
               for i in range(count))
    source = tmp_path / "source_lmdb"
    write_lmdb(source, records)
    mean = caffe_pb2.BlobProto()
    mean.shape.dim.extend((1, *record))
    mean.data.extend(rng.uniform(0, 255, record).astype(np.float32).ravel().tolist())
    mean_file = tmp_path / "mean.binaryproto"
    mean_file.write_bytes(mean.SerializeToString())
    return str(source), str(mean_file)


def _pointed_at(train_val: Path, source: str, mean_file: str, batch: int
                ) -> caffe_pb2.NetParameter:
    """The train_val with its data layers reading ``source`` in batches of ``batch`` (and its
    mean file, where it has one, ``mean_file``)."""
    param = read_net(train_val)
    for lp in param.layer:
        if lp.type == "Data":
            lp.data_param.source, lp.data_param.batch_size = source, batch
            if lp.transform_param.mean_file:
                lp.transform_param.mean_file = mean_file
    return param


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@needs_bvlc
@pytest.mark.parametrize("files, record, batch, score", [
    (LENET, (1, 28, 28), 3, "ip2"), (CIFAR, (3, 32, 32), 2, "ip2"),
    (CAFFENET, (3, 231, 231), 1, "fc8")], ids=["lenet", "cifar10_quick", "caffenet"])
def test_deploy_net_scores_as_the_train_val(tmp_path, files, record, batch, score):
    """With the train_val's (random) weights, the deploy net's ``prob`` on the train_val's
    preprocessed input equals the softmax of the train_val's score blob; the input's shape
    comes from the source's first record, cropped (CaffeNet: 231 → 227)."""
    brewnet.set_random_seed(7)
    source, mean_file = _source(tmp_path, record, 2 * batch)
    param = _pointed_at(BVLC / files[0], source, mean_file, batch)
    deployment = derive_deploy(param)
    crop = param.layer[0].transform_param.crop_size or record[1]
    assert list(deployment.net.layer[0].input_param.shape[0].dim) == [batch, record[0], crop,
                                                                        crop]
    train_val, deploy = Net(param, TEST), Net(deployment.net, TEST)
    try:
        train_val.forward()
        for name, blobs in deploy.params.items():
            for mine, theirs in zip(blobs, train_val.params[name], strict=True):
                mine.data[...] = theirs.data
        prob = deploy.forward(data=train_val.blobs["data"].data.copy())["prob"]
        np.testing.assert_allclose(prob, _softmax(train_val.blobs[score].data.astype(np.float64)),
                                   rtol=1e-5, atol=1e-7)
    finally:
        train_val.close()
        deploy.close()


@needs_bvlc
def test_preprocessing_is_the_test_phase_transform_param(tmp_path, monkeypatch):
    """Each input's line says what the TEST data layer's transform_param did, in Caffe's
    order (crop, mean, scale); the written text carries the lines as comments and parses."""
    monkeypatch.chdir(tmp_path)  # where the relative sources do not exist
    lenet = derive_deploy(BVLC / LENET[0], shapes={"data": (1, 28, 28)})
    assert lenet.preprocessing == ["data (100, 1, 28, 28): multiply by 0.00390625"]
    caffenet = derive_deploy(BVLC / CAFFENET[0], batch=1, shapes={"data": (3, 227, 227)})
    assert caffenet.preprocessing == [
        "data (1, 3, 227, 227): crop the centre 227x227; subtract the mean image "
        "data/ilsvrc12/imagenet_mean.binaryproto (at the same crop)"]
    text = caffenet.to_text("train_val.prototxt")
    assert text.startswith("# Deploy net derived from train_val.prototxt")
    assert "#   data (1, 3, 227, 227): crop the centre 227x227" in text
    assert _layers(parse_text(text, caffe_pb2.NetParameter())) == _layers(caffenet.net)


@needs_bvlc
def test_a_missing_source_asks_for_a_shape(tmp_path, monkeypatch):
    """Without the source (and without channels to go with the crop size) the error names
    the file, line and layer and the --shape that would do, with the crop size filled in."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(NetError) as lenet:
        derive_deploy(BVLC / LENET[0])
    assert str(lenet.value).startswith(f"{BVLC / LENET[0]}:19:1: layer 'mnist' (Data): LMDB ")
    assert "--shape data=C,H,W" in str(lenet.value)
    with pytest.raises(NetError, match=r"--shape data=C,227,227 "):
        derive_deploy(BVLC / CAFFENET[0])
    with pytest.raises(BrewnetError, match=r"a shape is given for 'dat', which is not among "
                       r"the deploy net's data inputs \(data\)"):
        derive_deploy(BVLC / LENET[0], shapes={"dat": (1, 28, 28)})


def _net(text: str) -> caffe_pb2.NetParameter:
    return parse_text(text, caffe_pb2.NetParameter())


CROPPED = """
layer { name: "images" type: "Data" top: "data" top: "label"
  transform_param { crop_size: 5 mean_value: 1 mean_value: 2 mean_value: 3 scale: 0.5 }
  data_param { source: "/nonexistent/lmdb" batch_size: 4 backend: LMDB } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
  inner_product_param { num_output: 3 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""


def test_crop_size_and_mean_values_shape_an_unreadable_source():
    """crop_size with one mean_value per channel gives (batch, C, crop, crop) without the
    source; ``batch`` replaces the batch axis."""
    deployment = derive_deploy(_net(CROPPED), batch=2)
    assert list(deployment.net.layer[0].input_param.shape[0].dim) == [2, 3, 5, 5]
    assert deployment.preprocessing == [
        "data (2, 3, 5, 5): crop the centre 5x5; subtract the mean values 1, 2, 3 (per "
        "channel); multiply by 0.5"]


PRUNED = """
name: "pruned"
layer { name: "feed" type: "MemoryData" top: "data" top: "label"
  memory_data_param { batch_size: 4 channels: 2 height: 3 width: 3 } }
layer { name: "flat_label" type: "Flatten" bottom: "label" top: "flat_label" }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
  inner_product_param { num_output: 3 } }
layer { name: "relu" type: "ReLU" bottom: "ip" top: "ip" }
layer { name: "aux" type: "InnerProduct" bottom: "ip" top: "aux"
  inner_product_param { num_output: 3 } }
layer { name: "aux_loss" type: "SoftmaxWithLoss" bottom: "aux" bottom: "flat_label"
  top: "aux_loss" loss_weight: 0.3 softmax_param { axis: 1 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "flat_label" top: "loss" }
layer { name: "accuracy" type: "Accuracy" bottom: "ip" bottom: "label" top: "accuracy"
  include { phase: TEST } }
layer { name: "train_only" type: "ReLU" bottom: "ip" top: "train_only"
  include { phase: TRAIN } }
layer { name: "recon" type: "InnerProduct" bottom: "ip" top: "recon"
  inner_product_param { num_output: 18 } }
layer { name: "flat_data" type: "Flatten" bottom: "data" top: "flat_data" }
layer { name: "recon_loss" type: "EuclideanLoss" bottom: "recon" bottom: "flat_data" }
layer { name: "silence" type: "Silence" bottom: "label" }
"""


def test_labels_losses_metrics_and_what_serves_only_them_are_pruned():
    """The label top, the layers that read only it or only feed a loss's target (Flatten of
    data for the Euclidean target), the losses, the metric, the Silence and the TRAIN-only
    layer go; each SoftmaxWithLoss becomes a Softmax — ``prob`` for the one of largest loss
    weight, ``<loss>_prob`` for the others (softmax_param kept) — and a loss without such a
    replacement leaves its prediction (``recon``) as an output."""
    derived = derive_deploy(_net(PRUNED)).net
    assert _layers(derived) == [
        ("data", "Input", [], ["data"]),
        ("ip", "InnerProduct", ["data"], ["ip"]),
        ("relu", "ReLU", ["ip"], ["ip"]),
        ("aux", "InnerProduct", ["ip"], ["aux"]),
        ("aux_loss_prob", "Softmax", ["aux"], ["aux_loss_prob"]),
        ("prob", "Softmax", ["ip"], ["prob"]),
        ("recon", "InnerProduct", ["ip"], ["recon"]),
    ]
    assert derived.layer[4].softmax_param.axis == 1
    assert list(derived.layer[0].input_param.shape[0].dim) == [4, 2, 3, 3]
    net = Net(derived, TEST)
    assert sorted(net.outputs) == ["aux_loss_prob", "prob", "recon"]
    assert all(not lp.include and not lp.exclude for lp in derived.layer)


def test_a_deploy_net_derives_to_itself():
    """A net with Input layers and no loss is its own deploy net (ONNX export relies on
    reads_data_sources to leave it alone, but deriving it is harmless too)."""
    text = """
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 4 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
  inner_product_param { num_output: 2 } }
layer { name: "prob" type: "Softmax" bottom: "ip" top: "prob" }
"""
    assert not reads_data_sources(_net(text))
    deployment = derive_deploy(_net(text), batch=3)
    assert _layers(deployment.net) == _layers(_net(text))
    assert list(deployment.net.layer[0].input_param.shape[0].dim) == [3, 4]
    assert deployment.preprocessing == []


@needs_bvlc
def test_stages_choose_the_data_layers(tmp_path, monkeypatch):
    """BVLC's autoencoder puts its data layers under stages: without one, the deploy net
    would read a blob nothing writes, which is refused at the reading layer's line; with
    ``stages`` the net derives, its loss targets (``flatdata``) pruned and what the two
    losses scored (``decode1``, and ``decode1neuron`` computed from it) kept."""
    monkeypatch.chdir(tmp_path)
    autoencoder = BVLC / "examples" / "mnist" / "mnist_autoencoder.prototxt"
    with pytest.raises(NetError, match=r":\d+:\d+: layer 'encode1' \(InnerProduct\): bottom "
                       r"'data' is produced by no earlier layer of the TEST net; .*--stage"):
        derive_deploy(autoencoder)
    deployment = derive_deploy(autoencoder, stages=["test-on-test"], batch=2,
                               shapes={"data": (1, 28, 28)})
    # the file's float32 scale, to the digit that reads back as the same float32
    assert deployment.preprocessing == ["data (2, 1, 28, 28): multiply by 0.0039215684"]
    derived = deployment.net
    names = [lp.name for lp in derived.layer]
    assert names[0] == "data" and "flatdata" not in names and names[-1] == "decode1neuron"
    net = Net(derived, TEST)
    assert "decode1" in net.blobs and net.outputs == ["decode1neuron"]
