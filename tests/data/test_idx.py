"""IDX files (MNIST's format): header layout, gzip, magic numbers and truncation."""

import gzip

import numpy as np
import pytest

from brewnet.data.idx import IMAGES_MAGIC, LABELS_MAGIC, load_idx, write_idx
from brewnet.errors import DataError


def test_header_layout(tmp_path):
    """Two zero bytes, type 0x08 (uint8), ndim, big-endian dims; images have magic 2051."""
    x = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "imgs", x)
    raw = (tmp_path / "imgs").read_bytes()
    assert raw[:16] == bytes([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4])
    assert int.from_bytes(raw[:4], "big") == IMAGES_MAGIC
    assert raw[16:] == x.tobytes()


@pytest.mark.parametrize("name", ["a-idx3-ubyte", "a-idx3-ubyte.gz"])
def test_round_trip_raw_and_gz(tmp_path, name):
    """write_idx/load_idx round trip, gzipped when the name ends in .gz."""
    x = np.random.default_rng(0).integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / name, x)
    if name.endswith(".gz"):
        assert (tmp_path / name).read_bytes()[:2] == b"\x1f\x8b"
    np.testing.assert_array_equal(load_idx(tmp_path / name, IMAGES_MAGIC), x)


def test_wider_types_are_big_endian(tmp_path):
    """int32 and float32 payloads are stored big-endian and read back natively."""
    x = np.array([[1, -2], [70000, 3]], dtype=np.int32)
    write_idx(tmp_path / "i", x)
    assert (tmp_path / "i").read_bytes()[12:16] == (1).to_bytes(4, "big")
    y = load_idx(tmp_path / "i")
    assert y.dtype == np.int32 and y.dtype.isnative
    np.testing.assert_array_equal(y, x)
    f = np.linspace(0, 1, 5, dtype=np.float32)
    write_idx(tmp_path / "f", f)
    np.testing.assert_array_equal(load_idx(tmp_path / "f"), f)


def test_wrong_magic_names_file_and_expectation(tmp_path):
    """A label file where images are expected: the error names the file and 2051."""
    write_idx(tmp_path / "labels", np.zeros(3, np.uint8))
    assert int.from_bytes((tmp_path / "labels").read_bytes()[:4], "big") == LABELS_MAGIC
    with pytest.raises(DataError, match=r"'.*labels' has magic number 2049, expected 2051"):
        load_idx(tmp_path / "labels", IMAGES_MAGIC)
    (tmp_path / "junk").write_bytes(b"PK\x03\x04rest")
    with pytest.raises(DataError, match="does not start with an IDX header"):
        load_idx(tmp_path / "junk")


def test_truncated_files(tmp_path):
    """Missing bytes (raw or inside gzip) are DataErrors saying what was expected."""
    write_idx(tmp_path / "x", np.zeros((4, 2, 2), np.uint8))
    raw = (tmp_path / "x").read_bytes()
    (tmp_path / "cut").write_bytes(raw[:-3])
    with pytest.raises(DataError, match=r"'.*cut' is truncated: 29 bytes, expected 32"):
        load_idx(tmp_path / "cut", IMAGES_MAGIC)
    (tmp_path / "head").write_bytes(raw[:9])
    with pytest.raises(DataError, match="header needs 16"):
        load_idx(tmp_path / "head")
    (tmp_path / "tiny").write_bytes(b"\0\0")
    with pytest.raises(DataError, match="shorter than the 4-byte magic"):
        load_idx(tmp_path / "tiny")
    packed = gzip.compress(raw)
    (tmp_path / "cut.gz").write_bytes(packed[: len(packed) // 2])
    with pytest.raises(DataError, match="damaged or truncated gzip"):
        load_idx(tmp_path / "cut.gz")


def test_missing_file(tmp_path):
    """A missing file is a DataError naming it."""
    with pytest.raises(DataError, match="'.*absent' cannot be read"):
        load_idx(tmp_path / "absent")
