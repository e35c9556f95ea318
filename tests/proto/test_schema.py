"""The schema: brewnet's caffe_pb2 against BVLC's caffe.proto field table, against its own
caffe.proto, isolated from a BVLC ``caffe`` package in the same process, and able to read
BVLC's example prototxt files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import descriptor_pb2

from brewnet.proto import caffe_pb2
from brewnet.proto.textio import read_net, read_solver

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO.parent / "shared" / "reference"
FIELDS_JSON = REFERENCE / "caffe_proto_fields.json"
BVLC = REFERENCE / "bvlc"

_FDP = descriptor_pb2.FieldDescriptorProto
_TYPE_NAMES = {number: name.removeprefix("TYPE_").lower() for name, number in _FDP.Type.items()}
_LABEL_NAMES = {number: name.removeprefix("LABEL_").lower()
                for name, number in _FDP.Label.items()}
_FLOATS = (_FDP.TYPE_FLOAT, _FDP.TYPE_DOUBLE)


def _file_proto() -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto()
    caffe_pb2.DESCRIPTOR.CopyToProto(proto)
    return proto


def _bvlc_type_name(type_name: str) -> str:
    """``.brewnet.caffe.BlobShape`` → ``caffe.BlobShape`` (only the package differs)."""
    return type_name.lstrip(".").replace(caffe_pb2.DESCRIPTOR.package + ".", "caffe.", 1)


def _same_default(field: descriptor_pb2.FieldDescriptorProto, expected: str) -> bool:
    if field.type in _FLOATS:  # protoc and upb print float defaults differently
        return np.float32(field.default_value) == np.float32(expected)
    return field.default_value == expected


def _enum_table(enums) -> dict[str, dict[str, int]]:
    return {e.name: {v.name: v.number for v in e.value} for e in enums}


@pytest.fixture(scope="module")
def reference() -> dict:
    if not FIELDS_JSON.exists():
        pytest.skip(f"{FIELDS_JSON} not present")
    return json.loads(FIELDS_JSON.read_text())


def test_messages_and_fields_match_bvlc(reference):
    """Every BVLC message has the same fields, in order, with the same number, label, type,
    type name, default and packed option (the facts that make files interchangeable)."""
    ours = {m.name: m for m in _file_proto().message_type}
    assert sorted(ours) == sorted(m["message"] for m in reference["messages"])
    for message in reference["messages"]:
        have = ours[message["message"]]
        assert [f.name for f in have.field] == [f["name"] for f in message["fields"]], \
            message["message"]
        for field, want in zip(have.field, message["fields"], strict=True):
            where = f"{message['message']}.{field.name}"
            assert field.number == want["number"], where
            assert _LABEL_NAMES[field.label] == want["label"], where
            assert _TYPE_NAMES[field.type] == want["type"], where
            assert _bvlc_type_name(field.type_name) == want.get("type_name", ""), where
            assert field.HasField("default_value") == ("default" in want), where
            if "default" in want:
                assert _same_default(field, want["default"]), where
            assert field.options.packed == want.get("packed", False), where


def test_enums_match_bvlc(reference):
    """Top-level and nested enums have BVLC's value names and numbers."""
    proto = _file_proto()
    assert _enum_table(proto.enum_type) == {e["enum"]: e["values"] for e in reference["enums"]}
    ours = {m.name: _enum_table(m.enum_type) for m in proto.message_type}
    for message in reference["messages"]:
        want = {e["enum"]: e["values"] for e in message.get("nested_enums", [])}
        assert ours[message["message"]] == want, message["message"]


def test_generated_module_matches_caffe_proto(tmp_path):
    """The committed caffe_pb2.py is what protoc makes of the committed caffe.proto
    (regenerate with `make proto` after editing the schema)."""
    protoc = pytest.importorskip("grpc_tools.protoc")
    out = tmp_path / "caffe.pb"
    rc = protoc.main(["protoc", f"-I{REPO}", f"--descriptor_set_out={out}",
                      "brewnet/proto/caffe.proto"])
    assert rc == 0
    compiled = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file[0]
    committed = _file_proto()
    for proto in (compiled, committed):  # json_name and float spelling are not schema facts
        for message in proto.message_type:
            for field in message.field:
                field.ClearField("json_name")
                if field.type in _FLOATS and field.HasField("default_value"):
                    field.default_value = repr(float(np.float32(field.default_value)))
    assert compiled == committed


_ISOLATION = """
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
F = descriptor_pb2.FieldDescriptorProto
def bvlc_like():
    # A hand-made stand-in for BVLC's caffe.proto: package caffe, file caffe.proto.
    fdp = descriptor_pb2.FileDescriptorProto(name="caffe.proto", package="caffe")
    phase = fdp.enum_type.add(name="Phase")
    phase.value.add(name="TRAIN", number=0)
    phase.value.add(name="TEST", number=1)
    shape = fdp.message_type.add(name="BlobShape")
    shape.field.add(name="dim", number=1, type=F.TYPE_INT64, label=F.LABEL_REPEATED)
    net = fdp.message_type.add(name="NetParameter")
    net.field.add(name="name", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    net.field.add(name="input_shape", number=8, type=F.TYPE_MESSAGE, label=F.LABEL_REPEATED,
                  type_name=".caffe.BlobShape")
    descriptor_pool.Default().Add(fdp)
    return message_factory.GetMessageClass(
        descriptor_pool.Default().FindMessageTypeByName("caffe.NetParameter"))
if {bvlc_first}:
    Theirs = bvlc_like()
from brewnet.proto import caffe_pb2
if not {bvlc_first}:
    Theirs = bvlc_like()
theirs = Theirs(name="bvlc")
theirs.input_shape.add().dim.extend([1, 3])
ours = caffe_pb2.NetParameter.FromString(theirs.SerializeToString())
assert ours.name == "bvlc" and list(ours.input_shape[0].dim) == [1, 3]
assert Theirs.FromString(ours.SerializeToString()) == theirs
assert caffe_pb2.NetParameter.DESCRIPTOR.full_name == "brewnet.caffe.NetParameter"
assert caffe_pb2.TEST == 1
print("ok")
"""


@pytest.mark.parametrize("bvlc_first", [True, False])
def test_coexists_with_a_bvlc_caffe_schema(bvlc_first):
    """A BVLC-style `caffe` package (file caffe.proto) in the default descriptor pool does not
    clash with brewnet's schema, whichever is registered first, and both read each other's
    bytes (same field numbers)."""
    script = _ISOLATION.format(bvlc_first=bvlc_first)
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def _bvlc_prototxts() -> list[Path]:
    return sorted(BVLC.rglob("*.prototxt")) if BVLC.exists() else []


@pytest.mark.skipif(not BVLC.exists(), reason="BVLC reference prototxt files not present")
@pytest.mark.parametrize("path", _bvlc_prototxts(), ids=lambda p: str(p.relative_to(BVLC)))
def test_bvlc_prototxt_files_parse(path):
    """Every prototxt shipped with BVLC Caffe's examples and models reads (and upgrades)."""
    if "solver" in path.name:
        solver = read_solver(path)
        assert solver.type and not solver.HasField("solver_type")
    else:
        net = read_net(path)
        assert len(net.layer) > 0 and len(net.layers) == 0 and not net.input
