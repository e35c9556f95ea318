"""Positions of prototxt constructs (protobuf's Python parser records none): each field's
1-based line and column, nested as the text nests them."""

import tracemalloc

from brewnet.errors import ParseError
from brewnet.proto.positions import MAX_RECORDED, layer_nodes, parse_positions
from brewnet.proto.textio import read_net_located

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


def _peak(fn, *args):
    """Peak bytes Python allocates while ``fn(*args)`` runs, and its result or error."""
    tracemalloc.start()
    try:
        result = fn(*args)
    except ParseError as e:
        result = e
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak, result


def test_a_shape_of_a_million_dims_is_refused_at_the_33rd_without_reading_on():
    """Caffe's blobs have at most 32 axes: the 33rd ``dim`` is a located error, found in
    memory that does not grow with the rest of the file (7 MB here)."""
    text = 'layer { name: "x" type: "Input" top: "x"\n  input_param { shape { ' + (
        "dim: 1 " * 1_000_000) + "} } }\n"
    peak, error = _peak(parse_positions, text, "big.prototxt")
    assert isinstance(error, ParseError)
    assert str(error) == ("big.prototxt:2:249: a shape with more than 32 dims; Caffe's blobs "
                          "have at most 32 axes")
    assert peak < 100_000


def test_an_absurdly_long_name_is_refused_located(tmp_path):
    """A 5 MB layer name is a located error, through the file reader too, needing memory of
    the order of the name itself (the old tokenizer needed ~150 bytes a character)."""
    path = tmp_path / "long.prototxt"
    path.write_text('name: "n"\nlayer {\n  name: "' + "x" * 5_000_000 + '" type: "ReLU" }\n')
    peak, error = _peak(read_net_located, path)
    assert isinstance(error, ParseError)
    assert str(error) == (f"{path}:3:3: the name is 5,000,000 characters long; a name has at "
                          "most 4,096")
    assert peak < 3 * 5_000_000


def test_memory_grows_with_the_structure_not_with_repeated_scalars():
    """Four times the layers cost about four times the memory (linear); a message's
    repeated scalars beyond the first MAX_RECORDED (weights written as text) cost none."""
    layer = 'layer { name: "a" type: "ReLU" bottom: "x" top: "x" }\n'
    small, _ = _peak(parse_positions, layer * 1_000)
    large, _ = _peak(parse_positions, layer * 4_000)
    assert 3 < large / small < 5
    blob = 'layer { name: "a" type: "ReLU" blobs { ' + "data: 0.5 " * 5_000 + "} }\n"
    few, root = _peak(parse_positions, blob)
    many, _ = _peak(parse_positions, blob.replace("data: 0.5 ", "data: 0.5 " * 4))
    assert len(root.find("layer").find("blobs").children) == MAX_RECORDED
    assert many < 1.5 * few
