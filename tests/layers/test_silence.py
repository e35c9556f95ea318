"""Silence: a sink for unused blobs."""

import numpy as np

from tests.gradcheck import blobs_from, make_layer, setup_layer


def test_silence_zeroes_asked_diffs():
    """Silence has no tops; backward writes zeros to the diffs asked for only."""
    layer = make_layer('type: "Silence"')
    bottom = blobs_from(np.ones((2, 2), np.float32), np.ones(3, np.float32))
    top = setup_layer(layer, bottom, 0)
    layer.forward(bottom, top)
    for b in bottom:
        b.diff[...] = 3
    layer.backward(top, [True, False], bottom)
    assert np.all(bottom[0].diff == 0) and np.all(bottom[1].diff == 3)
