"""Broken nets and solvers: each one gives one located line a person can act on, through the
Python API (a brewnet.errors exception with .file/.line/.layer) and through the CLI
(``brewnet check``: non-zero exit, the message on stderr, no traceback).

Every case marks the line the message must point at with ``#!``.
"""

from __future__ import annotations

import pytest

from brewnet import TEST, TRAIN, Net
from brewnet.cli.main import main
from brewnet.errors import BrewnetError, DataError, NetError, ParseError, ShapeError, SolverError
from brewnet.solver import get_solver

HEAD = '''name: "tiny"
layer {
  name: "data"
  type: "Input"
  top: "data"
  top: "label"
  input_param { shape { dim: 2 dim: 1 dim: 8 dim: 8 } shape { dim: 2 } }
}
'''


def layer(name: str | None, type_: str, *lines: str, mark: bool = False) -> str:
    """A layer block, one field a line; ``mark`` points the expected location at its start."""
    head = "layer {" + ("  #!" if mark else "") + "\n"
    if name is not None:
        head += f'  name: "{name}"\n'
    return head + f'  type: "{type_}"\n' + "".join(f"  {line}\n" for line in lines) + "}\n"


CONV = layer("conv1", "Convolution", 'bottom: "data"', 'top: "conv1"',
             "convolution_param { num_output: 4 kernel_size: 3 }")
POOL = layer("pool1", "Pooling", 'bottom: "conv1"', 'top: "pool1"',
             "pooling_param { pool: MAX kernel_size: 2 stride: 2 }")
IP = layer("ip", "InnerProduct", 'bottom: "data"', 'top: "ip"',
           "inner_product_param { num_output: 3 }")

