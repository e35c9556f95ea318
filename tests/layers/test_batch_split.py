"""Every layer path that splits its batch over the cores (brewnet.cores) gives the numbers of the
whole batch, to float32 rounding: weight gradients add one partial sum per range, and
OpenBLAS's Haswell kernels round a GEMM's rows differently with the GEMM's row count, so even
forward values differ in the last bits; a wrong range is off by whole values. Runs with the
compiled kernels and (make test-numpy) the NumPy bodies.
"""

from __future__ import annotations

import numpy as np
import pytest
from google.protobuf import text_format

import brewnet
from brewnet import cores
from brewnet.proto import caffe_pb2

# The convolutions take every path: conv1 per-sample columns with the bias folded into the
# GEMM (columns bottom gradient); conv2 patch rows with the flipped bottom gradient; conv3 two
# groups, 3x3 pad 1 (Winograd in TEST), then BatchNorm + Scale + ReLU (fused); conv4 a stride
# (rows bottom gradient); their columns kept whole or built in chunks (``chunk_bytes``). LRN
# across and within channels; MAX and AVE pooling; a second branch (Split layers: pool1, pw):
# depthwise (stride 2) with a BatchNorm, pointwise (bias), Scale alone, Eltwise + ReLU,
# pointwise (stride 2), Slice and Concat along the channels, inner products (plain;
# transposed weights); GEMMs, element-wise passes and copies split however small.
# ``force_backward`` gives the first convolution a bottom gradient too.
_NET = """
force_backward: true
layer { name: "data" type: "Input" top: "data"
        input_param { shape { dim: 6 dim: 3 dim: 20 dim: 20 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 8 kernel_size: 5 pad: 2
                            weight_filler { type: "gaussian" std: 0.1 }
                            bias_filler { type: "gaussian" std: 0.1 } } }
layer { name: "conv2" type: "Convolution" bottom: "conv1" top: "conv2"
        convolution_param { num_output: 40 kernel_size: 5 pad: 2
                            weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "norm" type: "LRN" bottom: "conv2" top: "conv2n"
        lrn_param { local_size: 3 alpha: 0.1 beta: 0.75 } }
layer { name: "norm_within" type: "LRN" bottom: "conv2n" top: "conv2w"
        lrn_param { local_size: 3 alpha: 0.1 beta: 0.75 norm_region: WITHIN_CHANNEL } }
layer { name: "pool1" type: "Pooling" bottom: "conv2w" top: "pool1"
        pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "conv3" type: "Convolution" bottom: "pool1" top: "conv3"
        convolution_param { num_output: 32 kernel_size: 3 pad: 1 group: 2
                            weight_filler { type: "gaussian" std: 0.1 }
                            bias_filler { type: "gaussian" std: 0.1 } } }
layer { name: "bn3" type: "BatchNorm" bottom: "conv3" top: "conv3" }
layer { name: "scale3" type: "Scale" bottom: "conv3" top: "conv3"
        scale_param { bias_term: true filler { type: "gaussian" std: 1 }
                      bias_filler { type: "gaussian" std: 0.1 } } }
layer { name: "relu3" type: "ReLU" bottom: "conv3" top: "conv3" }
layer { name: "conv4" type: "Convolution" bottom: "conv3" top: "conv4"
        convolution_param { num_output: 16 kernel_size: 3 stride: 2
                            weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "pool2" type: "Pooling" bottom: "conv4" top: "pool2"
        pooling_param { pool: AVE kernel_size: 2 stride: 1 } }
layer { name: "target" type: "Input" top: "target"
        input_param { shape { dim: 6 dim: 16 dim: 3 dim: 3 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "pool2" bottom: "target" top: "loss" }
layer { name: "dw" type: "Convolution" bottom: "pool1" top: "dw"
        convolution_param { num_output: 40 group: 40 kernel_size: 3 pad: 1 stride: 2
                            weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "bn_dw" type: "BatchNorm" bottom: "dw" top: "dw" }
layer { name: "pw" type: "Convolution" bottom: "dw" top: "pw"
        convolution_param { num_output: 24 kernel_size: 1
                            weight_filler { type: "gaussian" std: 0.1 }
                            bias_filler { type: "gaussian" std: 0.1 } } }
layer { name: "scale_pw" type: "Scale" bottom: "pw" top: "pw_scaled"
        scale_param { bias_term: true filler { type: "gaussian" std: 1 }
                      bias_filler { type: "gaussian" std: 0.1 } } }
layer { name: "sum" type: "Eltwise" bottom: "pw" bottom: "pw_scaled" top: "sum" }
layer { name: "relu_sum" type: "ReLU" bottom: "sum" top: "sum" }
layer { name: "pw2" type: "Convolution" bottom: "sum" top: "pw2"
        convolution_param { num_output: 12 kernel_size: 1 stride: 2
                            weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "cut" type: "Slice" bottom: "pw2" top: "pw2a" top: "pw2b"
        slice_param { slice_point: 5 } }
layer { name: "join" type: "Concat" bottom: "pw2b" bottom: "pw2a" top: "joined" }
layer { name: "ip" type: "InnerProduct" bottom: "joined" top: "ip"
        inner_product_param { num_output: 9 weight_filler { type: "gaussian" std: 0.1 }
                              bias_filler { type: "gaussian" std: 0.1 } } }
layer { name: "ip2" type: "InnerProduct" bottom: "ip" top: "ip2"
        inner_product_param { num_output: 5 transpose: true
                              weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "target2" type: "Input" top: "target2"
        input_param { shape { dim: 6 dim: 5 } } }
layer { name: "loss2" type: "EuclideanLoss" bottom: "ip2" bottom: "target2" top: "loss2" }
"""


