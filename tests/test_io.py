"""brewnet.io, pycaffe's caffe.io: protobuf conversions, image loading and resizing, the ten
crops of oversample and the Transformer's order of operations (caffe_facts.md §1, io.py)."""

import numpy as np
import pytest

from brewnet import io
from brewnet.errors import BrewnetError, DataError, WeightsError
from brewnet.proto import caffe_pb2


# ----------------------------------------------------------------------------------------
# protobuf records
# ----------------------------------------------------------------------------------------
def test_blobproto_to_array_legacy_and_shape_forms():
    """Legacy num/channels/height/width win when set; otherwise shape.dim; return_diff reads
    the gradients; the result is float32."""
    legacy = caffe_pb2.BlobProto(num=1, channels=2, height=1, width=3, data=range(6),
                                 diff=[-x for x in range(6)])
    a = io.blobproto_to_array(legacy)
    assert a.shape == (1, 2, 1, 3) and a.dtype == np.float32
    assert io.blobproto_to_array(legacy, return_diff=True)[0, 1, 0, 2] == -5
    shaped = caffe_pb2.BlobProto(shape=caffe_pb2.BlobShape(dim=[2, 3]), data=range(6))
    assert np.array_equal(io.blobproto_to_array(shaped), np.arange(6).reshape(2, 3))


def test_array_to_blobproto_round_trip():
    """array_to_blobproto sets shape.dim, data and (optionally) diff; a diff of another shape
    is refused."""
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    bp = io.array_to_blobproto(x, diff=2 * x)
    assert list(bp.shape.dim) == [2, 3, 4] and not bp.HasField("num")
    assert np.array_equal(io.blobproto_to_array(bp), x)
    assert np.array_equal(io.blobproto_to_array(bp, return_diff=True), 2 * x)
    with pytest.raises(BrewnetError, match="diff has shape"):
        io.array_to_blobproto(x, diff=x[0])


def test_blobprotovector_string_round_trip():
    """arraylist_to_blobprotovector_str and its inverse keep every array; garbage bytes are a
    WeightsError."""
    arrays = [np.ones((1, 3, 2, 2), np.float32), np.arange(5, dtype=np.float32)]
    data = io.arraylist_to_blobprotovector_str(arrays)
    assert isinstance(data, bytes)
    vec = caffe_pb2.BlobProtoVector.FromString(data)
    assert len(vec.blobs) == 2
    back = io.blobprotovector_str_to_arraylist(data)
    assert all(np.array_equal(a, b) for a, b in zip(arrays, back, strict=True))
    with pytest.raises(WeightsError):
        io.blobprotovector_str_to_arraylist(b"\xff\xff\xff")


def test_datum_conversions():
    """array_to_datum: uint8 as bytes, other types as float_data, label optional; datum_to_array
    inverts it; a non-3-d array is refused."""
    img = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    d = io.array_to_datum(img, label=7)
    assert d.data == img.tobytes() and not len(d.float_data) and d.label == 7
    assert (d.channels, d.height, d.width) == (2, 3, 4)
    assert np.array_equal(io.datum_to_array(d), img)
    f = io.array_to_datum(img.astype(np.float32) / 2)
    assert not f.data and len(f.float_data) == 24
    assert np.array_equal(io.datum_to_array(f), img / 2)
    with pytest.raises(ValueError):
        io.array_to_datum(np.zeros((2, 2)))


# ----------------------------------------------------------------------------------------
# images
# ----------------------------------------------------------------------------------------
def save(tmp_path, pixels, name="im.png"):
    """Write ``pixels`` as a PNG (Pillow picks the mode from the dtype and shape)."""
    Image = pytest.importorskip("PIL.Image")
    path = tmp_path / name
    Image.fromarray(pixels).save(path)
    return str(path)


