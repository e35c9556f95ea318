"""brewnet.draw: pycaffe's drawing API and helpers, Caffe's look (boxes coloured by type,
octagon blobs, in-place loops), blob shapes on the edges as Caffe's compiler logs them, phase
filtering by NetState rules, and every BVLC prototxt drawn. pydot and Graphviz are optional:
tests needing them skip, and their absence is a one-line error."""

import shutil
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from brewnet import draw, rng
from brewnet.data.datum import array_to_datum
from brewnet.data.lmdb_source import LMDBSource, write_lmdb
from brewnet.errors import BrewnetError
from brewnet.net import TEST, TRAIN, Net
from brewnet.proto import caffe_pb2
from brewnet.proto.textio import parse_text, read_net, read_solver

REPO = Path(__file__).resolve().parents[1]
LENET_TRAIN_TEST = REPO / "examples" / "mnist" / "lenet_train_test.prototxt"
LENET_DEPLOY = REPO / "examples" / "mnist" / "lenet.prototxt"
CORPUS = REPO.parent / "shared" / "reference" / "bvlc"
CORPUS_FILES = sorted(CORPUS.rglob("*.prototxt")) if CORPUS.is_dir() else []
# LeNet's blob shapes as BVLC Caffe logs them ("Top shape: ...") for the TRAIN batch of 64.
LENET_SHAPES = {"data": (64, 1, 28, 28), "label": (64,), "conv1": (64, 20, 24, 24),
                "pool1": (64, 20, 12, 12), "conv2": (64, 50, 8, 8), "pool2": (64, 50, 4, 4),
                "ip1": (64, 500), "ip2": (64, 10), "loss": ()}

needs_dot = pytest.mark.skipif(shutil.which("dot") is None,
                               reason="Graphviz's dot is not installed (apt-get install graphviz)")


@pytest.fixture
def pydot():
    return pytest.importorskip("pydot")


@pytest.fixture
def mnist_lmdbs(tmp_path, monkeypatch):
    """LeNet's relative LMDB paths, holding a few 28×28 records, under the working folder."""
    folder = tmp_path / "examples" / "mnist"
    folder.mkdir(parents=True)
    for split in ("train", "test"):
        write_lmdb(folder / f"mnist_{split}_lmdb",
                   ((f"{i:08d}", array_to_datum(np.zeros((1, 28, 28), np.uint8), i))
                    for i in range(3)))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def layer(text: str) -> caffe_pb2.LayerParameter:
    return parse_text(text, caffe_pb2.LayerParameter())


def shapes_by_top(net: caffe_pb2.NetParameter, phase: int) -> dict[str, tuple[int, ...]]:
    return {net.layer[i].top[j]: shape for (i, j), shape in draw.blob_shapes(net, phase).items()}


# -- pycaffe's helpers ----------------------------------------------------------------------------
def test_pooling_types_and_colours():
    """get_pooling_types_dict maps the PoolMethod numbers; colours are Caffe's: convolutions
    #FF5050, pooling #FF9900, inner products #CC33FF, anything else #6495ED."""
    assert draw.get_pooling_types_dict() == {0: "MAX", 1: "AVE", 2: "STOCHASTIC"}
    assert [draw.choose_color_by_layertype(t) for t in
            ("Convolution", "Deconvolution", "Pooling", "InnerProduct", "ReLU")] == \
        ["#FF5050", "#FF5050", "#FF9900", "#CC33FF", "#6495ED"]


def test_edge_labels_and_lr_mults():
    """Caffe's edge labels: 'Batch N' for Data, num_output for Convolution/InnerProduct, the
    empty dot string otherwise; lr mults default to 1 and the bias one is 0 without a bias."""
    assert draw.get_edge_label(layer('type: "Data" data_param { batch_size: 64 }')) == "Batch 64"
    assert draw.get_edge_label(layer('type: "Convolution" convolution_param { num_output: 20 }'
                                     )) == "20"
    assert draw.get_edge_label(layer('type: "InnerProduct" inner_product_param '
                                     '{ num_output: 500 }')) == "500"
    assert draw.get_edge_label(layer('type: "ReLU"')) == '""'
    assert draw.get_layer_lr_mult(layer('type: "Convolution"')) == (1.0, 1.0)
    assert draw.get_layer_lr_mult(layer('type: "Convolution" param { lr_mult: 1 } '
                                        'param { lr_mult: 2 }')) == (1.0, 2.0)
    assert draw.get_layer_lr_mult(layer('type: "InnerProduct" param { lr_mult: 0.5 } '
                                        'inner_product_param { bias_term: false }')) == (0.5, 0.0)


