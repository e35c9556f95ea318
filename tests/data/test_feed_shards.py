"""DatumFeed shared out among ranks (data-parallel training): record i goes to rank i mod N,
so batch k of the N ranks together is batch k of one feed with an N times larger batch."""

import numpy as np
import pytest

from brewnet import backend
from brewnet.blob import Blob
from brewnet.data.feed import DatumFeed
from brewnet.data.lmdb_source import LMDBSource
from brewnet.data.transform import DataTransformer
from brewnet.layers.data import DataLayer
from brewnet.proto import caffe_pb2
from tests.data.helpers import image_stack, jpeg_files, make_jpeg_lmdb, make_lmdb

IMAGES = image_stack(14, (1, 2, 3), seed=4)


def batches(path, batch, shard, count, seek=None):
    transformer = DataTransformer(caffe_pb2.TransformationParameter(), caffe_pb2.TRAIN)
    feed = DatumFeed(LMDBSource(path), transformer, batch, shard=shard)
    try:
        if seek is not None:
            feed.seek(seek)
        out = []
        for _ in range(count):
            b = feed.get()
            out.append((b.data.copy(), b.label.copy()))
            feed.release(b)
        return out
    finally:
        feed.close()


def test_round_robin_shards_make_up_the_big_batch(tmp_path):
    """Three ranks x batch 2 against one feed x batch 6, over a wrap-around (14 records)."""
    db = make_lmdb(tmp_path / "db", IMAGES)
    whole = batches(db, 6, (0, 1), 4)
    ranks = [batches(db, 2, (r, 3), 4) for r in range(3)]
    for k, (data, label) in enumerate(whole):
        for r in range(3):
            np.testing.assert_array_equal(ranks[r][k][0], data[r::3])
            np.testing.assert_array_equal(ranks[r][k][1], label[r::3])


def test_seek_counts_global_batches(tmp_path):
    """Batch k of a rank starts at record k x batch x N: the same position for any N that
    keeps N x batch (a snapshot of 2 ranks resumes on 1)."""
    db = make_lmdb(tmp_path / "db", IMAGES)
    whole = batches(db, 4, (0, 1), 1, seek=3)[0][0]
    for r in range(2):
        np.testing.assert_array_equal(batches(db, 2, (r, 2), 1, seek=3)[0][0], whole[r::2])


@pytest.mark.parametrize(("phase", "sharded"), [(caffe_pb2.TRAIN, True),
                                                 (caffe_pb2.TEST, False)])
def test_only_train_data_layers_shard(tmp_path, phase, sharded):
    """Caffe's DataLayer::Skip keeps every record in the TEST phase."""
    db = make_lmdb(tmp_path / "db", IMAGES)
    param = caffe_pb2.LayerParameter(name="d", type="Data")
    param.data_param.source = str(db)
    param.data_param.batch_size = 2
    param.data_param.backend = caffe_pb2.DataParameter.LMDB
    backend.set_solver_count(2)
    backend.set_solver_rank(1)
    layer = DataLayer(param, phase)
    try:
        top = [Blob((1,)), Blob((1,))]
        layer.setup([], top)
        layer.forward([], top)
        want = IMAGES[[1, 3]] if sharded else IMAGES[[0, 1]]
        np.testing.assert_array_equal(top[0].data, want)
    finally:
        layer.close()
        backend.set_solver_rank(0)
        backend.set_solver_count(1)


def test_ranks_deal_round_robin_with_parallel_decoding(tmp_path):
    """With 2 decoding workers per rank, encoded records with random crops still go to rank
    i mod N: rank r's batch k equals its batch decoded by a single worker, and its labels
    (the record indices) are r, r + N, ... of the big batch."""
    pytest.importorskip("PIL")
    db = make_jpeg_lmdb(tmp_path / "db", jpeg_files(14, size=16))
    param = caffe_pb2.TransformationParameter(crop_size=12, mirror=True)
    for rank in range(3):
        runs = []
        for workers in (1, 2):
            transformer = DataTransformer(param, caffe_pb2.TRAIN)
            feed = DatumFeed(LMDBSource(db), transformer, 2, seed=5, shard=(rank, 3),
                             workers=workers)
            try:
                got = [feed.get() for _ in range(3)]
                runs.append([(b.data.copy(), b.label.copy()) for b in got])
            finally:
                feed.close()
        for k, ((data1, label1), (data2, label2)) in enumerate(zip(*runs, strict=True)):
            assert data1.tobytes() == data2.tobytes() and label1.tobytes() == label2.tobytes()
            np.testing.assert_array_equal(label2, [(6 * k + rank + 3 * i) % 14
                                                   for i in range(2)])
