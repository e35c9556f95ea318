"""The layer catalogue covers the schema: every `*_param` message of LayerParameter is read by
a registered layer type (or a named refusal such as WindowData), so no Caffe net meets
'unknown layer type' for a type the schema describes."""

from brewnet.layers.registry import layer_type_list
from brewnet.proto import caffe_pb2

# Messages that are not one layer type's own: shared by every layer, or by a family.
SHARED = {"transform_param": {"Data", "ImageData", "MemoryData"},
          "loss_param": {"SoftmaxWithLoss", "SigmoidCrossEntropyLoss", "InfogainLoss"},
          "recurrent_param": {"RNN", "LSTM"}}


def test_every_layer_parameter_message_has_a_layer():
    """For each LayerParameter field `<x>_param` of type `<Type>Parameter`, layer type
    `<Type>` is registered (or the family that reads it, for the shared messages)."""
    types = set(layer_type_list())
    missing = []
    for field in caffe_pb2.LayerParameter.DESCRIPTOR.fields:
        if not field.name.endswith("_param"):
            continue
        readers = SHARED.get(field.name, {field.message_type.name[:-len("Parameter")]})
        if not readers <= types:
            missing.append(f"{field.name}: {sorted(readers - types)}")
    assert not missing, missing


def test_layer_type_list_is_sorted_and_complete():
    """pycaffe's layer_type_list(): sorted names, including the types Caffe registers
    through its factory (Convolution, Pooling, LRN, ReLU, Sigmoid, Softmax, TanH, Python)."""
    types = layer_type_list()
    assert types == sorted(types)
    assert {"Convolution", "Deconvolution", "Pooling", "LRN", "ReLU", "Sigmoid", "Softmax",
            "TanH", "Python", "LSTMUnit", "Split"} <= set(types)