def test_layer_labels():
    """A label stacks name, type and geometry with \\n when the graph runs left-right and uses
    spaces top-bottom; pooling names its method; display_lrm adds the multipliers; record
    specials in names are escaped."""
    conv = layer('name: "conv1" type: "Convolution" param { lr_mult: 1 } param { lr_mult: 2 } '
                 'convolution_param { num_output: 20 kernel_size: 5 stride: 2 pad: 1 }')
    assert draw.get_layer_label(conv, "LR") == \
        r'"conv1\n(Convolution)\nkernel size: 5\nstride: 2\npad: 1"'
    assert draw.get_layer_label(conv, "TB") == \
        '"conv1 (Convolution) kernel size: 5 stride: 2 pad: 1"'
    assert draw.get_layer_label(conv, "TB", display_lrm=True).endswith('lr mult: 1, 2"')
    pool = layer('name: "p" type: "Pooling" pooling_param { pool: AVE kernel_h: 3 kernel_w: 2 }')
    assert draw.get_layer_label(pool, "TB") == '"p (AVE Pooling) kernel size: 3×2 stride: 1 pad: 0"'
    odd = layer('name: "a|b{c}" type: "ReLU"')
    assert draw.get_layer_label(odd, "TB") == r'"a\|b\{c\} (ReLU)"'


# -- shapes ---------------------------------------------------------------------------------------
def test_blob_shapes_match_caffes_log(mnist_lmdbs):
    """With its LMDBs present, LeNet's shapes are the ones Caffe logs (batch 64 in TRAIN, 100
    in TEST), read from one record per database."""
    net = read_net(LENET_TRAIN_TEST)
    assert shapes_by_top(net, TRAIN) == LENET_SHAPES
    test = shapes_by_top(net, TEST)
    assert test["conv2"] == (100, 50, 8, 8) and test["accuracy"] == ()


def test_blob_shapes_agree_with_the_compiled_net():
    """The shape pass gives every blob the shape the compiler gives it (deploy LeNet)."""
    net = read_net(LENET_DEPLOY)
    compiled = Net(str(LENET_DEPLOY), TEST)
    assert shapes_by_top(net, TEST) == {name: tuple(b.shape) for name, b in compiled.blobs.items()}


def test_missing_source_leaves_downstream_unshaped(tmp_path, monkeypatch, caplog):
    """Without its LMDB, a Data layer's tops and everything computed from them have no shape,
    and the log says why; the drawing falls back to Caffe's labels."""
    monkeypatch.chdir(tmp_path)
    net = read_net(LENET_TRAIN_TEST)
    assert draw.blob_shapes(net, TRAIN) == {}
    assert "does not exist" in caplog.text


def test_shapes_read_one_record_and_leave_the_random_generator(mnist_lmdbs, monkeypatch):
    """A Data layer with a random transform gives its shapes from the record it peeks: no
    batch is read, no thread is left, and the global random generator is as it was."""
    reads = []
    real_read = LMDBSource.read
    monkeypatch.setattr(LMDBSource, "read", lambda self, n: reads.append(n) or real_read(self, n))
    net = parse_text('layer { name: "d" type: "Data" top: "x" top: "y" transform_param { '
                     'mirror: true crop_size: 20 } data_param { source: '
                     '"examples/mnist/mnist_train_lmdb" backend: LMDB batch_size: 2 } }',
                     caffe_pb2.NetParameter())
    rng.set_random_seed(3)
    expected = rng.generator().random()
    rng.set_random_seed(3)
    assert shapes_by_top(net, TRAIN) == {"x": (2, 1, 20, 20), "y": (2,)}
    assert rng.generator().random() == expected
    assert reads == []
    assert not [t for t in threading.enumerate() if t.name.startswith("brewnet-data")]