def test_load_image_colour_gray_alpha(tmp_path):
    """load_image: H×W×3 RGB in [0, 1]; a gray file repeated on 3 channels; color=False gives
    skimage's rgb2gray luminance; alpha is dropped; 16-bit files scale by 65535."""
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    im = io.load_image(save(tmp_path, rgb))
    assert im.shape == (5, 7, 3) and im.dtype == np.float32
    np.testing.assert_allclose(im, rgb / 255, atol=1e-6)
    gray = io.load_image(save(tmp_path, rgb), color=False)
    assert gray.shape == (5, 7, 1)
    np.testing.assert_allclose(gray[:, :, 0], (rgb / 255) @ [0.2125, 0.7154, 0.0721],
                               atol=1e-5)
    g = rgb[:, :, 0]
    tiled = io.load_image(save(tmp_path, g, "g.png"))
    assert tiled.shape == (5, 7, 3) and np.allclose(tiled, (g / 255)[:, :, None])
    assert io.load_image(save(tmp_path, g, "g.png"), color=False).shape == (5, 7, 1)
    rgba = np.dstack([rgb, np.zeros((5, 7), np.uint8)])
    np.testing.assert_allclose(io.load_image(save(tmp_path, rgba, "a.png")), rgb / 255,
                               atol=1e-6)
    deep = (np.arange(35, dtype=np.uint16).reshape(5, 7) * 1000)
    np.testing.assert_allclose(io.load_image(save(tmp_path, deep, "d.png"),
                                             color=False)[:, :, 0], deep / 65535, atol=1e-6)


def test_load_image_errors(tmp_path):
    """A missing or non-image file is a DataError naming it."""
    pytest.importorskip("PIL")
    with pytest.raises(DataError, match="missing.png"):
        io.load_image(str(tmp_path / "missing.png"))
    (tmp_path / "junk.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match="junk.png"):
        io.load_image(str(tmp_path / "junk.png"))


def bilinear_reference(im, h, w):
    """Pixel-by-pixel bilinear resampling with centre alignment and clamped edges (the
    independent reference for resize_image)."""
    H, W = im.shape[:2]
    out = np.zeros((h, w) + im.shape[2:])
    for i in range(h):
        for j in range(w):
            y = min(max((i + 0.5) * H / h - 0.5, 0), H - 1)
            x = min(max((j + 0.5) * W / w - 0.5, 0), W - 1)
            y0, x0 = int(y), int(x)
            y1, x1 = min(y0 + 1, H - 1), min(x0 + 1, W - 1)
            dy, dx = y - y0, x - x0
            out[i, j] = ((1 - dy) * ((1 - dx) * im[y0, x0] + dx * im[y0, x1])
                         + dy * ((1 - dx) * im[y1, x0] + dx * im[y1, x1]))
    return out


@pytest.mark.parametrize("dims", [(9, 11), (3, 2), (6, 7), (1, 1)])
def test_resize_image_bilinear(dims):
    """resize_image (order 1) agrees with a pixel-by-pixel bilinear reference, up and down,
    any channel count; it returns float32."""
    im = np.random.default_rng(1).random((6, 7, 4))
    out = io.resize_image(im, dims)
    assert out.shape == (*dims, 4) and out.dtype == np.float32
    np.testing.assert_allclose(out, bilinear_reference(im, *dims), atol=1e-5)


def test_resize_image_nearest_constant_and_refusals():
    """Order 0 picks the nearest source pixel; a constant image stays constant; the same size
    is unchanged; orders other than 0 and 1 are refused."""
    im = np.arange(4, dtype=np.float32).reshape(2, 2, 1)
    assert io.resize_image(im, (4, 4), interp_order=0)[:, :, 0].tolist() == [
        [0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]]
    assert np.all(io.resize_image(np.full((5, 5, 3), 0.3), (8, 2)) == np.float32(0.3))
    assert np.array_equal(io.resize_image(im, (2, 2)), im)
    with pytest.raises(BrewnetError, match="interp_order 3"):
        io.resize_image(im, (3, 3), interp_order=3)


def test_resize_images_mixed_sizes():
    """resize_images stacks N images of any sizes at one size, each as resize_image would."""
    rng = np.random.default_rng(2)
    ims = [rng.random((5, 6, 3)), rng.random((8, 4, 3))]
    out = io.resize_images(ims, (4, 4))
    assert out.shape == (2, 4, 4, 3)
    for got, im in zip(out, ims, strict=True):
        np.testing.assert_array_equal(got, io.resize_image(im, (4, 4)))
    same = io.resize_images(np.stack([ims[0], ims[0]]), (3, 3))
    np.testing.assert_allclose(same[1], io.resize_image(ims[0], (3, 3)), atol=1e-6)


def test_oversample_layout():
    """oversample: per image the 4 corner crops (TL, TR, BL, BR), the centre crop at
    ((H-h)//2, (W-w)//2), then those five mirrored left-right; images one after another."""
    rng = np.random.default_rng(3)
    images = rng.random((2, 7, 9, 3)).astype(np.float32)
    crops = io.oversample(list(images), (4, 5))
    assert crops.shape == (20, 4, 5, 3) and crops.dtype == np.float32
    for n, im in enumerate(images):
        expected = [im[0:4, 0:5], im[0:4, 4:9], im[3:7, 0:5], im[3:7, 4:9], im[1:5, 2:7]]
        expected += [e[:, ::-1] for e in expected]
        for k, e in enumerate(expected):
            np.testing.assert_array_equal(crops[10 * n + k], e)
    with pytest.raises(BrewnetError, match="does not fit"):
        io.oversample(images, (8, 5))
    with pytest.raises(BrewnetError, match="different shapes"):
        io.oversample([images[0], images[1][:6]], (4, 5))


# ----------------------------------------------------------------------------------------
# Transformer
# ----------------------------------------------------------------------------------------
def configured(mean):
    t = io.Transformer({"data": (1, 3, 4, 5)})
    t.set_transpose("data", (2, 0, 1))
    t.set_channel_swap("data", (2, 1, 0))
    t.set_raw_scale("data", 255)
    t.set_mean("data", mean)
    t.set_input_scale("data", 0.5)
    return t


def test_transformer_order_of_operations():
    """preprocess: resize → transpose → channel swap → ×raw_scale → −mean → ×input_scale, as
    pycaffe; the caller's array is left alone; deprocess inverts it."""
    rng = np.random.default_rng(4)
    image = rng.random((4, 5, 3)).astype(np.float32)
    keep = image.copy()
    mean = np.array([10.0, 20.0, 30.0], np.float32)
    t = configured(mean)
    out = t.preprocess("data", image)
    expected = (image.transpose(2, 0, 1)[[2, 1, 0]] * 255 - mean[:, None, None]) * 0.5
    assert out.shape == (3, 4, 5) and out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=1e-5)
    assert np.array_equal(image, keep)
    np.testing.assert_allclose(t.deprocess("data", out), image, atol=1e-5)
    np.testing.assert_allclose(t.deprocess("data", out[None]), image, atol=1e-5)
    big = rng.random((8, 10, 3)).astype(np.float32)
    np.testing.assert_allclose(t.preprocess("data", big),
                               t.preprocess("data", io.resize_image(big, (4, 5))), atol=1e-4)


