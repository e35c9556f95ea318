"""The classic pycaffe LeNet tutorial, run on brewnet: only the import differs.

Builds LeNet with NetSpec, writes the train/test prototxts and a solver, then trains with a
manual step loop, testing as it goes, and saves a loss/accuracy plot when matplotlib is
installed. Run from the repository root after `make lenet` (or `brewnet data mnist
examples/mnist`) has built the LMDBs:

    python examples/mnist/tutorial.py [--iters 200] [--out runs/tutorial]
"""

import argparse
import os

import numpy as np

import brewnet as caffe
from brewnet import layers as L
from brewnet import params as P

HERE = os.path.dirname(os.path.abspath(__file__))


def lenet(lmdb: str, batch_size: int):
    """LeNet as in the tutorial: the net definition is Python, the result prototxt."""
    n = caffe.NetSpec()
    n.data, n.label = L.Data(batch_size=batch_size, backend=P.Data.LMDB, source=lmdb,
                             transform_param=dict(scale=1. / 255), ntop=2)
    n.conv1 = L.Convolution(n.data, kernel_size=5, num_output=20,
                            weight_filler=dict(type='xavier'))
    n.pool1 = L.Pooling(n.conv1, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.conv2 = L.Convolution(n.pool1, kernel_size=5, num_output=50,
                            weight_filler=dict(type='xavier'))
    n.pool2 = L.Pooling(n.conv2, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.fc1 = L.InnerProduct(n.pool2, num_output=500, weight_filler=dict(type='xavier'))
    n.relu1 = L.ReLU(n.fc1, in_place=True)
    n.score = L.InnerProduct(n.relu1, num_output=10, weight_filler=dict(type='xavier'))
    n.loss = L.SoftmaxWithLoss(n.score, n.label)
    return n.to_proto()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--test-interval", type=int, default=25)
    parser.add_argument("--out", default="runs/tutorial")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)

    train_net = os.path.join(args.out, "lenet_auto_train.prototxt")
    test_net = os.path.join(args.out, "lenet_auto_test.prototxt")
    with open(train_net, "w") as f:
        f.write(str(lenet(os.path.join(HERE, "mnist_train_lmdb"), 64)))
    with open(test_net, "w") as f:
        f.write(str(lenet(os.path.join(HERE, "mnist_test_lmdb"), 100)))

    s = caffe.proto.caffe_pb2.SolverParameter()
    s.train_net = train_net
    s.test_net.append(test_net)
    s.test_interval = 500
    s.test_iter.append(100)
    s.base_lr, s.momentum, s.weight_decay = 0.01, 0.9, 5e-4
    s.lr_policy, s.gamma, s.power = "inv", 1e-4, 0.75
    s.display, s.max_iter = 100, 10000
    s.snapshot, s.snapshot_prefix = 5000, os.path.join(args.out, "lenet")
    solver_path = os.path.join(args.out, "lenet_auto_solver.prototxt")
    with open(solver_path, "w") as f:
        f.write(str(s))

    caffe.set_mode_cpu()
    solver = caffe.SGDSolver(solver_path)
    print([(k, v.data.shape) for k, v in solver.net.blobs.items()])
    print([(k, v[0].data.shape) for k, v in solver.net.params.items()])

    solver.net.forward()
    solver.test_nets[0].forward()
    solver.step(1)
    print("conv1 gradient norm after one step:",
          float(np.linalg.norm(solver.net.params['conv1'][0].diff)))

    train_loss = np.zeros(args.iters)
    test_acc = np.zeros(int(np.ceil(args.iters / args.test_interval)))
    for it in range(args.iters):
        solver.step(1)
        train_loss[it] = solver.net.blobs['loss'].data
        solver.test_nets[0].forward(start='conv1')
        if it % args.test_interval == 0:
            correct = 0
            for _ in range(100):
                solver.test_nets[0].forward()
                correct += int((solver.test_nets[0].blobs['score'].data.argmax(1)
                                == solver.test_nets[0].blobs['label'].data).sum())
            test_acc[it // args.test_interval] = correct / 1e4
            print(f"iteration {it}: train loss {train_loss[it]:.4f}, "
                  f"test accuracy {test_acc[it // args.test_interval]:.4f}")

    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install 'brewnet[plot]')")
        return
    fig, ax1 = plt.subplots()
    ax2 = ax1.twinx()
    ax1.plot(np.arange(args.iters), train_loss)
    ax2.plot(args.test_interval * np.arange(len(test_acc)), test_acc, "r")
    ax1.set_xlabel("iteration")
    ax1.set_ylabel("train loss")
    ax2.set_ylabel("test accuracy")
    plot = os.path.join(args.out, "lenet_tutorial.png")
    fig.savefig(plot)
    print("plot saved to", plot)


if __name__ == "__main__":
    main()
