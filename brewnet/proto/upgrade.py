"""Legacy Caffe definitions brought up to date, as Caffe's ``upgrade_proto.cpp`` does on every
read: V0 nets (``layers { layer { type: "conv" } }``) become V1 nets, V1 nets (``layers { type:
CONVOLUTION }``) become ``layer { type: "Convolution" }``, data transformation fields move into
``transform_param``, ``input:`` fields become an ``Input`` layer, old three-param BatchNorm
layers get frozen statistics, and a solver's ``solver_type`` enum becomes its ``type`` string.
Each upgrade logs one line saying what changed.
"""

from __future__ import annotations

from google.protobuf.message import Message

from ..errors import ParseError
from ..log import log
from . import caffe_pb2

V1 = caffe_pb2.V1LayerParameter

# V1LayerParameter.LayerType → the registered type string (Caffe's UpgradeV1LayerType).
V1_LAYER_TYPES: dict[int, str] = {
    V1.NONE: "",
    V1.ABSVAL: "AbsVal",
    V1.ACCURACY: "Accuracy",
    V1.ARGMAX: "ArgMax",
    V1.BNLL: "BNLL",
    V1.CONCAT: "Concat",
    V1.CONTRASTIVE_LOSS: "ContrastiveLoss",
    V1.CONVOLUTION: "Convolution",
    V1.DATA: "Data",
    V1.DECONVOLUTION: "Deconvolution",
    V1.DROPOUT: "Dropout",
    V1.DUMMY_DATA: "DummyData",
    V1.EUCLIDEAN_LOSS: "EuclideanLoss",
    V1.ELTWISE: "Eltwise",
    V1.EXP: "Exp",
    V1.FLATTEN: "Flatten",
    V1.HDF5_DATA: "HDF5Data",
    V1.HDF5_OUTPUT: "HDF5Output",
    V1.HINGE_LOSS: "HingeLoss",
    V1.IM2COL: "Im2col",
    V1.IMAGE_DATA: "ImageData",
    V1.INFOGAIN_LOSS: "InfogainLoss",
    V1.INNER_PRODUCT: "InnerProduct",
    V1.LRN: "LRN",
    V1.MEMORY_DATA: "MemoryData",
    V1.MULTINOMIAL_LOGISTIC_LOSS: "MultinomialLogisticLoss",
    V1.MVN: "MVN",
    V1.POOLING: "Pooling",
    V1.POWER: "Power",
    V1.RELU: "ReLU",
    V1.SIGMOID: "Sigmoid",
    V1.SIGMOID_CROSS_ENTROPY_LOSS: "SigmoidCrossEntropyLoss",
    V1.SILENCE: "Silence",
    V1.SOFTMAX: "Softmax",
    V1.SOFTMAX_LOSS: "SoftmaxWithLoss",
    V1.SPLIT: "Split",
    V1.SLICE: "Slice",
    V1.TANH: "TanH",
    V1.WINDOW_DATA: "WindowData",
    V1.THRESHOLD: "Threshold",
}

# SolverParameter.SolverType → the registered solver type string (Caffe's UpgradeSolverType).
SOLVER_TYPES: dict[int, str] = {
    caffe_pb2.SolverParameter.SGD: "SGD",
    caffe_pb2.SolverParameter.NESTEROV: "Nesterov",
    caffe_pb2.SolverParameter.ADAGRAD: "AdaGrad",
    caffe_pb2.SolverParameter.RMSPROP: "RMSProp",
    caffe_pb2.SolverParameter.ADADELTA: "AdaDelta",
    caffe_pb2.SolverParameter.ADAM: "Adam",
}

# V1 data layers whose own parameter message still carried the transformation fields.
_TRANSFORM_HOLDERS = {V1.DATA: "data_param", V1.IMAGE_DATA: "image_data_param",
                      V1.WINDOW_DATA: "window_data_param"}
_TRANSFORM_FIELDS = ("scale", "mean_file", "crop_size", "mirror")
_V1_SUBMESSAGES = tuple(f.name for f in V1.DESCRIPTOR.fields if f.name.endswith("_param"))


