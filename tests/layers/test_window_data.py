"""WindowData is refused with a message naming the layer and what to use instead."""

import pytest

from brewnet.errors import NetError
from brewnet.layers.registry import layer_type_list
from tests.gradcheck import make_layer, setup_layer


def test_window_data_is_a_named_refusal():
    """The type is known (not 'unknown layer type'), and setting it up says what to do."""
    assert "WindowData" in layer_type_list()
    layer = make_layer('name: "win" type: "WindowData" window_data_param { source: "w.txt" }')
    with pytest.raises(NetError, match=r"layer 'win' \(WindowData\).*not supported.*HDF5Data"):
        setup_layer(layer, [], num_top=2)
