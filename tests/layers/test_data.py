"""Data layer end to end on tiny LMDBs and LevelDBs the tests build: shapes, values, order,
resuming."""

import gc
import logging
import sys
import threading
import time

import numpy as np
import pytest

from brewnet import rng
from brewnet.blob import Blob
from brewnet.data.datum import array_to_datum
from brewnet.data.leveldb_source import write_leveldb
from brewnet.data.lmdb_source import write_lmdb
from brewnet.errors import DataError, NetError
from brewnet.log import get_logger
from brewnet.proto import caffe_pb2
from tests.data.helpers import image_stack, make_lmdb
from tests.gradcheck import make_layer, setup_layer

IMAGES = image_stack(10, (1, 4, 5), seed=7)
LABELS = np.arange(10)[::-1] % 10


@pytest.fixture
def db(tmp_path):
    return make_lmdb(tmp_path / "db", IMAGES, LABELS)


def data_layer(source, extra="", transform="", phase=caffe_pb2.TRAIN, name="data"):
    layer = make_layer(f'name: "{name}" type: "Data" '
                       f'data_param {{ source: "{source}" backend: LMDB {extra} }} '
                       f"transform_param {{ {transform} }}", phase)
    return layer


def batches(layer, top, count):
    out = []
    for _ in range(count):
        layer.forward([], top)
        out.append((top[0].data.copy(), top[1].data.copy()))
    return out


def brewnet_threads():
    return [t for t in threading.enumerate() if t.name.startswith("brewnet-data")]


def test_shapes_values_and_labels(db):
    """Tops are (N, C, H, W) and (N,); data is x·scale of records in key order, labels as
    floats."""
    layer = data_layer(db, "batch_size: 4", "scale: 0.00390625")
    try:
        top = setup_layer(layer, [], 2)
        assert top[0].shape == [4, 1, 4, 5] and top[1].shape == [4]
        layer.forward([], top)
        expected = IMAGES[:4].astype(np.float32) * np.float32(0.00390625)
        np.testing.assert_array_equal(top[0].data, expected)
        np.testing.assert_array_equal(top[1].data, LABELS[:4].astype(np.float32))
        assert top[0].data.dtype == np.float32
    finally:
        layer.close()


def test_wraps_around(db):
    """After the last record the layer starts over at the first (10 records, batch 4)."""
    layer = data_layer(db, "batch_size: 4")
    try:
        top = setup_layer(layer, [], 2)
        got = batches(layer, top, 3)
        order = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
        np.testing.assert_array_equal(np.concatenate([d for d, _ in got]), IMAGES[order])
        np.testing.assert_array_equal(np.concatenate([lbl for _, lbl in got]), LABELS[order])
    finally:
        layer.close()


def wait_for_full_queue(layer, timeout_s=10.0):
    """Until the prefetch thread has filled every free buffer (its queue is full)."""
    deadline = time.monotonic() + timeout_s
    while not layer._feed._prefetcher._queue.full():
        assert time.monotonic() < deadline, "the prefetch queue did not fill"
        time.sleep(0.005)


def test_tops_hold_the_batch_buffers_until_the_next_forward(db):
    """Tops take the prefetched batch's arrays without a copy (Caffe's set_cpu_data); a
    batch comes back for reuse only at the next forward, so what a caller read from the
    tops stays as it was while the prefetch thread refills the other buffers."""
    layer = data_layer(db, "batch_size: 4 prefetch: 2")
    try:
        top = setup_layer(layer, [], 2)
        seen = []
        for _ in range(6):
            layer.forward([], top)
            held = (top[0].data, top[1].data)
            kept = (held[0].copy(), held[1].copy())
            seen.append(id(held[0]))
            wait_for_full_queue(layer)
            np.testing.assert_array_equal(held[0], kept[0])
            np.testing.assert_array_equal(held[1], kept[1])
        assert len(set(seen)) > 1  # the buffers rotate: nothing is copied into one array
    finally:
        layer.close()


def test_data_top_only(db):
    """The label top is optional."""
    layer = data_layer(db, "batch_size: 3")
    try:
        top = setup_layer(layer, [], 1)
        layer.forward([], top)
        np.testing.assert_array_equal(top[0].data, IMAGES[:3])
    finally:
        layer.close()


