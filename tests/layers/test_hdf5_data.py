"""HDF5Data and HDF5Output: rows read in order across the listed .h5 files (wrapping, or
shuffled per pass), datasets named by the tops, appended output, and the errors that name the
layer and the path or dataset."""

import sys

import numpy as np
import pytest

from brewnet import rng
from brewnet.errors import NetError
from tests.gradcheck import blobs_from, make_layer, setup_layer

h5py = pytest.importorskip("h5py")


def write_h5(path, **datasets):
    with h5py.File(path, "w") as f:
        for name, arr in datasets.items():
            f.create_dataset(name, data=arr)


@pytest.fixture
def two_files(tmp_path, monkeypatch):
    """a.h5 with rows 0..4 and b.h5 with rows 5..7 (data row i is filled with i, label i),
    listed by relative path in list.txt; the cwd is tmp_path."""
    monkeypatch.chdir(tmp_path)
    rows = np.arange(8, dtype=np.float32)
    data = np.repeat(rows, 6).reshape(8, 2, 3)
    write_h5("a.h5", data=data[:5], label=rows[:5])
    write_h5("b.h5", data=data[5:], label=rows[5:].astype(np.int32))
    (tmp_path / "list.txt").write_text("a.h5\n  b.h5\n\n")
    return data, rows


def layer_for(batch, shuffle=False, source="list.txt", tops=("data", "label"), extra=""):
    names = " ".join(f'top: "{t}"' for t in tops)
    flag = "true" if shuffle else "false"
    return make_layer(f'type: "HDF5Data" {names} hdf5_data_param {{ source: "{source}" '
                      f'batch_size: {batch} shuffle: {flag} }} {extra}')


def test_source_naming_the_h5_itself_or_any_binary_file_says_it_must_be_a_list(two_files,
                                                                                 tmp_path):
    """``source: "a.h5"`` (the data instead of the list) or any binary list file is refused
    naming the file and what the source must be, not an internal UnicodeDecodeError."""
    with pytest.raises(NetError, match="'a.h5' is an HDF5 file itself, but "
                       "hdf5_data_param.source must be a text file listing .h5 paths") as info:
        setup_layer(layer_for(2, source="a.h5"), [], 2)
    assert info.value.field == "hdf5_data_param.source"
    (tmp_path / "bin.txt").write_bytes(b"a.h5\n\x00\x01")
    with pytest.raises(NetError, match="'bin.txt' is binary data, but"):
        setup_layer(layer_for(2, source="bin.txt"), [], 2)


def test_rows_in_order_across_files_wrapping(two_files):
    """Caffe: rows follow each other across files (batches may span two files) and wrap to
    the first file after the last; top shapes are (batch, *row shape); int labels → float."""
    data, rows = two_files
    layer = layer_for(3)
    top = setup_layer(layer, [], 2)
    assert top[0].shape == [3, 2, 3] and top[1].shape == [3]
    seen = []
    for _ in range(6):
        layer.forward([], top)
        np.testing.assert_array_equal(top[0].data, data[top[1].data.astype(int)])
        seen.extend(top[1].data.tolist())
    assert seen == [float(i % 8) for i in range(18)]


def test_shuffle_gives_permutations_per_pass(two_files):
    """With shuffle every pass over the files yields each row once, in a random order that
    a seed fixes (brewnet.rng), data and label rows staying paired."""
    data, _ = two_files

    def draw():
        rng.set_random_seed(7)
        layer = layer_for(4, shuffle=True)
        top = setup_layer(layer, [], 2)
        out = []
        for _ in range(4):
            layer.forward([], top)
            np.testing.assert_array_equal(top[0].data, data[top[1].data.astype(int)])
            out.extend(top[1].data.astype(int).tolist())
        return out

    first = draw()
    assert sorted(first[:8]) == list(range(8)) and sorted(first[8:]) == list(range(8))
    assert first[:8] != list(range(8)) or first[8:] != list(range(8))
    assert draw() == first


def test_single_file_and_seek_batch(tmp_path, monkeypatch):
    """One top reading one file; seek_batch(k) continues exactly where batch k starts."""
    monkeypatch.chdir(tmp_path)
    write_h5("only.h5", x=np.arange(10, dtype=np.float64).reshape(5, 2))
    (tmp_path / "l.txt").write_text("only.h5")
    layer = layer_for(2, source="l.txt", tops=("x",))
    top = setup_layer(layer, [], 1)
    layer.seek_batch(3)  # rows 6..7 mod 5 → rows 1, 2
    layer.forward([], top)
    np.testing.assert_array_equal(top[0].data, [[2, 3], [4, 5]])


def test_seek_batch_across_files(two_files):
    """seek_batch over several files skips rows from the first file on."""
    layer = layer_for(3)
    top = setup_layer(layer, [], 2)
    layer.forward([], top)
    layer.seek_batch(2)  # row 6 (in b.h5)
    layer.forward([], top)
    np.testing.assert_array_equal(top[1].data, [6, 7, 0])


