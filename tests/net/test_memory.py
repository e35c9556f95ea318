"""The memory a net needs (net/memory.py), measured from the plan's shapes before anything
large is allocated: data, diffs, parameters and the solver's history; a net that cannot fit
in the available memory is refused naming its largest blobs and the overrides."""

from __future__ import annotations

import os
import re
import tracemalloc

import pytest
from google.protobuf import text_format

from brewnet import TEST, Net
from brewnet.cli.main import main
from brewnet.errors import NetError
from brewnet.net import memory
from brewnet.net.memory import IGNORE_ENV, net_memory
from brewnet.proto import caffe_pb2
from brewnet.proto.textio import read_net
from tests.data.helpers import image_stack, make_lmdb
from tests.net.test_bvlc_corpus import CORPUS, NETS, make_sources

TINY = """name: "tiny"
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "ip"
  inner_product_param { num_output: 4 } }
layer { name: "relu" type: "ReLU" bottom: "ip" top: "ip" }
"""
# 3.0 GiB of weights and their diffs: never allocated by these tests. (A 1x1 convolution:
# InnerProduct would allocate, untouched, the scratch for its weight gradient at set-up.)
HUGE = """name: "huge"
layer { name: "x" type: "Input" top: "x"
  input_param { shape { dim: 10 dim: 20000 dim: 1 dim: 1 } } }
layer { name: "ip" type: "Convolution" bottom: "x" top: "ip"
  convolution_param { num_output: 20000 kernel_size: 1 weight_filler { type: "gaussian" } } }
"""
OVERRIDES = ("--ignore-memory-limit (brewnet solve/time/test/check), "
             f"Net(..., ignore_memory_limit=True) or {IGNORE_ENV}=1")


@pytest.fixture
def mib(monkeypatch):
    """The machine has (as far as brewnet can tell) 1 MiB available."""
    monkeypatch.delenv(IGNORE_ENV, raising=False)
    monkeypatch.setattr(memory, "available_memory", lambda: 1 << 20)


def parsed(text: str) -> caffe_pb2.NetParameter:
    return text_format.Parse(text, caffe_pb2.NetParameter())


def peak_bytes(fn):
    """Peak bytes allocated (NumPy's arrays included) while ``fn()`` runs."""
    tracemalloc.start()
    try:
        fn()
    except NetError:
        pass
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def test_data_diffs_parameters_and_history_from_the_shapes():
    """x (2, 3) and ip (2, 4), whose in-place ReLU adds nothing: 14 values of data and of
    diff; 16 parameters with their diffs; two solver arrays per parameter."""
    net = Net(parsed(TINY), TEST)
    use = net_memory(net.plan, history_slots=2)
    assert (use.data, use.diffs, use.params, use.history) == (56, 56, 128, 128)
    assert use.total == 368
    assert use.largest[:2] == [("parameter 0 of layer ip", 96), ("blob 'ip' (layer ip)", 64)]
    assert use.summary() == ("368 B (data 56 B, diffs 56 B, parameters 128 B, solver history "
                             "128 B)")


def test_a_net_that_cannot_fit_is_refused_before_it_is_allocated(tmp_path, mib):
    """3 GiB of weights against 1 MiB available: one error naming the file, the sizes, the
    largest blobs and the overrides, with (almost) nothing allocated and no filler run."""
    path = tmp_path / "huge.prototxt"
    path.write_text(HUGE)
    with pytest.raises(NetError) as info:
        Net(str(path), TEST)
    assert str(info.value) == (
        f"{path}: net 'huge' needs 3.0 GiB (data 1.5 MiB, diffs 1.5 MiB, parameters 3.0 GiB) "
        "but only 1.0 MiB of memory is available; largest: parameter 0 of layer ip 3.0 GiB, "
        "blob 'x' (layer x) 1.5 MiB, blob 'ip' (layer ip) 1.5 MiB; reduce the batch size or "
        f"the layers' sizes, or override with {OVERRIDES}")
    assert peak_bytes(lambda: Net(str(path), TEST)) < 4 << 20


def test_overrides_let_a_large_net_be_built(tmp_path, mib, monkeypatch):
    """ignore_memory_limit=True, or the environment variable, builds a net larger than the
    (pretended) available memory."""
    text = TINY.replace("dim: 2 dim: 3", "dim: 300 dim: 1000")  # 2.3 MiB of input
    with pytest.raises(NetError, match="needs 2.3 MiB"):
        Net(parsed(text), TEST)
    assert Net(parsed(text), TEST, ignore_memory_limit=True).blobs["x"].shape == [300, 1000]
    monkeypatch.setenv(IGNORE_ENV, "1")
    assert Net(parsed(text), TEST).blobs["x"].data.strides == (4000, 4)


def test_a_data_layer_with_batch_size_30000000_is_refused_naming_its_blob(tmp_path, mib):
    """A Data layer's batch is measured like any blob: 30,000,000 images of 1x2x2 hold 457.8
    MiB of data and as much diff, refused before the batch is allocated."""
    make_lmdb(tmp_path / "db", image_stack(2, (1, 2, 2)))
    net = f"""name: "big"
    layer {{ name: "data" type: "Data" top: "data" top: "label"
      data_param {{ source: "{tmp_path / 'db'}" batch_size: 30000000 backend: LMDB }} }}"""
    with pytest.raises(NetError, match=re.escape(
            "net 'big' needs 1.1 GiB (data 572.2 MiB, diffs 572.2 MiB, parameters 0 B) but "
            "only 1.0 MiB of memory is available; largest: blob 'data' (layer data) 915.5 MiB, "
            "blob 'label' (layer data) 228.9 MiB")):
        Net(parsed(net), TEST)
    assert peak_bytes(lambda: Net(parsed(net), TEST)) < 4 << 20


