"""``brewnet time``: Caffe's time command — its log lines, per-layer averages that add up to
the pass times, each layer's share and memory — and the timing module behind it."""

import re
import threading

import numpy as np
import pytest

from brewnet.cli import main as cli
from brewnet.cli.time import size_text
from brewnet.data.datum import array_to_datum
from brewnet.data.lmdb_source import write_lmdb
from brewnet.net import TEST, TRAIN, Net
from brewnet.net.timing import layer_memory, time_net

# Batch 4 of 1x12x12 images: conv (3 maps, 5x5) -> 3x8x8, pool 2 -> 3x4x4, ip 10, in-place
# ReLU, softmax loss.
NET = """
name: "tiny"
layer { name: "data" type: "DummyData" top: "data" top: "label"
  dummy_data_param { shape { dim: 4 dim: 1 dim: 12 dim: 12 } shape { dim: 4 }
    data_filler { type: "uniform" } data_filler { type: "constant" value: 1 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_output: 3 kernel_size: 5 weight_filler { type: "xavier" } } }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "ip" type: "InnerProduct" bottom: "pool" top: "ip"
  inner_product_param { num_output: 10 weight_filler { type: "xavier" } } }
layer { name: "relu" type: "ReLU" bottom: "ip" top: "ip" }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""
NUMBER = r"[-+0-9.e]+"



@pytest.fixture
def model(tmp_path):
    path = tmp_path / "tiny.prototxt"
    path.write_text(NET)
    return path


def _value(lines, pattern):
    found = [re.fullmatch(pattern, line) for line in lines]
    found = [m for m in found if m]
    assert len(found) == 1, (pattern, lines)
    return float(found[0].group(1))


def test_log_lines_are_caffe_time_lines(model, glog):
    """Caffe's time log: warm-up lines, one `Iteration: j forward-backward time: X ms.` per
    iteration, `%10s\\tforward: X ms.` and `\\tbackward` per layer in net order, the four
    averages/totals, and the begin/end markers; Caffe's -flag spellings are accepted."""
    assert cli.main(["time", f"-model={model}", "-iterations", "3"]) == 0
    lines = glog.messages()
    assert lines[lines.index("Performing Forward") + 1].startswith("Initial loss: ")
    assert lines.index("*** Benchmark begins ***") < lines.index("Testing for 3 iterations.")
    iters = [line for line in lines if line.startswith("Iteration: ")]
    assert [int(line.split()[1]) for line in iters] == [1, 2, 3]
    assert all(re.fullmatch(rf"Iteration: \d forward-backward time: {NUMBER} ms\.", line)
               for line in iters)
    per_layer = [line for line in lines if re.search(r"\t(forward|backward): ", line)]
    names = ["data", "conv", "pool", "ip", "relu", "loss"]
    assert [line.split("\t")[0] for line in per_layer] == [
        f"{n:>10}" for n in names for _ in range(2)]
    assert all(re.fullmatch(rf" *\w+\t(forward|backward): {NUMBER} ms\.", line)
               for line in per_layer)
    forward = _value(lines, rf"Average Forward pass: ({NUMBER}) ms\.")
    backward = _value(lines, rf"Average Backward pass: ({NUMBER}) ms\.")
    both = _value(lines, rf"Average Forward-Backward: ({NUMBER}) ms\.")
    total = _value(lines, rf"Total Time: ({NUMBER}) ms\.")
    assert both == pytest.approx(total / 3, rel=1e-4)
    assert forward + backward <= both * 1.001
    assert lines[-1] == "*** Benchmark ends ***"


def test_shares_sum_to_one_and_memory_counts_tops_and_params(model, glog):
    """brewnet's extra table: shares add up to 100%, and each layer holds its new tops'
    data+diff plus its parameters' data+diff in float32 (an in-place top holds nothing)."""
    assert cli.main(["time", "--model", str(model), "--iterations", "2"]) == 0
    lines = glog.messages()
    shares = {line.split("\t")[0].strip(): line for line in lines if "\tshare: " in line}
    total = sum(float(re.search(r"share: ([0-9.]+)%", v).group(1)) for v in shares.values())
    assert total == pytest.approx(100, abs=0.5)
    f32 = 4 * 2  # data and diff
    expected = {"data": (4 * 144 + 4) * f32, "conv": 4 * 3 * 8 * 8 * f32,
                "pool": 4 * 3 * 4 * 4 * f32, "ip": 4 * 10 * f32, "relu": 0, "loss": f32}
    params = {"conv": (3 * 25 + 3) * f32, "ip": (10 * 48 + 10) * f32}
    for name, tops in expected.items():
        want = (f"memory: {size_text(tops + params.get(name, 0))} (tops {size_text(tops)} + "
                f"params {size_text(params.get(name, 0))})")
        assert shares[name].endswith(want), (shares[name], want)
    grand = sum(expected.values()) + sum(params.values())
    assert lines[lines.index("*** Benchmark ends ***") - 1] == \
        f"{'all':>10}\tmemory: {size_text(grand)}"