# (case id, layers after HEAD, phase, error class, expected layer, message fragment)
NET_CASES = [
    ("unknown-type", layer("conv1", "Convolutoin", 'bottom: "data"', 'top: "c"', mark=True),
     TEST, NetError, "conv1", "unknown layer type 'Convolutoin'; did you mean 'Convolution'"),
    ("unknown-field", layer("conv1", "Convolution", 'bottom: "data"', 'top: "c"',
                            "convolution_param { num_output: 4 kernal_size: 3 }  #!"),
     TEST, ParseError, "conv1", "unknown field 'kernal_size' in ConvolutionParameter; did you "
     "mean 'kernel_size'?"),
    ("enum-value", CONV + layer("pool1", "Pooling", 'bottom: "conv1"', 'top: "p"',
                                "pooling_param { pool: MAXX kernel_size: 2 }  #!"),
     TEST, ParseError, "pool1", "unknown value 'MAXX' for PoolingParameter.PoolMethod; did you "
     "mean 'MAX'?"),
    ("unquoted-type", layer("conv1", "X", 'bottom: "data"').replace('type: "X"',
                                                                    "type: CONVOLUTION  #!"),
     TEST, ParseError, "conv1", 'the type is a quoted string: type: "Convolution"'),
    ("field-twice", layer("r", "ReLU", 'name: "s"  #!', 'bottom: "data"', 'top: "r"'),
     TEST, ParseError, "r", "field 'name' of LayerParameter is given more than once"),
    ("open-string", layer("r", "ReLU", 'bottom: "data"', 'top: "r" "  #!'),
     TEST, ParseError, "r", "String missing ending quote"),
    ("bottom-typo", CONV + POOL + layer("ip", "InnerProduct", 'bottom: "pool"  #!', 'top: "ip"',
                                        "inner_product_param { num_output: 3 }"),
     TEST, NetError, "ip", "bottom 'pool' (index 0) is not produced by any layer; did you mean "
     "'pool1'?"),
    ("bottom-later", layer("r", "ReLU", 'bottom: "z"  #!', 'top: "r"')
     + layer("z", "ReLU", 'bottom: "data"', 'top: "z"'),
     TEST, NetError, "r", "bottom 'z' (index 0) is produced later, by layer 'z' at line 15; "
     "move that layer before this one"),
    ("bottom-other-phase", layer("t", "ReLU", 'bottom: "data"', 'top: "t"',
                                 "include { phase: TRAIN }")
     + layer("r", "ReLU", 'bottom: "t"  #!', 'top: "r"'),
     TEST, NetError, "r", "produced only by layer 't', which its include/exclude rules leave "
     "out of this TEST net"),
    ("top-twice", CONV + layer("conv1b", "ReLU", 'bottom: "data"', 'top: "conv1"  #!'),
     TEST, NetError, "conv1b", "top 'conv1' is produced by more than one layer"),
    ("in-place-refused", layer("flat", "Flatten", 'bottom: "data"', 'top: "data"  #!'),
     TEST, NetError, "flat", "computed in place (top == bottom) but Flatten cannot run in "
     "place"),
    ("loss-without-label", IP + layer("loss", "SoftmaxWithLoss", 'bottom: "ip"', 'top: "loss"',
                                      mark=True),
     TRAIN, NetError, "loss", "takes exactly 2 bottom blob(s), got 1; a loss layer takes the "
     "predictions and the labels"),
    ("foreign-param", layer("conv1", "Convolution", 'bottom: "data"', 'top: "c"',
                            "pooling_param { kernel_size: 2 }  #!"),
     TEST, NetError, "conv1", "pooling_param is ignored by Convolution layers; its settings go "
     "in convolution_param"),
    ("no-kernel", layer("conv1", "Convolution", 'bottom: "data"', 'top: "c"',
                        "convolution_param { num_output: 4 }", mark=True),
     TEST, NetError, "conv1", "kernel_size is required"),
    ("no-name", layer(None, "ReLU", 'bottom: "data"', 'top: "r"', mark=True),
     TEST, NetError, None, "a layer has no name"),
    ("include-and-exclude", layer("r", "ReLU", 'bottom: "data"', 'top: "r"',
                                  "include { phase: TEST }", "exclude { phase: TRAIN }",
                                  mark=True),
     TEST, NetError, "r", "has both include and exclude rules"),
    ("batch-size-0", layer("mnist", "Data", 'top: "d"', 'top: "l"', "data_param {",
                           '  source: "nowhere_lmdb"', "  batch_size: 0  #!", "}"),
     TRAIN, NetError, "mnist", "data_param.batch_size must be positive"),
    ("data-source-missing", layer("mnist", "Data", 'top: "d"', 'top: "l"',
                                  'data_param { source: "nowhere_lmdb" batch_size: 4 '
                                  "backend: LMDB }", mark=True),
     TRAIN, DataError, "mnist", "LMDB 'nowhere_lmdb' does not exist"),
    ("eltwise-one-bottom", layer("sum", "Eltwise", 'bottom: "data"', 'top: "s"', mark=True),
     TEST, NetError, "sum", "Eltwise takes at least 2 bottom blob(s), got 1"),
    ("concat-shapes", CONV + layer("cat", "Concat", 'bottom: "data"', 'bottom: "conv1"',
                                   'top: "cat"', mark=True),
     TEST, ShapeError, "cat", "bottom 1 has shape (2, 4, 6, 6) but bottom 0 has (2, 1, 8, 8)"),
    ("loss-weight-count", layer("r", "ReLU", 'bottom: "data"', 'top: "r"', "loss_weight: 1",
                                "loss_weight: 2", mark=True),
     TEST, NetError, "r", "has 2 loss_weight values for 1 tops"),
    ("param-specs", layer("r", "ReLU", 'bottom: "data"', 'top: "r"', "param { lr_mult: 1 }",
                          mark=True),
     TEST, NetError, "r", "has 1 `param` specs but ReLU has only 0 parameter blobs"),
    ("shared-param-shape", layer("c1", "Convolution", 'bottom: "data"', 'top: "c1"',
                                 'param { name: "w" }', "convolution_param { num_output: 4 "
                                 "kernel_size: 3 }")
     + layer("c2", "Convolution", 'bottom: "data"', 'top: "c2"', 'param { name: "w" }',
             "convolution_param { num_output: 5 kernel_size: 3 }", mark=True),
     TEST, ShapeError, "c2", "shares parameter 'w' with layer 'c1' but the shapes differ: "
     "(4, 1, 3, 3) there, (5, 1, 3, 3) here"),
    ("propagate-down-count", layer("r", "ReLU", 'bottom: "data"', 'top: "r"',
                                   "propagate_down: true", "propagate_down: false", mark=True),
     TEST, NetError, "r", "propagate_down has 2 values for 1 bottoms"),
    ("python-not-allowed", layer("py", "Python", 'bottom: "data"', 'top: "py"',
                                 'python_param { module: "m" layer: "L" }', mark=True),
     TEST, NetError, "py", "Python layers run only when you opt in"),
    ("unknown-filler", layer("conv1", "Convolution", 'bottom: "data"', 'top: "c"',
                             'convolution_param { num_output: 4 kernel_size: 3 weight_filler '
                             '{ type: "gausian" } }', mark=True),
     TEST, NetError, "conv1", "weight_filler: unknown filler type 'gausian'"),
    ("reshape-count", layer("rs", "Reshape", 'bottom: "data"', 'top: "rs"',
                            "reshape_param { shape { dim: 3 dim: -1 } }  #!"),
     TEST, ShapeError, "rs", "bottom count 128 (shape (2, 1, 8, 8)) is not divisible by the 3"),
    ("no-num-output", layer("ip", "InnerProduct", 'bottom: "data"', 'top: "ip"', mark=True),
     TEST, NetError, "ip", "inner_product_param.num_output must be set to a positive number"),
    ("dropout-ratio", layer("d", "Dropout", 'bottom: "data"', 'top: "d"',
                            "dropout_param { dropout_ratio: 1.5 }", mark=True),
     TEST, NetError, "d", "dropout_ratio 1.5 must be in [0, 1)"),
    ("slice-point", layer("s", "Slice", 'bottom: "data"', 'top: "s1"', 'top: "s2"',
                          "slice_param { axis: 1 slice_point: 5 }", mark=True),
     TEST, ShapeError, "s", "slice_point [5] must increase strictly within (0, 1)"),
    ("lrn-even", layer("n", "LRN", 'bottom: "data"', 'top: "n"',
                       "lrn_param { local_size: 4 }", mark=True),
     TEST, NetError, "n", "local_size must be odd, got 4"),
    ("pool-too-big", layer("p", "Pooling", 'bottom: "data"', 'top: "p"',
                           "pooling_param { kernel_size: 9 }", mark=True),
     TEST, ShapeError, "p", "kernel 9x9 does not fit the padded input 8x8"),
    ("crop-offset", CONV + layer("crop", "Crop", 'bottom: "conv1"', 'bottom: "data"',
                                 'top: "crop"', "crop_param { axis: 2 offset: 5 }", mark=True),
     TEST, ShapeError, "crop", "offset 5 + size 8 exceeds bottom[0]'s size 6"),
    ("axis-range", layer("sc", "Scale", 'bottom: "data"', 'top: "sc"',
                         "scale_param { axis: 5 }", mark=True),
     TEST, ShapeError, "sc", "axis 5 is out of range for a bottom with 4 axes"),
    ("legacy-input-dims", None, TEST, ParseError, None,
     "net has 1 input(s) but 2 input_dim values"),
]
LEGACY_INPUT = 'name: "old"\ninput: "data"  #!\ninput_dim: 1\ninput_dim: 2\n'

