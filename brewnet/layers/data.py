"""Data: batches of Datum records from an LMDB or LevelDB, transformed and prefetched.

Caffe's DataLayer; ``data_param.backend`` picks the database (LEVELDB when unset, as Caffe).

Tops: data (N, C, H', W') and optionally label (N,). Records are read in key order, wrapping
around at the end, in both phases. With several solvers (``solver_count``), a TRAIN-phase
layer reads every solver_count-th record, starting from its rank's (Caffe's
DataLayer::Skip). The reading happens in a daemon thread, the decoding and transforming on
``BREWNET_DATA_WORKERS`` threads (``brewnet.data.workers``), from the first forward (setup
reads only the record that gives the shapes); ``close`` (which ``Net.close`` calls) stops
them, and so does garbage collection of the layer.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

from .. import backend, rng
from ..blob import Blob
from ..data.datum import datum_shape, parse_datum
from ..data.feed import DatumFeed
from ..data.leveldb_source import LevelDBSource
from ..data.lmdb_source import LMDBSource
from ..data.transform import DataTransformer
from ..errors import DataError
from ..log import log
from ..proto import caffe_pb2
from .base import Layer
from .registry import register

# Fields of DataParameter that Caffe deprecated in favour of transform_param.
_LEGACY_TRANSFORM_FIELDS = ("scale", "mean_file", "crop_size", "mirror")


def open_source(p: caffe_pb2.DataParameter) -> LMDBSource | LevelDBSource:
    """The reader of ``data_param.source`` for its backend (Caffe's default is LEVELDB)."""
    leveldb = p.backend == caffe_pb2.DataParameter.LEVELDB
    return (LevelDBSource if leveldb else LMDBSource)(p.source)


def transformed_shape(source: LMDBSource | LevelDBSource,
                      transform_param: caffe_pb2.TransformationParameter, phase: int
                      ) -> tuple[DataTransformer, tuple[int, int, int]]:
    """The transformer for ``transform_param`` and the (C, H, W) it makes of the source's
    current record: a Data layer's top shape, from one record."""
    key, raw = source.peek()
    shape = datum_shape(parse_datum(raw, source.where, key))
    transformer = DataTransformer(transform_param, phase)
    return transformer, transformer.output_shape(shape)


@register
class DataLayer(Layer):
    """Caffe's Data layer over an LMDB or a LevelDB (Caffe's default backend)."""

    type = "Data"
    exact_num_bottom = 0
    min_top = 1
    max_top = 2
    param_fields = ("data_param", "transform_param")
    is_data_source = True

    def __init__(self, param: caffe_pb2.LayerParameter, phase: int = caffe_pb2.TEST):
        super().__init__(param, phase)
        self._feed: DatumFeed | None = None
        self._finalizer: weakref.finalize | None = None

    def _warn_legacy_fields(self) -> None:
        """Caffe moves data_param's deprecated transform fields only for V1 ``layers`` (the
        proto upgrade does that); in a current ``layer`` they are ignored, so say so."""
        legacy = self.param.data_param
        ignored = [f for f in _LEGACY_TRANSFORM_FIELDS if legacy.HasField(f)]
        if ignored:
            log.warning(f"layer '{self.name}' (Data): deprecated data_param field(s) "
                        f"{', '.join(ignored)} ignored (Caffe moves them only in V1 'layers' "
                        "nets); set them in transform_param instead")

    def setup(self, bottom: list[Blob], top: list[Blob]) -> None:
        p = self.param.data_param
        if p.batch_size == 0:
            raise self.error("data_param.batch_size must be positive; set batch_size",
                             field="data_param.batch_size")
        if not p.source:
            raise self.error("data_param.source is empty; name the database folder to read",
                             field="data_param.source")
        leveldb = p.backend == caffe_pb2.DataParameter.LEVELDB
        if leveldb and os.path.isfile(os.path.join(p.source, "data.mdb")):
            how = ("data_param sets no backend and Caffe's default is LEVELDB"
                   if not p.HasField("backend") else "data_param sets backend: LEVELDB")
            raise self.error(f"source '{p.source}' is an LMDB folder but {how}; add "
                             "`backend: LMDB` to data_param", field="data_param.backend")
        self.close()  # a second setup replaces the first feed
        self._warn_legacy_fields()
        with self._located():
            source = open_source(p)
        try:
            with self._located():
                transformer, (channels, height, width) = transformed_shape(
                    source, self.param.transform_param, self.phase)
            start = 0
            if p.rand_skip:
                start = int(rng.generator().integers(p.rand_skip))
                log.info(f"Skipping first {start} data points.")
            # The feed draws from its own generators (seeded here), never from the global one
            # the main thread uses, so a fixed seed gives the same batches however threads run.
            # Like Caffe's DataTransformer::InitRand, only a random transform takes a seed.
            seed = int(rng.generator().integers(2**63)) if transformer.random else 0
        except BaseException:
            source.close()
            raise
        batch_size = int(p.batch_size)
        top[0].reshape(batch_size, channels, height, width)
        if len(top) > 1:
            top[1].reshape(batch_size)
        log.info(f"output data size: {batch_size},{channels},{height},{width}")
        shard = (backend.solver_rank(), backend.solver_count()) \
            if self.phase == caffe_pb2.TRAIN else (0, 1)
        self._feed = DatumFeed(source, transformer, batch_size, prefetch=p.prefetch, seed=seed,
                               start_record=start, name=f"brewnet-data-{self.name}",
                               shard=shard)
        self._finalizer = weakref.finalize(self, self._feed.close)

    def reshape(self, bottom: list[Blob], top: list[Blob]) -> None:
        """Tops were shaped in setup; forward reshapes them if a batch's image size differs."""

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        if self._feed is None:
            raise self.error("the layer is closed or was never set up")
        with self._located():
            batch = self._feed.get()
        self._feed.hand_out(batch, top)

    @contextmanager
    def _located(self) -> Iterator[None]:
        """Data errors (a bad record, an empty or unreadable database) carry this layer as
        ``layer``/``layer_type``; the message names the database and the record key."""
        try:
            yield
        except DataError as e:
            if e.layer is not None:
                raise
            raise DataError(e.message, file=e.file, line=e.line, col=e.col, layer=self.name,
                            layer_type=self.type) from None

    def seek_batch(self, index: int) -> None:
        """Make the next forward deliver batch ``index`` counted from the start of the source
        (absolute, so restoring any snapshot continues its data exactly)."""
        if self._feed is None:
            raise self.error("the layer is closed or was never set up")
        self._feed.seek(int(index))

    def close(self) -> None:
        if self._finalizer is not None:
            self._finalizer()  # runs DatumFeed.close once
            self._finalizer = None
        self._feed = None
