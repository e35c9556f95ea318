"""A folder of images to a database (brewnet/data/imageset.py), as Caffe's convert_imageset."""

import os

import numpy as np
import pytest

from brewnet.data.image import decode_image
from brewnet.data.imageset import ImageOptions, convert_imageset, read_image_list
from brewnet.data.resize import resize_linear
from brewnet.errors import DataError
from brewnet.proto import caffe_pb2

from .helpers import image_folder

pytest.importorskip("PIL.Image")
lmdb = pytest.importorskip("lmdb")


@pytest.fixture
def folder(tmp_path):
    list_file, exact = image_folder(tmp_path / "images")
    return f"{tmp_path / 'images'}/", str(list_file), exact


def records(path) -> list[tuple[str, caffe_pb2.Datum]]:
    with lmdb.open(str(path), readonly=True, lock=False) as env, env.begin() as txn:
        return [(k.decode(), caffe_pb2.Datum.FromString(v)) for k, v in txn.cursor()]


def convert(folder, out, jobs=1, **kwargs):
    root, list_file, _ = folder
    options = ImageOptions(root=root, **{k: kwargs.pop(k) for k in list(kwargs)
                                         if k in ImageOptions.__dataclass_fields__})
    return convert_imageset(list_file, str(out), options=options, jobs=jobs, **kwargs)


def test_list_lines_split_at_the_last_space(tmp_path):
    """Caffe splits `path label` at the last space, so paths may hold spaces; blank lines
    are skipped."""
    path = tmp_path / "l.txt"
    path.write_text("a b/c d.png 3\n\nx.jpg -1\r\n")
    assert read_image_list(str(path)) == [("a b/c d.png", 3, 1), ("x.jpg", -1, 3)]


@pytest.mark.parametrize(("line", "message"), [("nolabel.png", "is not 'relative/path label'"),
                                               ("a.png three", "label 'three' is not an")])
def test_bad_list_line_names_file_and_line(tmp_path, line, message):
    path = tmp_path / "l.txt"
    path.write_text(f"ok.png 1\n{line}\n")
    with pytest.raises(DataError, match=f"l.txt:2: .*{message}"):
        read_image_list(str(path))


def test_datums_hold_caffe_layout_and_keys(folder, tmp_path):
    """Raw Datums: channels-first BGR uint8 (exactly the PNG's pixels), the label, keys
    `%08d_<path>` numbered by list line with the unreadable images' numbers left unused."""
    root, _, exact = folder
    report = convert(folder, tmp_path / "db")
    got = records(tmp_path / "db")
    assert [k for k, _ in got] == ["00000000_pics/a.png", "00000001_pics/b gray.png",
                                   "00000003_pics/c.jpg", "00000004_pics/d.jpeg",
                                   "00000006_pics/e.png", "00000007_pics/f.JPG"]
    assert report.written == 6 and len(report.skipped) == 2
    assert "list.txt:3: " in report.skipped[0] and "broken.png" in report.skipped[0]
    assert "list.txt:6: " in report.skipped[1] and "missing.jpg" in report.skipped[1]
    for key, datum in got:
        name = key[9:]
        pixels = np.frombuffer(datum.data, np.uint8).reshape(datum.channels, datum.height,
                                                                 datum.width)
        assert datum.HasField("encoded") and not datum.encoded
        if name in exact:  # gray files are decoded in colour: three equal planes
            want = exact[name]
            np.testing.assert_array_equal(pixels, np.broadcast_to(want, (3, *want.shape[1:])))
        else:
            with open(root + name, "rb") as f:
                np.testing.assert_array_equal(pixels, decode_image(f.read(), True))
    assert [d.label for _, d in got] == [0, 1, 2, 0, 1, 2]


def test_gray_gives_one_channel(folder, tmp_path):
    _, _, exact = folder
    convert(folder, tmp_path / "db", is_color=False)
    got = dict(records(tmp_path / "db"))
    datum = got["00000001_pics/b gray.png"]
    assert datum.channels == 1
    np.testing.assert_array_equal(np.frombuffer(datum.data, np.uint8).reshape(1, 16, 20),
                                  exact["pics/b gray.png"])


def test_resize_uses_opencv_bilinear(folder, tmp_path):
    """Resized Datums are resize_linear (OpenCV's INTER_LINEAR) of the decoded pixels."""
    _, _, exact = folder
    convert(folder, tmp_path / "db", resize_height=12, resize_width=15, check_size=True)
    datum = dict(records(tmp_path / "db"))["00000006_pics/e.png"]
    assert (datum.channels, datum.height, datum.width) == (3, 12, 15)
    np.testing.assert_array_equal(np.frombuffer(datum.data, np.uint8).reshape(3, 12, 15),
                                  resize_linear(exact["pics/e.png"], 12, 15))


def test_encoded_keeps_the_files_bytes(folder, tmp_path):
    """--encoded stores each file's own bytes (shape unset, as Caffe)."""
    root, _, _ = folder
    convert(folder, tmp_path / "db", encoded=True)
    for key, datum in records(tmp_path / "db"):
        with open(root + key[9:], "rb") as f:
            assert datum.data == f.read()
        assert datum.encoded and datum.channels == 0