V0 = caffe_pb2.V0LayerParameter

# V0's lower-case type names → V1's enum (Caffe's UpgradeV0LayerType).
V0_LAYER_TYPES: dict[str, int] = {
    "accuracy": V1.ACCURACY, "bnll": V1.BNLL, "concat": V1.CONCAT, "conv": V1.CONVOLUTION,
    "data": V1.DATA, "dropout": V1.DROPOUT, "euclidean_loss": V1.EUCLIDEAN_LOSS,
    "flatten": V1.FLATTEN, "hdf5_data": V1.HDF5_DATA, "hdf5_output": V1.HDF5_OUTPUT,
    "im2col": V1.IM2COL, "images": V1.IMAGE_DATA, "infogain_loss": V1.INFOGAIN_LOSS,
    "innerproduct": V1.INNER_PRODUCT, "lrn": V1.LRN,
    "multinomial_logistic_loss": V1.MULTINOMIAL_LOGISTIC_LOSS, "pool": V1.POOLING,
    "relu": V1.RELU, "sigmoid": V1.SIGMOID, "softmax": V1.SOFTMAX,
    "softmax_loss": V1.SOFTMAX_LOSS, "split": V1.SPLIT, "tanh": V1.TANH,
    "window_data": V1.WINDOW_DATA,
}

# Each flat V0 field → {V0 type: "submessage.field"} of the V1 layer (Caffe's
# UpgradeV0LayerParameter); a V0 field set on a type not listed is dropped and reported.
_DATA_SOURCES = {"data": "data_param", "hdf5_data": "hdf5_data_param",
                 "images": "image_data_param", "window_data": "window_data_param"}
_V0_FIELDS: dict[str, dict[str, str]] = {
    **{f: {"conv": f"convolution_param.{to}", "innerproduct": f"inner_product_param.{to}"}
       for f, to in (("num_output", "num_output"), ("biasterm", "bias_term"),
                     ("weight_filler", "weight_filler"), ("bias_filler", "bias_filler"))},
    **{f: {"conv": f"convolution_param.{to}", "pool": f"pooling_param.{to}"}
       for f, to in (("pad", "pad"), ("kernelsize", "kernel_size"), ("stride", "stride"))},
    "group": {"conv": "convolution_param.group"},
    "pool": {"pool": "pooling_param.pool"},
    "dropout_ratio": {"dropout": "dropout_param.dropout_ratio"},
    **{f: {"lrn": f"lrn_param.{f}"} for f in ("local_size", "alpha", "beta", "k")},
    "source": {**{t: f"{m}.source" for t, m in _DATA_SOURCES.items()},
               "infogain_loss": "infogain_loss_param.source"},
    "batchsize": {t: f"{m}.batch_size" for t, m in _DATA_SOURCES.items()},
    "rand_skip": {"data": "data_param.rand_skip", "images": "image_data_param.rand_skip"},
    "shuffle_images": {"images": "image_data_param.shuffle"},
    "new_height": {"images": "image_data_param.new_height"},
    "new_width": {"images": "image_data_param.new_width"},
    "concat_dim": {"concat": "concat_param.concat_dim"},
    **{f"det_{f}": {"window_data": f"window_data_param.{f}"}
       for f in ("fg_threshold", "bg_threshold", "fg_fraction", "context_pad", "crop_mode")},
    "hdf5_output_param": {"hdf5_output": "hdf5_output_param"},
}
# V0 fields every type carried, now the data transformation's.
_V0_TRANSFORM = {"scale": "scale", "meanfile": "mean_file", "cropsize": "crop_size",
                 "mirror": "mirror"}


def _where(source: str | None) -> str:
    return f" in {source}" if source else ""


