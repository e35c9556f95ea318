"""Prototxt reading and writing (brewnet/proto/textio.py)."""

from __future__ import annotations

import pytest

from brewnet.errors import ParseError
from brewnet.proto import caffe_pb2
from brewnet.proto.textio import parse_text, read_net, read_solver, read_text, to_text, write_text


def _parse_error(tmp_path, text: str, message=caffe_pb2.NetParameter) -> ParseError:
    path = tmp_path / "net.prototxt"
    path.write_text(text)
    with pytest.raises(ParseError) as info:
        read_text(path, message)
    return info.value


def test_syntax_error_names_file_line_col(tmp_path):
    """A missing brace is reported as file:line:col of the token where parsing stopped."""
    err = _parse_error(tmp_path, 'name: "x"\nlayer {\n  name: "a"\n  top: "b"\n')
    assert err.path == str(tmp_path / "net.prototxt")
    assert err.line is not None and err.line >= 4
    assert str(err).startswith(f"{tmp_path / 'net.prototxt'}:{err.line}:{err.col}: ")
    assert "}" in err.message


def test_unknown_field_suggests_nearest_name(tmp_path):
    """An unknown field names the message it is not in and the closest real field."""
    text = 'layer {\n  name: "c"\n  convolution_param {\n    kernal_size: 3\n  }\n}\n'
    err = _parse_error(tmp_path, text)
    assert (err.line, err.col) == (4, 5)
    assert err.message == ("unknown field 'kernal_size' in ConvolutionParameter; "
                           "did you mean 'kernel_size'?")
    assert str(err) == f"{tmp_path / 'net.prototxt'}:4:5: layer 'c': {err.message}"


def test_unknown_enum_value_lists_valid_values(tmp_path):
    """A bad enum name lists the enum's valid values (and the near miss)."""
    err = _parse_error(tmp_path, "layer { pooling_param { pool: MAXX } }")
    assert err.line == 1
    assert "unknown value 'MAXX' for PoolingParameter.PoolMethod" in err.message
    assert "did you mean 'MAX'?" in err.message
    assert "valid: MAX, AVE, STOCHASTIC" in err.message


def test_unknown_enum_number_lists_valid_values(tmp_path):
    """An enum given by an unknown number lists the valid name=number pairs."""
    err = _parse_error(tmp_path, "layer {\n  phase: 5\n}")
    assert err.line == 2 and "TRAIN=0, TEST=1" in err.message


def test_v1_type_in_layer_block_hints_the_string_type(tmp_path):
    """`type: CONVOLUTION` inside `layer {}` says the V2 type is the string "Convolution"."""
    err = _parse_error(tmp_path, "layer { type: CONVOLUTION }")
    assert 'type: "Convolution"' in err.message


def test_duplicate_singular_field_is_an_error(tmp_path):
    """A non-repeated field given twice is an error, as in C++ TextFormat::Parse."""
    err = _parse_error(tmp_path, 'layer { name: "a" name: "b" }')
    assert "'name' of LayerParameter is given more than once" in err.message


def test_missing_file_names_the_path(tmp_path):
    """A net file that does not exist raises ParseError naming the path."""
    with pytest.raises(ParseError, match="nope.prototxt: cannot open file"):
        read_net(tmp_path / "nope.prototxt")


def test_binary_file_is_not_prototxt(tmp_path):
    """A binary file given as prototxt says it is binary instead of a confusing syntax error."""
    path = tmp_path / "w.caffemodel"
    path.write_bytes(b"\x0a\x03abc\xff\xfe\x00")
    with pytest.raises(ParseError, match="w.caffemodel: not a text prototxt"):
        read_net(path)


def test_parse_text_replaces_previous_contents():
    """parse_text clears the message first, like C++ TextFormat::Parse (not Merge)."""
    net = caffe_pb2.NetParameter(name="old", force_backward=True)
    parse_text('name: "new"', net)
    assert net.name == "new" and not net.HasField("force_backward")


def test_write_then_read_round_trips(tmp_path):
    """write_text output parses back to an equal message."""
    solver = caffe_pb2.SolverParameter(base_lr=0.01, lr_policy="step", stepvalue=[10, 20],
                                       type="Adam", net="train.prototxt")
    path = tmp_path / "solver.prototxt"
    write_text(path, solver)
    assert read_solver(path) == solver
    assert 'lr_policy: "step"' in to_text(solver)


def test_parse_error_names_the_layer_it_is_in(tmp_path):
    """A parse error inside a layer block carries that layer's name and type as well as the
    file:line:col of the fault."""
    path = tmp_path / "net.prototxt"
    path.write_text('name: "n"\nlayer {\n  name: "pool1"\n  type: "Pooling"\n'
                    "  pooling_param { pool: MAXX }\n}\n")
    with pytest.raises(ParseError) as info:
        read_net(path)
    e = info.value
    assert (e.file, e.line, e.layer, e.layer_type) == (str(path), 5, "pool1", "Pooling")
    assert str(e).startswith(f"{path}:5:25: layer 'pool1' (Pooling): unknown value 'MAXX'")


def test_upgrade_error_names_the_legacy_field(tmp_path):
    """Legacy input fields that do not fit together: the error points at the first of them."""
    path = tmp_path / "net.prototxt"
    path.write_text('name: "n"\ninput: "data"\ninput_dim: 1\n')
    with pytest.raises(ParseError) as info:
        read_net(path)
    assert (info.value.file, info.value.line) == (str(path), 2)
