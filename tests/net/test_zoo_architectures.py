"""Model-zoo architectures (tests/net/fixtures, written from the published papers and BVLC's
model definitions) compile with the published blob shapes and run forward and backward.

Shapes are checked by building at the published input size (construction infers every shape
without running); the forward/backward runs use batch 1 and, for VGG-16 and ResNet-50, a
reduced 64x64 input so each stays within seconds on two cores."""

import re
import time
from pathlib import Path

import numpy as np
import pytest

from brewnet.net import TEST, TRAIN, Net
from brewnet.proto.textio import read_net

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def build(fixture: str, phase: int, size: int | None = None) -> Net:
    """The fixture's net, with its Input's spatial size set to ``size`` when given."""
    param = read_net(FIXTURES / fixture)
    if size is not None:
        shape = param.layer[0].input_param.shape[0]
        shape.dim[2] = shape.dim[3] = size
    return Net(param, phase, source=str(FIXTURES / fixture))


def check_shapes(net: Net, expected: dict[str, tuple[int, ...]]) -> None:
    """Every named blob has the expected shape."""
    got = {name: tuple(net.blobs[name].data.shape) for name in expected}
    assert got == expected


def run_forward_backward(net: Net, rng: np.random.Generator) -> None:
    """Random input, forward, a random diff on every non-loss output, backward; every output
    and every input/param gradient finite and the data gradient non-zero."""
    net.blobs["data"].data[...] = rng.standard_normal(net.blobs["data"].data.shape)
    start = time.perf_counter()
    outputs = net.forward()
    for name, value in outputs.items():
        assert np.all(np.isfinite(value)), name
    diffs = {name: rng.standard_normal(net.blobs[name].data.shape).astype(np.float32)
             for name in net.outputs if net.blob_loss_weights[name] == 0}
    grads = net.backward(**diffs)
    elapsed = time.perf_counter() - start
    data_grad = grads["data"]
    assert np.all(np.isfinite(data_grad))
    assert np.abs(data_grad).max() > 0
    for layer, blobs in net.params.items():
        for j, blob in enumerate(blobs):
            assert np.all(np.isfinite(blob.diff)), f"{layer}[{j}]"
    print(f"{net.name}: forward+backward {elapsed:.2f} s")


# ------------------------------------------------------------------------------------------
# AlexNet
# ------------------------------------------------------------------------------------------
ALEXNET = {"data": (1, 3, 227, 227), "conv1": (1, 96, 55, 55), "norm1": (1, 96, 55, 55),
           "pool1": (1, 96, 27, 27), "conv2": (1, 256, 27, 27), "norm2": (1, 256, 27, 27),
           "pool2": (1, 256, 13, 13), "conv3": (1, 384, 13, 13), "conv4": (1, 384, 13, 13),
           "conv5": (1, 256, 13, 13), "pool5": (1, 256, 6, 6), "fc6": (1, 4096),
           "fc7": (1, 4096), "fc8": (1, 1000), "prob": (1, 1000)}


def test_alexnet_shapes_and_grouped_weights():
    """bvlc_alexnet at 227x227: conv1 96x55x55 ... pool5 256x6x6; the two-tower grouping gives
    conv2/conv4/conv5 weights with half the input channels (256x48x5x5, 384x192x3x3,
    256x192x3x3), as in the published caffemodel."""
    net = build("alexnet_deploy.prototxt", TEST)
    check_shapes(net, ALEXNET)
    weights = {name: tuple(blobs[0].data.shape) for name, blobs in net.params.items()}
    assert weights == {"conv1": (96, 3, 11, 11), "conv2": (256, 48, 5, 5),
                       "conv3": (384, 256, 3, 3), "conv4": (384, 192, 3, 3),
                       "conv5": (256, 192, 3, 3), "fc6": (4096, 9216), "fc7": (4096, 4096),
                       "fc8": (1000, 4096)}


