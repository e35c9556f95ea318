"""Which prototxt block each layer of a compiled net came from, so an error raised while
compiling (or loading weights into) a layer names ``file:line:col`` of the construct at
fault: the ``bottom:`` line for a missing blob, ``data_param { batch_size`` for a bad
setting, the layer block otherwise.

Legacy ``input:`` fields become a first Input layer; the compiler carries each layer's
index through phase filtering and split insertion (added Splits have no text of their own).
"""

from __future__ import annotations

from ..errors import BrewnetError
from ..proto import caffe_pb2
from ..proto.positions import Node, layer_nodes


def source_nodes(param: caffe_pb2.NetParameter, root: Node | None) -> list[Node | None]:
    """For each layer of ``param`` (as read, already upgraded), its block in the prototxt
    whose field tree is ``root``; all None without one or when it does not match ``param``."""
    nothing: list[Node | None] = [None] * len(param.layer)
    if root is None:
        return nothing
    nodes: list[Node | None] = list(layer_nodes(root))
    if len(nodes) + 1 == len(param.layer) and param.layer[0].type == "Input":
        nodes.insert(0, root.find("input"))  # the legacy input fields became a layer
    if len(nodes) != len(param.layer):
        return nothing
    for lp, node in zip(param.layer, nodes, strict=True):
        if node is not None and node.name != "input" and (node.text("name") or "") != lp.name:
            return nothing  # a NetParameter changed since it was read: better no position
    return nodes


def field_node(node: Node, lp: caffe_pb2.LayerParameter, error: BrewnetError) -> Node:
    """The construct inside layer block ``node`` that ``error`` is about, from its ``field``:
    the occurrence of ``top``/``bottom`` naming its blob, the sub-field of a ``*_param``
    block (or the block where the sub-field is not written), else the layer block. A list
    field (``loss_weight``, ``param``) names the whole list, so it stays on the layer."""
    if error.field is None:
        return node
    name, _, sub = error.field.partition(".")
    if name in ("top", "bottom"):
        names = list(getattr(lp, name))
        at = node.find(name, names.index(error.blob)) if error.blob in names else None
        return at or node
    descriptor = lp.DESCRIPTOR.fields_by_name.get(name)
    if descriptor is None or descriptor.is_repeated:
        return node
    block = node.find(name)
    if block is None:
        return node
    return (block.find(sub) if sub else None) or block


def locate_layer_error(error: BrewnetError, lp: caffe_pb2.LayerParameter, node: Node | None,
                       file: str | None) -> BrewnetError:
    """Fill in the layer, its type and (with a prototxt) the line of ``error``, in place."""
    if error.layer is None and lp.name:
        error.layer = lp.name
        said = f"layer '{lp.name}' ({lp.type}): "  # raisers that wrote the layer into the text
        if error.message.startswith(said):
            error.message = error.message[len(said):]
    if error.layer_type is None and lp.type:
        error.layer_type = lp.type
    if node is not None and error.file in (None, file):  # an error naming a data file keeps it
        at = field_node(node, lp, error)
        error.locate(file=file, line=at.line, col=at.col)
    return error.locate()

