"""NetState filtering follows Caffe's StateMeetsRule / FilterNet."""

import pytest
from google.protobuf import text_format

from brewnet.errors import NetError
from brewnet.net.state import filter_net, state_meets_rule
from brewnet.proto import caffe_pb2

TRAIN, TEST = caffe_pb2.TRAIN, caffe_pb2.TEST


def rule(text: str) -> caffe_pb2.NetStateRule:
    return text_format.Parse(text, caffe_pb2.NetStateRule())


def test_phase_level_and_stage_rules():
    """A rule is met iff phase matches (if set), min_level <= level <= max_level, every stage
    is present and no not_stage is."""
    s = caffe_pb2.NetState(phase=TRAIN, level=2, stage=["a", "b"])
    assert state_meets_rule(s, rule(""))
    assert state_meets_rule(s, rule("phase: TRAIN"))
    assert not state_meets_rule(s, rule("phase: TEST"))
    assert state_meets_rule(s, rule("min_level: 2 max_level: 2"))
    assert not state_meets_rule(s, rule("min_level: 3"))
    assert not state_meets_rule(s, rule("max_level: 1"))
    assert state_meets_rule(s, rule('stage: "a" stage: "b"'))
    assert not state_meets_rule(s, rule('stage: "a" stage: "c"'))
    assert not state_meets_rule(s, rule('not_stage: "b"'))
    assert state_meets_rule(s, rule('not_stage: "c"'))


NET = """
layer { name: "always" type: "Input" top: "x" }
layer { name: "train_only" type: "ReLU" bottom: "x" top: "y" include { phase: TRAIN } }
layer { name: "test_only" type: "ReLU" bottom: "x" top: "y" include { phase: TEST } }
layer { name: "not_deploy" type: "ReLU" bottom: "x" top: "z" exclude { stage: "deploy" } }
layer { name: "either" type: "ReLU" bottom: "x" top: "w"
        include { stage: "s1" } include { min_level: 3 } }
"""


def names(param, state):
    return [layer.name for layer in filter_net(param, state).layer]


def test_filter_net_include_exclude():
    """No rule: kept; include: kept if any rule is met; exclude: dropped if any is met."""
    param = text_format.Parse(NET, caffe_pb2.NetParameter())
    assert names(param, caffe_pb2.NetState(phase=TRAIN)) == ["always", "train_only", "not_deploy"]
    assert names(param, caffe_pb2.NetState(phase=TEST, stage=["deploy"])) == ["always", "test_only"]
    assert names(param, caffe_pb2.NetState(phase=TEST, stage=["s1"])) == [
        "always", "test_only", "not_deploy", "either"]
    assert names(param, caffe_pb2.NetState(phase=TEST, level=3)) == [
        "always", "test_only", "not_deploy", "either"]


def test_include_and_exclude_together_is_an_error():
    """Caffe forbids a layer with both include and exclude rules; the error names it."""
    param = text_format.Parse(
        'layer { name: "bad" type: "ReLU" include { phase: TRAIN } exclude { phase: TEST } }',
        caffe_pb2.NetParameter())
    with pytest.raises(NetError, match="'bad'.*both include and exclude"):
        filter_net(param, caffe_pb2.NetState(phase=TRAIN))