def test_python_layers_are_not_run(pydot):
    """A Python layer is drawn but never imported: its tops have no shape."""
    net = parse_text('layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 } } }'
                     'layer { name: "py" type: "Python" bottom: "x" top: "y" '
                     'python_param { module: "no_such_module_anywhere" layer: "L" } }'
                     'layer { name: "r" type: "ReLU" bottom: "y" top: "z" }',
                     caffe_pb2.NetParameter())
    assert shapes_by_top(net, TEST) == {"x": (2,)}
    assert "py" in draw.get_pydot_graph(net, "LR").to_string()


def test_format_shapes():
    """Equal shapes print once, differing dimensions as TRAIN|TEST, a 0-d blob as scalar."""
    assert draw.format_shapes([(64, 1, 28, 28)]) == "64×1×28×28"
    assert draw.format_shapes([(64, 20, 24, 24), (100, 20, 24, 24)]) == "64|100×20×24×24"
    assert draw.format_shapes([()]) == "scalar"
    assert draw.format_shapes([(2,), (2, 3)]) == "2 | 2×3"


# -- the graph ------------------------------------------------------------------------------------
def test_graph_has_caffes_look_and_shapes(pydot, mnist_lmdbs):
    """TRAIN LeNet: one box per layer coloured by type, the in-place ReLU green with a loop
    back to its blob, blobs as octagons, top edges labelled with shapes; the TEST-only
    accuracy layer is filtered out."""
    graph = draw.get_pydot_graph(str(LENET_TRAIN_TEST), "LR", phase=TRAIN)
    drawn = [n for n in graph.get_nodes() if n.get("label")]  # not the defaults entry
    names = {n.get_name(): n.get("label").strip('"').split("\\n")[0] for n in drawn}
    boxes = {names[n.get_name()]: n for n in drawn if n.get("shape") == "record"}
    blobs = {names[n.get_name()]: n for n in drawn if n.get("shape") == "octagon"}
    assert "accuracy" not in boxes and set(blobs) == set(LENET_SHAPES)
    assert boxes["conv1"].get("fillcolor").strip('"') == "#FF5050"
    assert boxes["relu1"].get("fillcolor").strip('"') == "#90EE90"
    edges = {(names[e.get_source()], names[e.get_destination()]): (e.get("label") or "")
             for e in graph.get_edges()}
    assert edges[("conv1", "conv1")] == '"64×20×24×24"'  # layer conv1 -> blob conv1
    assert edges[("relu1", "ip1")] == '"64×500"' and ("ip1", "relu1") in edges
    assert edges[("mnist", "label")] == '"64"'


def test_phase_all_merges_train_and_test(pydot, mnist_lmdbs):
    """phase=None draws every layer; the two 'mnist' Data layers merge into one box as in
    Caffe, and each top edge shows the TRAIN|TEST batch."""
    text = draw.get_pydot_graph(str(LENET_TRAIN_TEST), "LR").to_string()
    assert "accuracy" in text and text.count('label="mnist') == 1
    assert '"64|100×20×24×24"' in text


def test_netstate_stage_rules_filter(pydot):
    """Phase filtering follows NetState rules: a layer included only with stage 'deploy' is
    absent unless the net's state has that stage."""
    text = ('layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 } } }'
            'layer { name: "staged" type: "ReLU" bottom: "x" top: "y" '
            'include { phase: TEST stage: "deploy" } }')
    net = parse_text(text, caffe_pb2.NetParameter())
    assert "staged" not in draw.get_pydot_graph(net, "LR", phase=TEST).to_string()
    net.state.stage.append("deploy")
    assert "staged" in draw.get_pydot_graph(net, "LR", phase=TEST).to_string()


def test_label_edges_false_and_legacy_v1_nets(pydot):
    """label_edges=False leaves edges bare; a V1 ('layers') NetParameter is upgraded first."""
    v1 = parse_text('name: "old" layers { name: "ip" type: INNER_PRODUCT bottom: "x" top: "y" '
                    'inner_product_param { num_output: 3 } } input: "x" input_dim: 1 '
                    'input_dim: 2 input_dim: 1 input_dim: 1', caffe_pb2.NetParameter())
    labelled = draw.get_pydot_graph(v1, "LR").to_string()
    assert '"1×3"' in labelled and "InnerProduct" in labelled
    assert "label=\"1×3\"" not in draw.get_pydot_graph(v1, "LR", label_edges=False).to_string()


