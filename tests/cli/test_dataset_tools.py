"""Caffe's dataset and model tools end to end: convert_imageset, compute_image_mean,
extract_features and the upgrade_*_proto_* commands, with Caffe's argument order and flag
spellings; bad input gives one line."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from brewnet.cli import main as cli
from brewnet.data.image import decode_image
from brewnet.proto import caffe_pb2
from brewnet.proto.binaryio import read_binary
from tests.data.helpers import image_folder
from tests.tools.tiny import captured_log

REPO = Path(__file__).resolve().parents[2]

pytest.importorskip("PIL.Image")
lmdb = pytest.importorskip("lmdb")


def brewnet(*args, cwd):
    return subprocess.run([sys.executable, "-m", "brewnet", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


def datums(path) -> list[caffe_pb2.Datum]:
    with lmdb.open(str(path), readonly=True, lock=False) as env, env.begin() as txn:
        return [caffe_pb2.Datum.FromString(v) for _, v in txn.cursor()]


@pytest.fixture
def folder(tmp_path):
    list_file, _ = image_folder(tmp_path / "images")
    return f"{tmp_path / 'images'}/", str(list_file)


def test_convert_imageset_with_caffes_flags_logs_as_caffe(folder, tmp_path):
    """gflags spellings (-flag=value, --flag value), Caffe's log lines, the skipped images
    listed at the end, and a database of the resized images."""
    root, list_file = folder
    with captured_log(tmp_path / "log"):
        assert cli.main(["convert_imageset", "-resize_height=10", "--resize_width", "12",
                         "-shuffle", "-seed=3", "--jobs", "2", root, list_file,
                         str(tmp_path / "db")]) == 0
    log = (tmp_path / "log").read_text()
    for line in ("Shuffling data (--seed 3)", "A total of 8 images.", "Processed 6 files.",
                 "Skipped 2 image(s) that could not be read"):
        assert line in log
    assert re.search(r"list.txt:3: .*broken.png", log) and re.search(r"list.txt:6: .*missing",
                                                                       log)
    assert [(d.channels, d.height, d.width) for d in datums(tmp_path / "db")] == [(3, 10, 12)] * 6


def test_compute_image_mean_equals_numpys(folder, tmp_path):
    """The mean blob is 1×C×H×W, NumPy's mean of the records (encoded ones decoded), with
    Caffe's per-channel lines."""
    root, list_file = folder
    for name, flags in (("raw", []), ("enc", ["--encoded"])):
        assert cli.main(["convert_imageset", "--resize_height", "8", "--resize_width", "6",
                         "--jobs", "1", *flags, root, list_file, str(tmp_path / name)]) == 0
    decoded = {"raw": np.stack([np.frombuffer(d.data, np.uint8).reshape(3, 8, 6)
                                for d in datums(tmp_path / "raw")]),
               "enc": np.stack([decode_image(d.data, True) for d in datums(tmp_path / "enc")])}
    for name, pixels in decoded.items():
        expected = pixels.mean(axis=0, dtype=np.float64).astype(np.float32)[None]
        with captured_log(tmp_path / f"{name}.log"):
            assert cli.main(["compute_image_mean", str(tmp_path / name),
                             str(tmp_path / f"{name}.binaryproto")]) == 0
        blob = read_binary(tmp_path / f"{name}.binaryproto", caffe_pb2.BlobProto)
        assert (blob.num, blob.channels, blob.height, blob.width) == (1, 3, 8, 6)
        np.testing.assert_array_equal(np.asarray(blob.data, np.float32).reshape(1, 3, 8, 6),
                                      expected)
        log = (tmp_path / f"{name}.log").read_text()
        assert "Number of channels: 3" in log
        for c in range(3):
            value = float(re.search(rf"mean_value channel \[{c}\]: (\S+)", log).group(1))
            assert value == pytest.approx(pixels[:, c].mean(), rel=1e-5)