@pytest.mark.slow
def test_alexnet_forward_backward():
    """AlexNet at 227x227 runs forward (a probability per image) and backward (force_backward
    gives the data a finite, non-zero gradient)."""
    net = build("alexnet_deploy.prototxt", TRAIN)
    run_forward_backward(net, np.random.default_rng(0))
    np.testing.assert_allclose(net.blobs["prob"].data.sum(axis=1), 1.0, rtol=1e-5)


# ------------------------------------------------------------------------------------------
# GoogLeNet
# ------------------------------------------------------------------------------------------
GOOGLENET = {"conv1/7x7_s2": (1, 64, 112, 112), "pool1/norm1": (1, 64, 56, 56),
             "conv2/norm2": (1, 192, 56, 56), "pool2/3x3_s2": (1, 192, 28, 28),
             "inception_3a/output": (1, 256, 28, 28), "inception_3b/output": (1, 480, 28, 28),
             "pool3/3x3_s2": (1, 480, 14, 14), "inception_4a/output": (1, 512, 14, 14),
             "inception_4b/output": (1, 512, 14, 14), "inception_4c/output": (1, 512, 14, 14),
             "inception_4d/output": (1, 528, 14, 14), "inception_4e/output": (1, 832, 14, 14),
             "pool4/3x3_s2": (1, 832, 7, 7), "inception_5a/output": (1, 832, 7, 7),
             "inception_5b/output": (1, 1024, 7, 7), "pool5/7x7_s1": (1, 1024, 1, 1),
             "loss1/ave_pool": (1, 512, 4, 4), "loss1/conv": (1, 128, 4, 4),
             "loss1/fc": (1, 1024), "loss1/classifier": (1, 1000),
             "loss2/ave_pool": (1, 528, 4, 4), "loss2/conv": (1, 128, 4, 4),
             "loss2/fc": (1, 1024), "loss2/classifier": (1, 1000),
             "loss3/classifier": (1, 1000), "loss1/loss1": (), "loss2/loss1": (),
             "loss3/loss3": ()}
LOSSES = {"loss1/loss1": 0.3, "loss2/loss1": 0.3, "loss3/loss3": 1.0}


def test_googlenet_shapes_and_loss_heads():
    """bvlc_googlenet at 224x224: inception_3a/output 256x28x28, inception_4e/output
    832x14x14, pool5/7x7_s1 1024x1x1; the two auxiliary heads (AVE 5x5/3 -> 4x4) are outputs
    with loss weight 0.3 and the main head with 1."""
    net = build("googlenet_train.prototxt", TRAIN)
    check_shapes(net, GOOGLENET)
    assert net.inputs == ["data", "label"]
    assert net.outputs == sorted(LOSSES)
    assert {name: net.blob_loss_weights[name] for name in LOSSES} == pytest.approx(LOSSES)


@pytest.mark.slow
def test_googlenet_forward_backward_weighted_loss():
    """Caffe's net loss is the loss-weighted sum of the loss tops: 0.3 loss1 + 0.3 loss2 +
    loss3; each head's classifier gets loss_weight * (softmax - one-hot) as its gradient, and
    backward from all three heads gives the data a finite, non-zero gradient."""
    net = build("googlenet_train.prototxt", TRAIN)
    rng = np.random.default_rng(1)
    net.blobs["data"].data[...] = rng.standard_normal((1, 3, 224, 224))
    net.blobs["label"].data[...] = rng.integers(0, 1000, size=1)
    start = time.perf_counter()
    loss = net.forward_backward()
    elapsed = time.perf_counter() - start
    parts = {name: float(net.blobs[name].data) for name in LOSSES}
    assert all(np.isfinite(v) and v > 0 for v in parts.values())
    expected = sum(LOSSES[name] * value for name, value in parts.items())
    assert loss == pytest.approx(expected, rel=1e-5)
    data_grad = net.blobs["data"].diff
    assert np.all(np.isfinite(data_grad)) and np.abs(data_grad).max() > 0
    label = int(net.blobs["label"].data[0])
    for head, name in (("loss1", "loss1/loss1"), ("loss2", "loss2/loss1"),
                       ("loss3", "loss3/loss3")):
        # the head's loss weight reaches its classifier: weight * (softmax - one-hot)
        scores = net.blobs[f"{head}/classifier"].data[0].astype(np.float64)
        expected_diff = np.exp(scores - scores.max())
        expected_diff /= expected_diff.sum()
        expected_diff[label] -= 1.0
        np.testing.assert_allclose(net.blobs[f"{head}/classifier"].diff[0],
                                   LOSSES[name] * expected_diff, rtol=1e-4, atol=1e-7)
        assert np.abs(net.params[f"{head}/classifier"][0].diff).max() > 0, head
    print(f"GoogLeNet: forward+backward {elapsed:.2f} s")


