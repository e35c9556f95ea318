"""DataTransformer against a direct per-pixel port of Caffe's DataTransformer::Transform."""

import itertools

import numpy as np
import pytest

from brewnet.data.transform import DataTransformer, load_mean_file
from brewnet.errors import DataError
from brewnet.proto import caffe_pb2

TRAIN, TEST = caffe_pb2.TRAIN, caffe_pb2.TEST


def reference(img, crop, h_off, w_off, mirror, scale, mean=None, mean_values=()):
    """Caffe's loop: index the uncropped image (and mean) at (h_off + h, w_off + w)."""
    c_n, height, width = img.shape
    out_h, out_w = (crop, crop) if crop else (height, width)
    out = np.zeros((c_n, out_h, out_w), np.float32)
    scale = np.float32(scale)
    for c in range(c_n):
        for h in range(out_h):
            for w in range(out_w):
                x = np.float32(img[c, h_off + h, w_off + w])
                if mean is not None:
                    x = (x - mean[c, h_off + h, w_off + w]) * scale
                elif mean_values:
                    m = mean_values[0] if len(mean_values) == 1 else mean_values[c]
                    x = (x - np.float32(m)) * scale
                else:
                    x = x * scale
                out[c, h, out_w - 1 - w if mirror else w] = x
    return out


def transformer(phase=TRAIN, **fields):
    param = caffe_pb2.TransformationParameter()
    for name, value in fields.items():
        if name == "mean_value":
            param.mean_value.extend(value)
        else:
            setattr(param, name, value)
    return DataTransformer(param, phase, "layer 't'")


def run(t, data, seed=0):
    shape = (len(data), *t.output_shape(data.shape[1:]))
    out = np.full(shape, np.nan, np.float32)
    t(data, out, np.random.default_rng(seed))
    return out


def batch(n=6, shape=(2, 5, 6), seed=3):
    return np.random.default_rng(seed).integers(0, 256, size=(n, *shape), dtype=np.uint8)


def write_mean(path, mean):
    blob = caffe_pb2.BlobProto()
    blob.shape.dim.extend((1, *mean.shape))
    blob.data.extend(mean.ravel().tolist())
    path.write_bytes(blob.SerializeToString())
    return str(path)


def test_scale_only():
    """No crop/mirror/mean: x·scale in float32, bit for bit."""
    data = batch()
    out = run(transformer(scale=0.00390625), data)
    for x, y in zip(data, out, strict=True):
        np.testing.assert_array_equal(y, reference(x, 0, 0, 0, False, 0.00390625))


@pytest.mark.parametrize("values", [[10.5, 100.25], [33.0]])
def test_mean_value(values):
    """(x − mean_value[c])·scale, with one value shared by all channels or one per channel."""
    data = batch()
    out = run(transformer(scale=0.5, mean_value=values), data)
    for x, y in zip(data, out, strict=True):
        np.testing.assert_array_equal(y, reference(x, 0, 0, 0, False, 0.5, mean_values=values))


def test_mean_file_before_centre_crop_in_test(tmp_path):
    """TEST crops at the centre (rounded down) and the mean is taken from the uncropped
    position."""
    mean = np.random.default_rng(1).uniform(0, 255, size=(2, 5, 6)).astype(np.float32)
    path = write_mean(tmp_path / "mean.binaryproto", mean)
    data = batch()
    out = run(transformer(TEST, crop_size=3, scale=2.0, mean_file=path), data)
    assert out.shape == (6, 2, 3, 3)
    for x, y in zip(data, out, strict=True):
        np.testing.assert_array_equal(y, reference(x, 3, 1, 1, False, 2.0, mean=mean))


def test_legacy_mean_file_dims(tmp_path):
    """A mean saved with num/channels/height/width (no shape) loads as (C, H, W)."""
    blob = caffe_pb2.BlobProto(num=1, channels=1, height=2, width=2, data=[1, 2, 3, 4])
    (tmp_path / "m").write_bytes(blob.SerializeToString())
    np.testing.assert_array_equal(load_mean_file(str(tmp_path / "m")),
                                  np.array([[[1, 2], [3, 4]]], np.float32))


def test_mean_file_double_values_win(tmp_path):
    """A mean holding both float and double values uses the doubles, as Caffe's
    Blob::FromProto does (the one BlobProto reader weights and InfogainLoss use too)."""
    blob = caffe_pb2.BlobProto(data=[9, 9], double_data=[0.5, 1.5])
    blob.shape.dim.extend([1, 1, 1, 2])
    (tmp_path / "m").write_bytes(blob.SerializeToString())
    np.testing.assert_array_equal(load_mean_file(str(tmp_path / "m")),
                                  np.array([[[0.5, 1.5]]], np.float32))


def matches(x, y, crop, mirrors, **ref_kw):
    """The (h_off, w_off, mirror) choices under which the reference gives ``y``."""
    c, height, width = x.shape
    size_h, size_w = (crop, crop) if crop else (height, width)
    found = []
    for h_off, w_off, m in itertools.product(range(height - size_h + 1), range(width - size_w + 1),
                                             mirrors):
        if np.array_equal(y, reference(x, crop, h_off, w_off, m, **ref_kw)):
            found.append((h_off, w_off, m))
    return found