def _run(split: bool, chunk_bytes: int | None, phase: int, monkeypatch
         ) -> dict[str, np.ndarray]:
    from brewnet.layers import conv, inner_product

    monkeypatch.setattr(inner_product, "_SPLIT_MACS", 0)
    monkeypatch.setattr(cores, "FLAT_MINIMUM", 1)
    if chunk_bytes is not None:  # small chunks: several per range
        monkeypatch.setattr(conv, "_COL_BUDGET", chunk_bytes)
        monkeypatch.setattr(conv, "_CHUNK_BYTES", chunk_bytes)
    monkeypatch.setenv("BREWNET_BATCH_SPLIT", "1" if split else "0")
    brewnet.set_random_seed(3)
    param = caffe_pb2.NetParameter()
    text_format.Parse(_NET, param)
    net = brewnet.Net(param, phase)
    rng = np.random.default_rng(0)
    net.blobs["data"].data[...] = rng.standard_normal(net.blobs["data"].shape)
    for name in ("target", "target2"):
        net.blobs[name].data[...] = rng.standard_normal(net.blobs[name].shape)
    net.forward()
    out = {name: blob.data.copy() for name, blob in net.blobs.items()}
    if phase == brewnet.TEST:
        return out
    net.backward()
    out.update({f"{name}.diff": blob.diff.copy() for name, blob in net.blobs.items()})
    for name, params in net.params.items():
        for k, p in enumerate(params):
            out[f"{name}/{k}"] = p.diff.copy()
    return out


@pytest.mark.parametrize("chunk_bytes", [None, 20_000], ids=["kept columns", "chunks"])
def test_split_layers_equal_whole_batch(two_blas_threads, monkeypatch, chunk_bytes):
    whole = _run(False, chunk_bytes, brewnet.TRAIN, monkeypatch)
    split = _run(True, chunk_bytes, brewnet.TRAIN, monkeypatch)
    # Gradients below a BatchNorm's backward (a difference of means) lose relative precision:
    # measured 4e-5 of the largest gradient; conv3's bias gradient is zero but for rounding
    # (the BatchNorm after it removes any offset), so gradients are held to the largest one.
    gradients = [key for key in whole if "/" in key or key.endswith(".diff")]
    largest = max(float(np.abs(whole[key]).max()) for key in gradients)
    for key, value in whole.items():
        if key in gradients:
            np.testing.assert_allclose(split[key], value, rtol=0, atol=1e-4 * largest,
                                       err_msg=key)
        else:
            np.testing.assert_allclose(split[key], value, rtol=1e-5,
                                       atol=1e-6 * float(np.abs(value).max()), err_msg=key)


def test_split_inference_equals_whole_batch(two_blas_threads, monkeypatch):
    """TEST phase: BatchNorm (stored statistics), Scale and ReLU folded into the convolutions
    before them, written by their epilogues: conv3 through Winograd (3x3, pad 1), the
    depthwise and pointwise kinds in their own passes."""
    whole = _run(False, None, brewnet.TEST, monkeypatch)
    split = _run(True, None, brewnet.TEST, monkeypatch)
    for key, value in whole.items():
        np.testing.assert_allclose(split[key], value, rtol=1e-5,
                                   atol=1e-6 * float(np.abs(value).max()), err_msg=key)