SOLVER_NET = HEAD + IP + layer("loss", "SoftmaxWithLoss", 'bottom: "ip"', 'bottom: "label"',
                               'top: "loss"')
SOLVER_HEAD = 'base_lr: 0.01\nmax_iter: 10\n'

# (case id, solver text, error fragment); the net is SOLVER_NET beside the solver, named by
# `net:` unless the case names its train net.
SOLVER_CASES = [
    ("step-without-stepsize", 'lr_policy: "step"  #!\ngamma: 0.1\n',
     "lr_policy 'step' needs `stepsize` > 0"),
    ("multistep-without-stepvalue", 'lr_policy: "multistep"  #!\ngamma: 0.1\n',
     "lr_policy 'multistep' needs at least one `stepvalue`"),
    ("exp-without-gamma", 'lr_policy: "exp"  #!\n', "lr_policy 'exp' needs `gamma`"),
    ("inv-without-power", 'lr_policy: "inv"  #!\ngamma: 0.0001\n',
     "lr_policy 'inv' needs `power`"),
    ("poly-without-power", 'lr_policy: "poly"  #!\n', "lr_policy 'poly' needs `power`"),
    ("sigmoid-without-gamma", 'lr_policy: "sigmoid"  #!\nstepsize: 5\n',
     "lr_policy 'sigmoid' needs `gamma`"),
    ("unknown-policy", 'lr_policy: "fixd"  #!\n',
     "unknown lr_policy 'fixd'; did you mean 'fixed'?"),
    ("no-policy", "", "lr_policy is not set"),
    ("stepvalues-decrease", 'lr_policy: "multistep"\ngamma: 0.1\nstepvalue: 8  #!\n'
     "stepvalue: 4\n", "stepvalue must increase (8, 4)"),
    ("test-iter-without-test-net", 'train_net: "net.prototxt"\nlr_policy: "fixed"\n'
     'test_iter: 5  #!\ntest_interval: 5\n',
     "test_iter is given (1 value(s)) but there is no test net"),
    ("test-net-without-test-iter", 'lr_policy: "fixed"\ntest_net: "net.prototxt"  #!\n'
     "test_interval: 5\n", "defines 1 test net(s) (test_net/test_net_param) but 0 test_iter"),
    ("test-interval-0", 'lr_policy: "fixed"\ntest_iter: 5  #!\n',
     "defines 1 test net(s) but test_interval is 0"),
    ("snapshot-folder-missing", 'lr_policy: "fixed"\nsnapshot: 5\n'
     'snapshot_prefix: "missing/lenet"  #!\n', "folder 'missing' does not exist"),
    ("average-loss-0", 'lr_policy: "fixed"\naverage_loss: 0  #!\n',
     "average_loss must be >= 1, got 0"),
    ("iter-size-0", 'lr_policy: "fixed"\niter_size: 0  #!\n', "iter_size must be >= 1, got 0"),
    ("solver-unknown-field", 'lr_policy: "fixed"\nbase_lrr: 0.1  #!\n',
     "unknown field 'base_lrr' in SolverParameter; did you mean 'base_lr'?"),
]