def test_layer_times_add_up_to_the_pass_times(model):
    """time_net: every layer's average is non-negative, the layers' forward (backward) times
    sum to no more than the forward (backward) pass they are part of, and one pass time is
    recorded per iteration; layers that need no backward (DummyData) are not run backward."""
    net = Net(model, TRAIN)
    net.forward_loss()
    net.backward()
    ticks = []
    result = time_net(net, 4, on_iteration=lambda j, ms: ticks.append((j, ms)))
    assert [j for j, _ in ticks] == [1, 2, 3, 4]
    assert [ms for _, ms in ticks] == result.iteration_ms
    assert all(t.forward_ms >= 0 and t.backward_ms >= 0 for t in result.layers)
    assert sum(t.forward_ms for t in result.layers) <= result.forward_ms
    assert sum(t.backward_ms for t in result.layers) <= result.backward_ms
    assert result.layers[0].backward_ms < 0.05
    assert sum(result.share(t) for t in result.layers) == pytest.approx(1)


def test_layers_run_as_in_a_training_pass(model):
    """Timing runs the net's own layers: after it, the loss and gradients are those of a
    plain forward/backward of the same net (with constant data: DummyData refills others)."""
    model.write_text(NET.replace('data_filler { type: "uniform" }',
                                 'data_filler { type: "constant" value: 0.5 }'))
    net = Net(model, TRAIN)
    loss = net.forward_loss()
    net.backward()
    grad = net.params["conv"][0].diff.copy()
    net.clear_param_diffs()
    time_net(net, 1)
    assert float(net.blobs["loss"].data) == pytest.approx(loss, rel=1e-6)
    np.testing.assert_allclose(net.params["conv"][0].diff, grad, rtol=1e-5, atol=1e-7)


def test_in_place_tops_count_for_their_producer(model):
    """layer_memory: ReLU computed in place holds no bytes; ip holds its top and params."""
    net = Net(model, TEST)
    memory = dict(zip([layer.name for layer in net.layers], layer_memory(net), strict=True))
    assert memory["relu"] == (0, 0)
    assert memory["ip"] == (4 * 10 * 8, (10 * 48 + 10) * 8)


def test_test_phase_and_data_layer_net(tmp_path, glog):
    """A net with an LMDB Data layer (as the MNIST example) times in both phases, and the
    command stops the layer's prefetch thread when it is done."""
    rng = np.random.default_rng(0)
    write_lmdb(tmp_path / "db", ((f"{i:08d}", array_to_datum(
        rng.integers(0, 256, (1, 12, 12), dtype=np.uint8), i % 10)) for i in range(16)))
    (tmp_path / "net.prototxt").write_text(NET.replace(
        NET[NET.index("layer { name: \"data\""):NET.index("layer { name: \"conv\"")],
        'layer { name: "data" type: "Data" top: "data" top: "label" transform_param '
        f'{{ scale: 0.00390625 }} data_param {{ source: "{tmp_path / "db"}" batch_size: 4 '
        "backend: LMDB } }\n"))
    threads = threading.active_count()
    for phase in ("TRAIN", "TEST"):
        assert cli.main(["time", "--model", str(tmp_path / "net.prototxt"), "--iterations",
                         "2", "--phase", phase]) == 0
    assert glog.messages().count("*** Benchmark ends ***") == 2
    assert threading.active_count() == threads


def test_bad_arguments_are_one_line_errors(model, capsys):
    """A non-positive --iterations and a missing model file are one-line errors, exit 1."""
    assert cli.main(["time", "--model", str(model), "--iterations", "0"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--iterations 0" in err
    assert cli.main(["time", "--model", str(model.with_name("missing.prototxt"))]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing.prototxt" in err


def test_gpu_flag_times_on_the_device(model, glog):
    """--gpu 0 runs the net on CuPy arrays and logs the same report (skipped without a GPU)."""
    from brewnet import backend

    if backend.cupy_or_none() is None:
        pytest.skip("no CuPy or no CUDA device")
    try:
        assert cli.main(["time", "--model", str(model), "--iterations", "2", "--gpu", "0"]) == 0
    finally:
        backend.set_mode_cpu()
    assert "Using GPU 0" in glog.messages()
    assert glog.messages()[-1] == "*** Benchmark ends ***"