def test_test_phase_key_order_centre_crop(db):
    """TEST reads the same key order and crops at the centre."""
    layer = data_layer(db, "batch_size: 5", "crop_size: 3", phase=caffe_pb2.TEST)
    try:
        top = setup_layer(layer, [], 2)
        assert top[0].shape == [5, 1, 3, 3]
        layer.forward([], top)
        np.testing.assert_array_equal(top[0].data, IMAGES[:5, :, 0:3, 1:4])
    finally:
        layer.close()


def run_random(source, seed, plan):
    """Batches from a TRAIN layer with random crop and mirror; plan: 'f' forward, int seek."""
    rng.set_random_seed(seed)
    return run_plan(data_layer(source, "batch_size: 3 prefetch: 2", "crop_size: 3 mirror: true"),
                    plan)


def run_plan(layer, plan):
    """The (data, label) batches ``layer`` gives for ``plan`` ('f' forward, int seek_batch),
    closing the layer after."""
    out = []
    try:
        top = setup_layer(layer, [], 2)
        for step in plan:
            if step == "f":
                layer.forward([], top)
                out.append((top[0].data.copy(), top[1].data.copy()))
            else:
                layer.seek_batch(step)
    finally:
        layer.close()
    return out


def test_deterministic_for_a_fixed_seed(db):
    """Same seed, same batches (crops and flips included) regardless of thread timing."""
    a = run_random(db, 11, "fffff")
    b = run_random(db, 11, "fffff")
    for (da, la), (dbb, lb) in zip(a, b, strict=True):
        np.testing.assert_array_equal(da, dbb)
        np.testing.assert_array_equal(la, lb)
    c = run_random(db, 12, "fffff")
    assert any(not np.array_equal(x[0], y[0]) for x, y in zip(a, c, strict=True))


def test_seek_batch_is_absolute_and_exact(db):
    """seek_batch(k) makes the next forward deliver batch k of an uninterrupted run, counted
    from the start whatever was delivered or prefetched before, random crops/mirrors included;
    seeking backwards works too."""
    full = run_random(db, 5, "ffffffff")
    resumed = run_random(db, 5, ["f", "f", 5, "f", "f"])
    at_start = run_random(db, 5, [6, "f", "f"])
    back = run_random(db, 5, ["f", "f", "f", "f", 1, "f", 0, "f"])
    for got, want in zip(resumed, [full[0], full[1], full[5], full[6]], strict=True):
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
    for got, want in zip(at_start, full[6:8], strict=True):
        np.testing.assert_array_equal(got[0], want[0])
    for got, want in zip(back, [*full[:4], full[1], full[0]], strict=True):
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])


def test_rand_skip_starts_within_range(db):
    """rand_skip starts reading at a random record in [0, rand_skip)."""
    starts = set()
    for seed in range(8):
        rng.set_random_seed(seed)
        layer = data_layer(db, "batch_size: 2 rand_skip: 4")
        try:
            top = setup_layer(layer, [], 2)
            layer.forward([], top)
        finally:
            layer.close()
        start = [i for i in range(10) if np.array_equal(top[0].data[0], IMAGES[i])]
        assert len(start) == 1 and start[0] < 4
        np.testing.assert_array_equal(top[0].data[1], IMAGES[start[0] + 1])
        starts.add(start[0])
    assert len(starts) > 1


def test_legacy_data_param_transform_fields_ignored(db):
    """data_param's deprecated scale is not applied in a current-format layer (Caffe moves it
    only for V1 'layers'); a warning names the layer and the field."""
    layer = data_layer(db, "batch_size: 2 scale: 0.5", name="old")
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    get_logger().addHandler(handler)
    try:
        top = setup_layer(layer, [], 2)
        layer.forward([], top)
        np.testing.assert_array_equal(top[0].data, IMAGES[:2].astype(np.float32))
    finally:
        get_logger().removeHandler(handler)
        layer.close()
    assert any("layer 'old'" in r.getMessage() and "scale" in r.getMessage()
               for r in records if r.levelno == logging.WARNING)