# ------------------------------------------------------------------------------------------
# VGG-16
# ------------------------------------------------------------------------------------------
def vgg16_shapes(size: int) -> dict[str, tuple[int, ...]]:
    """VGG-16's blob shapes for a square input of side ``size`` (a multiple of 32)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for b, (n, reps) in enumerate([(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)], 1):
        side = size >> (b - 1)
        for r in range(1, reps + 1):
            shapes[f"conv{b}_{r}"] = (1, n, side, side)
        shapes[f"pool{b}"] = (1, n, side // 2, side // 2)
    return {**shapes, "fc6": (1, 4096), "fc7": (1, 4096), "fc8": (1, 1000), "prob": (1, 1000)}


@pytest.mark.slow
def test_vgg16_shapes():
    """VGG-16 at 224x224: 13 convolutions 3x3 pad 1 keep the size, five 2x2/2 max pools halve
    it to pool5 512x7x7, so fc6 has 25088 inputs; 16 weight layers."""
    net = build("vgg16_deploy.prototxt", TEST)
    check_shapes(net, vgg16_shapes(224))
    assert net.blobs["pool5"].data.shape == (1, 512, 7, 7)
    assert net.params["fc6"][0].data.shape == (4096, 25088)
    assert len(net.params) == 16


@pytest.mark.slow
def test_vgg16_forward_backward_at_64():
    """VGG-16 at 64x64 (pool5 512x2x2) runs forward and backward with finite outputs and a
    non-zero data gradient."""
    net = build("vgg16_deploy.prototxt", TRAIN, size=64)
    check_shapes(net, vgg16_shapes(64))
    run_forward_backward(net, np.random.default_rng(2))


# ------------------------------------------------------------------------------------------
# ResNet-50
# ------------------------------------------------------------------------------------------
def resnet50_shapes(size: int) -> dict[str, tuple[int, ...]]:
    """ResNet-50's stage outputs for a square input of side ``size`` (a multiple of 32)."""
    shapes = {"conv1": (1, 64, size // 2, size // 2), "pool1": (1, 64, size // 4, size // 4)}
    for st, (n, reps) in enumerate([(256, 3), (512, 4), (1024, 6), (2048, 3)], 2):
        side = size >> st if st > 2 else size // 4
        for i in range(reps):
            shapes[f"res{st}{'abcdef'[i]}"] = (1, n, side, side)
    return {**shapes, "pool5": (1, 2048, 1, 1), "fc1000": (1, 1000), "prob": (1, 1000)}


def test_resnet50_shapes_and_blocks():
    """ResNet-50 at 224x224: res2c 256x56x56, res3d 512x28x28, res4f 1024x14x14, res5c
    2048x7x7, pool5 2048x1x1; 16 bottleneck blocks (Eltwise), 4 projection shortcuts, and
    53 BatchNorm+Scale pairs (conv1, 16x3 branch2, 4 branch1)."""
    net = build("resnet50_deploy.prototxt", TEST)
    check_shapes(net, resnet50_shapes(224))
    types = [layer.type for layer in net.layers]
    assert types.count("Eltwise") == 16
    assert types.count("BatchNorm") == types.count("Scale") == 53
    assert types.count("Convolution") == 53
    assert [name for name in net.params if re.fullmatch(r"res\w+_branch1", name)] == [
        "res2a_branch1", "res3a_branch1", "res4a_branch1", "res5a_branch1"]
    assert net.params["res3a_branch1"][0].data.shape == (512, 256, 1, 1)
    assert [tuple(b.data.shape) for b in net.params["bn_conv1"]] == [(64,), (64,), (1,)]
    assert [tuple(b.data.shape) for b in net.params["scale_conv1"]] == [(64,), (64,)]


@pytest.mark.slow
def test_resnet50_forward_backward_at_64():
    """ResNet-50 at 64x64 in TRAIN (BatchNorm on batch statistics) runs forward and backward
    with finite outputs and a non-zero data gradient; the net built at 224 reshapes to 64
    through the global average pool."""
    net = build("resnet50_deploy.prototxt", TRAIN)
    net.blobs["data"].reshape(1, 3, 64, 64)
    net.reshape()
    check_shapes(net, resnet50_shapes(64))
    run_forward_backward(net, np.random.default_rng(3))


@pytest.mark.slow
def test_resnet50_test_phase_with_stored_statistics():
    """In TEST, BatchNorm uses its stored statistics (mean, variance, scale factor): with mean
    0, variance 1 and factor 1 stored, ResNet-50 at 64x64 gives a finite probability vector
    that does not depend on the other images of the batch (its logits, up to float32 rounding
    of their largest magnitude: with these statistics they reach about 2,000, where one ulp is
    1.2e-4, so probabilities far below the top one may differ relatively by more)."""
    net = build("resnet50_deploy.prototxt", TEST, size=64)
    for name, blobs in net.params.items():
        if net.layer_dict[name].type == "BatchNorm":
            blobs[0].data[...] = 0.0
            blobs[1].data[...] = 1.0
            blobs[2].data[...] = 1.0
    rng = np.random.default_rng(5)
    images = rng.standard_normal((2, 3, 64, 64)).astype(np.float32)
    net.blobs["data"].data[...] = images[:1]
    alone = net.forward(blobs=["fc1000"])["fc1000"].copy()
    net.blobs["data"].reshape(2, 3, 64, 64)
    net.reshape()
    out = net.forward(data=images, blobs=["fc1000"])
    both = out["prob"]
    assert np.all(np.isfinite(both))
    np.testing.assert_allclose(both.sum(axis=1), 1.0, rtol=1e-5)
    scale = np.abs(alone).max()
    np.testing.assert_allclose(out["fc1000"][:1], alone, rtol=0, atol=1e-5 * scale)


# ------------------------------------------------------------------------------------------
# a small fully convolutional net
# ------------------------------------------------------------------------------------------
def test_fcn_output_matches_input_size():
    """FCN pattern: score at stride 8, a Deconvolution (kernel 16, stride 8) upsamples to
    (s - 1) * 8 + 16, Crop at offset 4 against the data returns the input size — for the
    built size and after a reshape to another multiple of 8."""
    net = build("fcn_small_deploy.prototxt", TEST)
    check_shapes(net, {"score": (1, 21, 8, 8), "upscore": (1, 21, 72, 72),
                       "score_crop": (1, 21, 64, 64)})
    net.blobs["data"].reshape(1, 3, 48, 40)
    net.reshape()
    check_shapes(net, {"score": (1, 21, 6, 5), "upscore": (1, 21, 56, 48),
                       "score_crop": (1, 21, 48, 40)})


def test_fcn_forward_backward():
    """The small FCN runs forward and backward; the crop keeps the centre of the upsampled
    map (offset 4), and the data gets a finite, non-zero gradient."""
    net = build("fcn_small_deploy.prototxt", TRAIN)
    run_forward_backward(net, np.random.default_rng(4))
    np.testing.assert_array_equal(net.blobs["score_crop"].data,
                                  net.blobs["upscore"].data[:, :, 4:68, 4:68])
