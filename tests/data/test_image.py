"""Image decoding to Caffe's layout: uint8 (C, H, W), BGR colour, bilinear resizing."""

import io

import numpy as np
import pytest

from brewnet.data.image import decode_image, image_is_color, read_image
from brewnet.errors import DataError

Image = pytest.importorskip("PIL.Image")


def png(hwc: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(hwc).save(buf, format="PNG")
    return buf.getvalue()


RGB = np.random.default_rng(0).integers(0, 256, size=(4, 5, 3), dtype=np.uint8)


def test_colour_is_bgr_chw():
    """Colour images decode to 3 planes in OpenCV's (Caffe's) order B, G, R."""
    out = decode_image(png(RGB), is_color=True)
    assert out.dtype == np.uint8 and out.shape == (3, 4, 5)
    for c, src in enumerate((2, 1, 0)):
        np.testing.assert_array_equal(out[c], RGB[:, :, src])


def test_grayscale_is_one_channel():
    """is_color false gives one channel: the file's gray values, or a colour file's luma."""
    gray = RGB[:, :, 0]
    np.testing.assert_array_equal(decode_image(png(gray), is_color=False), gray[None])
    luma = np.asarray(Image.fromarray(RGB).convert("L"))
    np.testing.assert_array_equal(decode_image(png(RGB), is_color=False), luma[None])
    np.testing.assert_array_equal(decode_image(png(gray), is_color=True),
                                  np.repeat(gray[None], 3, axis=0))


def test_resize_is_bilinear_to_exact_size():
    """new_height/new_width resize to exactly that size with bilinear interpolation."""
    out = decode_image(png(RGB), is_color=True, new_height=7, new_width=3)
    assert out.shape == (3, 7, 3)
    ref = np.asarray(Image.fromarray(RGB).resize((3, 7), Image.BILINEAR))
    np.testing.assert_array_equal(out, ref[:, :, ::-1].transpose(2, 0, 1))


def test_image_is_color():
    """Single-channel files count as gray (OpenCV's IMREAD_ANYCOLOR), others as colour."""
    assert image_is_color(png(RGB)) and not image_is_color(png(RGB[:, :, 0]))


def test_errors_name_what_failed(tmp_path):
    """Non-images, truncated files and missing files are DataErrors naming the image."""
    with pytest.raises(DataError, match="pic.png is not an image file"):
        decode_image(b"hello", True, what="pic.png")
    data = png(RGB)
    with pytest.raises(DataError, match="pic.png cannot be decoded"):
        decode_image(data[: len(data) - 30], True, what="pic.png")
    with pytest.raises(DataError, match=r"L: image '.*nope.png' cannot be read"):
        read_image(str(tmp_path / "nope.png"), True, what="L")


def test_missing_pillow_message(no_pillow):
    """Without Pillow the error names what needed it and says pip install 'brewnet[image]'."""
    with pytest.raises(DataError, match=r"pic needs Pillow .*pip install 'brewnet\[image\]'"):
        decode_image(png(RGB), True, what="pic")
