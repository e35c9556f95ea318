"""ImageData: batches of image files named in a text list, with their labels (Caffe's
ImageDataLayer).

``image_data_param.source`` lists one image per line as ``path label`` (the label after the
last space, so paths may hold spaces); ``root_folder`` is prefixed to each path. Images are
decoded with Pillow (an optional dependency) in Caffe's BGR order, resized to
``new_height``×``new_width`` when both are set, then transformed like the Data layer.
"""

from __future__ import annotations

import os

import numpy as np

from .. import rng
from ..blob import Blob
from ..data.image import import_pillow, read_image
from ..data.transform import DataTransformer
from ..errors import DataError
from ..log import log
from .base import Layer
from .registry import register


@register
class ImageData(Layer):
    """Tops: data (N, C, H', W') float32 and optionally label (N,).

    Reading is synchronous (no prefetch thread): each forward decodes its batch. Lines are read
    in file order, or with ``shuffle`` in a fresh random order for every pass over the list,
    wrapping around at the end; ``rand_skip`` starts at a random line of the first pass. A
    batch's lines and random transforms depend only on its number (the shuffle orders and the
    transform generators are seeded once at setup from brewnet.rng), so ``seek_batch``
    resumes exactly. Images of one batch must share one size after resizing.
    """

    type = "ImageData"
    exact_num_bottom = 0
    min_top = 1
    max_top = 2
    is_data_source = True
    param_fields = ("image_data_param", "transform_param")

    def setup(self, bottom: list[Blob], top: list[Blob]) -> None:
        p = self.param.image_data_param
        if p.batch_size == 0:
            raise self.error("image_data_param.batch_size must be positive; set batch_size",
                             field="image_data_param.batch_size")
        if (p.new_height > 0) != (p.new_width > 0):
            raise self.error("image_data_param needs new_height and new_width set together "
                             f"(got {p.new_height}×{p.new_width})", field="image_data_param")
        self._owner = f"layer '{self.name}' (ImageData)"
        try:
            import_pillow(self._owner)
        except DataError as e:
            raise self.error(str(e).removeprefix(self._owner + " ")) from None
        self.batch_size = int(p.batch_size)
        self.root_folder = p.root_folder
        self.new_size = (int(p.new_height), int(p.new_width))
        self.is_color = bool(p.is_color)
        self.shuffle = bool(p.shuffle)
        self.paths, self.labels = self._read_list(p.source)
        log.info(f"A total of {len(self.paths)} images.")
        gen = rng.generator()
        self._shuffle_seed = int(gen.integers(2**63)) if self.shuffle else 0
        if self.shuffle:
            log.info("Shuffling data")
        self.start = 0
        if p.rand_skip:
            self.start = int(gen.integers(p.rand_skip))
            log.info(f"Skipping first {self.start} data points.")
            if self.start >= len(self.paths):
                raise self.error(f"rand_skip drew {self.start} but the list has only "
                                 f"{len(self.paths)} images; lower rand_skip")
        self.transformer = DataTransformer(self.param.transform_param, self.phase, self._owner)
        self._transform_seed = int(gen.integers(2**63)) if self.transformer.random else 0
        self._orders: dict[int, np.ndarray] = {}
        self._next_batch = 0
        first = self._line(self.start)
        shape = self._read(first).shape
        channels, height, width = self.transformer.output_shape(shape)
        top[0].reshape(self.batch_size, channels, height, width)
        if len(top) > 1:
            top[1].reshape(self.batch_size)
        log.info(f"output data size: {self.batch_size},{channels},{height},{width}")

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

    def _line(self, position: int) -> int:
        """The list line read at absolute ``position`` (counted over all passes)."""
        n = len(self.paths)
        epoch, offset = divmod(position, n)
        if not self.shuffle:
            return offset
        order = self._orders.get(epoch)
        if order is None:
            order = np.random.default_rng((self._shuffle_seed, epoch)).permutation(n)
            self._orders = {epoch: order}  # keep only the pass being read
        return int(order[offset])

    def _read(self, line: int) -> np.ndarray:
        path = self.root_folder + self.paths[line]
        try:
            return read_image(path, self.is_color, *self.new_size, what=self._owner)
        except DataError as e:
            raise self.error(str(e).removeprefix(self._owner + ": ")) from None

    def reshape(self, bottom: list[Blob], top: list[Blob]) -> None:
        """Tops were shaped in setup; forward reshapes them if a batch's image size differs."""

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        index = self._next_batch
        first = self.start + index * self.batch_size
        lines = [self._line(first + i) for i in range(self.batch_size)]
        images = [self._read(lines[0])]
        for line in lines[1:]:
            image = self._read(line)
            if image.shape != images[0].shape:
                raise self.error(f"image '{self.root_folder + self.paths[line]}' is "
                                 f"{image.shape[1]}×{image.shape[2]}×{image.shape[0]} "
                                 "(H×W×C) but its batch started with "
                                 f"{images[0].shape[1]}×{images[0].shape[2]}×"
                                 f"{images[0].shape[0]}; set new_height/new_width or use "
                                 "images of one size")
            images.append(image)
        data = np.stack(images)
        out_shape = (self.batch_size, *self.transformer.output_shape(data.shape[1:]))
        out = np.empty(out_shape, dtype=np.float32)
        gen = (np.random.default_rng((self._transform_seed, index))
               if self.transformer.random else None)
        self.transformer(data, out, gen)
        top[0].reshape(out_shape)
        top[0].data[...] = top[0].xp.asarray(out)
        if len(top) > 1:
            top[1].data[...] = top[1].xp.asarray(self.labels[lines])
        self._next_batch = index + 1

    def seek_batch(self, index: int) -> None:
        """Make the next forward deliver batch ``index`` counted from the start (absolute,
        so restoring any snapshot continues its data exactly)."""
        self._next_batch = int(index)