def test_random_crop_in_train(tmp_path):
    """TRAIN crops at a random offset within bounds, per image; mean from the uncropped
    position."""
    mean = np.random.default_rng(2).uniform(0, 255, size=(2, 5, 6)).astype(np.float32)
    path = write_mean(tmp_path / "mean.binaryproto", mean)
    data = batch(n=30)
    out = run(transformer(TRAIN, crop_size=3, scale=0.25, mean_file=path), data)
    offsets = set()
    for x, y in zip(data, out, strict=True):
        found = matches(x, y, 3, [False], scale=0.25, mean=mean)
        assert len(found) == 1
        offsets.add(found[0][:2])
    assert len(offsets) > 3  # 3×4 possible offsets; the choice varies between images


@pytest.mark.parametrize("phase", [TRAIN, TEST])
def test_mirror_flips_a_random_half(phase):
    """mirror flips images horizontally at random (Caffe draws it in both phases)."""
    data = batch(n=40)
    out = run(transformer(phase, mirror=True, mean_value=[7.0]), data)
    flips = []
    for x, y in zip(data, out, strict=True):
        found = matches(x, y, 0, [False, True], scale=1.0, mean_values=[7.0])
        assert len(found) == 1
        flips.append(found[0][2])
    assert 5 < sum(flips) < 35


def test_crop_and_mirror_together():
    """Crop then flip: column w of the output is column w_off + crop − 1 − w of the input."""
    data = batch(n=20)
    out = run(transformer(TRAIN, mirror=True, crop_size=4, scale=3.0), data, seed=9)
    for x, y in zip(data, out, strict=True):
        assert len(matches(x, y, 4, [False, True], scale=3.0)) == 1


def test_float_input():
    """float_data batches go through the same arithmetic."""
    data = np.random.default_rng(4).normal(size=(3, 1, 4, 4)).astype(np.float32)
    out = run(transformer(TEST, crop_size=2, mean_value=[0.5], scale=2.0), data)
    for x, y in zip(data, out, strict=True):
        np.testing.assert_array_equal(y, reference(x, 2, 1, 1, False, 2.0, mean_values=[0.5]))


def test_same_generator_same_result():
    """The randomness comes only from the Generator passed in."""
    data = batch(n=16)
    t = transformer(TRAIN, mirror=True, crop_size=3)
    np.testing.assert_array_equal(run(t, data, seed=5), run(t, data, seed=5))
    assert not np.array_equal(run(t, data, seed=5), run(t, data, seed=6))


def test_errors(tmp_path):
    """Bad settings are DataErrors that name the layer and the fix."""
    with pytest.raises(DataError, match="crop_size 7 is larger"):
        transformer(crop_size=7).output_shape((1, 5, 6))
    with pytest.raises(DataError, match="either 1 mean_value or as many as channels"):
        transformer(mean_value=[1, 2]).output_shape((3, 5, 6))
    path = write_mean(tmp_path / "m", np.zeros((1, 5, 6), np.float32))
    with pytest.raises(DataError, match="both mean_file and mean_value"):
        transformer(mean_file=path, mean_value=[1])
    with pytest.raises(DataError, match=r"mean_file image has shape \(1, 5, 6\)"):
        transformer(mean_file=path).output_shape((2, 5, 6))
    with pytest.raises(DataError, match="layer 't': mean_file '.*missing' cannot be read"):
        transformer(mean_file=str(tmp_path / "missing"))


def test_draws_flips_then_rows_then_columns_for_the_batch(tmp_path):
    """The random choices are drawn for the whole batch first, flips, then row offsets,
    then column offsets (so a seed gives the batches it gave before images were transformed
    one by one), and image i gets choice i whichever order the parts are transformed in."""
    mean = np.random.default_rng(1).uniform(0, 255, size=(2, 5, 6)).astype(np.float32)
    t = transformer(TRAIN, mirror=True, crop_size=3, scale=0.5,
                    mean_file=write_mean(tmp_path / "mean.binaryproto", mean))
    data = batch(n=8)
    gen = np.random.default_rng(4)
    flips = gen.integers(0, 2, size=8).astype(bool)
    rows, cols = gen.integers(0, 3, size=8), gen.integers(0, 4, size=8)
    out = run(t, data, seed=4)
    crops = t.draw(8, 5, 6, np.random.default_rng(4))
    backwards = np.empty_like(out)
    for i in range(8):
        np.testing.assert_array_equal(
            out[i], reference(data[i], 3, rows[i], cols[i], flips[i], 0.5, mean=mean))
    for start in (5, 2, 0):  # parts, last first, as a list of views
        stop = start + 3
        t.transform([x for x in data[start:stop]], backwards[start:stop],
                    crops.part(start, stop))
    assert backwards.tobytes() == out.tobytes()
