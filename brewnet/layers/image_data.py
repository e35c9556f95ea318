"""ImageData: batches of image files named in a text list, with their labels (Caffe's
ImageDataLayer).

``image_data_param.source`` lists one image per line as ``path label`` (the label after the
last space, so paths may hold spaces); ``root_folder`` is prefixed to each path. Images are
decoded with Pillow (an optional dependency) in Caffe's BGR order, resized to
``new_height``×``new_width`` when both are set, then transformed like the Data layer, by
the same machinery (``brewnet.data.feed``): batches prefetched (``data_param.prefetch``, as
Caffe's ImageDataLayer reads it), their images decoded by ``BREWNET_DATA_WORKERS`` threads.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable, Sequence
from functools import partial

import numpy as np

from .. import rng
from ..blob import Blob
from ..data.feed import BatchFeed
from ..data.image import import_pillow, read_image
from ..data.transform import DataTransformer
from ..errors import DataError, NetError
from ..log import log
from ..proto import caffe_pb2
from .base import Layer
from .registry import register


class ImageListFeed(BatchFeed):
    """Batches of the images of a list: batch k holds the lines at absolute positions
    ``start + k*batch_size ...``, counted over passes that are each freshly shuffled when
    ``shuffle_seed`` is given. Holds no reference to its layer, so the layer can be
    collected (and its feed closed) while prefetching."""

    shapes_in_order = True

    def __init__(self, paths: list[str], labels: np.ndarray, root_folder: str, is_color: bool,
                 new_size: tuple[int, int], shuffle_seed: int | None, start: int,
                 error: Callable[[str], NetError], owner: str,
                 transformer: DataTransformer, batch_size: int, prefetch: int, seed: int,
                 name: str):
        super().__init__(transformer, batch_size, owner, prefetch=prefetch, seed=seed,
                         name=name)
        self.paths, self.labels = paths, labels
        self.root_folder, self.is_color, self.new_size = root_folder, is_color, new_size
        self.shuffle_seed, self.start = shuffle_seed, start
        self._error, self._owner = error, owner
        self._orders: dict[int, np.ndarray] = {}
        self._start(lazy=True)

    def line(self, position: int) -> int:
        """The list line read at absolute ``position`` (counted over all passes)."""
        n = len(self.paths)
        epoch, offset = divmod(position, n)
        if self.shuffle_seed is None:
            return offset
        order = self._orders.get(epoch)
        if order is None:
            order = np.random.default_rng((self.shuffle_seed, epoch)).permutation(n)
            self._orders = {epoch: order}  # keep only the pass being read
        return int(order[offset])

    def image(self, line: int) -> np.ndarray:
        """The (C, H, W) pixels of list line ``line``; errors name the layer."""
        path = self.root_folder + self.paths[line]
        try:
            return read_image(path, self.is_color, *self.new_size, what=self._owner)
        except DataError as e:
            raise self._error(str(e).removeprefix(self._owner + ": ")) from None

    def _reposition(self) -> None:
        """Lines are computed from the batch number: nothing to move."""

    def _items(self, index: int) -> Sequence[int]:
        first = self.start + index * self.batch_size
        return [self.line(first + i) for i in range(self.batch_size)]

    def _decode(self, item: int) -> tuple[np.ndarray, float]:
        return self.image(item), float(self.labels[item])

    def _mismatch(self, item: int, shape: tuple[int, ...],
                  first: tuple[int, ...]) -> Exception:
        return self._error(f"image '{self.root_folder + self.paths[item]}' is "
                           f"{shape[1]}×{shape[2]}×{shape[0]} (H×W×C) but its batch started "
                           f"with {first[1]}×{first[2]}×{first[0]}; set new_height/new_width "
                           "or use images of one size")

    def _stream(self, index: int) -> tuple[int, ...]:
        return (self.seed, index)

    def _close_source(self) -> None:
        """The list is in memory and each image file is closed once read."""


@register
class ImageData(Layer):
    """Tops: data (N, C, H', W') float32 and optionally label (N,).

    Lines are read in file order, or with ``shuffle`` in a fresh random order for every pass
    over the list, wrapping around at the end; ``rand_skip`` starts at a random line of the
    first pass. A batch's lines and random transforms depend only on its number (the shuffle
    orders and the transform generators are seeded once at setup from brewnet.rng), so
    ``seek_batch`` resumes exactly. Images of one batch must share one size after resizing.
    """

    type = "ImageData"
    exact_num_bottom = 0
    min_top = 1
    max_top = 2
    is_data_source = True
    param_fields = ("image_data_param", "transform_param", "data_param")

    def __init__(self, param: caffe_pb2.LayerParameter, phase: int = caffe_pb2.TEST):
        super().__init__(param, phase)
        self._feed: ImageListFeed | None = None
        self._finalizer: weakref.finalize | None = None

    def setup(self, bottom: list[Blob], top: list[Blob]) -> None:
        p = self.param.image_data_param
        if p.batch_size == 0:
            raise self.error("image_data_param.batch_size must be positive; set batch_size",
                             field="image_data_param.batch_size")
        if (p.new_height > 0) != (p.new_width > 0):
            raise self.error("image_data_param needs new_height and new_width set together "
                             f"(got {p.new_height}×{p.new_width})", field="image_data_param")
        owner = f"layer '{self.name}' (ImageData)"
        try:
            import_pillow(owner)
        except DataError as e:
            raise self.error(str(e).removeprefix(owner + " ")) from None
        self.close()  # a second setup replaces the first feed
        batch_size = int(p.batch_size)
        paths, labels = self._read_list(p.source)
        log.info(f"A total of {len(paths)} images.")
        gen = rng.generator()
        shuffle_seed = int(gen.integers(2**63)) if p.shuffle else None
        if p.shuffle:
            log.info("Shuffling data")
        self.start = 0  # the list position batch 0 starts at
        if p.rand_skip:
            self.start = int(gen.integers(p.rand_skip))
            log.info(f"Skipping first {self.start} data points.")
            if self.start >= len(paths):
                raise self.error(f"rand_skip drew {self.start} but the list has only "
                                 f"{len(paths)} images; lower rand_skip")
        transformer = DataTransformer(self.param.transform_param, self.phase, owner)
        seed = int(gen.integers(2**63)) if transformer.random else 0
        feed = ImageListFeed(paths, labels, p.root_folder, bool(p.is_color),
                             (int(p.new_height), int(p.new_width)), shuffle_seed, self.start,
                             partial(NetError, layer=self.name, layer_type=self.type), owner,
                             transformer, batch_size, self.param.data_param.prefetch, seed,
                             f"brewnet-data-{self.name}")
        self._feed = feed
        self._finalizer = weakref.finalize(self, feed.close)
        try:
            shape = feed.image(feed.line(self.start)).shape
            channels, height, width = transformer.output_shape(shape)
        except BaseException:
            self.close()
            raise
        top[0].reshape(batch_size, channels, height, width)
        if len(top) > 1:
            top[1].reshape(batch_size)
        log.info(f"output data size: {batch_size},{channels},{height},{width}")

    def _read_list(self, source: str) -> tuple[list[str], np.ndarray]:
        if not source:
            raise self.error("image_data_param.source is empty; name a text file of "
                             "'path label' lines", field="image_data_param.source")
        try:
            with open(source, encoding="utf-8") as f:
                lines = [line.strip() for line in f]
        except OSError as e:
            raise self.error(f"cannot open the image list '{source}' ({e.strerror or e}); "
                             f"relative paths resolve from {os.getcwd()}") from None
        paths, labels = [], []
        for number, line in enumerate(lines, 1):
            if not line:
                continue
            path, _, label = line.rpartition(" ")
            try:
                labels.append(int(label))
            except ValueError:
                raise self.error(f"image list '{source}' line {number} is not 'path label': "
                                 f"{line!r}") from None
            if not path.strip():
                raise self.error(f"image list '{source}' line {number} names no image: "
                                 f"{line!r}")
            paths.append(path.strip())
        if not paths:
            raise self.error(f"the image list '{source}' names no images; add 'path label' "
                             "lines")
        return paths, np.asarray(labels, dtype=np.float32)

    def reshape(self, bottom: list[Blob], top: list[Blob]) -> None:
        """Tops were shaped in setup; forward reshapes them if a batch's image size differs."""

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        if self._feed is None:
            raise self.error("the layer is closed or was never set up")
        self._feed.hand_out(self._feed.get(), top)

    def seek_batch(self, index: int) -> None:
        """Make the next forward deliver batch ``index`` counted from the start (absolute,
        so restoring any snapshot continues its data exactly)."""
        if self._feed is None:
            raise self.error("the layer is closed or was never set up")
        self._feed.seek(int(index))

    def close(self) -> None:
        if self._finalizer is not None:
            self._finalizer()  # runs the feed's close once
            self._finalizer = None
        self._feed = None