# -- files and optional dependencies --------------------------------------------------------------
def test_dot_file_needs_no_graphviz(pydot, tmp_path, monkeypatch):
    """A .dot file is written without the dot program; an image then fails with the one-line
    install hint."""
    monkeypatch.setattr(draw.shutil, "which", lambda name: None)
    out = tmp_path / "lenet.dot"
    draw.draw_net_to_file(str(LENET_DEPLOY), out)
    assert out.read_text(encoding="utf-8").startswith("digraph LeNet {")
    with pytest.raises(BrewnetError, match="apt-get install graphviz"):
        draw.draw_net(str(LENET_DEPLOY), "LR", ext="png")


def test_missing_pydot_is_one_clear_error(monkeypatch):
    """Without pydot, drawing is a BrewnetError that says how to install it."""
    monkeypatch.setitem(sys.modules, "pydot", None)
    with pytest.raises(BrewnetError, match="pip install"):
        draw.get_pydot_graph(str(LENET_DEPLOY), "LR")


def test_bad_arguments(pydot, tmp_path):
    """An unknown rankdir, a filename without extension and a format dot does not know are
    BrewnetErrors; so is a file that is neither a net nor a solver."""
    with pytest.raises(BrewnetError, match="rankdir"):
        draw.get_pydot_graph(str(LENET_DEPLOY), "XY")
    with pytest.raises(BrewnetError, match="extension"):
        draw.draw_net_to_file(str(LENET_DEPLOY), tmp_path / "noext")
    bad = tmp_path / "bad.prototxt"
    bad.write_text("layer { nam: 'x' }")
    with pytest.raises(BrewnetError, match="nam"):
        draw.get_pydot_graph(str(bad), "LR")


@needs_dot
def test_unknown_image_format_is_graphvizs_message(pydot):
    """dot's own complaint about an unknown format comes back as a one-line BrewnetError."""
    with pytest.raises(BrewnetError, match="Graphviz dot could not write .nosuch"):
        draw.draw_net(str(LENET_DEPLOY), "LR", ext="nosuch")


@needs_dot
def test_png_and_svg(pydot, mnist_lmdbs, tmp_path):
    """draw_net returns PNG bytes; an SVG file carries the shape labels as text."""
    assert draw.draw_net(str(LENET_TRAIN_TEST), "TB", phase=TRAIN)[:8] == b"\x89PNG\r\n\x1a\n"
    svg = tmp_path / "lenet.svg"
    draw.draw_net_to_file(str(LENET_TRAIN_TEST), svg, "LR", phase=TEST)
    assert "100×50×8×8" in svg.read_text(encoding="utf-8")


# -- the BVLC corpus ------------------------------------------------------------------------------
def _solver_net_is_missing(path: Path) -> bool:
    solver = read_solver(path)
    names = [getattr(solver, f) for f in ("net", "train_net") if solver.HasField(f)]
    return any(not Path(n).is_file() and not (path.parent / n).is_file() for n in names)


@pytest.mark.skipif(not CORPUS_FILES, reason="../shared/reference/bvlc is absent")
@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda p: str(p.relative_to(CORPUS)))
def test_every_bvlc_prototxt_draws(pydot, path, monkeypatch):
    """Every BVLC prototxt draws to dot source from the corpus root (as Caffe's relative paths
    expect); a solver draws its train net, or names the net file the corpus lacks."""
    monkeypatch.chdir(CORPUS)
    try:
        source = draw.draw_net(str(path), "LR", ext="dot").decode("utf-8")
    except BrewnetError as e:
        assert "solver" in path.name and _solver_net_is_missing(path), e
        assert "cannot open file" in str(e)
        return
    assert source.startswith("digraph") and "->" in source


@needs_dot
@pytest.mark.skipif(not CORPUS_FILES, reason="../shared/reference/bvlc is absent")
@pytest.mark.parametrize("name", ["models/bvlc_reference_caffenet/deploy.prototxt",
                                  "examples/cifar10/cifar10_quick_train_test.prototxt"])
def test_bvlc_nets_render_to_png(pydot, name, monkeypatch):
    """A few BVLC nets render to PNG; CaffeNet's deploy edges carry Caffe's logged shapes."""
    monkeypatch.chdir(CORPUS)
    source = draw.draw_net(str(CORPUS / name), "TB", ext="dot").decode("utf-8")
    assert draw.render(source, "png")[:4] == b"\x89PNG"
    if "deploy" in name:
        assert '"10×96×55×55"' in source and '"10×256×6×6"' in source