def test_errors_name_paths_and_datasets(two_files, tmp_path):
    """Missing list file, missing .h5, missing dataset, mismatched rows, empty list and
    transform_param are NetErrors naming the layer and the path or dataset."""
    with pytest.raises(NetError, match="nolist.txt"):
        setup_layer(layer_for(2, source="nolist.txt"), [], 2)
    (tmp_path / "bad.txt").write_text("a.h5 missing.h5")
    layer = layer_for(5, source="bad.txt")
    top = setup_layer(layer, [], 2)
    with pytest.raises(NetError, match="missing.h5"):
        layer.forward([], top)
    with pytest.raises(NetError, match="no dataset 'feat'.*data, label") as info:
        setup_layer(layer_for(2, tops=("data", "feat")), [], 2)
    assert "hdf5data" in str(info.value)
    write_h5("uneven.h5", data=np.zeros((3, 2)), label=np.zeros(2))
    (tmp_path / "u.txt").write_text("uneven.h5")
    with pytest.raises(NetError, match="has 2 rows"):
        setup_layer(layer_for(2, source="u.txt"), [], 2)
    write_h5("other.h5", data=np.zeros((3, 4)), label=np.zeros(3))
    (tmp_path / "o.txt").write_text("a.h5 other.h5")
    layer = layer_for(5, source="o.txt")
    top = setup_layer(layer, [], 2)
    with pytest.raises(NetError, match="first file's"):
        layer.forward([], top)
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(NetError, match="names no files"):
        setup_layer(layer_for(2, source="empty.txt"), [], 2)
    with pytest.raises(NetError, match="does not transform"):
        setup_layer(layer_for(2, extra="transform_param { scale: 2 }"), [], 2)


def test_missing_h5py_says_how_to_install(two_files, monkeypatch):
    """h5py is optional: without it the layer says pip install 'brewnet[hdf5]'."""
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(NetError, match=r"pip install 'brewnet\[hdf5\]'"):
        setup_layer(layer_for(2), [], 2)
    with pytest.raises(NetError, match=r"hdf5output.*brewnet\[hdf5\]"):
        setup_layer(make_layer('type: "HDF5Output" hdf5_output_param { file_name: "o.h5" }'),
                    blobs_from(np.zeros((2, 3), np.float32), np.zeros(2, np.float32)), 0)


# -- HDF5Output ------------------------------------------------------------------------------

def test_output_appends_each_forward(tmp_path):
    """Each forward appends its rows to "data" and "label", stored as Caffe's legacy 4-D
    (N, C, H, W); the file is readable after every forward and emptied at setup."""
    path = tmp_path / "out.h5"
    write_h5(path, stale=np.zeros(1))
    layer = make_layer(f'type: "HDF5Output" bottom: "data" bottom: "label" '
                       f'hdf5_output_param {{ file_name: "{path}" }}')
    r = np.random.default_rng(0)
    batches = [(r.standard_normal((2, 3)).astype(np.float32), np.array([1, 0], np.float32))
               for _ in range(3)]
    bottom = blobs_from(*batches[0])
    setup_layer(layer, bottom, 0)
    with h5py.File(path, "r") as f:
        assert list(f.keys()) == []
    for k, (d, lab) in enumerate(batches):
        bottom[0].data[...], bottom[1].data[...] = d, lab
        layer.reshape(bottom, [])
        layer.forward(bottom, [])
        with h5py.File(path, "r") as f:
            assert f["data"].shape == (2 * (k + 1), 3, 1, 1)
            assert f["label"].shape == (2 * (k + 1), 1, 1, 1)
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["data"][()].reshape(6, 3),
                                      np.concatenate([d for d, _ in batches]))
        np.testing.assert_array_equal(f["label"][()].reshape(6),
                                      np.concatenate([lab for _, lab in batches]))
    bottom[0].diff[...] = 3
    layer.backward([], [True, False], bottom)
    assert np.all(bottom[0].diff == 0)


def test_output_errors(tmp_path):
    """An unwritable file and mismatched batch sizes or row shapes name the layer."""
    bad = tmp_path / "no_dir" / "o.h5"
    with pytest.raises(NetError, match="no_dir"):
        setup_layer(make_layer(f'type: "HDF5Output" hdf5_output_param {{ file_name: "{bad}" }}'),
                    blobs_from(np.zeros((2, 3), np.float32), np.zeros(2, np.float32)), 0)
    path = tmp_path / "o.h5"
    layer = make_layer(f'type: "HDF5Output" hdf5_output_param {{ file_name: "{path}" }}')
    with pytest.raises(NetError, match="same first dimension"):
        setup_layer(layer, blobs_from(np.zeros((2, 3), np.float32),
                                      np.zeros(3, np.float32)), 0)
    bottom = blobs_from(np.zeros((2, 3), np.float32), np.zeros(2, np.float32))
    setup_layer(layer, bottom, 0)
    layer.forward(bottom, [])
    bottom = blobs_from(np.zeros((2, 4), np.float32), np.zeros(2, np.float32))
    with pytest.raises(NetError, match="rows of"):
        layer.forward(bottom, [])
