"""brewnet.coord_map: Caffe's coordinate maps between NetSpec tops and the Crop layers they
define, checked against the crop offsets of BVLC's published FCN nets and against forward
passes whose outputs show where each input pixel landed."""

import numpy as np
import pytest

from brewnet import coord_map as cm
from brewnet.errors import BrewnetError
from brewnet.net import TEST, Net
from brewnet.netspec import NetSpec
from brewnet.netspec import layers as L
from brewnet.netspec import params as P


def conv_relu(bottom, nout, ks=3, pad=1):
    conv = L.Convolution(bottom, kernel_size=ks, num_output=nout, pad=pad)
    return conv, L.ReLU(conv, in_place=True)


def max_pool(bottom):
    return L.Pooling(bottom, pool=P.Pooling.MAX, kernel_size=2, stride=2)


def upsample(bottom, factor):
    return L.Deconvolution(bottom, convolution_param=dict(
        num_output=21, kernel_size=2 * factor, stride=factor, bias_term=False))


def fcn_vgg16():
    """The VGG16 trunk of FCN (fcn.berkeleyvision.org's net.py): conv1_1 pads by 100."""
    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 3, 500, 500]))
    top = n.data
    for stage, convs in enumerate((2, 2, 3, 3, 3), start=1):
        for k in range(1, convs + 1):
            pad = 100 if (stage, k) == (1, 1) else 1
            n[f"conv{stage}_{k}"], top = conv_relu(top, 64, pad=pad)
        n[f"pool{stage}"] = top = max_pool(top)
    n.fc6, n.relu6 = conv_relu(n.pool5, 4096, ks=7, pad=0)
    n.fc7, n.relu7 = conv_relu(n.relu6, 4096, ks=1, pad=0)
    n.score_fr = L.Convolution(n.relu7, num_output=21, kernel_size=1)
    return n


def crop_fields(top):
    return top.fn.params["crop_param"]


def test_fcn32s_crop_offset_is_19():
    """FCN-32s: crop(upscore, data) gives offset 19, as in BVLC's fcn32s prototxt."""
    n = fcn_vgg16()
    n.upscore = upsample(n.score_fr, 32)
    n.score = cm.crop(n.upscore, n.data)
    assert crop_fields(n.score) == {"axis": 2, "offset": [19]}
    axis, scale, shift = cm.coord_map_from_to(n.upscore, n.data)
    assert axis == 1 and scale.tolist() == [1.0] and shift.tolist() == [-19.0]


def test_fcn16s_and_fcn8s_crop_offsets():
    """FCN-16s crops score_pool4 by 5 and upscore16 by 27; FCN-8s crops score_pool3 by 9 and
    upscore8 by 31 (the offsets in BVLC's fcn16s / fcn8s prototxts)."""
    n = fcn_vgg16()
    n.upscore2 = upsample(n.score_fr, 2)
    n.score_pool4 = L.Convolution(n.pool4, num_output=21, kernel_size=1)
    n.score_pool4c = cm.crop(n.score_pool4, n.upscore2)
    n.fuse_pool4 = L.Eltwise(n.upscore2, n.score_pool4c, operation=P.Eltwise.SUM)
    assert crop_fields(n.score_pool4c)["offset"] == [5]
    assert crop_fields(cm.crop(upsample(n.fuse_pool4, 16), n.data))["offset"] == [27]
    n.upscore_pool4 = upsample(n.fuse_pool4, 2)
    n.score_pool3 = L.Convolution(n.pool3, num_output=21, kernel_size=1)
    n.score_pool3c = cm.crop(n.score_pool3, n.upscore_pool4)
    n.fuse_pool3 = L.Eltwise(n.upscore_pool4, n.score_pool3c, operation=P.Eltwise.SUM)
    assert crop_fields(n.score_pool3c)["offset"] == [9]
    assert crop_fields(cm.crop(upsample(n.fuse_pool3, 8), n.data))["offset"] == [31]


def test_layer_maps():
    """Per layer: conv maps x to x/stride + (pad - (k-1)·dilation/2)/stride, deconvolution is
    its inverse, a crop shifts by -offset one axis before its crop axis, element-wise layers
    are (None, 1, 0)."""
    data = L.Input(shape=dict(dim=[1, 1, 9, 9]))
    conv = L.Convolution(data, num_output=1, kernel_size=3, stride=2, pad=2, dilation=2)
    axis, scale, shift = cm.coord_map(conv.fn)
    assert axis == 1 and scale.tolist() == [0.5] and shift.tolist() == [0.0]
    deconv = L.Deconvolution(data, convolution_param=dict(num_output=1, kernel_size=4,
                                                          stride=2, pad=1))
    assert [x.tolist() for x in cm.coord_map(deconv.fn)[1:]] == [[2.0], [0.5]]
    pool = L.Pooling(data, kernel_size=3, stride=2)
    assert [x.tolist() for x in cm.coord_map(pool.fn)[1:]] == [[0.5], [-0.5]]
    crop = L.Crop(data, data, axis=2, offset=[1, 3])
    axis, scale, shift = cm.coord_map(crop.fn)
    assert axis == 1 and scale.tolist() == [1, 1] and shift.tolist() == [-1, -3]
    assert cm.coord_map(L.ReLU(data).fn) == (None, 1.0, 0.0)