def test_float_data_records(tmp_path):
    """Records holding float_data feed the net as they are (then transformed)."""
    x = np.random.default_rng(0).normal(size=(4, 2, 3, 3)).astype(np.float32)
    write_lmdb(tmp_path / "f", ((b"%08d" % i, array_to_datum(a, i)) for i, a in enumerate(x)))
    layer = data_layer(tmp_path / "f", "batch_size: 4", "mean_value: 1 mean_value: 2")
    try:
        top = setup_layer(layer, [], 2)
        layer.forward([], top)
        np.testing.assert_array_equal(top[0].data, x - np.array([1, 2], np.float32)[:, None, None])
    finally:
        layer.close()


def test_configuration_errors(db, tmp_path):
    """batch_size 0, an LMDB folder read as a LevelDB (Caffe's default backend, or said
    outright), and a missing source fail at setup with messages naming the layer and the fix."""
    with pytest.raises(NetError, match="layer 'data' .*batch_size must be positive"):
        setup_layer(data_layer(db, "batch_size: 0"), [], 2)
    no_backend = make_layer(f'name: "d" type: "Data" data_param {{ source: "{db}" '
                            "batch_size: 2 }")
    with pytest.raises(NetError, match="layer 'd' .*is an LMDB folder but .*default is "
                                       "LEVELDB.*add `backend: LMDB`"):
        setup_layer(no_backend, [], 2)
    leveldb = make_layer(f'name: "d" type: "Data" data_param {{ source: "{db}" '
                         "batch_size: 2 backend: LEVELDB }")
    with pytest.raises(NetError, match="layer 'd' .*is an LMDB folder but data_param sets "
                                       "backend: LEVELDB; add `backend: LMDB`"):
        setup_layer(leveldb, [], 2)
    with pytest.raises(DataError, match=r"layer 'data' \(Data\): LMDB '.*missing' does not"):
        setup_layer(data_layer(tmp_path / "missing", "batch_size: 2"), [], 2)
    assert not brewnet_threads()


def test_bad_record_error_reaches_forward(tmp_path):
    """A malformed record found by the prefetch thread is raised by forward, naming the key."""
    good = [(b"%08d" % i, array_to_datum(IMAGES[i], 0)) for i in range(5)]
    bad = caffe_pb2.Datum(channels=1, height=4, width=5, data=b"\0" * 7)
    write_lmdb(tmp_path / "db", [*good, (b"00000005", bad)])
    layer = data_layer(tmp_path / "db", "batch_size: 3")
    try:
        top = setup_layer(layer, [], 2)
        layer.forward([], top)
        with pytest.raises(DataError, match=r"layer 'data' \(Data\): LMDB .*record '00000005' "
                                            "has 7 bytes"):
            layer.forward([], top)
    finally:
        layer.close()


def test_close_stops_the_thread_and_gc_does_too(db):
    """close() ends the prefetch thread; a layer dropped without close is cleaned up by GC."""
    layer = data_layer(db, "batch_size: 2", name="closeme")
    setup_layer(layer, [], 2)
    assert any(t.name == "brewnet-data-closeme" for t in brewnet_threads())
    layer.close()
    assert not brewnet_threads()
    with pytest.raises(NetError, match="closed"):
        layer.forward([], [Blob(), Blob()])
    layer = data_layer(db, "batch_size: 2", name="dropme")
    setup_layer(layer, [], 2)
    del layer
    gc.collect()
    assert not brewnet_threads()


def leveldb_layer(source, extra="", transform="", backend="backend: LEVELDB"):
    return make_layer(f'name: "data" type: "Data" '
                      f'data_param {{ source: "{source}" {backend} {extra} }} '
                      f"transform_param {{ {transform} }}", caffe_pb2.TRAIN)


@pytest.fixture
def ldb(tmp_path):
    pytest.importorskip("plyvel")
    write_leveldb(tmp_path / "ldb", ((b"%08d" % i, array_to_datum(img, int(lbl)))
                                     for i, (img, lbl) in enumerate(zip(IMAGES, LABELS,
                                                                        strict=True))))
    return tmp_path / "ldb"


