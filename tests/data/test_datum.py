"""Datum records: validation and whole-batch decoding."""

import numpy as np
import pytest

from brewnet.data.datum import array_to_datum, datum_to_array, decode_batch, parse_datum
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


def test_encoded_is_refused():
    """Encoded (JPEG/PNG) records get a message saying they are not supported yet."""
    d = caffe_pb2.Datum(channels=3, height=2, width=2, data=b"\x89PNG", encoded=True)
    with pytest.raises(DataError, match="encoded"):
        parse_datum(d.SerializeToString(), "db", b"k")


def test_shape_change_within_batch():
    """Records of one batch must share a shape."""
    a = array_to_datum(np.zeros((1, 2, 2), np.uint8))
    b = array_to_datum(np.zeros((1, 3, 2), np.uint8))
    with pytest.raises(DataError, match="00000001"):
        decode_batch(records(a, b), "db")