@pytest.mark.parametrize(("args", "match"), [
    (["convert_imageset", "images/", "nolist.txt", "db"], r"list file 'nolist.txt' cannot"),
    (["convert_imageset", "--strict", "images/", "images/list.txt", "db"],
     r"images/list.txt:3: .*broken.png"),
    (["convert_imageset", "--check_size", "images/", "images/list.txt", "db"],
     r"--check_size: images/pics/e.png is 3×23×9"),
    (["compute_image_mean", "nodb"], r"LMDB 'nodb' does not exist"),
    (["convert_imageset", "images", "images/list.txt", "db"],
     r"none of the 8 images .* could be read.*needs its trailing '/': images/"),
])
def test_bad_input_is_one_line(folder, tmp_path, args, match):
    result = brewnet(*args, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("brewnet: error")]
    assert len(errors) == 1 and re.search(match, errors[0]), result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "db").exists()


def test_extract_features_equals_forward(tmp_path):
    """extract_features of LeNet's ip1 (and conv1, and the scalar loss: one record per
    batch) holds, record by record, the blobs that net.forward gives over the same batches:
    float_data Datums keyed %010d, one database per blob, each counting its own records."""
    from brewnet import TEST, Net
    from tests.data.helpers import image_stack, make_lmdb
    make_lmdb(tmp_path / "digits", image_stack(12, (1, 28, 28)))
    text = (REPO / "examples" / "mnist" / "lenet_train_test.prototxt").read_text()
    text = text.replace("examples/mnist/mnist_test_lmdb", str(tmp_path / "digits"))
    (tmp_path / "lenet.prototxt").write_text(re.sub(r"batch_size: \d+", "batch_size: 5", text))
    net = Net(str(tmp_path / "lenet.prototxt"), TEST)
    net.save(str(tmp_path / "w.caffemodel"))
    expected = {"ip1": [], "conv1": [], "loss": []}
    for _ in range(3):  # 15 images: wraps around the 12 records, as Caffe's reader
        net.forward()
        for name, arrays in expected.items():
            arrays.extend(np.array(net.blobs[name].data).reshape(-1, *net.blobs[name]
                                                                 .data.shape[1:]))
    net.close()
    assert cli.main(["extract_features", str(tmp_path / "w.caffemodel"),
                     str(tmp_path / "lenet.prototxt"), "ip1,conv1,loss",
                     ",".join(str(tmp_path / f"{b}_db") for b in ("ip1", "conv1", "loss")), "3",
                     "lmdb", "CPU"]) == 0
    for name, shape, count in (("ip1", (500, 1, 1), 15), ("conv1", (20, 24, 24), 15),
                               ("loss", (1, 1, 1), 3)):
        with lmdb.open(str(tmp_path / f"{name}_db"), readonly=True, lock=False) as env, \
                env.begin() as txn:
            got = [(k.decode(), caffe_pb2.Datum.FromString(v)) for k, v in txn.cursor()]
        assert [k for k, _ in got] == [f"{i:010d}" for i in range(count)]
        for (_, datum), want in zip(got, expected[name], strict=True):
            assert (datum.channels, datum.height, datum.width) == shape
            np.testing.assert_array_equal(np.asarray(datum.float_data, np.float32),
                                          want.ravel())


def test_extract_features_bad_blob_leaves_no_database(tmp_path):
    """An unknown blob is one error line naming it; no database is created."""
    (tmp_path / "n.prototxt").write_text(
        'layer { name: "in" type: "DummyData" top: "x" dummy_data_param { shape { dim: 2 '
        'dim: 3 } } }')
    (tmp_path / "w.caffemodel").write_bytes(
        caffe_pb2.NetParameter(name="n").SerializeToString())
    result = brewnet("extract_features", "w.caffemodel", "n.prototxt", "x,nope", "a,b", "1",
                     cwd=tmp_path)
    assert result.returncode == 1 and "Unknown feature blob name nope" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_extract_features_existing_database_discards_the_others(tmp_path):
    """A database that already exists stops the run; the other blob's is not left behind."""
    (tmp_path / "n.prototxt").write_text(
        'layer { name: "in" type: "DummyData" top: "x" top: "y" dummy_data_param { '
        'shape { dim: 2 dim: 3 } shape { dim: 2 } } }')
    (tmp_path / "w.caffemodel").write_bytes(
        caffe_pb2.NetParameter(name="n").SerializeToString())
    (tmp_path / "a").mkdir()
    result = brewnet("extract_features", "w.caffemodel", "n.prototxt", "y,x", "b,a", "2",
                     cwd=tmp_path)
    assert result.returncode == 1 and "'a': it already exists" in result.stderr, result.stderr
    assert not (tmp_path / "b").exists()
    assert sorted(os.listdir(tmp_path)) == ["a", "n.prototxt", "w.caffemodel"]