def upgrade_net(net: caffe_pb2.NetParameter, source: str | None = None,
                problems: list[str] | None = None) -> caffe_pb2.NetParameter:
    """Upgrade ``net`` in place (and return it); ``source`` names the file in logs and errors.

    V0 settings the upgrade has to drop (a field on a layer type that never read it) are
    logged as errors, as Caffe does, and appended to ``problems`` when it is given.
    """
    if any(v1.HasField("layer") for v1 in net.layers):
        _upgrade_v0_net(net, source, problems)
        log.info("Upgraded V0 layer definitions (layers { layer { ... } }) to V1%s",
                 _where(source))
    if len(net.layers):
        if len(net.layer):
            raise ParseError("net mixes current 'layer' and legacy V1 'layers' definitions; "
                             "rewrite the 'layers' blocks as 'layer' blocks with string types "
                             "(layer { type: \"Convolution\" ... })", source)
        moved = _upgrade_data_transformation(net)
        if moved:
            log.info("Upgraded data transformation fields of %s to transform_param%s",
                     ", ".join(moved), _where(source))
        count = _upgrade_v1_layers(net, source)
        log.info("Upgraded %d V1 'layers' to current 'layer' definitions%s", count,
                 _where(source))
    if len(net.input):  # Caffe's NetNeedsInputUpgrade: input_size() > 0
        inputs = list(net.input)
        _upgrade_input_fields(net, source)
        log.info("Upgraded legacy input fields (%s) to an Input layer%s", ", ".join(inputs),
                 _where(source))
    elif len(net.input_shape) or len(net.input_dim):
        given = "input_shape" if len(net.input_shape) else "input_dim"
        raise ParseError(f"net gives {given} but no `input:` names; add one `input: \"name\"` "
                         f"per input before its {given}, or use an Input layer", source)
    frozen = [layer.name for layer in net.layer if _is_old_batch_norm(layer)]
    for layer in net.layer:
        if _is_old_batch_norm(layer):
            for spec in layer.param:
                spec.lr_mult, spec.decay_mult = 0.0, 0.0
    if frozen:
        log.info("Upgraded BatchNorm layers %s: their 3 statistics blobs get lr_mult and "
                 "decay_mult 0%s", ", ".join(frozen), _where(source))
    return net


def _upgrade_v0_net(net: caffe_pb2.NetParameter, source: str | None,
                    problems: list[str] | None) -> None:
    """V0 ``layers { bottom top layer { type: "conv" ... } }`` → V1 layers in place, padding
    layers folded into the conv or pool layer they feed (Caffe's UpgradeV0Net)."""
    if not all(v0.HasField("layer") for v0 in net.layers):
        raise ParseError("net mixes V0 'layers { layer { ... } }' blocks with V1 'layers' "
                         "blocks; give every layer in one format", source)
    v0_layers = _fold_padding_layers(net, source)
    del net.layers[:]
    for v0 in v0_layers:
        for problem in _upgrade_v0_layer(v0, net.layers.add(), source):
            log.error("%s%s", problem, _where(source))
            if problems is not None:
                problems.append(problem)


def _fold_padding_layers(net: caffe_pb2.NetParameter, source: str | None
                         ) -> list[caffe_pb2.V1LayerParameter]:
    """The V0 layers without their ``padding`` layers, each padding's ``pad`` moved to the
    conv or pool layer reading its output (V0 padded with a separate layer)."""
    producer: dict[str, caffe_pb2.V1LayerParameter | None] = dict.fromkeys(net.input)
    kept = []
    for v0 in net.layers:
        layer = caffe_pb2.V1LayerParameter()
        layer.CopyFrom(v0)
        name = v0.layer.name or v0.layer.type
        for j, blob in enumerate(v0.bottom):
            if blob not in producer:
                raise ParseError(f"V0 layer '{name}' reads blob '{blob}', which no earlier "
                                 "layer or input produces", source)
            pad = producer[blob]
            if pad is None or pad.layer.type != "padding":
                continue
            if v0.layer.type not in ("conv", "pool") or len(v0.bottom) != 1:
                raise ParseError(f"V0 padding layer '{pad.layer.name}' feeds layer '{name}' "
                                 f"({v0.layer.type}); padding can only feed one-input conv "
                                 "or pool layers", source)
            if len(pad.bottom) != 1 or len(pad.top) != 1:
                raise ParseError(f"V0 padding layer '{pad.layer.name}' needs one bottom and "
                                 "one top", source)
            layer.layer.pad = pad.layer.pad
            layer.bottom[j] = pad.bottom[0]
        if v0.layer.type != "padding":
            kept.append(layer)
        for blob in v0.top:
            producer[blob] = v0
    return kept