def test_cli_check_prints_memory_and_the_flag_overrides(tmp_path, mib, capsys):
    path = tmp_path / "huge.prototxt"
    path.write_text(HUGE)
    assert main(["check", str(path)]) == 1
    out, err = capsys.readouterr()
    assert "but only 1.0 MiB of memory is available" in err
    assert "  memory: 3.0 GiB (data 1.5 MiB, diffs 1.5 MiB, parameters 3.0 GiB)" in out
    assert "  largest: parameter 0 of layer ip 3.0 GiB, blob 'x' (layer x) 1.5 MiB" in out
    path.write_text(TINY.replace("dim: 2 dim: 3", "dim: 300 dim: 1000"))
    assert main(["check", str(path), "--ignore-memory-limit"]) == 0
    assert "memory: 2.3 MiB" in capsys.readouterr().out
    assert IGNORE_ENV not in os.environ  # the flag holds for the command only
    for command in (["time", "--iterations", "1"], ["test", "--iterations", "1",
                                                    "--weights", ""]):
        assert main([*command, "--model", str(path)]) == 1
        assert "--ignore-memory-limit" in capsys.readouterr().err


def test_cli_solve_refuses_then_trains_with_the_flag_counting_the_history(tmp_path, mib,
                                                                          capsys, monkeypatch):
    """The solver's nets are measured too, the train net with the rule's history (Adam: two
    arrays per parameter, plus the scratch); --ignore-memory-limit lets solve train."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "net.prototxt").write_text("""name: "dummy"
    layer { name: "d" type: "DummyData" top: "x" top: "y"
      dummy_data_param { shape { dim: 300 dim: 1000 } shape { dim: 300 dim: 1 } } }
    layer { name: "ip" type: "InnerProduct" bottom: "x" top: "ip"
      inner_product_param { num_output: 1 } }
    layer { name: "loss" type: "EuclideanLoss" bottom: "ip" bottom: "y" top: "loss" }""")
    (tmp_path / "solver.prototxt").write_text(
        'net: "net.prototxt" type: "Adam" base_lr: 0.01 lr_policy: "fixed" max_iter: 1 '
        'snapshot_after_train: false')
    assert main(["solve", "--solver", "solver.prototxt"]) == 1
    assert "solver history 11.7 KiB" in capsys.readouterr().err
    assert main(["solve", "--solver", "solver.prototxt", "--ignore-memory-limit"]) == 0


@pytest.mark.skipif(not NETS, reason="../shared/reference/bvlc is not present")
def test_check_reports_the_memory_of_every_corpus_net(tmp_path, monkeypatch, capsys):
    """``brewnet check`` prints the memory of every net in BVLC's corpus. With no memory
    (pretended) available, each is measured from stand-in blobs, nothing filled: cheap."""
    monkeypatch.delenv(IGNORE_ENV, raising=False)
    monkeypatch.setattr(memory, "available_memory", lambda: 0)
    monkeypatch.chdir(tmp_path)
    for path in NETS:
        make_sources(read_net(path), tmp_path)
        main(["check", str(path)])
        out = capsys.readouterr().out
        layers = re.findall(r"^\S.*: (\d+) layers$", out, re.M)
        totals = re.findall(r"^  memory: (\S+ \S+) \(", out, re.M)
        rel = path.relative_to(CORPUS)
        assert layers and len(totals) == len(layers), rel
        # A net whose phase keeps no layer (the autoencoder's TEST without its stage) needs 0.
        assert all((n == "0") == (t == "0 B") for n, t in zip(layers, totals, strict=True)), \
            (rel, totals)


def test_split_tops_count_their_diffs_only():
    """x (2, 3) read by two InnerProducts goes through a Split whose tops share x's data
    (Caffe's ShareData) and have diffs of their own: data is x, ip1 and ip2 (6 + 8 + 8
    values), diffs those and the two split tops (22 + 12)."""
    net = Net(parsed("""name: "split"
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "ip1" type: "InnerProduct" bottom: "x" top: "ip1"
  inner_product_param { num_output: 4 } }
layer { name: "ip2" type: "InnerProduct" bottom: "x" top: "ip2"
  inner_product_param { num_output: 4 } }
"""), TEST)
    assert any(s.layer.type == "Split" for s in net.plan.steps)
    use = net_memory(net.plan)
    assert (use.data, use.diffs) == (4 * 22, 4 * 34)
    assert ("blob 'x_x_0_split_0' (layer x_x_0_split)", 24) in use.largest


def test_a_net_whose_split_tops_fit_only_shared_is_built(monkeypatch):
    """x (1000, 100) read by three layers: its Split's three tops hold x's data, not copies.
    With just the memory the net needs available (net_memory's count, which counts x's data
    once), the net is built: the allocation budget the compiler builds it under counts only
    the split tops' diffs too (counting three more copies of x, it refused the net)."""
    text = """name: "split3"
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 1000 dim: 100 } } }
layer { name: "p1" type: "Power" bottom: "x" top: "p1" }
layer { name: "p2" type: "Power" bottom: "x" top: "p2" }
layer { name: "p3" type: "Power" bottom: "x" top: "p3" }
"""
    monkeypatch.delenv(IGNORE_ENV, raising=False)
    need = net_memory(Net(parsed(text), TEST, ignore_memory_limit=True).plan).total
    monkeypatch.setattr(memory, "available_memory", lambda: need + 1024)
    assert Net(parsed(text), TEST).blobs["x"].shape == [1000, 100]
