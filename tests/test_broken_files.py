"""Broken files and bad data: each case produces one line that names the file, record key or
layer at fault and what is wrong, both through the Python API (a brewnet.errors exception
with ``.file`` / ``.layer`` where they apply) and through ``brewnet solve`` (non-zero exit,
the message on stderr, no traceback). A weights or state file that fails to load leaves the
net's weights untouched.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from brewnet.cli.main import main
from brewnet.data.datum import array_to_datum
from brewnet.data.lmdb_source import write_lmdb
from brewnet.data.transform import load_mean_file
from brewnet.errors import BrewnetError, DataError, NetError, ShapeError, WeightsError
from brewnet.net.net import Net
from brewnet.net.weights import array_to_blobproto
from brewnet.proto import caffe_pb2
from brewnet.proto.binaryio import write_binary
from brewnet.proto.textio import read_solver
from brewnet.solver import get_solver

NET = """
name: "tiny"
layer {{ name: "data"  type: "Data"  top: "data"  top: "label"
  transform_param {{ {transform} }}
  data_param {{ source: "{source}"  batch_size: 4  backend: LMDB }} }}
layer {{ name: "ip"  type: "InnerProduct"  bottom: "data"  top: "ip"
  inner_product_param {{ num_output: 10  weight_filler {{ type: "xavier" }} }} }}
layer {{ name: "loss"  type: "SoftmaxWithLoss"  bottom: "ip"  bottom: "label"  top: "loss"
  {loss} }}