def _upgrade_v0_layer(v0: caffe_pb2.V1LayerParameter, layer: caffe_pb2.V1LayerParameter,
                      source: str | None) -> list[str]:
    """Fill the V1 ``layer`` from V0's; returns a sentence for each setting it had to drop."""
    old = v0.layer
    layer.bottom.extend(v0.bottom)
    layer.top.extend(v0.top)
    if old.HasField("name"):
        layer.name = old.name
    if old.HasField("type"):
        if old.type not in V0_LAYER_TYPES:
            raise ParseError(f"V0 layer '{old.name}' has unknown type \"{old.type}\"; known: "
                             f"{', '.join(sorted(V0_LAYER_TYPES))}", source)
        layer.type = V0_LAYER_TYPES[old.type]
    layer.blobs.extend(old.blobs)
    layer.blobs_lr.extend(old.blobs_lr)
    layer.weight_decay.extend(old.weight_decay)
    dropped = []
    for field, value in old.ListFields():
        if field.name in _V0_TRANSFORM:
            setattr(layer.transform_param, _V0_TRANSFORM[field.name], value)
        elif field.name in _V0_FIELDS:
            target = _V0_FIELDS[field.name].get(old.type)
            if target is None:
                dropped.append(f"V0 layer '{old.name}': parameter {field.name} does not apply "
                               f"to type \"{old.type}\"; dropped")
            else:
                _set_path(layer, target, value)
    return dropped


def _set_path(message: Message, path: str, value: object) -> None:
    """Set ``sub.field`` (or the whole submessage ``sub``) of ``message`` to ``value``,
    appending to a repeated field."""
    head, _, tail = path.partition(".")
    if not tail:
        getattr(message, head).CopyFrom(value)
        return
    sub = getattr(message, head)
    current = getattr(sub, tail)
    if isinstance(current, Message):
        current.CopyFrom(value)
    elif hasattr(current, "append"):  # a repeated scalar
        current.append(value)
    else:
        setattr(sub, tail, value)


def _is_old_batch_norm(layer: caffe_pb2.LayerParameter) -> bool:
    """BatchNorm once declared a ParamSpec per statistic; Caffe now requires them frozen."""
    return layer.type == "BatchNorm" and len(layer.param) == 3 and any(
        spec.lr_mult != 0 or spec.decay_mult != 0 for spec in layer.param)


def _upgrade_data_transformation(net: caffe_pb2.NetParameter) -> list[str]:
    """Move scale/mean_file/crop_size/mirror of V1 data layers into transform_param."""
    moved = []
    for v1 in net.layers:
        holder_name = _TRANSFORM_HOLDERS.get(v1.type)
        if holder_name is None or not v1.HasField(holder_name):
            continue
        holder = getattr(v1, holder_name)
        fields = [f for f in _TRANSFORM_FIELDS if holder.HasField(f)]
        for field in fields:
            setattr(v1.transform_param, field, getattr(holder, field))
            holder.ClearField(field)
        if fields:
            moved.append(v1.name or V1_LAYER_TYPES[v1.type])
    return moved


def _upgrade_v1_layers(net: caffe_pb2.NetParameter, source: str | None) -> int:
    """Replace every V1LayerParameter with the equivalent LayerParameter, in order."""
    for v1 in net.layers:
        _upgrade_v1_layer(v1, net.layer.add(), source)
    count = len(net.layers)
    net.ClearField("layers")
    return count