def marked_line(text: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if "#!" in line)


def cli_error(capsys, argv: list[str]) -> str:
    """Run the CLI; it must fail with one-line messages and no traceback; returns stderr."""
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc != 0
    assert "Traceback" not in err and "internal error" not in err
    return err


@pytest.mark.parametrize("case,layers,phase,cls,layer_name,fragment", NET_CASES,
                         ids=[c[0] for c in NET_CASES])
def test_broken_net(tmp_path, capsys, case, layers, phase, cls, layer_name, fragment):
    """Each broken net raises its error class with file, line and layer set, and brewnet check
    prints the same located line."""
    text = LEGACY_INPUT if layers is None else HEAD + layers
    path = tmp_path / "net.prototxt"
    path.write_text(text)
    line = marked_line(text)
    with pytest.raises(cls) as info:
        Net(str(path), phase).close()
    e = info.value
    assert fragment in str(e)
    assert (e.file, e.line, e.layer) == (str(path), line, layer_name)
    assert "\n" not in str(e)
    phase_name = "TRAIN" if phase == TRAIN else "TEST"
    err = cli_error(capsys, ["check", str(path), "--phase", phase_name])
    located = [x for x in err.splitlines() if x.startswith(f"brewnet: error: {path}:{line}:")]
    assert located and fragment in located[0], err
    if layer_name is not None:
        assert f"layer '{layer_name}'" in located[0]