def test_encoded_is_re_encoded_when_resizing_or_changing_type(folder, tmp_path):
    """Resizing, or an --encode_type other than the file's, re-encodes the decoded pixels."""
    _, _, exact = folder
    convert(folder, tmp_path / "png", encode_type="png")
    got = dict(records(tmp_path / "png"))
    assert all(d.encoded and d.data.startswith(b"\x89PNG") for d in got.values())
    np.testing.assert_array_equal(decode_image(got["00000000_pics/a.png"].data, True),
                                  exact["pics/a.png"])
    convert(folder, tmp_path / "small", encoded=True, resize_height=8, resize_width=10)
    png = dict(records(tmp_path / "small"))["00000000_pics/a.png"]
    np.testing.assert_array_equal(decode_image(png.data, True),
                                  resize_linear(exact["pics/a.png"], 8, 10))
    jpg = dict(records(tmp_path / "small"))["00000003_pics/c.jpg"]
    assert jpg.data.startswith(b"\xff\xd8") and decode_image(jpg.data, True).shape == (3, 8, 10)


def test_same_database_for_any_number_of_jobs(folder, tmp_path):
    """Records are written in list order whatever the worker count."""
    convert(folder, tmp_path / "one", jobs=1, shuffle=True, seed=4)
    convert(folder, tmp_path / "two", jobs=2, shuffle=True, seed=4)
    assert records(tmp_path / "one") == records(tmp_path / "two")


def test_shuffle_is_reproducible_with_seed(folder, tmp_path):
    orders = {}
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        convert(folder, tmp_path / name, shuffle=True, seed=seed)
        orders[name] = [k[9:] for k, _ in records(tmp_path / name)]
    assert orders["a"] == orders["b"] and sorted(orders["a"]) == sorted(orders["c"])
    assert orders["a"] != orders["c"]


def test_strict_fails_and_leaves_nothing(folder, tmp_path):
    """--strict stops at the first unreadable image, naming the list line; nothing is left
    under the database's name or beside it."""
    (tmp_path / "out").mkdir()
    with pytest.raises(DataError, match=r"list.txt:3: .*broken.png.*drop --strict"):
        convert(folder, tmp_path / "out" / "db", strict=True)
    assert os.listdir(tmp_path / "out") == []


def test_check_size_names_the_odd_image(folder, tmp_path):
    with pytest.raises(DataError, match=r"--check_size: .*e.png is 3×23×9 but the first "
                                        r"image is 3×16×20"):
        convert(folder, tmp_path / "db", check_size=True)


def test_existing_database_is_refused(folder, tmp_path):
    (tmp_path / "db").mkdir()
    with pytest.raises(DataError, match="already exists"):
        convert(folder, tmp_path / "db")


def test_leveldb_backend(folder, tmp_path):
    plyvel = pytest.importorskip("plyvel")
    convert(folder, tmp_path / "ldb", backend="leveldb")
    convert(folder, tmp_path / "mdb")
    db = plyvel.DB(str(tmp_path / "ldb"))
    try:
        got = [(k.decode(), caffe_pb2.Datum.FromString(v)) for k, v in db]
    finally:
        db.close()
    assert got == records(tmp_path / "mdb")


@pytest.mark.parametrize("encoded", [False, True], ids=["raw", "encoded"])
def test_data_layer_on_the_database_matches_image_data_on_the_folder(folder, tmp_path,
                                                                    encoded):
    """The Data layer reading the converted database (raw pixels, or the files' bytes it
    decodes itself) and the ImageData layer reading the folder give the same batches
    (same-size images of both formats; gray files only raw, since encoded ones decode to one
    channel, as in Caffe without force_encoded_color)."""
    from brewnet import TEST, Net
    root, list_file, _ = folder
    same = tmp_path / "same.txt"
    same.write_text("".join(line + "\n" for line in open(list_file).read().splitlines()
                            if line.split("/")[1][0] in ("ac" if encoded else "abcd")
                            and "broken" not in line))
    convert((root, str(same), None), tmp_path / "db", encoded=encoded)
    proto = tmp_path / "net.prototxt"
    proto.write_text(f"""
layer {{ name: "db" type: "Data" top: "a" top: "la"
        data_param {{ source: "{tmp_path / 'db'}" backend: LMDB batch_size: 3 }}
        transform_param {{ scale: 0.5 }} }}
layer {{ name: "folder" type: "ImageData" top: "b" top: "lb"
        image_data_param {{ source: "{same}" root_folder: "{root}" batch_size: 3 }}
        transform_param {{ scale: 0.5 }} }}
""")
    net = Net(str(proto), TEST)
    try:
        for _ in range(3):  # wraps around the images
            net.forward()
            np.testing.assert_array_equal(net.blobs["a"].data, net.blobs["b"].data)
            np.testing.assert_array_equal(net.blobs["la"].data, net.blobs["lb"].data)
    finally:
        net.close()