"""
SOLVER = """
net: "{net}"
base_lr: 0.01  momentum: 0.9  lr_policy: "fixed"  max_iter: 2
snapshot_after_train: false  snapshot_prefix: "{prefix}"  snapshot_format: {fmt}
random_seed: 1  solver_mode: CPU
"""
GLOG = re.compile(r"^[IWEF]\d{4} ")


def _images(n: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, 1, 2, 3), dtype=np.uint8)


def _lmdb(path: Path, records: list[tuple[bytes, bytes]]) -> Path:
    write_lmdb(path, records)
    return path


def _good_records(n: int = 8, labels: list[int] | None = None) -> list[tuple[bytes, bytes]]:
    labels = labels if labels is not None else [i % 10 for i in range(n)]
    return [(b"%08d" % i, array_to_datum(img, lbl).SerializeToString())
            for i, (img, lbl) in enumerate(zip(_images(n), labels, strict=True))]


@dataclass
class World:
    """A folder with a good LMDB, a tiny net reading it and good snapshots of that net."""

    root: Path
    files: dict[str, Path] = field(default_factory=dict)

    def net(self, name: str, source: Path | None = None, transform: str = "",
            loss: str = "") -> Path:
        path = self.root / f"{name}.prototxt"
        path.write_text(NET.format(source=source or self.files["db"], transform=transform,
                                   loss=loss))
        return path

    def solver(self, name: str, net: Path | None = None, fmt: str = "BINARYPROTO") -> Path:
        path = self.root / f"{name}_solver.prototxt"
        path.write_text(SOLVER.format(net=net or self.files["net"], fmt=fmt,
                                      prefix=self.root / f"{name}_snap"))
        return path

    def copy(self, key: str, name: str, data: bytes | None = None) -> Path:
        """A copy of a good file under a new name, optionally with other contents."""
        path = self.root / name
        path.write_bytes(self.files[key].read_bytes() if data is None else data)
        return path


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    w = World(tmp_path_factory.mktemp("broken"))
    w.files["db"] = _lmdb(w.root / "good_lmdb", _good_records())
    w.files["net"] = w.net("good")
    for fmt, ext in (("BINARYPROTO", ""), ("HDF5", ".h5")):
        if fmt == "HDF5" and not _have_h5py():
            continue
        solver = get_solver(read_solver(w.solver(f"good{ext}", fmt=fmt)), source="good")
        try:
            solver.step(1)
            model, state = solver.snapshot()
        finally:
            solver.close()
        w.files[f"model{ext}"], w.files[f"state{ext}"] = Path(model), Path(state)
    w.files["mean"] = w.root / "mean.binaryproto"
    write_binary(w.files["mean"], array_to_blobproto(np.ones((1, 1, 2, 3), np.float32)))
    return w


def _have_h5py() -> bool:
    try:
        import h5py  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class Case:
    """One broken input: how the API meets it, the CLI arguments that meet it, what the
    message must say and which attributes the error must carry."""

    api: Callable[[], object]
    cli: list[str]
    error: type[BrewnetError]
    pattern: str
    file: str | None = None  # the error's .file must end with this
    layer: str | None = None  # the error's .layer must be this


def _net_weights(net: Net) -> list[np.ndarray]:
    return [b.data.copy() for layer in net.layers for b in layer.blobs]


def _assert_same(before: list[np.ndarray], after: list[np.ndarray], why: str) -> None:
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True)), why


def _load_weights(world: World, path: Path) -> Callable[[], object]:
    """Load ``path`` into a fresh net; on failure, check the net was left untouched."""
    def run() -> None:
        net = Net(str(world.files["net"]), caffe_pb2.TRAIN)
        before = _net_weights(net)
        try:
            net.copy_from(path)
        except BrewnetError:
            _assert_same(before, _net_weights(net), "a failed load changed the net")
            raise
        finally:
            net.close()
    return run


def _restore(world: World, path: Path, fmt: str = "BINARYPROTO") -> Callable[[], object]:
    def run() -> None:
        solver = get_solver(read_solver(world.solver("restore", fmt=fmt)), source="restore")
        before = _net_weights(solver.net)
        try:
            solver.restore(path)
        except BrewnetError:
            _assert_same(before, _net_weights(solver.net), "a failed restore changed the net")
            raise
        finally:
            solver.close()
    return run


def _train(net: Path) -> Callable[[], object]:
    """Build the TRAIN net and run two forward passes (bad records may be in batch 2)."""
    def run() -> None:
        n = Net(str(net), caffe_pb2.TRAIN)
        try:
            n.forward()
            n.forward()
        finally:
            n.close()
    return run


def _state_with(world: World, name: str, edit: Callable[[caffe_pb2.SolverState], None]) -> Path:
    state = caffe_pb2.SolverState.FromString(world.files["state"].read_bytes())
    edit(state)
    path = world.root / name
    path.write_bytes(state.SerializeToString())
    return path


def _model_with(world: World, name: str, edit: Callable[[caffe_pb2.NetParameter], None]) -> Path:
    model = caffe_pb2.NetParameter.FromString(world.files["model"].read_bytes())
    edit(model)
    path = world.root / name
    path.write_bytes(model.SerializeToString())
    return path


def _layer(model: caffe_pb2.NetParameter, name: str) -> caffe_pb2.LayerParameter:
    return next(lp for lp in model.layer if lp.name == name)


# ------------------------------------------------------------------------------------------
# the cases
# ------------------------------------------------------------------------------------------
def weights_cases(w: World) -> dict[str, Case]:
    good = w.files["model"].read_bytes()
    cases = {}

    def weights(name: str, path: Path, error: type[BrewnetError], pattern: str,
                layer: str | None = None, file: str | None = None) -> None:
        cases[name] = Case(_load_weights(w, path), ["--weights", str(path)], error, pattern,
                           file=file or path.name, layer=layer)

    p = w.copy("model", "truncated.caffemodel", good[: len(good) // 2])
    weights("caffemodel truncated", p, WeightsError,
            r"truncated\.caffemodel: truncated or corrupted binary NetParameter")
    p = w.copy("model", "garbage.caffemodel", bytes(range(256)) * 4)
    weights("caffemodel garbage", p, WeightsError, r"garbage\.caffemodel: .*corrupted")
    p = w.copy("model", "empty.caffemodel", b"")
    weights("caffemodel empty", p, WeightsError, r"empty\.caffemodel: file is empty")
    p = w.copy("model", "text.caffemodel", w.files["net"].read_bytes())
    weights("prototxt given as caffemodel", p, WeightsError, r"text\.caffemodel: .*looks like text")

    def short_data(m: caffe_pb2.NetParameter) -> None:
        del _layer(m, "ip").blobs[0].data[5:]

    p = _model_with(w, "short_blob.caffemodel", short_data)
    weights("caffemodel blob shorter than its shape", p, WeightsError,
            r"short_blob\.caffemodel: layer 'ip' \(InnerProduct\): parameter 0: blob declares "
            r"shape \(10, 6\) \(60 values\) but holds 5", layer="ip")

    def wrong_shape(m: caffe_pb2.NetParameter) -> None:
        bias = _layer(m, "ip").blobs[1]
        bias.shape.dim[0] = 11
        bias.data.append(0.0)

    p = _model_with(w, "wrong_shape.caffemodel", wrong_shape)
    weights("caffemodel shape does not fit the net", p, ShapeError,
            r"layer 'ip' \(InnerProduct\): weights from .*wrong_shape\.caffemodel have shape "
            r"\(11,\) for parameter 1 but this net needs \(10,\)", layer="ip",
            file="good.prototxt")  # the compiler points at the layer's prototxt block

    def extra_blob(m: caffe_pb2.NetParameter) -> None:
        _layer(m, "ip").blobs.add().CopyFrom(_layer(m, "ip").blobs[1])

    p = _model_with(w, "extra_blob.caffemodel", extra_blob)
    weights("caffemodel with a parameter too many", p, WeightsError,
            r"layer 'ip' \(InnerProduct\): .*has 3 parameter blobs", layer="ip",
            file="good.prototxt")

    p = w.copy("model", "bad_utf8.caffemodel", good.replace(b"InnerProduct", b"Inner\xffroduct"))
    weights("caffemodel text field not UTF-8", p, WeightsError,
            r"bad_utf8\.caffemodel: corrupted binary NetParameter: the text field "
            r"'layer\[\d\]\.type' holds bytes that are not UTF-8")
    missing = w.root / "missing.caffemodel"
    cases["caffemodel missing"] = Case(_load_weights(w, missing), ["--weights", str(missing)],
                                       BrewnetError, r"missing\.caffemodel: .*not found")
    if "model.h5" in w.files:
        good_h5 = w.files["model.h5"].read_bytes()
        p = w.copy("model.h5", "truncated.caffemodel.h5", good_h5[: len(good_h5) // 2])
        weights("caffemodel.h5 truncated", p, WeightsError,
                r"truncated\.caffemodel\.h5: (not a readable HDF5 file|the HDF5 file is "
                r"damaged)")
        p = w.copy("model.h5", "garbage.caffemodel.h5", b"\x89HDF\r\n\x1a\n" + b"\x07" * 900)
        weights("caffemodel.h5 garbage", p, WeightsError, r"garbage\.caffemodel\.h5: ")
    return cases


def state_cases(w: World) -> dict[str, Case]:
    good = w.files["state"].read_bytes()
    cases = {}

    def state(name: str, path: Path, error: type[BrewnetError], pattern: str,
              file: str | None = None, fmt: str = "BINARYPROTO") -> None:
        solver = w.solver(f"resume_{fmt}", fmt=fmt)
        cases[name] = Case(_restore(w, path, fmt), ["--solver", str(solver),
                                                    "--snapshot", str(path)],
                           error, pattern, file=file or path.name)

    p = w.copy("state", "truncated.solverstate", good[:-7])
    state("solverstate truncated", p, WeightsError,
          r"truncated\.solverstate: truncated or corrupted binary SolverState")
    p = w.copy("state", "empty.solverstate", b"")
    state("solverstate empty", p, WeightsError, r"empty\.solverstate: file is empty")
    p = _state_with(w, "short_history.solverstate", lambda s: s.history.pop())
    state("solverstate history count", p, WeightsError,
          r"short_history\.solverstate: incorrect length of history blobs: the state holds 1, "
          r"this solver and net need 2")

    def bad_blob(s: caffe_pb2.SolverState) -> None:
        del s.history[0].data[3:]

    p = _state_with(w, "bad_history.solverstate", bad_blob)
    state("solverstate history blob malformed", p, WeightsError,
          r"bad_history\.solverstate: history blob 0 is malformed")

    def lost_model(s: caffe_pb2.SolverState) -> None:
        s.learned_net = "gone/nowhere.caffemodel"

    p = _state_with(w, "lost_model.solverstate", lost_model)
    state("solverstate names a missing caffemodel", p, WeightsError,
          r"lost_model\.solverstate: its weights file 'gone/nowhere\.caffemodel' "
          r"\(learned_net\) was not found")
    p = w.copy("model", "resume_from.caffemodel")
    state("caffemodel given to resume", p, WeightsError,
          r"resume_from\.caffemodel: this is a \.caffemodel \(weights only\); resuming needs "
          r"the \.solverstate")
    p = w.copy("model", "weights_as.solverstate")
    state("caffemodel renamed solverstate", p, WeightsError,
          r"weights_as\.solverstate: this is a \.caffemodel")
    if "state.h5" in w.files:
        good_h5 = w.files["state.h5"].read_bytes()
        p = w.copy("state.h5", "truncated.solverstate.h5", good_h5[: len(good_h5) // 3])
        state("solverstate.h5 truncated", p, WeightsError, r"truncated\.solverstate\.h5: ",
              fmt="HDF5")
        p = w.copy("model.h5", "model_as.solverstate.h5")
        state("caffemodel.h5 given to resume", p, WeightsError,
              r"model_as\.solverstate\.h5: this is a \.caffemodel\.h5", fmt="HDF5")
    return cases


def mean_cases(w: World) -> dict[str, Case]:
    cases = {}

    def mean(name: str, data: bytes | None, pattern: str) -> None:
        path = w.root / name.replace(" ", "_") / "mean.binaryproto"
        path.parent.mkdir()
        if data is not None:
            path.write_bytes(data)
        net = w.net(f"mean_{name.replace(' ', '_')}", transform=f'mean_file: "{path}"')

        def api() -> None:
            load_mean_file(str(path))

        cases[name] = Case(api, ["--solver", str(w.solver(name.replace(" ", "_"), net))],
                           DataError, pattern)

    good = w.files["mean"].read_bytes()
    mean("mean truncated", good[:-3], r"mean_file '.*mean\.binaryproto' is not a BlobProto")
    mean("mean missing", None, r"mean_file '.*mean\.binaryproto' cannot be read")
    mean("mean two axes", array_to_blobproto(np.ones((2, 3), np.float32)).SerializeToString(),
         r"mean_file '.*' has shape \(2, 3\); a mean image must be \(1, C, H, W\)")
    short = array_to_blobproto(np.ones((1, 1, 2, 3), np.float32))
    del short.data[4:]
    mean("mean count mismatch", short.SerializeToString(),
         r"mean_file '.*': blob declares shape \(1, 1, 2, 3\) \(6 values\) but holds 4")
    return cases


def lmdb_cases(w: World) -> dict[str, Case]:
    cases = {}

    def db(name: str, records: list[tuple[bytes, bytes]] | None, pattern: str,
           error: type[BrewnetError] = DataError, layer: str = "data", loss: str = "") -> None:
        folder = w.root / f"db_{name.replace(' ', '_')}"
        if records is not None:
            _lmdb(folder, records)
        net = w.net(f"lmdb_{name.replace(' ', '_')}", source=folder, loss=loss)
        cases[name] = Case(_train(net), ["--solver", str(w.solver(name.replace(" ", "_"), net))],
                           error, pattern, layer=layer)

    def with_record(key_index: int, value: bytes) -> list[tuple[bytes, bytes]]:
        records = _good_records()
        records[key_index] = (records[key_index][0], value)
        return records

    db("record not a Datum", with_record(5, b"\xff\xff\xff\xff"),
       r"layer 'data' \(Data\): LMDB '.*db_record_not_a_Datum': record '00000005' is not a "
       r"Datum")
    wrong = caffe_pb2.Datum(channels=1, height=2, width=3, data=b"\x00" * 5, label=1)
    db("Datum data size", with_record(6, wrong.SerializeToString()),
       r"LMDB '.*db_Datum_data_size': record '00000006' has 5 bytes of data but "
       r"channels×height×width = 1×2×3 = 6")
    floats = caffe_pb2.Datum(channels=1, height=2, width=3, float_data=[0.5] * 7, label=1)
    db("Datum float_data size", with_record(2, floats.SerializeToString()),
       r"record '00000002' has 7 float_data values but channels×height×width = 1×2×3 = 6")
    db("Datum without image size", with_record(0, caffe_pb2.Datum(label=1).SerializeToString()),
       r"record '00000000' is not an image Datum \(channels=0, height=0, width=0")
    other = array_to_datum(np.zeros((1, 3, 3), np.uint8), 1)
    db("record shape changes", with_record(3, other.SerializeToString()),
       r"record '00000003' has shape \(1, 3, 3\) but its batch started with shape \(1, 2, 3\)")
    encoded = caffe_pb2.Datum(encoded=True, data=b"not a png", label=1)
    db("encoded record not an image", with_record(1, encoded.SerializeToString()),
       r"record '00000001'")
    db("empty database", [], r"LMDB '.*db_empty_database' is empty; it holds no records")
    db("database missing", None, r"LMDB '.*db_database_missing' does not exist")
    fake = w.root / "db_not_an_LMDB"
    fake.mkdir()
    (fake / "data.mdb").write_bytes(b"\x01" * 8192)
    net = w.net("lmdb_not_an_LMDB", source=fake)
    cases["not an LMDB"] = Case(_train(net), ["--solver", str(w.solver("not_an_LMDB", net))],
                                DataError, r"LMDB '.*db_not_an_LMDB' cannot be opened as an "
                                r"LMDB", layer="data")
    db("label above the class count", _good_records(labels=[1, 2, 3, 10, 4, 5, 6, 7]),
       r"layer 'loss' \(SoftmaxWithLoss\): label value 10 \(label 3 of the batch\) is outside "
       r"\[0, 10\) for 10 classes", error=NetError, layer="loss")
    db("negative label", _good_records(labels=[1, 2, 3, 4, 5, -1, 6, 7]),
       r"layer 'loss' \(SoftmaxWithLoss\): label value -1 \(label 1 of the batch\) is outside "
       r"\[0, 10\)", error=NetError, layer="loss")
    db("label out of range beside ignore_label", _good_records(labels=[1, 2, 255, 12, 4, 5, 6, 7]),
       r"label value 12 \(label 3 of the batch\) is outside \[0, 10\) for 10 classes "
       r"\(ignore_label is 255\)", error=NetError, layer="loss",
       loss="loss_param { ignore_label: 255 }")
    return cases


ALL = (weights_cases, state_cases, mean_cases, lmdb_cases)


@pytest.fixture(scope="module")
def cases(world) -> dict[str, Case]:
    out: dict[str, Case] = {}
    for make in ALL:
        out.update(make(world))
    return out


CASE_NAMES = [
    "caffemodel truncated", "caffemodel garbage", "caffemodel empty",
    "prototxt given as caffemodel", "caffemodel blob shorter than its shape",
    "caffemodel shape does not fit the net", "caffemodel with a parameter too many",
    "caffemodel text field not UTF-8", "caffemodel missing", "caffemodel.h5 truncated",
    "caffemodel.h5 garbage",
    "solverstate truncated", "solverstate empty", "solverstate history count",
    "solverstate history blob malformed", "solverstate names a missing caffemodel",
    "caffemodel given to resume", "caffemodel renamed solverstate",
    "solverstate.h5 truncated", "caffemodel.h5 given to resume",
    "mean truncated", "mean missing", "mean two axes", "mean count mismatch",
    "record not a Datum", "Datum data size", "Datum float_data size",
    "Datum without image size", "record shape changes", "encoded record not an image",
    "empty database", "database missing", "not an LMDB", "label above the class count",
    "negative label", "label out of range beside ignore_label",
]


def _get(cases: dict[str, Case], name: str) -> Case:
    if name not in cases:
        pytest.skip(f"{name}: needs an optional package (h5py)")
    return cases[name]


def test_every_case_is_listed(cases):
    """The parametrized list and the case builders agree (no case silently untested)."""
    assert set(cases) <= set(CASE_NAMES)
    assert len(CASE_NAMES) == len(set(CASE_NAMES)) >= 30


@pytest.mark.parametrize("name", CASE_NAMES)
def test_api_error(cases, name):
    """Through the Python API: the documented BrewnetError subclass, one line naming the
    file/record/layer and the problem, with .file / .layer set where they apply."""
    case = _get(cases, name)
    with pytest.raises(case.error) as info:
        case.api()
    e = info.value
    text = str(e)
    assert "\n" not in text
    assert re.search(case.pattern, text), text
    if case.file is not None:
        assert e.file is not None and e.file.endswith(case.file), (e.file, text)
    if case.layer is not None:
        assert e.layer == case.layer, text


@pytest.mark.parametrize("name", CASE_NAMES)
def test_cli_error(cases, world, name, capsys):
    """Through ``brewnet solve``: exit status 1, the same one-line message on stderr after
    'brewnet: error:', and no traceback."""
    case = _get(cases, name)
    args = list(case.cli)
    if "--solver" not in args:
        args = ["--solver", str(world.solver("cli"))] + args
    status = main(["solve", *args])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line and not GLOG.match(line)]
    assert status == 1, err
    assert "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith("brewnet: error: "), lines
    assert re.search(case.pattern, lines[0]), lines[0]


def test_ignored_label_is_not_an_error(world, tmp_path):
    """A label equal to ignore_label is skipped, not range-checked (Caffe's rule)."""
    folder = _lmdb(tmp_path / "db", _good_records(labels=[1, 255, 3, 4, 5, 6, 7, 8]))
    net = Net(str(world.net("ignored", source=folder,
                            loss="loss_param { ignore_label: 255 }")), caffe_pb2.TRAIN)
    try:
        assert np.isfinite(net.forward()["loss"])
    finally:
        net.close()


def test_good_files_load(world):
    """The unbroken originals of every case load (so each failure is the damage's doing)."""
    _load_weights(world, world.files["model"])()
    _restore(world, world.files["state"])()
    assert load_mean_file(str(world.files["mean"])).shape == (1, 2, 3)
    _train(world.files["net"])()


def test_lmdb_copy_without_lock_file_still_reads(world, tmp_path):
    """A database copied without its lock file (as an archive would hold it) still reads:
    readers create lock.mdb as Caffe's do (read-only media fall back to lock-free reading,
    tests/data/test_lmdb_source.py)."""
    copy = tmp_path / "copy"
    shutil.copytree(world.files["db"], copy)
    (copy / "lock.mdb").unlink(missing_ok=True)
    _train(world.net("copy", source=copy))()
    assert (copy / "lock.mdb").exists()


TWO_LAYERS = """
name: "two"
layer { name: "in"  type: "Input"  top: "x"  input_param { shape { dim: 2 dim: 3 } } }
layer { name: "a"  type: "InnerProduct"  bottom: "x"  top: "a"
  inner_product_param { num_output: 4  weight_filler { type: "gaussian" } } }
layer { name: "b"  type: "InnerProduct"  bottom: "a"  top: "b"
  inner_product_param { num_output: 5  weight_filler { type: "gaussian" } } }
"""


@pytest.mark.parametrize("h5", [False, True])
def test_never_half_loaded(tmp_path, h5):
    """Weights whose first layer fits but whose second does not leave the first layer as it
    was: everything is decoded and checked before anything is assigned."""
    if h5 and not _have_h5py():
        pytest.skip("h5py is not installed")
    proto = tmp_path / "two.prototxt"
    proto.write_text(TWO_LAYERS)
    source = Net(str(proto), caffe_pb2.TEST)
    other = TWO_LAYERS.replace("num_output: 5", "num_output: 6")
    (tmp_path / "other.prototxt").write_text(other)
    donor = Net(str(tmp_path / "other.prototxt"), caffe_pb2.TEST)
    weights = tmp_path / ("donor.caffemodel.h5" if h5 else "donor.caffemodel")
    donor.save_hdf5(weights) if h5 else donor.save(weights)
    before = _net_weights(source)
    with pytest.raises(BrewnetError, match=r"'b'") as info:
        source.copy_from(weights)
    assert "donor.caffemodel" in str(info.value)
    _assert_same(before, _net_weights(source), "layer 'a' was loaded although 'b' failed")
