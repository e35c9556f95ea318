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


def test_arrays_epoch_moves_whenever_a_blob_gets_new_arrays():
    """The epoch the layers' reshape check trusts changes when a blob is created, reallocated
    by a reshape to another shape, shares another's data or adopts an array; a reshape to the
    same shape and writes into the arrays leave it (the arrays are the same)."""
    from brewnet.blob import arrays_epoch

    before = arrays_epoch()
    a = Blob((2, 3))
    after_create = arrays_epoch()
    assert after_create != before
    a.reshape(2, 3)
    a.data[...] = 1
    a.data = np.zeros((2, 3), np.float32)
    assert arrays_epoch() == after_create
    steps = [after_create]
    a.reshape(3, 2)
    steps.append(arrays_epoch())
    b = Blob((3, 2))
    steps.append(arrays_epoch())
    b.share_data(a)
    steps.append(arrays_epoch())
    b.adopt_data(np.ones((3, 2), np.float32))
    steps.append(arrays_epoch())
    view = Blob.of_arrays(a.data.reshape(6), a.diff.reshape(6), np)
    steps.append(arrays_epoch())
    assert len(set(steps)) == len(steps)
    assert view.data.base is a.data or np.shares_memory(view.data, a.data)
