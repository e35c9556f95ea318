"""BlobProto to array by Caffe's Blob::FromProto rules (src/caffe/blob.cpp)."""

from __future__ import annotations

import numpy as np
import pytest

from brewnet.errors import WeightsError
from brewnet.proto import caffe_pb2
from brewnet.proto.blobproto import blobproto_shape, blobproto_to_array


def test_double_values_win_when_both_are_set():
    """FromProto copies double_data when it holds anything, data only otherwise; the same
    for double_diff and diff."""
    bp = caffe_pb2.BlobProto(data=[1, 2], double_data=[3, 4], diff=[5, 6], double_diff=[7, 8])
    bp.shape.dim.extend([2])
    assert blobproto_to_array(bp).tolist() == [3, 4]
    assert blobproto_to_array(bp, diff=True).tolist() == [7, 8]
    assert blobproto_to_array(caffe_pb2.BlobProto(shape={"dim": [1]}, data=[9])).tolist() == [9]


def test_legacy_fields_win_over_shape():
    """Any of num/channels/height/width set makes the blob 4-D, whatever ``shape`` says."""
    bp = caffe_pb2.BlobProto(num=1, channels=1, height=2, width=3, data=range(6))
    bp.shape.dim.extend([6])
    assert blobproto_shape(bp) == (1, 1, 2, 3)
    assert blobproto_to_array(bp).dtype == np.float32


def test_value_count_must_match_the_shape():
    with pytest.raises(WeightsError, match=r"shape \(3, 3\) \(9 values\) but holds 4"):
        blobproto_to_array(caffe_pb2.BlobProto(shape={"dim": [3, 3]}, data=[1] * 4))
