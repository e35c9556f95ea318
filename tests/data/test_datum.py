"""Datum records: validation and whole-batch decoding."""

import io

import numpy as np
import pytest

from brewnet.data.datum import (
    array_to_datum,
    datum_to_array,
    decode_batch,
    parse_datum,
    record_image,
)
from brewnet.errors import DataError
from brewnet.proto import caffe_pb2


def records(*datums):
    return [(b"%08d" % i, d.SerializeToString()) for i, d in enumerate(datums)]


def test_decode_uint8_batch_matches_per_record_arrays():
    """A batch of byte records decodes to (N, C, H, W) uint8 equal to each record's pixels."""
    imgs = np.random.default_rng(0).integers(0, 256, size=(3, 2, 3, 4), dtype=np.uint8)
    data, labels = decode_batch(records(*(array_to_datum(x, i + 5) for i, x in enumerate(imgs))),
                                "db")
    assert data.dtype == np.uint8 and data.shape == (3, 2, 3, 4)
    np.testing.assert_array_equal(data, imgs)
    assert labels.dtype == np.float32 and labels.tolist() == [5, 6, 7]


def test_decode_float_data():
    """float_data records decode to float32; mixed batches use float32 too."""
    x = np.arange(6, dtype=np.float32).reshape(1, 2, 3) / 7
    y = np.arange(6, dtype=np.uint8).reshape(1, 2, 3)
    data, _ = decode_batch(records(array_to_datum(x), array_to_datum(y)), "db")
    assert data.dtype == np.float32
    np.testing.assert_array_equal(data[0], x)
    np.testing.assert_array_equal(data[1], y)


def test_array_datum_round_trip():
    """array_to_datum/datum_to_array invert each other (pycaffe's io semantics)."""
    x = np.random.default_rng(1).integers(0, 256, size=(3, 4, 5), dtype=np.uint8)
    d = array_to_datum(x, 3)
    assert d.label == 3 and d.data == x.tobytes() and not d.float_data
    np.testing.assert_array_equal(datum_to_array(d), x)


def test_size_mismatch_names_database_and_key():
    """data whose length disagrees with channels×height×width is a DataError naming the key."""
    bad = caffe_pb2.Datum(channels=1, height=2, width=2, data=b"\0\0\0")
    with pytest.raises(DataError, match=r"mydb: record '00000001' has 3 bytes .* = 4"):
        decode_batch(records(array_to_datum(np.zeros((1, 2, 2), np.uint8)), bad), "mydb")


def test_float_size_mismatch():
    """float_data of the wrong length is refused too."""
    bad = caffe_pb2.Datum(channels=1, height=2, width=2, float_data=[1.0])
    with pytest.raises(DataError, match="1 float_data values"):
        parse_datum(bad.SerializeToString(), "db", b"k")


def test_not_a_datum():
    """Bytes that do not parse, or parse to no image, are DataErrors naming the key."""
    with pytest.raises(DataError, match=r"db: record 'k1' is not a Datum"):
        parse_datum(b"\xff\xff\xff", "db", b"k1")
    with pytest.raises(DataError, match=r"db: record 'k2' is not an image Datum"):
        parse_datum(caffe_pb2.Datum(label=3).SerializeToString(), "db", b"k2")


def test_shape_change_within_batch():
    """Records of one batch must share a shape."""
    a = array_to_datum(np.zeros((1, 2, 2), np.uint8))
    b = array_to_datum(np.zeros((1, 3, 2), np.uint8))
    with pytest.raises(DataError, match="00000001"):
        decode_batch(records(a, b), "db")


def png_bytes(chw: np.ndarray) -> bytes:
    """A PNG file of a uint8 (C, H, W) array given in BGR order (or 1 gray channel)."""
    from PIL import Image

    hwc = chw[0] if chw.shape[0] == 1 else chw[::-1].transpose(1, 2, 0)
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(hwc)).save(buf, format="PNG")
    return buf.getvalue()


def encoded_datum(chw: np.ndarray, label: int, channels: int = 0) -> caffe_pb2.Datum:
    return caffe_pb2.Datum(data=png_bytes(chw), encoded=True, label=label, channels=channels)


def test_encoded_png_decodes_to_bgr_pixels():
    """encoded Datums (PNG bytes, as convert_imageset -encoded writes, channels unset) decode
    losslessly to the original (C, H, W) pixels in Caffe's BGR order, labels kept."""
    pytest.importorskip("PIL")
    imgs = np.random.default_rng(2).integers(0, 256, size=(3, 3, 4, 5), dtype=np.uint8)
    data, labels = decode_batch(records(*(encoded_datum(x, i) for i, x in enumerate(imgs))),
                                "db")
    assert data.dtype == np.uint8 and data.shape == (3, 3, 4, 5)
    np.testing.assert_array_equal(data, imgs)
    assert labels.tolist() == [0, 1, 2]