def test_transformer_batch_equals_one_by_one():
    """preprocess_batch gives each image's preprocess result, in one pass."""
    images = np.random.default_rng(5).random((3, 4, 5, 3)).astype(np.float32)
    t = configured(np.zeros(3, np.float32))
    batch = t.preprocess_batch("data", images)
    assert batch.shape == (3, 3, 4, 5) and batch.flags.c_contiguous
    for got, im in zip(batch, images, strict=True):
        np.testing.assert_allclose(got, t.preprocess("data", im), rtol=1e-6)


def test_transformer_mean_forms():
    """set_mean: per channel (K,), elementwise (K, H, W), a 2-d (H, W) mean for one channel,
    and an elementwise mean of another size resized to the input."""
    t = io.Transformer({"data": (1, 3, 4, 5), "gray": (2, 1, 4, 5)})
    t.set_mean("data", np.arange(3, dtype=np.float32))
    assert t.mean["data"].shape == (3, 1, 1)
    full = np.random.default_rng(6).random((3, 4, 5))
    t.set_mean("data", full)
    assert np.array_equal(t.mean["data"], full.astype(np.float32))
    t.set_mean("gray", np.ones((4, 5)))
    assert t.mean["gray"].shape == (1, 4, 5)
    t.set_mean("data", np.full((3, 8, 10), 2.0))
    assert t.mean["data"].shape == (3, 4, 5) and np.allclose(t.mean["data"], 2)
    with pytest.raises(BrewnetError, match="channels"):
        t.set_mean("data", np.zeros(4))


def test_transformer_refuses_bad_settings():
    """Unknown inputs, transposes that are not permutations of its axes and channel swaps of
    the wrong length are errors naming the input."""
    t = io.Transformer({"data": (1, 3, 4, 5)})
    with pytest.raises(BrewnetError, match="'label' is not one of"):
        t.set_raw_scale("label", 2)
    with pytest.raises(BrewnetError, match="permutation"):
        t.set_transpose("data", (0, 1))
    with pytest.raises(BrewnetError, match="one entry per channel"):
        t.set_channel_swap("data", (1, 0))
