"""The layer contract every layer type follows (Caffe's ``Layer``): one class per type with
setup, reshape, forward and backward, registered by its type name.

Conventions shared by all layers:
- ``bottom`` and ``top`` are lists of :class:`~brewnet.blob.Blob`; in-place layers get the
  same Blob object in both lists.
- ``forward`` writes ``top[i].data``; ``backward`` writes ``bottom[i].diff`` (overwriting it)
  for each ``propagate_down[i]`` that is true, and *adds* parameter gradients to
  ``self.blobs[j].diff`` (so gradients accumulate over ``iter_size`` and shared parameters).
- A loss layer reads its loss weight from ``top[0].diff`` (the net fills it), as Caffe does.
- Array code uses ``xp = bottom[0].xp`` (NumPy or CuPy), never cupy directly.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ..blob import Blob, arrays_epoch
from ..errors import NetError, ShapeError
from ..proto import caffe_pb2
from .fillers import fill


class Layer:
    """Base class: subclasses set ``type`` and override ``setup``/``reshape``/``forward``/
    ``backward``; class attributes state the blob-count contract the compiler checks."""

    type: ClassVar[str] = ""
    # Blob counts, as Caffe's ExactNumBottomBlobs() etc.; None means unchecked.
    exact_num_bottom: ClassVar[int | None] = None
    min_bottom: ClassVar[int | None] = None
    max_bottom: ClassVar[int | None] = None
    exact_num_top: ClassVar[int | None] = None
    min_top: ClassVar[int | None] = None
    max_top: ClassVar[int | None] = None
    # Loss layers: a top is created even when the prototxt names none (Caffe's AutoTopBlobs),
    # and top 0 gets loss_weight 1 unless the prototxt says otherwise.
    is_loss: ClassVar[bool] = False
    # Whether top[i] may be the same blob as bottom[i].
    can_run_in_place: ClassVar[bool] = False
    # The LayerParameter ``*_param`` messages this type reads, its own first (lint flags the
    # others, NetSpec routes keywords into the first). A class that sets its own ``type`` but
    # not this reads the message named after the type, matched as pycaffe's param_name_dict
    # matches them (Pooling → pooling_param), or none.
    param_fields: ClassVar[tuple[str, ...]] = ()
    # A metric (Accuracy) exists to report, so a top nobody reads is its purpose, not waste.
    is_metric: ClassVar[bool] = False
    # Every top position is the same position of the bottoms (element-wise and per-position
    # layers), so coord_map passes through the layer unchanged.
    keeps_coordinates: ClassVar[bool] = False
    # Reads its tops from outside the net (a database, files, arrays the user hands over), so
    # a deploy net (net/deploy.py) takes those tops as Input blobs instead.
    is_data_source: ClassVar[bool] = False
    # A loss whose prediction a deploy net still delivers: the type put in its place, on the
    # loss's first bottom (SoftmaxWithLoss → Softmax, the `prob` of Caffe's deploy files).
    deploy_as: ClassVar[str | None] = None
    # ``reshape`` reads nothing but the blobs it is given (their arrays, shapes) and what
    # ``setup`` left, so the net skips it while those arrays are the ones it last saw
    # (``reshape_as_needed``): 10-20 us a layer, about 4% of a forward of MobileNet v2 or
    # SqueezeNet at batch 1.
    reshape_reads_blobs_only: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "type" in vars(cls) and "param_fields" not in vars(cls):
            cls.param_fields = tuple(
                f.name for f in caffe_pb2.LayerParameter.DESCRIPTOR.fields
                if f.name.endswith("_param") and f.message_type is not None
                and f.message_type.name == f"{cls.type}Parameter")

    def __init__(self, param: caffe_pb2.LayerParameter, phase: int = caffe_pb2.TEST):
        self.param = param
        self.phase = phase
        self.blobs: list[Blob] = []
        # True for each learnable blob whose gradient the net wants (lr_mult != 0).
        self.param_propagate_down: list[bool] = []
        # One weight per top, set by set_up: its share of the net's loss (0: none).
        self.loss_weights: list[float] = []
        # The blobs' arrays_key at the last check, the lists checked, and blob.arrays_epoch()
        # then (reshape_as_needed).
        self._reshaped_for: tuple | None = None
        self._reshaped_lists: tuple | None = None
        self._reshaped_epoch = -1

    @property
    def name(self) -> str:
        return self.param.name

    # -- the contract as the net calls it (Caffe's Layer::SetUp and Layer::Forward) ------
    def set_up(self, bottom: list[Blob], top: list[Blob]) -> None:
        """Check the blob counts, set up from the parameter message, shape the tops and set
        the loss weights: everything a layer needs before its first forward."""
        self.check_blob_counts(len(bottom), len(top))
        self.setup(bottom, top)
        self.reshape(bottom, top)
        self.set_loss_weights(top)

    def reshape_as_needed(self, bottom: list[Blob], top: list[Blob]) -> None:
        """``reshape``, as Caffe runs it before every forward, unless the class reads only
        its blobs there (``reshape_reads_blobs_only``) and they hold the arrays of the last
        call."""
        if not self.reshape_reads_blobs_only:
            self.reshape(bottom, top)
            return
        if (arrays_epoch() == self._reshaped_epoch and self._reshaped_lists is not None
                and self._reshaped_lists[0] is bottom and self._reshaped_lists[1] is top):
            return  # no blob anywhere got new arrays since the last check of these lists
        key = _arrays_key(bottom, top)
        if key != self._reshaped_for:
            self.reshape(bottom, top)
            key = _arrays_key(bottom, top)  # reshape may reallocate the tops
        self._reshaped_for, self._reshaped_lists = key, (bottom, top)
        self._reshaped_epoch = arrays_epoch()

    def run_forward(self, bottom: list[Blob], top: list[Blob]) -> np.float32:
        """Reshape (as needed), forward, and return this layer's weighted loss, Σ
        weight·sum(top), in float32 like Caffe's Dtype (so printed losses agree)."""
        self.reshape_as_needed(bottom, top)
        self.forward(bottom, top)
        loss = np.float32(0)
        for t, w in zip(top, self.loss_weights, strict=True):
            if w:
                t.diff[...] = w  # a reshape may have reallocated (zeroed) the diff
                loss += np.float32(w) * np.float32(t.data.sum())
        return loss

    def check_blob_counts(self, num_bottom: int, num_top: int) -> None:
        """Caffe's CheckBlobCounts: the class attributes' limits, as a NetError naming them."""
        lp = self.param
        for what, n, exact, lo, hi in (
                ("bottom", num_bottom, self.exact_num_bottom, self.min_bottom, self.max_bottom),
                ("top", num_top, self.exact_num_top, self.min_top, self.max_top)):
            for bad, rule in ((exact is not None and n != exact, f"exactly {exact}"),
                              (lo is not None and n < lo, f"at least {lo}"),
                              (hi is not None and n > hi, f"at most {hi}")):
                if not bad:
                    continue
                hint = ""
                if self.is_loss and what == "bottom" and n < 2:
                    hint = ("; a loss layer takes the predictions and the labels, e.g. "
                            'bottom: "ip2" bottom: "label"')
                raise NetError(f"{lp.type} takes {rule} {what} blob(s), got {n}{hint}",
                               layer=lp.name, layer_type=lp.type)

    def set_loss_weights(self, top: list[Blob]) -> None:
        """The prototxt's ``loss_weight`` values, else Caffe's LossLayer default of a single
        1 (so a loss layer with two tops must spell out both); each weighted top's diff holds
        its weight, which a loss layer's backward reads."""
        lp = self.param
        weights = list(lp.loss_weight) or ([1.0] if self.is_loss else [0.0] * len(top))
        if len(weights) != len(top):
            hint = (" (a loss layer's default is one weight for its first top; write e.g. "
                    "loss_weight: 1 loss_weight: 0)" if not len(lp.loss_weight) else "")
            raise NetError(f"has {len(weights)} loss_weight values for {len(top)} tops; give "
                           f"one per top or none{hint}", layer=lp.name, layer_type=lp.type,
                           field="loss_weight")
        for blob, w in zip(top, weights, strict=True):
            if w:
                blob.diff[...] = w
        self.loss_weights = weights

    # -- what each type implements --------------------------------------------------------
    def setup(self, bottom: list[Blob], top: list[Blob]) -> None:
        """Read the parameter message and create ``self.blobs`` (if none were given)."""

    def reshape(self, bottom: list[Blob], top: list[Blob]) -> None:
        """Shape the tops (and any scratch buffers) from the bottoms' shapes."""
        raise NotImplementedError(f"{type(self).__name__}.reshape")

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        raise NotImplementedError(f"{type(self).__name__}.forward")

    def backward(self, top: list[Blob], propagate_down: list[bool],
                 bottom: list[Blob]) -> None:
        """Default for layers without gradients (data, accuracy): refuse only if asked."""
        if any(propagate_down):
            raise self.error("this layer type has no backward pass; set propagate_down: false "
                             "on its bottoms or remove the loss that depends on it",
                             field="propagate_down")

    def allow_force_backward(self, bottom_index: int) -> bool:
        """Whether ``force_backward`` may ask for this bottom's gradient: not a loss's label,
        and nothing from a layer type that has no backward pass (Accuracy, ArgMax...)."""
        if type(self).backward is Layer.backward:
            return False
        return not (self.is_loss and bottom_index == 1)

    def kept_top(self) -> Any:
        """An array this layer kept for its own backward whose values are exactly those its
        last forward left in top 0, or None. Handed out once per forward (and dropped by a
        pycaffe forward started after this layer): only the in-place layer that writes top 0
        next may read it instead of copying its input (Scale after BatchNorm), and must not
        write it."""
        return None

    def passed_over(self, bottom: list[Blob], top: list[Blob]) -> None:
        """A pycaffe forward starts after this layer, which does not run: drop what its last
        forward left that the blobs may no longer hold (the kept top: the caller may have
        written the blob since). Split overrides it to share the bottom's current array."""
        self.kept_top()

    def follows(self, producer: Layer) -> None:
        """The compiler names ``producer``, the layer that last wrote bottom 0 before this
        in-place layer overwrites it; a layer that keeps a copy of its input may ask
        ``producer.kept_top()`` for it instead."""

    def seek_batch(self, index: int) -> None:
        """Data layers: make the next forward deliver batch ``index`` counted from the start
        of the source (used when resuming, so the data order continues exactly)."""

    def close(self) -> None:
        """Release threads and files; data layers override it."""

    # -- helpers --------------------------------------------------------------------------
    def fill_blob(self, filler: caffe_pb2.FillerParameter, shape: tuple[int, ...], what: str,
                  xp: Any) -> Blob:
        """A new parameter blob of ``shape`` filled by ``filler``; a bad filler is an error
        naming this layer and the field (``what``, e.g. ``"weight_filler"``)."""
        blob = Blob(shape, xp=xp)
        if not blob.allocated:  # the net is being refused for its memory: draw nothing
            return blob
        try:
            blob.data[...] = fill(filler, tuple(shape), xp)
        except NetError as e:
            raise self.error(f"{what}: {e.message}") from None
        return blob

    def init_params(self, specs: list[tuple[tuple[int, ...], caffe_pb2.FillerParameter, str]],
                    xp: Any) -> None:
        """Parameter blobs from ``specs`` (shape, filler, field name): the ones the net already
        gave (loaded weights, or blobs in the definition) are checked against the shapes, as
        Caffe skips initialization then; otherwise each is created with its filler."""
        if self.blobs:
            if len(self.blobs) != len(specs):
                raise self.shape_error(
                    f"has {len(self.blobs)} parameter blobs but needs {len(specs)} (for "
                    f"{', '.join(what for _, _, what in specs)})")
            for j, (shape, _, _) in enumerate(specs):
                learnable_shape_check(self, j, shape)
            return
        for shape, filler, what in specs:
            self.blobs.append(self.fill_blob(filler, shape, what, xp))

    def error(self, message: str, blob: str | None = None, field: str | None = None
              ) -> NetError:
        """A NetError naming this layer, and the blob and field (dotted path) at fault."""
        return NetError(message, layer=self.name, layer_type=self.type, blob=blob, field=field)

    def shape_error(self, message: str, field: str | None = None) -> ShapeError:
        """A ShapeError naming this layer and the field (dotted path) at fault."""
        return ShapeError(message, layer=self.name, layer_type=self.type, field=field)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} '{self.name}'>"


def learnable_shape_check(layer: Layer, index: int, expected: tuple[int, ...]) -> None:
    """Raise a ShapeError when parameter blob ``index`` (e.g. loaded weights) has another shape."""
    actual = tuple(layer.blobs[index].data.shape)
    if actual != tuple(expected):
        raise layer.shape_error(f"parameter blob {index} has shape {actual} but this layer "
                                f"needs {tuple(expected)}")


def _arrays_key(bottom: list[Blob], top: list[Blob]) -> tuple:
    """The arrays (and shapes) of a layer's blobs, bottoms then tops."""
    return tuple(b.arrays_key() for b in bottom) + tuple(t.arrays_key() for t in top)
