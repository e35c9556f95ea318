"""Feature records (brewnet/tools/features.py), as Caffe's extract_features writes them."""

import numpy as np

from brewnet.tools.features import feature_datum


def test_feature_datum_uses_caffes_legacy_shape():
    """A blob's per-image values keep Caffe's channels/height/width: missing axes are 1."""
    for shape, dims in (((), (1, 1, 1)), ((5,), (5, 1, 1)), ((2, 3), (2, 3, 1)),
                        ((2, 3, 4), (2, 3, 4))):
        values = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
        datum = feature_datum(values)
        assert (datum.channels, datum.height, datum.width) == dims
        assert list(datum.float_data) == values.ravel().tolist() and not datum.data
