"""The mean image of a database (brewnet/data/image_mean.py), as Caffe's compute_image_mean."""

import numpy as np
import pytest

from brewnet.data.datum import array_to_datum
from brewnet.data.image_mean import channel_means, compute_image_mean, mean_blobproto
from brewnet.data.lmdb_source import write_lmdb
from brewnet.errors import DataError

from .helpers import image_stack, make_lmdb


def test_mean_of_byte_records_is_numpys(tmp_path):
    images = image_stack(7, (3, 4, 5))
    make_lmdb(tmp_path / "db", images)
    mean = compute_image_mean(tmp_path / "db")
    assert mean.shape == (1, 3, 4, 5) and mean.dtype == np.float32
    np.testing.assert_array_equal(mean[0], images.mean(axis=0, dtype=np.float64)
                                  .astype(np.float32))
    assert channel_means(mean) == pytest.approx(images.mean(axis=(0, 2, 3)), rel=1e-6)


def test_float_records_and_leveldb(tmp_path):
    """float_data records are averaged as floats; LevelDB databases read alike."""
    plyvel = pytest.importorskip("plyvel")  # noqa: F841 - the LevelDB backend needs it
    from brewnet.data.leveldb_source import write_leveldb
    values = np.random.default_rng(0).standard_normal((4, 2, 3, 3)).astype(np.float32)
    write_leveldb(tmp_path / "ldb", ((b"%d" % i, array_to_datum(v))
                                     for i, v in enumerate(values)))
    np.testing.assert_array_equal(compute_image_mean(tmp_path / "ldb", "leveldb")[0],
                                  values.mean(axis=0, dtype=np.float64).astype(np.float32))


def test_records_of_another_shape_are_an_error(tmp_path):
    write_lmdb(tmp_path / "db", [(b"a", array_to_datum(np.zeros((1, 2, 2), np.uint8))),
                                 (b"b", array_to_datum(np.zeros((1, 3, 2), np.uint8)))])
    with pytest.raises(DataError, match=r"record 'b' has shape \(1, 3, 2\) but the first "
                                        r"record has \(1, 2, 2\)"):
        compute_image_mean(tmp_path / "db")


def test_blobproto_has_caffes_legacy_dims():
    blob = mean_blobproto(np.arange(6, dtype=np.float32).reshape(1, 1, 2, 3))
    assert (blob.num, blob.channels, blob.height, blob.width) == (1, 1, 2, 3)
    assert list(blob.data) == list(range(6)) and not blob.HasField("shape")


def test_unknown_backend_is_an_error(tmp_path):
    with pytest.raises(DataError, match="unknown database type 'rocks'"):
        compute_image_mean(tmp_path, "rocks")
