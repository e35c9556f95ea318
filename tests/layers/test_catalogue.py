"""The layer catalogue covers the schema: every `*_param` message of LayerParameter is read by
a registered layer type (or a named refusal such as WindowData), so no Caffe net meets
'unknown layer type' for a type the schema describes; and each type states which messages it
reads."""

from brewnet.layers.base import Layer
from brewnet.layers.registry import layer_class, layer_type_list, param_fields
from brewnet.proto import caffe_pb2

PARAM_FIELDS = {f.name for f in caffe_pb2.LayerParameter.DESCRIPTOR.fields
                if f.name.endswith("_param")}


def test_every_layer_parameter_message_has_a_layer():
    """Each LayerParameter field `<x>_param` is among the messages some registered type reads."""
    read = {field for t in layer_type_list() for field in param_fields(t)}
    assert sorted(PARAM_FIELDS - read) == []


def test_types_read_only_schema_messages():
    """A type's param_fields name `*_param` fields of LayerParameter, none twice."""
    for t in layer_type_list():
        fields = param_fields(t)
        assert set(fields) <= PARAM_FIELDS and len(set(fields)) == len(fields), t


def test_a_type_reads_the_message_named_after_it_unless_it_says():
    """The default is pycaffe's param_name_dict rule (Tile → tile_param, no message for a name
    the schema lacks); Deconvolution, whose class derives from Convolution's, says it reads
    convolution_param, and a data layer adds transform_param after its own."""

    class Tiling(Layer):
        type = "Tile"

    class Unheard(Layer):
        type = "NoSuchType"

    assert Tiling.param_fields == ("tile_param",)
    assert Unheard.param_fields == ()
    assert layer_class("Deconvolution").param_fields == ("convolution_param",)
    assert param_fields("Data") == ("data_param", "transform_param")
    assert param_fields("NoSuchType") == ()


def test_layer_type_list_is_sorted_and_complete():
    """pycaffe's layer_type_list(): sorted names, including the types Caffe registers
    through its factory (Convolution, Pooling, LRN, ReLU, Sigmoid, Softmax, TanH, Python)."""
    types = layer_type_list()
    assert types == sorted(types)
    assert {"Convolution", "Deconvolution", "Pooling", "LRN", "ReLU", "Sigmoid", "Softmax",
            "TanH", "Python", "LSTMUnit", "Split"} <= set(types)