def _upgrade_v1_layer(v1: caffe_pb2.V1LayerParameter, layer: caffe_pb2.LayerParameter,
                      source: str | None) -> None:
    layer.bottom.extend(v1.bottom)
    layer.top.extend(v1.top)
    if v1.HasField("name"):
        layer.name = v1.name
    layer.include.extend(v1.include)
    layer.exclude.extend(v1.exclude)
    if v1.HasField("type"):
        if v1.type not in V1_LAYER_TYPES:
            raise ParseError(f"V1 layer '{v1.name}' has unknown type number {v1.type}", source)
        layer.type = V1_LAYER_TYPES[v1.type]
    layer.blobs.extend(v1.blobs)
    # V1 spread each blob's settings over parallel lists; ParamSpec gathers them per blob.
    per_blob = (("name", v1.param), ("share_mode", v1.blob_share_mode),
                ("lr_mult", v1.blobs_lr), ("decay_mult", v1.weight_decay))
    for field, values in per_blob:
        for i, value in enumerate(values):
            while len(layer.param) <= i:
                layer.param.add()
            setattr(layer.param[i], field, value)
    layer.loss_weight.extend(v1.loss_weight)
    for name in _V1_SUBMESSAGES:
        if v1.HasField(name):
            getattr(layer, name).CopyFrom(getattr(v1, name))


def _upgrade_input_fields(net: caffe_pb2.NetParameter, source: str | None) -> None:
    """``input``/``input_shape``/``input_dim`` → an ``Input`` layer placed first.

    Caffe keeps a bare ``input`` list (no shapes) only in old .caffemodels; it is dropped.
    """
    n_in, n_shape, n_dim = len(net.input), len(net.input_shape), len(net.input_dim)
    if n_shape and n_dim:
        raise ParseError("net gives both input_shape and input_dim; keep only input_shape",
                         source)
    if n_shape and n_shape != n_in:
        raise ParseError(f"net has {n_in} input(s) but {n_shape} input_shape(s); give one "
                         "input_shape per input", source)
    if n_dim and n_dim != 4 * n_in:
        raise ParseError(f"net has {n_in} input(s) but {n_dim} input_dim values; give 4 "
                         "input_dim values (N, C, H, W) per input", source)
    if n_shape or n_dim:
        rest = caffe_pb2.NetParameter()
        rest.layer.extend(net.layer)
        del net.layer[:]
        layer = net.layer.add(name="input", type="Input")
        layer.top.extend(net.input)
        for i in range(n_in):
            shape = layer.input_param.shape.add()
            if n_shape:
                shape.CopyFrom(net.input_shape[i])
            else:
                shape.dim.extend(net.input_dim[4 * i:4 * i + 4])
        net.layer.extend(rest.layer)
    for field in ("input", "input_shape", "input_dim"):
        net.ClearField(field)


def _solver_type_name(number: int) -> str:
    try:
        return caffe_pb2.SolverParameter.SolverType.Name(number)
    except ValueError:
        return str(number)


def upgrade_solver(solver: caffe_pb2.SolverParameter, source: str | None = None
                   ) -> caffe_pb2.SolverParameter:
    """Upgrade ``solver`` in place (and return it): ``solver_type`` → ``type``, inline nets."""
    if solver.HasField("solver_type"):
        old = SOLVER_TYPES.get(solver.solver_type)
        if solver.HasField("type"):
            # Caffe's UpgradeSolverType aborts here; brewnet lets the newer field win (the
            # behaviour the solver issue asks for) and says so when they disagree.
            if old != solver.type:
                log.warning("%s sets both solver_type: %s and type: \"%s\"; using type (delete "
                            "solver_type to silence this)", source or "solver",
                            _solver_type_name(solver.solver_type), solver.type)
        elif old is None:
            raise ParseError(f"unknown solver_type number {solver.solver_type}", source)
        else:
            solver.type = old
            log.info("Upgraded solver_type enum to type: \"%s\"%s", old, _where(source))
        solver.ClearField("solver_type")
    for field in ("net_param", "train_net_param"):
        if solver.HasField(field):
            upgrade_net(getattr(solver, field), f"{source or 'solver'} ({field})")
    for i, net in enumerate(solver.test_net_param):
        upgrade_net(net, f"{source or 'solver'} (test_net_param #{i})")
    return solver