# -- the upgrade commands -----------------------------------------------------------------------
CORPUS = REPO.parent / "shared" / "reference" / "bvlc"
CORPUS_NETS = sorted(p for p in CORPUS.rglob("*.prototxt") if "solver" not in p.name) \
    if CORPUS.is_dir() else []


def as_v1(net: caffe_pb2.NetParameter) -> caffe_pb2.NetParameter | None:
    """``net`` written as a V1 file (``layers`` with enum types, an Input layer as input
    fields), as BVLC's files were before the V2 format; None where V1 lacks a layer type."""
    from brewnet.proto.upgrade import V1_LAYER_TYPES
    enums = {name: number for number, name in V1_LAYER_TYPES.items() if name}
    v1_params = {f.name for f in caffe_pb2.V1LayerParameter.DESCRIPTOR.fields}
    old = caffe_pb2.NetParameter()
    if net.HasField("name"):
        old.name = net.name
    for layer in net.layer:
        if layer.type == "Input":
            old.input.extend(layer.top)
            old.input_shape.extend(layer.input_param.shape)
            continue
        if layer.type not in enums:
            return None
        v1 = old.layers.add(name=layer.name, type=enums[layer.type], bottom=layer.bottom,
                            top=layer.top, include=layer.include, exclude=layer.exclude,
                            loss_weight=layer.loss_weight)
        for spec in layer.param:
            for field, values in (("lr_mult", v1.blobs_lr), ("decay_mult", v1.weight_decay)):
                if spec.HasField(field):
                    values.append(getattr(spec, field))
        for field, value in layer.ListFields():
            if field.name.endswith("_param") and field.name in v1_params:
                getattr(v1, field.name).CopyFrom(value)
    return old


@pytest.mark.skipif(not CORPUS_NETS, reason="../shared/reference/bvlc is absent")
@pytest.mark.parametrize("path", CORPUS_NETS, ids=lambda p: str(p.relative_to(CORPUS)))
def test_bvlc_nets_in_v1_form_upgrade_and_check_clean(path, tmp_path, monkeypatch):
    """Each BVLC net, written in the V1 format its file once had, comes back from
    upgrade_net_proto_text as today's file (input fields as an Input layer named "input",
    as Caffe names it), and the upgraded file checks clean in both phases."""
    from brewnet.net import TEST, TRAIN
    from brewnet.net.checks import check_net
    from brewnet.proto.textio import read_net, read_text, to_text
    from tests.net.test_bvlc_corpus import make_sources
    current = read_net(path)
    legacy = as_v1(current)
    if legacy is None:
        pytest.skip("a layer type of this net has no V1 form")
    (tmp_path / "v1.prototxt").write_text(to_text(legacy))
    assert cli.main(["upgrade_net_proto_text", str(tmp_path / "v1.prototxt"),
                     str(tmp_path / "up.prototxt")]) == 0
    for layer in current.layer:
        if layer.type == "Input":
            layer.name = "input"
    assert read_text(tmp_path / "up.prototxt", caffe_pb2.NetParameter) == current
    # Compile the upgrade with small batches, on tiny stand-ins for its data files.
    small = re.sub(r"batch_size: \d+", "batch_size: 2", (tmp_path / "up.prototxt").read_text())
    (tmp_path / "small.prototxt").write_text(small)
    make_sources(read_net(tmp_path / "small.prototxt"), tmp_path)
    monkeypatch.chdir(tmp_path)
    for phase in (TRAIN, TEST):
        stages = ["test-on-test"] if "autoencoder" in path.name and phase == TEST else []
        result = check_net("small.prototxt", phase=phase, stages=stages)
        assert not result.errors, [str(e) for e in result.errors]