def test_both_parameter_spellings_and_legacy_hw_fields_agree():
    """kernel_size=3 and convolution_param=dict(kernel_size=3) are the same layer, and the
    legacy pad_h/pad_w fields give one value per spatial axis."""
    data = L.Input(shape=dict(dim=[1, 1, 9, 9]))
    a = L.Convolution(data, num_output=1, kernel_size=3, pad=1)
    b = L.Convolution(data, convolution_param=dict(num_output=1, kernel_size=3, pad=1))
    assert [x.tolist() for x in cm.coord_map(a.fn)[1:]] == \
        [x.tolist() for x in cm.coord_map(b.fn)[1:]]
    hw = L.Convolution(data, num_output=1, kernel_h=3, kernel_w=5, pad_h=0, pad_w=2)
    assert cm.coord_map(hw.fn)[2].tolist() == [-1.0, 0.0]


def test_compose_and_inverse():
    """compose multiplies scales and scales the later shift; a map after its inverse is the
    identity; two different axes are an AxisMismatchException."""
    m = (1, np.array([0.5]), np.array([-1.5]))
    ax, a, b = cm.compose(m, cm.inverse(m))
    assert ax == 1 and a.tolist() == [1.0] and b.tolist() == [0.0]
    with pytest.raises(cm.AxisMismatchException):
        cm.compose(m, (2, np.array([1.0]), np.array([0.0])))
    assert issubclass(cm.AxisMismatchException, BrewnetError)


@pytest.mark.parametrize("down", ["conv", "pool"])
def test_crop_aligns_forward_output_with_input(down):
    """Forward check: a stride-2 convolution (delta kernel, pad 3) or a 1×1 stride-2 pooling,
    a ReLU, then a stride-2 deconvolution with a delta kernel puts input pixel x at 2·(x/2)
    shifted; crop(up, data) must cut the output so that every even pixel equals the input
    pixel at the same coordinates (the odd ones were never written)."""
    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 1, 16, 16]))
    if down == "conv":
        n.down = L.Convolution(n.data, num_output=1, kernel_size=3, stride=2, pad=3,
                               bias_term=False)
    else:
        n.down = L.Pooling(n.data, pool=P.Pooling.MAX, kernel_size=1, stride=2)
    n.relu = L.ReLU(n.down, in_place=True)
    n.up = L.Deconvolution(n.relu, convolution_param=dict(num_output=1, kernel_size=3,
                                                          stride=2, bias_term=False))
    n.out = cm.crop(n.up, n.data)
    expected_offset = 3 if down == "conv" else 1
    assert crop_fields(n.out)["offset"] == [expected_offset]
    net = Net(n.to_proto(), TEST)
    delta = np.zeros((1, 1, 3, 3), np.float32)
    delta[0, 0, 1, 1] = 1
    net.params["up"][0].data[...] = delta
    if down == "conv":
        net.params["down"][0].data[...] = delta
    image = np.random.default_rng(0).uniform(0.5, 1.5, (1, 1, 16, 16)).astype(np.float32)
    out = net.forward(data=image)["out"]
    assert out.shape == image.shape
    np.testing.assert_array_equal(out[..., ::2, ::2], image[..., ::2, ::2])
    assert not out[..., 1::2, :].any() and not out[..., :, 1::2].any()


def test_errors_for_paths_that_cannot_be_mapped():
    """No common ancestor, a layer without a map on the only path, a scale mismatch, a
    fractional offset and a negative offset are each a BrewnetError naming the problem."""
    a = L.Input(shape=dict(dim=[1, 1, 8, 8]))
    b = L.Input(shape=dict(dim=[1, 1, 8, 8]))
    with pytest.raises(BrewnetError, match="share no input"):
        cm.coord_map_from_to(a, b)
    ip = L.InnerProduct(a, num_output=4)
    with pytest.raises(BrewnetError, match="share no input"):
        cm.crop(L.ReLU(ip), a)
    pooled = L.Pooling(a, kernel_size=2, stride=2)
    with pytest.raises(BrewnetError, match="scales differ"):
        cm.crop(pooled, a)
    even_kernel = L.Convolution(a, num_output=1, kernel_size=2)  # centred between pixels
    with pytest.raises(BrewnetError, match="not a whole number"):
        cm.crop(a, even_kernel)
    padded = L.Convolution(a, num_output=1, kernel_size=3, pad=0)
    with pytest.raises(BrewnetError, match="negative offset"):
        cm.crop(padded, a)
    with pytest.raises(cm.UndefinedMapException, match="global pooling"):
        cm.coord_map(L.Pooling(a, global_pooling=True).fn)


def test_axis_mismatch_along_a_path():
    """A crop over axis 3 (map axis 2) after a convolution over axis 1 is an
    AxisMismatchException, as in pycaffe."""
    a = L.Input(shape=dict(dim=[1, 1, 8, 8]))
    conv = L.Convolution(a, num_output=1, kernel_size=1)
    cropped = L.Crop(conv, conv, axis=3, offset=[0])
    with pytest.raises(cm.AxisMismatchException):
        cm.coord_map_from_to(cropped, a)
