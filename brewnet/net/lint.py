"""What is legal in a net but probably a mistake: each finding is a NetWarning, located like an
error, logged when the net is built and listed by ``brewnet check``.

Kept free of false alarms on ordinary nets: in Caffe every unconsumed top is a net output, so
only a TRAIN net's dangling computation (a non-loss layer whose result nobody uses) is flagged,
never a data layer's spare top, a metric such as Accuracy, or anything in a TEST net.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import NetError
from ..layers.registry import param_fields
from ..proto import caffe_pb2
from .locate import locate_layer_error

if TYPE_CHECKING:
    from .plan import Plan


class NetWarning(NetError):
    """A legal but suspicious construct; never raised, rendered like an error with its place."""


def foreign_param_fields(lp: caffe_pb2.LayerParameter) -> list[str]:
    """The ``*_param`` blocks set on ``lp`` that its type never reads (Caffe ignores them
    silently, so a pooling_param on a Convolution layer leaves the convolution unconfigured)."""
    allowed = param_fields(lp.type)
    return [f.name for f, _ in lp.ListFields()
            if f.name.endswith("_param") and f.name not in allowed]


def foreign_param_message(lp: caffe_pb2.LayerParameter, field: str) -> str:
    fields = param_fields(lp.type)
    where = f"its settings go in {fields[0]}" if fields else f"{lp.type} takes no *_param block"
    return f"{field} is ignored by {lp.type} layers; {where}"


def explain_foreign_params(error: NetError, lp: caffe_pb2.LayerParameter) -> None:
    """Add to the error of a layer that failed to set up the likely cause: settings written in
    another type's ``*_param`` block (a Convolution given pooling_param lacks kernel_size)."""
    for name in foreign_param_fields(lp):
        error.message += f"; note: {foreign_param_message(lp, name)}"
        if error.field is None:  # the note names the likeliest place to look
            error.field = name


def net_warnings(plan: Plan) -> list[NetWarning]:
    """The suspicious constructs of a compiled net, in layer order."""
    out: list[NetWarning] = []

    def warn(message: str, lp: caffe_pb2.LayerParameter | None, node, blob: str | None = None,
             field: str | None = None) -> None:
        w = NetWarning(message, blob=blob, field=field)
        if lp is None:
            w.locate(file=plan.file)
        else:
            locate_layer_error(w, lp, node, plan.file)
        out.append(w)

    last_producer: dict[str, int] = {}
    for i, step in enumerate(plan.steps):
        layer = step.layer
        for field in foreign_param_fields(layer.param):
            w = NetWarning(foreign_param_message(layer.param, field), field=field)
            out.append(locate_layer_error(w, layer.param, step.origin, plan.file))
        for name in step.top_names:
            last_producer[name] = i
    if plan.phase == caffe_pb2.TRAIN and not plan.problems:  # else a failed consumer explains it
        for name in plan.outputs:
            i = last_producer.get(name)
            if i is None:
                continue
            step = plan.steps[i]
            layer = step.layer
            weight = step.loss_weights[step.top_names.index(name)]
            if (layer.is_loss or weight or not step.bottoms or layer.is_metric
                    or layer.type == "Split"):
                continue
            warn(f"top '{name}' is used by no layer and adds no loss, so training computes it "
                 "for nothing; feed it to a loss, remove the layer, or end it in a Silence "
                 "layer", layer.param, step.origin, blob=name, field="top")
        if plan.learnable and not any(p.lr_mult for p in plan.learnable):
            warn("every parameter has lr_mult 0, so training will not change the net; set "
                 "lr_mult > 0 (the default is 1) on the layers to learn", None, None)
    return out
