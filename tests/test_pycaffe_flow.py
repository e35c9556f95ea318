"""The classic pycaffe LeNet tutorial flow runs unchanged with ``import brewnet as caffe``
(the snippet of the core issue), on a small LMDB the test builds."""

import numpy as np
import pytest

import brewnet as caffe
from tests.data.helpers import make_lmdb


@pytest.mark.slow  # the solver's initial test runs 100 batches of 100, as in the tutorial
def test_tutorial_flow(tmp_path, tutorial):
    """NetSpec → prototxt → SolverParameter → get_solver/SGDSolver → forward, step, params'
    diffs, 0-d loss, partial forward, argmax accuracy, blob/param tables as pycaffe."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (96, 1, 28, 28), dtype=np.uint8)
    train_db = make_lmdb(tmp_path / "train_lmdb", images, rng.integers(0, 10, 96))
    test_db = make_lmdb(tmp_path / "test_lmdb", images[:50], rng.integers(0, 10, 50))
    train, test = tmp_path / "train.prototxt", tmp_path / "test.prototxt"
    lenet = tutorial.lenet
    open(train, 'w').write(str(lenet(str(train_db), 64)))
    open(test, 'w').write(str(lenet(str(test_db), 100)))

    s = caffe.proto.caffe_pb2.SolverParameter()
    s.train_net = str(train)
    s.test_net.append(str(test))
    s.test_interval = 500
    s.test_iter.append(100)
    s.base_lr, s.momentum, s.weight_decay = 0.01, 0.9, 5e-4
    s.lr_policy, s.gamma, s.power = 'inv', 1e-4, 0.75
    s.display, s.max_iter = 100, 10000
    s.snapshot, s.snapshot_prefix = 5000, str(tmp_path / "lenet")
    path = tmp_path / "solver.prototxt"
    open(path, 'w').write(str(s))

    caffe.set_mode_cpu()
    for make in (caffe.get_solver, caffe.SGDSolver):
        solver = make(str(path))
        assert [(k, v.data.shape) for k, v in solver.net.blobs.items()] == [
            ('data', (64, 1, 28, 28)), ('label', (64,)), ('conv1', (64, 20, 24, 24)),
            ('pool1', (64, 20, 12, 12)), ('conv2', (64, 50, 8, 8)), ('pool2', (64, 50, 4, 4)),
            ('fc1', (64, 500)), ('score', (64, 10)), ('loss', ())]
        assert [(k, v[0].data.shape) for k, v in solver.net.params.items()] == [
            ('conv1', (20, 1, 5, 5)), ('conv2', (50, 20, 5, 5)), ('fc1', (500, 800)),
            ('score', (10, 500))]
        solver.net.forward()
        solver.test_nets[0].forward()
        solver.step(1)
        assert solver.iter == 1
        assert np.abs(solver.net.params['conv1'][0].diff).sum() > 0
        loss = solver.net.blobs['loss'].data
        assert loss.shape == () and np.isfinite(loss) and loss > 0
        solver.test_nets[0].forward(start='conv1')
        hits = (solver.test_nets[0].blobs['score'].data.argmax(1)
                == solver.test_nets[0].blobs['label'].data)
        assert hits.shape == (100,) and hits.dtype == bool
        solver.close()
