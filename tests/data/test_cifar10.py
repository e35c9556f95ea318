"""CIFAR-10 conversion to Caffe's LMDB + mean layout, from pickled batches the tests write."""

import io
import os
import pickle
import tarfile

import lmdb
import numpy as np
import pytest

from brewnet.data import cifar10
from brewnet.data.mnist import unpickle_arrays
from brewnet.data.transform import load_mean_file
from brewnet.errors import DataError
from brewnet.proto import caffe_pb2

PER_BATCH = 20


def write_cifar_dir(folder, per_batch=PER_BATCH, seed=0):
    """The six batch files of cifar-10-batches-py, ``per_batch`` random images each, pickled
    as Python 3 writes them with protocol 2 (byte-string keys, like the release read with
    encoding='bytes'); returns {name: (data (n, 3072) uint8, labels list)}."""
    folder.mkdir(parents=True, exist_ok=True)
    r = np.random.default_rng(seed)
    batches = {}
    for name in cifar10.TRAIN_BATCHES + cifar10.TEST_BATCHES:
        data = r.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in r.integers(0, 10, size=per_batch)]
        entry = {b"batch_label": name.encode(), b"labels": labels, b"data": data,
                 b"filenames": [b"img_%d.png" % i for i in range(per_batch)]}
        (folder / name).write_bytes(pickle.dumps(entry, protocol=2))
        batches[name] = (data, labels)
    return batches


def read_all(path):
    with lmdb.open(str(path), readonly=True, lock=False) as env, env.begin() as txn:
        return list(txn.cursor())


def check_layout(train, test, batches):
    """Keys %05d across the batches in order; Datum 3x32x32 raw channel-major bytes + label."""
    for path, names in ((train, cifar10.TRAIN_BATCHES), (test, cifar10.TEST_BATCHES)):
        data = np.concatenate([batches[n][0] for n in names])
        labels = sum((batches[n][1] for n in names), [])
        items = read_all(path)
        assert [k for k, _ in items] == [b"%05d" % i for i in range(len(data))]
        for (_, value), row, label in zip(items, data, labels, strict=True):
            d = caffe_pb2.Datum.FromString(value)
            assert (d.channels, d.height, d.width, d.label) == (3, 32, 32, label)
            assert d.data == row.tobytes()
            assert value == caffe_pb2.Datum(channels=3, height=32, width=32,
                                            data=row.tobytes(), label=label).SerializeToString()


def test_convert_writes_caffe_layout_and_mean(tmp_path):
    """convert_cifar_data's records and compute_image_mean's (1,3,32,32) float mean of the
    training set, in the legacy num/channels/height/width fields."""
    batches = write_cifar_dir(tmp_path / "src")
    train, test, mean = cifar10.convert_cifar10(tmp_path / "out", tmp_path / "src")
    assert (train, test, mean) == (tmp_path / "out" / "cifar10_train_lmdb",
                                   tmp_path / "out" / "cifar10_test_lmdb",
                                   tmp_path / "out" / "mean.binaryproto")
    check_layout(train, test, batches)
    blob = caffe_pb2.BlobProto.FromString(mean.read_bytes())
    assert (blob.num, blob.channels, blob.height, blob.width) == (1, 3, 32, 32)
    assert not blob.HasField("shape")
    train_data = np.concatenate([batches[n][0] for n in cifar10.TRAIN_BATCHES])
    expected = np.zeros(3072, dtype=np.float32)
    for row in train_data:  # the slow, direct sum compute_image_mean does, in float
        expected += row.astype(np.float32)
    expected /= np.float32(len(train_data))
    np.testing.assert_array_equal(np.asarray(blob.data, dtype=np.float32), expected)
    np.testing.assert_array_equal(load_mean_file(str(mean)), expected.reshape(3, 32, 32))
    assert sorted(os.listdir(tmp_path / "out")) == ["cifar10_test_lmdb", "cifar10_train_lmdb",
                                                     "mean.binaryproto"]


def test_convert_from_tar_gz_and_parent_folder(tmp_path):
    """The release archive (members under cifar-10-batches-py/) and the folder holding the
    extracted cifar-10-batches-py both work as --from."""
    batches = write_cifar_dir(tmp_path / "x" / "cifar-10-batches-py")
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "x" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    train, test, _ = cifar10.convert_cifar10(tmp_path / "a", archive)
    check_layout(train, test, batches)
    train, test, _ = cifar10.convert_cifar10(tmp_path / "b", tmp_path / "x")
    check_layout(train, test, batches)


