"""Winograd's F(2x2, 3x3) and F(2x2, 5x5) forward (brewnet/layers/winograd.py) against the
direct sum: the 3x3 pad-1 and 5x5 pad-2 stride-1 convolutions with their per-channel
epilogue, odd and even extents, groups, several chunks of samples, and the batch/geometry rule
that picks them; and a convolution layer training through them (forward, bottom gradient)
against its im2col GEMMs."""

import numpy as np
import pytest

from brewnet.layers import winograd

pytest.importorskip("numba")


def direct(x, g, a, b, slope, group=1):
    """The reference in float64: cross-correlation with "same" zero padding per group, then
    the epilogue."""
    r = g.shape[-1]
    p = r // 2
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (p, p), (p, p)))
    cols = np.lib.stride_tricks.sliding_window_view(xp, (r, r), axis=(2, 3))
    n, c, h, w = x.shape
    m = g.shape[0]
    cols = cols.reshape(n, group, c // group, h, w, r, r)
    y = np.einsum("ngchwij,gmcij->ngmhw", cols,
                  g.astype(np.float64).reshape(group, m // group, c // group, r, r))
    y = y.reshape(n, m, h, w)
    y = y * a[None, :, None, None] + b[None, :, None, None]
    return np.maximum(y, 0) + slope * np.minimum(y, 0)


@pytest.mark.parametrize("shape", [(4, 8, 6, 9, 9, 1), (5, 3, 16, 7, 10, 1),
                                   (4, 32, 32, 14, 14, 1), (6, 5, 4, 1, 2, 1),
                                   (4, 8, 12, 13, 13, 2), (4, 6, 6, 5, 6, 3)])
@pytest.mark.parametrize("slope", [0.0, 0.1, 1.0])
@pytest.mark.parametrize("r", [3, 5])
def test_forward_affine_equals_the_direct_convolution(shape, slope, r):
    """Rounding only: 1e-5 of the largest output for 3x3; 5x5's transform has entries up to
    5 and 1/24 and rounds more (measured 4e-6 of the largest output), so 3e-5."""
    n, c, m, h, w, group = shape
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    g = rng.standard_normal((m, c // group, r, r)).astype(np.float32)
    a = rng.uniform(0.5, 2, m).astype(np.float32)
    b = rng.standard_normal(m).astype(np.float32)
    y = np.full((n, m, h, w), np.nan, dtype=np.float32)
    winograd.forward_affine(np, x, g, group, y, a, b, np.float32(slope))
    want = direct(x, g, a, b, slope, group)
    assert np.abs(y - want).max() <= (1e-5 if r == 3 else 3e-5) * np.abs(want).max()


@pytest.mark.parametrize("r, budget", [(3, "_CHUNK_BYTES"), (5, "_CHUNK_BYTES_5")])
def test_chunks_of_samples_give_the_whole_batch(monkeypatch, r, budget):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((7, 16, 12, 12)).astype(np.float32)
    g = rng.standard_normal((8, 16, r, r)).astype(np.float32)
    a, b = np.ones(8, np.float32), np.zeros(8, np.float32)
    whole = np.empty((7, 8, 12, 12), np.float32)
    winograd.forward_affine(np, x, g, 1, whole, a, b, np.float32(1))
    # two samples a chunk
    monkeypatch.setattr(winograd, budget, (r + 1) ** 2 * 16 * 36 * 4 * 2)
    chunked = np.empty_like(whole)
    winograd.forward_affine(np, x, g, 1, chunked, a, b, np.float32(1))
    np.testing.assert_array_equal(chunked, whole)


@pytest.mark.parametrize("r", [3, 5])
@pytest.mark.parametrize("h, w", [(6, 8), (7, 5), (1, 3)])
def test_the_gradient_tiles_transform_is_g_d_g_transposed(r, h, w):
    """``gradient_transform`` gives ``G' d G'ᵀ`` of every 2x2 tile of the top gradient in
    float64 (rows and columns past an odd edge zero), at position ``a·i + j``, channel, then
    tile in sample-major order."""
    from brewnet.kernels.winograd import gradient_transform

    rng = np.random.default_rng(r + h)
    n, m = 3, 4
    dy = rng.standard_normal((n, m, h, w)).astype(np.float32)
    g = winograd._WEIGHT_GRAD[r][0]
    a, th, tw = r + 1, (h + 1) // 2, (w + 1) // 2
    even = np.zeros((n, m, 2 * th, 2 * tw))
    even[:, :, :h, :w] = dy
    tiles = even.reshape(n, m, th, 2, tw, 2).transpose(0, 1, 2, 4, 3, 5)
    want = np.einsum("iu,nmyxuv,jv->ijmnyx", g.astype(np.float64), tiles, g.astype(np.float64))
    got = np.full((a * a, m, n * th * tw), np.nan, dtype=np.float32)
    gradient_transform(dy, got, g)
    np.testing.assert_allclose(got, want.reshape(a * a, m, -1), rtol=1e-6, atol=1e-6)


def test_only_3x3_stride_1_pad_1_from_batch_4_or_enough_tiles_and_channels():
    same = ((3, 3), (1, 1), (1, 1), (1, 1))
    assert winograd.applies(4, 7, 7, 16, *same)
    assert not winograd.applies(3, 7, 7, 64, *same)  # 48 tiles
    assert winograd.applies(1, 28, 28, 64, *same)  # 196 tiles
    assert not winograd.applies(1, 28, 28, 32, *same)  # too few channels
    assert not winograd.applies(1, 27, 26, 64, *same)  # 182 tiles
    assert winograd.applies(1, 13, 13, 128, *same)  # 49 tiles over 128 channels
    assert winograd.applies(1, 14, 14, 256, *same)
    assert not winograd.applies(1, 13, 13, 64, *same)  # 49 tiles need 128 channels
    assert not winograd.applies(1, 13, 11, 256, *same)  # 42 tiles
    assert not winograd.applies(1, 7, 7, 512, *same)  # 16 tiles
    for i, other in enumerate([(5, 5), (2, 2), (0, 0), (2, 2)]):
        changed = list(same)
        changed[i] = other
        assert not winograd.applies(16, 14, 14, 64, *changed)


def test_the_environment_turns_it_off(monkeypatch):
    same = ((3, 3), (1, 1), (1, 1), (1, 1))
    assert winograd.applies(8, 14, 14, 64, *same)
    monkeypatch.setenv("BREWNET_WINOGRAD", "0")
    assert not winograd.applies(8, 14, 14, 64, *same)
    assert not winograd.applies(8, 14, 14, 64, (5, 5), (1, 1), (2, 2), (1, 1))


def test_5x5_pad_2_from_batch_4_and_16_channels():
    same = ((5, 5), (1, 1), (2, 2), (1, 1))
    assert winograd.applies(4, 8, 8, 16, *same)
    assert not winograd.applies(3, 32, 32, 64, *same)
    assert not winograd.applies(100, 32, 32, 3, *same)  # CIFAR-10's first layer
    assert not winograd.applies(16, 16, 16, 32, (5, 5), (1, 1), (1, 1), (1, 1))
    assert not winograd.applies(16, 16, 16, 32, (5, 5), (2, 2), (2, 2), (1, 1))
    assert not winograd.applies(16, 16, 16, 32, (5, 5), (1, 1), (2, 2), (2, 2))


CONV = """
layer {{ name: "data" type: "Input" top: "data"
        input_param {{ shape {{ dim: {n} dim: {c} dim: {h} dim: {w} }} }} }}
layer {{ name: "{kind}" type: "{kind}" bottom: "data" top: "out"
        convolution_param {{ num_output: {m} kernel_size: {r} pad: {p} group: {group}
                            weight_filler {{ type: "gaussian" std: 0.1 }}
                            bias_filler {{ type: "gaussian" std: 0.1 }} }} }}
"""


def _train(text, winograd_on, monkeypatch):
    """The top, the bottom gradient and the parameter gradients after forward and backward
    of a TRAIN net from ``text``, Winograd on or off (the im2col GEMMs)."""
    from google.protobuf import text_format

    import brewnet
    from brewnet.proto import caffe_pb2

    if not winograd_on:
        monkeypatch.setattr(winograd, "applies", lambda *args: False)
    brewnet.set_random_seed(4)
    param = caffe_pb2.NetParameter(force_backward=True)
    text_format.Parse(text, param)
    net = brewnet.Net(param, brewnet.TRAIN)
    rng = np.random.default_rng(5)
    net.blobs["data"].data[...] = rng.standard_normal(net.blobs["data"].shape)
    net.forward()
    net.blobs["out"].diff[...] = rng.standard_normal(net.blobs["out"].shape)
    net.backward()
    layer = net.layers[1]
    return [net.blobs["out"].data.copy(), net.blobs["data"].diff.copy(),
            *(b.diff.copy() for b in layer.blobs)]


@pytest.mark.parametrize("kind", ["Convolution", "Deconvolution"])
@pytest.mark.parametrize("r, n, c, m, h, w, group", [
    (5, 4, 16, 24, 9, 8, 1),  # CIFAR-10's layers, odd height
    (5, 5, 32, 32, 6, 6, 2),
    (3, 4, 8, 12, 7, 10, 1),  # ResNet's
    (3, 6, 16, 8, 5, 5, 4)])
def test_a_training_layer_through_winograd_equals_its_im2col_gemms(
        monkeypatch, kind, r, n, c, m, h, w, group):
    """Forward (a Deconvolution's is the transposed convolution, a convolution's bottom
    gradient) and backward of a "same" stride-1 layer of batch 4 or more, with Winograd (its
    forward, its bottom gradient: the top gradient convolved with the flipped kernels, and
    its weight gradient by F(r x r, 2x2)) and with the im2col GEMMs it replaces, which other
    tests check against numerical gradients: equal up to the transforms' rounding, 5x5's
    coarser (3e-5 of the largest value)."""
    from brewnet import kernels

    if not kernels.enabled(np):
        pytest.skip("Winograd runs with the compiled kernels only")
    text = CONV.format(n=n, c=c, h=h, w=w, kind=kind, m=m, r=r, p=r // 2, group=group)
    calls = []
    for name in ("forward_affine", "weight_grad"):
        original = getattr(winograd, name)
        monkeypatch.setattr(winograd, name, lambda *args, name=name, original=original:
                            calls.append(name) or original(*args))
    fast = _train(text, True, monkeypatch)
    # A Convolution's forward, bottom and weight gradients; a Deconvolution's forward (its
    # gradients, a forward convolution and its weight gradient, run as im2col GEMMs).
    assert sorted(calls) == (["forward_affine"] * 2 + ["weight_grad"] if kind == "Convolution"
                             else ["forward_affine"])
    plain = _train(text, False, monkeypatch)
    tolerance = 1e-5 if r == 3 else 3e-5
    for got, want in zip(fast, plain, strict=True):
        assert np.abs(got - want).max() <= tolerance * np.abs(want).max()


@pytest.mark.parametrize("r, c, m", [(5, 16, 24), (3, 64, 64)])
def test_split_over_the_cores_equals_one_core(two_blas_threads, monkeypatch, r, c, m):
    """Two threads (each its own samples for the transforms and GEMMs, its own output
    channels for the filters' transforms and the weight gradient's way back to the taps)
    give one thread's top and gradients to float32 rounding: the GEMMs' column counts
    differ with the ranges, and OpenBLAS rounds with them; weight gradients add one
    partial sum per thread, which the 5x5 way back to the taps (entries up to 16) weighs
    more. A wrong range is off by whole values."""
    from brewnet import kernels

    if not kernels.enabled(np):
        pytest.skip("Winograd runs with the compiled kernels only")
    text = CONV.format(n=6, c=c, h=9, w=10, kind="Convolution", m=m, r=r, p=r // 2, group=1)
    results = []
    for split in ("0", "1"):
        monkeypatch.setenv("BREWNET_BATCH_SPLIT", split)
        results.append(_train(text, True, monkeypatch))
    tolerance = 1e-5 if r == 3 else 2e-5
    for got, want in zip(results[1], results[0], strict=True):
        assert np.abs(got - want).max() <= tolerance * np.abs(want).max()


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("c, m, group", [(128, 128, 1), (32, 48, 2)])
def test_weight_gradient_over_several_chunks_equals_one_chunk(monkeypatch, threads, c, m,
                                                              group):
    """A weight gradient summed over chunks of one sample (the first chunk's products written,
    later ones added: sgemm's beta 1 with one group, a product stack with groups) equals the
    one-chunk sum to float32 rounding, one BLAS thread or two (each summing its own
    samples); a chunk lost or counted twice would be off by a quarter of the total."""
    from brewnet import cores, kernels

    if not kernels.enabled(np):
        pytest.skip("Winograd runs with the compiled kernels only")
    rng = np.random.default_rng(6)
    x = rng.standard_normal((4, c, 16, 16)).astype(np.float32)
    dy = rng.standard_normal((4, m, 16, 16)).astype(np.float32)
    before = cores.blas_threads() or 1
    cores.set_blas_threads(threads)
    try:
        grads = []
        for budget in (1 << 30, 1):
            monkeypatch.setattr(winograd, "_CHUNK_BYTES_GRAD", budget)
            grads.append(np.full((m, c // group, 3, 3), 0.5, np.float32))
            with cores.sharing(4):
                winograd.weight_grad(np, x, dy, group, grads[-1])
    finally:
        cores.set_blas_threads(before)
    assert np.abs(grads[1] - grads[0]).max() <= 1e-5 * np.abs(grads[0]).max()
    assert np.abs(grads[0] - 0.5).max() > 10  # the sums are there
