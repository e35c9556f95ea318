"""Positions of prototxt constructs (protobuf's Python parser records none): each field's
1-based line and column, nested as the text nests them."""

from brewnet.proto.positions import layer_nodes, parse_positions

TEXT = '''# a comment with { braces }
name: "net"
layer {
  name: "conv1"   # trailing comment
  type: "Convolution"
  bottom: "data" top: "conv1"
  convolution_param { kernel_size: 5 weight_filler < type: "xavier" > }
  param: [{ lr_mult: 1 }, { lr_mult: 2 }]
}
layers { name: 'old' type: CONVOLUTION blobs_lr: -1.5e-3 }
'''


def test_fields_have_line_and_column():
    """Top-level blocks and the fields inside them are found at their line and column;
    comments, brackets in comments, lists and both quote styles do not confuse it."""
    root = parse_positions(TEXT)
    assert [(c.name, c.line, c.col) for c in root.children] == [
        ("name", 2, 1), ("layer", 3, 1), ("layers", 10, 1)]
    conv = root.find("layer")
    assert conv.text("name") == "conv1" and conv.text("type") == "Convolution"
    assert (conv.find("top").line, conv.find("top").col) == (6, 18)
    block = conv.find("convolution_param")
    assert (block.find("kernel_size").line, block.find("kernel_size").col) == (7, 23)
    assert block.find("weight_filler").find("type").value == '"xavier"'
    assert conv.find("param").line == 8
    old = layer_nodes(root)[1]
    assert old.text("name") == "old" and old.find("blobs_lr").value == "-1.5e-3"


def test_broken_text_is_tolerated():
    """Text that does not parse (an unclosed block) still yields what precedes the fault, so
    a parse error can name the layer it is in."""
    root = parse_positions('layer { name: "x" type: "ReLU" bottom: ')
    assert root.find("layer").text("name") == "x"