@pytest.mark.parametrize("case,settings,fragment", SOLVER_CASES,
                         ids=[c[0] for c in SOLVER_CASES])
def test_broken_solver(tmp_path, capsys, monkeypatch, case, settings, fragment):
    """Each broken solver setting raises (before any net is built or any iteration runs) with
    the solver file and the line of the field, and brewnet check and brewnet solve say it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "net.prototxt").write_text(SOLVER_NET)
    text = SOLVER_HEAD + ("" if "train_net:" in settings else 'net: "net.prototxt"\n') + settings
    path = tmp_path / "solver.prototxt"
    path.write_text(text)
    line = marked_line(text) if "#!" in text else None
    with pytest.raises((SolverError, ParseError)) as info:
        get_solver(str(path)).close()
    e = info.value
    assert fragment in str(e)
    assert (e.file, e.line, e.layer) == (str(path), line, None)
    where = f"{path}:{line}:" if line else f"{path}:"
    for argv in (["check", str(path)], ["solve", "--solver", str(path)]):
        err = cli_error(capsys, argv)
        assert any(x.startswith(f"brewnet: error: {where}") and fragment in x
                   for x in err.splitlines()), err
    assert not list(tmp_path.glob("*.caffemodel"))


def _save_weights(tmp_path, layers: str):
    """A .caffemodel written from a net of HEAD + ``layers``."""
    src = tmp_path / "src.prototxt"
    src.write_text(HEAD + layers)
    net = Net(str(src), TEST)
    model = tmp_path / "src.caffemodel"
    net.save(str(model))
    return str(model)


WEIGHT_CASES = [
    ("weights-shape", layer("pool", "Pooling", 'bottom: "data"', 'top: "pool"',
                            "pooling_param { kernel_size: 2 stride: 2 }") + layer(
        "ip", "InnerProduct", 'bottom: "pool"', 'top: "ip"',
        "inner_product_param { num_output: 3 }"),
     layer("pool", "Pooling", 'bottom: "data"', 'top: "pool"',
           "pooling_param { kernel_size: 1 }")
     + layer("ip", "InnerProduct", 'bottom: "pool"', 'top: "ip"',
             "inner_product_param { num_output: 3 }", mark=True),
     ShapeError, "have shape (3, 16) for parameter 0 but this net needs (3, 64) — the input to "
     "ip is (2, 1, 8, 8) (made by pool); check the settings of ip and of the layers before it"),
    ("weights-blob-count", layer("ip", "InnerProduct", 'bottom: "data"', 'top: "ip"',
                                 "inner_product_param { num_output: 3 bias_term: false }"),
     layer("ip", "InnerProduct", 'bottom: "data"', 'top: "ip"',
           "inner_product_param { num_output: 3 }", mark=True),
     BrewnetError, "has 1 parameter blobs for this layer but InnerProduct here has 2"),
]


@pytest.mark.parametrize("case,trained,layers,cls,fragment", WEIGHT_CASES,
                         ids=[c[0] for c in WEIGHT_CASES])
def test_weights_that_do_not_fit(tmp_path, capsys, case, trained, layers, cls, fragment):
    """Weights from a .caffemodel that do not fit a layer: the error names the layer's line,
    the shapes on each side and the layer's input shape; nothing is loaded."""
    model = _save_weights(tmp_path, trained)
    text = HEAD + layers
    path = tmp_path / "net.prototxt"
    path.write_text(text)
    with pytest.raises(cls) as info:
        Net(str(path), TEST, weights=model)
    e = info.value
    assert fragment in str(e)
    assert (e.file, e.line, e.layer) == (str(path), marked_line(text), "ip")
    err = cli_error(capsys, ["check", str(path), "--weights", model])
    assert f"brewnet: error: {path}:{marked_line(text)}:" in err and fragment in err


def test_there_are_at_least_40_cases():
    """Issue 5: at least 40 distinct broken inputs."""
    assert len(NET_CASES) + len(SOLVER_CASES) + len(WEIGHT_CASES) >= 40