V1_SOLVER = """
net: "lenet.prototxt"
base_lr: 0.01 lr_policy: "fixed" max_iter: 10
solver_type: NESTEROV
"""


def test_upgrade_solver_and_binary_commands(tmp_path):
    """upgrade_solver_proto_text turns solver_type into type; upgrade_net_proto_binary
    turns a V1 .caffemodel into current layers keeping every blob; a file already current
    is written unchanged, with Caffe's note."""
    (tmp_path / "s.prototxt").write_text(V1_SOLVER)
    assert cli.main(["upgrade_solver_proto_text", str(tmp_path / "s.prototxt"),
                     str(tmp_path / "s2.prototxt")]) == 0
    text = (tmp_path / "s2.prototxt").read_text()
    assert 'type: "Nesterov"' in text and "solver_type" not in text
    v1 = caffe_pb2.NetParameter(name="w")
    layer = v1.layers.add(name="ip", type=caffe_pb2.V1LayerParameter.INNER_PRODUCT)
    layer.blobs.add(num=1, channels=1, height=2, width=3).data.extend(range(6))
    (tmp_path / "v1.caffemodel").write_bytes(v1.SerializeToString())
    assert cli.main(["upgrade_net_proto_binary", str(tmp_path / "v1.caffemodel"),
                     str(tmp_path / "w.caffemodel")]) == 0
    up = read_binary(tmp_path / "w.caffemodel", caffe_pb2.NetParameter)
    assert not up.layers and up.layer[0].type == "InnerProduct"
    assert list(up.layer[0].blobs[0].data) == list(range(6))
    with captured_log(tmp_path / "log"):
        assert cli.main(["upgrade_solver_proto_text", str(tmp_path / "s2.prototxt"),
                         str(tmp_path / "s3.prototxt")]) == 0
    assert (tmp_path / "s3.prototxt").read_text() == text
    assert "File already in latest proto format" in (tmp_path / "log").read_text()


def test_upgrade_v0_text_runs_as_the_net_brewnet_reads(tmp_path):
    """A V0 prototxt upgraded by the command builds the same net as reading the V0 file."""
    from brewnet import TEST, Net
    from tests.proto.test_upgrade import V0_NET
    (tmp_path / "v0.prototxt").write_text(V0_NET)
    assert cli.main(["upgrade_net_proto_text", str(tmp_path / "v0.prototxt"),
                     str(tmp_path / "v2.prototxt")]) == 0
    shapes = []
    for name in ("v0.prototxt", "v2.prototxt"):
        net = Net(str(tmp_path / name), TEST)
        shapes.append({k: v.data.shape for k, v in net.blobs.items()})
        net.close()
    assert shapes[0] == shapes[1] and shapes[0]["conv1"] == (2, 4, 7, 7)


def test_upgrade_dropping_settings_exits_1_after_writing(tmp_path):
    """As Caffe's tool: settings it had to drop are errors in the log and exit status 1,
    but the upgraded file is still written."""
    (tmp_path / "v0.prototxt").write_text(
        'input: "x" input_dim: 1 input_dim: 1 input_dim: 1 input_dim: 1 '
        'layers { layer { name: "r" type: "relu" num_output: 3 } bottom: "x" top: "x" }')
    result = brewnet("upgrade_net_proto_text", "v0.prototxt", "out.prototxt", cwd=tmp_path)
    assert result.returncode == 1 and "num_output does not apply" in result.stderr
    assert 'type: "ReLU"' in (tmp_path / "out.prototxt").read_text()
    same = brewnet("upgrade_net_proto_text", "v0.prototxt", "v0.prototxt", cwd=tmp_path)
    assert same.returncode == 1 and "brewnet: error: input and output are both" in same.stderr
