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


def jpeg(hwc: np.ndarray, **options) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(hwc).save(buf, format="JPEG", quality=90, **options)
    return buf.getvalue()


def _smooth(channels: int) -> np.ndarray:
    """A 40x48 picture with gradients and grain, so chroma subsampling and the IDCT matter."""
    rows, cols = np.mgrid[0:40, 0:48]
    grain = np.random.default_rng(5).integers(0, 40, (40, 48, 3))
    pixels = np.stack([rows * 5, cols * 4, (rows + cols) * 3], axis=-1) + grain
    pixels = pixels.clip(0, 255).astype(np.uint8)
    return pixels if channels == 3 else pixels[:, :, 1]


def _jpeg_cases() -> list[tuple[bytes, bool | None]]:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° to display": neither decoder applies it
    colour = _smooth(3)
    files = [jpeg(colour), jpeg(colour, subsampling=0), jpeg(_smooth(1)),
             jpeg(colour, exif=exif.tobytes())]
    return [(f, is_color) for f in files for is_color in (True, None)]


def test_opencv_decodes_jpeg_as_pillow_does(monkeypatch):
    """OpenCV (Caffe's decoder, which releases the GIL) decodes complete JPEG files in colour
    or in their own kind, and gives Pillow's pixels exactly: 4:2:0 and 4:4:4 colour, gray,
    and a file whose EXIF orientation both ignore."""
    cv2 = pytest.importorskip("cv2")
    calls = []
    real = cv2.imdecode
    monkeypatch.setattr(cv2, "imdecode", lambda *a: calls.append(1) or real(*a))
    cases = _jpeg_cases()
    got = [decode_image(data, is_color) for data, is_color in cases]
    assert len(calls) == len(cases)
    monkeypatch.setattr("brewnet.data.image.opencv_module", lambda: None)
    for (data, is_color), pixels in zip(cases, got, strict=True):
        want = decode_image(data, is_color)
        assert pixels.shape == want.shape and pixels.tobytes() == want.tobytes()
    assert len(calls) == len(cases)


def test_opencv_leaves_other_cases_to_pillow(monkeypatch):
    """Truncated JPEGs still fail (libjpeg would warn and return a partial image), grayscale
    from colour keeps Pillow's luma, PNG stays with Pillow; BREWNET_IMAGE_DECODER=pillow
    turns OpenCV off."""
    cv2 = pytest.importorskip("cv2")
    from brewnet.data import image

    calls = []
    real = cv2.imdecode
    monkeypatch.setattr(cv2, "imdecode", lambda *a: calls.append(1) or real(*a))
    data = jpeg(_smooth(3))
    with pytest.raises(DataError, match="pic.jpg cannot be decoded"):
        decode_image(data[: len(data) // 2], True, what="pic.jpg")
    luma = np.asarray(Image.open(io.BytesIO(data)).convert("L"))
    np.testing.assert_array_equal(decode_image(data, is_color=False), luma[None])
    decode_image(png(RGB), is_color=True)
    assert calls == []
    monkeypatch.setenv("BREWNET_IMAGE_DECODER", "pillow")
    image.opencv_module.cache_clear()
    try:
        decode_image(data, is_color=True)
        assert calls == []
    finally:
        monkeypatch.delenv("BREWNET_IMAGE_DECODER")
        image.opencv_module.cache_clear()