def test_encoded_channels_field_chooses_gray_or_colour():
    """channels 1 decodes a colour file as grayscale (1 channel); channels 3 decodes a gray
    file as 3 equal channels; unset keeps a gray file's single channel (native decoding)."""
    pytest.importorskip("PIL")
    gray = np.random.default_rng(3).integers(0, 256, size=(1, 3, 4), dtype=np.uint8)
    assert datum_to_array(encoded_datum(gray, 0)).shape == (1, 3, 4)
    three = datum_to_array(encoded_datum(gray, 0, channels=3))
    np.testing.assert_array_equal(three, np.repeat(gray, 3, axis=0))
    colour = np.random.default_rng(4).integers(0, 256, size=(3, 3, 4), dtype=np.uint8)
    assert datum_to_array(encoded_datum(colour, 0, channels=1)).shape == (1, 3, 4)


def test_encoded_garbage_names_record():
    """An encoded record whose bytes are no image (or a truncated PNG) is a DataError naming
    the database and key."""
    pytest.importorskip("PIL")
    d = caffe_pb2.Datum(data=b"not an image", encoded=True)
    with pytest.raises(DataError, match=r"mydb: record 'k' is not an image file"):
        parse_datum(d.SerializeToString(), "mydb", b"k")
    whole = png_bytes(np.zeros((3, 8, 8), np.uint8))
    d = caffe_pb2.Datum(data=whole[: len(whole) // 2], encoded=True, channels=3)
    with pytest.raises(DataError, match=r"mydb: record 'k'"):
        parse_datum(d.SerializeToString(), "mydb", b"k")


def test_encoded_lmdb_feeds_the_data_layer(tmp_path):
    """The Data layer reads an LMDB of PNG-encoded Datums: its tops equal the original BGR
    pixels and labels."""
    pytest.importorskip("PIL")
    from brewnet.data.lmdb_source import write_lmdb
    from tests.gradcheck import make_layer, setup_layer

    imgs = np.random.default_rng(5).integers(0, 256, size=(4, 3, 5, 6), dtype=np.uint8)
    write_lmdb(tmp_path / "db", ((b"%08d" % i, encoded_datum(x, 7 - i))
                                 for i, x in enumerate(imgs)))
    layer = make_layer(f'name: "d" type: "Data" data_param {{ source: "{tmp_path / "db"}" '
                       "backend: LMDB batch_size: 4 }")
    try:
        top = setup_layer(layer, [], 2)
        layer.forward([], top)
        np.testing.assert_array_equal(top[0].data, imgs.astype(np.float32))
        assert top[1].data.tolist() == [7, 6, 5, 4]
    finally:
        layer.close()


def test_missing_pillow_message(no_pillow):
    """Without Pillow, an encoded record is a DataError naming it and the install command."""
    d = caffe_pb2.Datum(data=b"\x89PNG", encoded=True, channels=3)
    with pytest.raises(DataError, match=r"db: record 'k' needs Pillow .*brewnet\[image\]"):
        parse_datum(d.SerializeToString(), "db", b"k")


def test_record_image_agrees_with_the_decoded_datum():
    """record_image (one open of the file, a view of its pixels) gives what decoding the
    record to a raw Datum gives, for gray and colour files, channels unset, 1 or 3; and the
    same error as parse_datum for a damaged file."""
    pytest.importorskip("PIL")
    gray = np.random.default_rng(6).integers(0, 256, size=(1, 3, 4), dtype=np.uint8)
    colour = np.random.default_rng(7).integers(0, 256, size=(3, 3, 4), dtype=np.uint8)
    for image, channels in [(gray, 0), (colour, 0), (gray, 3), (colour, 1), (colour, 3)]:
        raw = encoded_datum(image, 4, channels).SerializeToString()
        pixels, label = record_image(raw, "db", b"k")
        np.testing.assert_array_equal(pixels, datum_to_array(parse_datum(raw, "db", b"k")))
        assert label == 4
    whole = png_bytes(colour)
    raw = caffe_pb2.Datum(data=whole[: len(whole) // 2], encoded=True).SerializeToString()
    with pytest.raises(DataError) as serial:
        parse_datum(raw, "db", b"k")
    with pytest.raises(DataError) as one:
        record_image(raw, "db", b"k")
    assert str(one.value) == str(serial.value)