def test_python2_style_str_keys_are_accepted(tmp_path):
    """The release's own pickles come from Python 2 (str keys); either key type is read."""
    write_cifar_dir(tmp_path / "src")
    path = tmp_path / "src" / "test_batch"
    entry = pickle.loads(path.read_bytes())
    path.write_bytes(pickle.dumps({k.decode(): v for k, v in entry.items()}, protocol=2))
    _, test, _ = cifar10.convert_cifar10(tmp_path / "out", tmp_path / "src")
    assert [caffe_pb2.Datum.FromString(v).label for _, v in read_all(test)] == entry[b"labels"]


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_malicious_pickle_is_refused_naming_the_file(tmp_path):
    """A batch referencing any global besides numpy's array reconstruction is refused
    before it can run; the message names the file."""
    write_cifar_dir(tmp_path / "src")
    (tmp_path / "src" / "data_batch_3").write_bytes(pickle.dumps({b"data": Evil()}, protocol=2))
    with pytest.raises(DataError, match=r"data_batch_3.*refusing to unpickle"):
        cifar10.convert_cifar10(tmp_path / "out", tmp_path / "src")
    assert not (tmp_path / "out").exists()


def test_codecs_other_than_latin1_are_refused(tmp_path):
    """_codecs.encode is admitted only in the latin-1 form protocol 2 uses for bytes."""
    payload = (b"\x80\x02c_codecs\nencode\nq\x00X\x01\x00\x00\x00xq\x01X\x06\x00\x00\x00"
               b"base64q\x02\x86q\x03Rq\x04.")
    with pytest.raises(DataError, match="only latin-1"):
        unpickle_arrays(payload, "'x'", cifar10.CifarUnpickler)
    assert unpickle_arrays(pickle.dumps(b"\x00\xff", protocol=2), "'x'",
                           cifar10.CifarUnpickler) == b"\x00\xff"


def test_missing_batch_is_an_error_with_a_hint(tmp_path):
    """A folder without data_batch_5 names the missing file and where to get the release."""
    write_cifar_dir(tmp_path / "src")
    (tmp_path / "src" / "data_batch_5").unlink()
    with pytest.raises(DataError, match=r"data_batch_5.*not found.*cifar-10-python\.tar\.gz"):
        cifar10.convert_cifar10(tmp_path / "out", tmp_path / "src")
    with pytest.raises(DataError, match="does not exist"):
        cifar10.convert_cifar10(tmp_path / "out", tmp_path / "nowhere")
    (tmp_path / "junk.tar.gz").write_bytes(b"not an archive")
    with pytest.raises(DataError, match="junk.tar.gz.*neither a folder nor"):
        cifar10.convert_cifar10(tmp_path / "out", tmp_path / "junk.tar.gz")


@pytest.mark.parametrize("entry, match", [
    ({b"data": np.zeros((4, 3000), np.uint8), b"labels": [0] * 4}, "expected uint8"),
    ({b"data": np.zeros((4, 3072), np.float32), b"labels": [0] * 4}, "expected uint8"),
    ({b"data": np.zeros((4, 3072), np.uint8), b"labels": [0] * 3}, "expected 4 integers"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, "outside 0..9"),
    ({b"labels": [0]}, "lacks the 'data' and 'labels'"),
    ([1, 2, 3], "not a CIFAR batch dictionary"),
])
def test_wrong_batch_contents_are_errors(tmp_path, entry, match):
    """Shapes, dtypes, label counts and ranges are checked; the message names the file."""
    write_cifar_dir(tmp_path / "src")
    (tmp_path / "src" / "data_batch_2").write_bytes(pickle.dumps(entry, protocol=2))
    with pytest.raises(DataError, match=f"data_batch_2.*{match}"):
        cifar10.convert_cifar10(tmp_path / "out", tmp_path / "src")


def test_rerun_keeps_complete_lmdbs_and_rejects_partial_ones(tmp_path):
    """Complete LMDBs are left alone (mean rewritten only if missing); a wrong-sized one is
    an error that says to delete it."""
    write_cifar_dir(tmp_path / "src")
    train, test, mean = cifar10.convert_cifar10(tmp_path / "out", tmp_path / "src")
    stamp = os.stat(train / "data.mdb").st_mtime_ns
    mean.unlink()
    cifar10.convert_cifar10(tmp_path / "out", tmp_path / "src")
    assert os.stat(train / "data.mdb").st_mtime_ns == stamp and mean.exists()
    write_cifar_dir(tmp_path / "other", per_batch=3)
    with pytest.raises(DataError, match="not a complete CIFAR-10 LMDB.*delete it"):
        cifar10.convert_cifar10(tmp_path / "out", tmp_path / "other")


def test_source_none_says_where_to_get_it(tmp_path):
    """There is no download: without a source the error points at the release and --from."""
    with pytest.raises(DataError, match="cifar-10-python.tar.gz.*--from"):
        cifar10.convert_cifar10(tmp_path / "out", None)


def test_unpickle_reads_arrays_from_memory():
    """Round trip of the restricted unpickler on a numpy array pickled with protocol 2."""
    a = np.arange(12, dtype=np.uint8).reshape(3, 4)
    buf = io.BytesIO()
    pickle.dump({b"data": a}, buf, protocol=2)
    found = unpickle_arrays(buf.getvalue(), "'m'", cifar10.CifarUnpickler)
    np.testing.assert_array_equal(found[b"data"], a)