@pytest.mark.parametrize("backend", ["backend: LEVELDB", ""])
def test_leveldb_batches_match_lmdb(db, ldb, backend):
    """The same records in a LevelDB (backend LEVELDB, or unset: Caffe's default) give the same
    batches as in an LMDB, wrap-around, seek and random crops/mirrors included."""
    plan = ["f", "f", "f", 1, "f", 0, "f"]
    got = {}
    for name, make in (("lmdb", lambda: data_layer(db, "batch_size: 4 prefetch: 2",
                                                   "crop_size: 3 mirror: true")),
                       ("leveldb", lambda: leveldb_layer(ldb, "batch_size: 4 prefetch: 2",
                                                         "crop_size: 3 mirror: true", backend))):
        rng.set_random_seed(5)
        got[name] = run_plan(make(), plan)
    for (da, la), (dl, ll) in zip(got["lmdb"], got["leveldb"], strict=True):
        np.testing.assert_array_equal(da, dl)
        np.testing.assert_array_equal(la, ll)
    assert not brewnet_threads()


def test_leveldb_train_and_test_share_one_database(ldb):
    """Two Data layers may read one LevelDB at once (LevelDB locks its folder per open)."""
    a, b = leveldb_layer(ldb, "batch_size: 3"), leveldb_layer(ldb, "batch_size: 4")
    try:
        ta, tb = setup_layer(a, [], 2), setup_layer(b, [], 2)
        a.forward([], ta)
        b.forward([], tb)
        np.testing.assert_array_equal(ta[0].data, IMAGES[:3])
        np.testing.assert_array_equal(tb[0].data, IMAGES[:4])
    finally:
        a.close()
        b.close()


def test_leveldb_missing_source_names_the_layer(tmp_path):
    """A missing LevelDB source is a DataError naming the layer and the path."""
    pytest.importorskip("plyvel")
    with pytest.raises(DataError, match=r"layer 'data' \(Data\): LevelDB '.*missing' does not"):
        setup_layer(leveldb_layer(tmp_path / "missing", "batch_size: 2"), [], 2)


def test_leveldb_without_plyvel_says_how_to_install(tmp_path, monkeypatch):
    """Without plyvel, a LevelDB Data layer fails at setup naming the layer and the extra."""
    monkeypatch.setitem(sys.modules, "plyvel", None)  # makes `import plyvel` raise ImportError
    (tmp_path / "ldb").mkdir()
    with pytest.raises(DataError, match=r"layer 'data' \(Data\): .*needs plyvel.*"
                                        r"pip install 'brewnet\[leveldb\]'"):
        setup_layer(leveldb_layer(tmp_path / "ldb", "batch_size: 2"), [], 2)


def test_split_tops_of_the_data_follow_a_forward_that_skips_the_split(db):
    """The data blob read by two layers goes through a Split whose tops share its array. A
    pycaffe forward that stops at the Data layer and one that starts after the Split
    (``forward(end="data")``, ``forward(start="p0")``) must feed the new batch to both
    readers, as Caffe's split tops share the blob's memory object: a split top still holding
    the previous batch's array would read a buffer the prefetch thread refills."""
    from brewnet.net import TRAIN, Net
    from brewnet.proto.textio import parse_text

    text = f"""
    layer {{ name: "data" type: "Data" top: "data" top: "label"
      data_param {{ source: "{db}" backend: LMDB batch_size: 4 }} }}
    layer {{ name: "p0" type: "Power" bottom: "data" top: "p0" power_param {{ shift: 1 }} }}
    layer {{ name: "p1" type: "Power" bottom: "data" top: "p1" power_param {{ shift: 2 }} }}
    """
    net = Net(parse_text(text, caffe_pb2.NetParameter()), phase=TRAIN)
    try:
        assert any(s.layer.type == "Split" for s in net.plan.steps)
        net.forward()
        for start in range(4, 12, 4):
            net.forward(end="data")
            net.forward(start="p0")
            want = IMAGES[np.arange(start, start + 4) % 10].astype(np.float32)
            np.testing.assert_array_equal(net.blobs["data"].data, want)
            np.testing.assert_array_equal(net.blobs["p0"].data, want + 1)
            np.testing.assert_array_equal(net.blobs["p1"].data, want + 2)
    finally:
        net.close()
