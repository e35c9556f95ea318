"""Locating a layer's error in its prototxt: the construct is found from the error's
``field`` (and ``blob``), never from the words of its message."""

from __future__ import annotations

from google.protobuf import text_format

from brewnet.errors import NetError
from brewnet.net.locate import locate_layer_error, source_nodes
from brewnet.proto import caffe_pb2
from brewnet.proto.positions import parse_positions

TEXT = '''name: "net"
layer {
  name: "mnist"
  type: "Data"
  top: "data"
  top: "label"
  data_param {
    source: "train_lmdb"
    batch_size: 0
  }
  loss_weight: 0
}
'''
LAYER, TOP_LABEL, DATA_PARAM, BATCH_SIZE = 2, 6, 7, 9


def located(error: NetError) -> tuple[int | None, int | None]:
    """``error`` located against the Data layer of TEXT: its (line, col)."""
    param = text_format.Parse(TEXT, caffe_pb2.NetParameter())
    node = source_nodes(param, parse_positions(TEXT))[0]
    locate_layer_error(error, param.layer[0], node, "net.prototxt")
    return error.line, error.col


def test_the_field_locates_the_error_whatever_the_message_says():
    """An error carrying ``field=`` points at that field's line although its text names no
    field at all."""
    assert located(NetError("must be positive", field="data_param.batch_size")) == (
        BATCH_SIZE, 5)
    assert located(NetError("is unusable", field="data_param")) == (DATA_PARAM, 3)


def test_a_param_named_in_the_message_does_not_move_the_location():
    """The message is not parsed: naming some ``*_param`` in it leaves the error on its field,
    or on the layer when it has none."""
    assert located(NetError("data_param.source is wrong", field="data_param.batch_size")) == (
        BATCH_SIZE, 5)
    assert located(NetError("data_param.batch_size must be positive")) == (LAYER, 1)


def test_a_sub_field_not_written_falls_back_to_its_block_then_the_layer():
    assert located(NetError("is required", field="data_param.backend")) == (DATA_PARAM, 3)
    assert located(NetError("is required", field="transform_param.crop_size")) == (LAYER, 1)


def test_top_and_bottom_pick_the_occurrence_naming_the_blob():
    assert located(NetError("is produced twice", blob="label", field="top")) == (TOP_LABEL, 3)
    assert located(NetError("is unknown", blob="nowhere", field="top")) == (LAYER, 1)


def test_a_list_field_names_the_whole_list_so_the_layer_is_kept():
    """``loss_weight`` or ``param`` errors are about the count of values, not one of them."""
    assert located(NetError("has 1 values for 2 tops", field="loss_weight")) == (LAYER, 1)


def test_the_field_is_kept_through_locate_and_not_printed():
    error = NetError("must be positive", layer="mnist", layer_type="Data",
                     field="data_param.batch_size")
    before = str(error)
    assert error.locate(file="net.prototxt", line=9, col=5).field == "data_param.batch_size"
    assert str(error) == "net.prototxt:9:5: " + before
    assert "data_param" not in str(error)
