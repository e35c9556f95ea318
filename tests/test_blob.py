"""Blob.adopt_data: a data layer's tops take the prefetched batch's arrays without a copy."""

import numpy as np
import pytest

from brewnet.blob import Blob


def test_adopt_data_takes_the_array_itself():
    """The adopted array becomes ``data`` (writes reach the caller's array); ``diff`` stays."""
    blob = Blob((2, 3))
    diff = blob.diff
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    blob.adopt_data(array)
    assert blob.data is array and blob.diff is diff
    blob.data[...] = 7
    assert (array == 7).all()


@pytest.mark.parametrize("array", [np.zeros((3, 2), np.float32), np.zeros((2, 3)),
                                   np.zeros(6, np.float32)])
def test_adopt_data_refuses_another_shape_or_dtype(array):
    """A mismatch is refused, naming both shapes, and the blob keeps its array."""
    blob = Blob((2, 3))
    before = blob.data
    with pytest.raises(ValueError, match=r"blob of shape \(2, 3\)"):
        blob.adopt_data(array)
    assert blob.data is before
