"""A pycaffe script, written as pycaffe users write them, runs unchanged under
``import brewnet as caffe``: NetSpec → to_proto → prototxt → Net → forward_all → draw (when
pydot and Graphviz are present) → save → Net(file, weights, TEST) → the same outputs; then a
solver stepping with callbacks, a snapshot, and a resume."""

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

SCRIPT = r'''
import importlib.util
import shutil

import numpy as np
from google.protobuf import text_format

import brewnet as caffe
from brewnet import layers as L, params as P


def lenet(batch, source=None):
    n = caffe.NetSpec()
    if source is None:
        n.data = L.Input(shape=dict(dim=[batch, 1, 12, 12]))
    else:
        n.data, n.label = L.DummyData(shape=[dict(dim=[batch, 1, 12, 12]), dict(dim=[batch])],
                                      data_filler=[dict(type='gaussian', std=1),
                                                   dict(type='constant', value=2)], ntop=2)
    n.conv1 = L.Convolution(n.data, kernel_size=3, num_output=4, weight_filler=dict(type='xavier'))
    n.pool1 = L.Pooling(n.conv1, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.relu1 = L.ReLU(n.pool1, in_place=True)
    n.score = L.InnerProduct(n.relu1, num_output=3, weight_filler=dict(type='xavier'))
    if source is None:
        n.prob = L.Softmax(n.score)
    else:
        n.loss = L.SoftmaxWithLoss(n.score, n.label)
    return n.to_proto()


with open('deploy.prototxt', 'w') as f:
    f.write(str(lenet(4)))
with open('train.prototxt', 'w') as f:
    f.write(str(lenet(8, source='dummy')))

caffe.set_mode_cpu()
caffe.set_random_seed(1701)
net = caffe.Net('deploy.prototxt', caffe.TEST)
print([(k, v.data.shape) for k, v in net.blobs.items()])
print([(k, v[0].data.shape) for k, v in net.params.items()])

images = np.random.rand(10, 1, 12, 12).astype(np.float32)
out = net.forward_all(data=images)
assert out['prob'].shape == (10, 3)
assert np.allclose(out['prob'].sum(1), 1, atol=1e-5)
first = net.forward(data=images[:4])['prob'].copy()
assert np.allclose(first, out['prob'][:4], atol=1e-6)

if importlib.util.find_spec('pydot') and shutil.which('dot') \
        and importlib.util.find_spec('brewnet.draw'):
    net_param = caffe.proto.caffe_pb2.NetParameter()
    text_format.Merge(open('deploy.prototxt').read(), net_param)
    caffe.draw.draw_net_to_file(net_param, 'lenet.png', 'LR')
    assert open('lenet.png', 'rb').read(8) == b'\x89PNG\r\n\x1a\n'
    print('drew lenet.png')

net.save('lenet.caffemodel')
net2 = caffe.Net('deploy.prototxt', 'lenet.caffemodel', caffe.TEST)
assert np.allclose(net2.forward_all(data=images)['prob'], out['prob'], atol=1e-6)

solver_param = caffe.proto.caffe_pb2.SolverParameter()
solver_param.train_net = 'train.prototxt'
solver_param.base_lr = 0.05
solver_param.momentum = 0.9
solver_param.lr_policy = 'fixed'
solver_param.max_iter = 6
solver_param.snapshot_prefix = 'lenet'
with open('solver.prototxt', 'w') as f:
    f.write(str(solver_param))

solver = caffe.SGDSolver('solver.prototxt')
losses = []
solver.add_callback(lambda: None, lambda: losses.append(float(solver.net.blobs['loss'].data)))
solver.step(3)
assert solver.iter == 3 and len(losses) == 3
solver.net.save('trained.caffemodel')
solver.snapshot()
solver.param.base_lr = 0.01
print('lr', solver.lr)
resumed = caffe.get_solver('solver.prototxt')
resumed.solve('lenet_iter_3.solverstate')
assert resumed.iter == 6
deployed = caffe.Net('deploy.prototxt', 'trained.caffemodel', caffe.TEST)
print('scores', deployed.forward_all(data=images)['prob'].argmax(1))
print('losses', ['%.3f' % x for x in losses])
print('OK')
'''


def test_pycaffe_script_runs_as_written(tmp_path):
    """The script above, run as its own program with brewnet imported as caffe, completes;
    the drawing step runs when pydot, Graphviz's dot and brewnet.draw are all present."""
    script = tmp_path / "pycaffe_script.py"
    script.write_text(SCRIPT)
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(root), *filter(None, [os.environ.get("PYTHONPATH")])])}
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.rstrip().endswith("OK")
    assert "('conv1', (4, 4, 10, 10))" in done.stdout
    can_draw = (importlib.util.find_spec("pydot") and shutil.which("dot")
                and (root / "brewnet" / "draw.py").exists())
    assert ("drew lenet.png" in done.stdout) == bool(can_draw)
    assert (tmp_path / "lenet_iter_6.caffemodel").is_file()
