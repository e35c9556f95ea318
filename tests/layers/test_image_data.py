"""ImageData end to end on tiny PNG files the tests write: values, order, shuffle, errors,
workers."""

import gc
import threading

import numpy as np
import pytest

from brewnet import rng
from brewnet.errors import NetError
from brewnet.proto import caffe_pb2
from tests.gradcheck import make_layer, setup_layer

Image = pytest.importorskip("PIL.Image")

COUNT = 5
IMAGES = np.random.default_rng(11).integers(0, 256, size=(COUNT, 4, 6, 3), dtype=np.uint8)
LABELS = [3, 1, 4, 1, 5]


def bgr(hwc):
    return hwc[:, :, ::-1].transpose(2, 0, 1).astype(np.float32)


@pytest.fixture
def listing(tmp_path):
    """A folder of PNGs img<i>.png and a list file 'img<i>.png label' (paths relative)."""
    (tmp_path / "imgs").mkdir()
    for i, img in enumerate(IMAGES):
        Image.fromarray(img).save(tmp_path / "imgs" / f"img{i}.png")
    source = tmp_path / "list.txt"
    source.write_text("".join(f"img{i}.png {lbl}\n" for i, lbl in enumerate(LABELS)))
    return source, str(tmp_path / "imgs") + "/"


def image_layer(source, root, extra="", transform="", phase=caffe_pb2.TRAIN):
    return make_layer(f'name: "img" type: "ImageData" image_data_param {{ source: "{source}" '
                      f'root_folder: "{root}" {extra} }} transform_param {{ {transform} }}',
                      phase)


def forward_batches(layer, top, count):
    out = []
    for _ in range(count):
        layer.forward([], top)
        out.append((top[0].data.copy(), top[1].data.copy()))
    return out


def test_values_labels_and_wrap_around(listing):
    """Tops are (N, 3, H, W) BGR pixels × scale and float labels, read in list order and
    wrapping around after the last line."""
    layer = image_layer(*listing, "batch_size: 3", "scale: 0.5")
    top = setup_layer(layer, [], 2)
    assert top[0].shape == [3, 3, 4, 6] and top[1].shape == [3]
    (d0, l0), (d1, l1) = forward_batches(layer, top, 2)
    order = [0, 1, 2, 3, 4, 0]
    expected = np.stack([bgr(IMAGES[i]) for i in order]) * np.float32(0.5)
    np.testing.assert_array_equal(np.concatenate([d0, d1]), expected)
    assert np.concatenate([l0, l1]).tolist() == [LABELS[i] for i in order]
    assert d0.dtype == np.float32


def test_resize_matches_pillow_bilinear(listing):
    """new_height/new_width resize every image to exactly that size, bilinearly."""
    layer = image_layer(*listing, "batch_size: 2 new_height: 9 new_width: 5")
    top = setup_layer(layer, [], 2)
    assert top[0].shape == [2, 3, 9, 5]
    layer.forward([], top)
    for k in range(2):
        ref = np.asarray(Image.fromarray(IMAGES[k]).resize((5, 9), Image.BILINEAR))
        np.testing.assert_array_equal(top[0].data[k], bgr(ref))


def test_grayscale(listing):
    """is_color: false gives 1 channel, the images' gray values."""
    layer = image_layer(*listing, "batch_size: 2 is_color: false")
    top = setup_layer(layer, [], 2)
    assert top[0].shape == [2, 1, 4, 6]
    layer.forward([], top)
    for k in range(2):
        gray = np.asarray(Image.fromarray(IMAGES[k]).convert("L"), dtype=np.float32)
        np.testing.assert_array_equal(top[0].data[k, 0], gray)


def test_transform_crop_and_mean(listing):
    """transform_param applies as in the Data layer: mean_value subtracted, centre crop in
    TEST."""
    layer = image_layer(*listing, "batch_size: 1", "crop_size: 2 mean_value: 10",
                        phase=caffe_pb2.TEST)
    top = setup_layer(layer, [], 2)
    assert top[0].shape == [1, 3, 2, 2]
    layer.forward([], top)
    np.testing.assert_array_equal(top[0].data[0], bgr(IMAGES[0])[:, 1:3, 2:4] - 10)


def test_shuffle_is_a_permutation_and_seeded(listing):
    """shuffle reads every line once per pass in a random order; a fixed seed repeats it."""
    def run():
        rng.set_random_seed(5)
        layer = image_layer(*listing, "batch_size: 5 shuffle: true")
        top = setup_layer(layer, [], 2)
        return forward_batches(layer, top, 3)

    first, again = run(), run()
    for (d, lab), (d2, lab2) in zip(first, again, strict=True):
        np.testing.assert_array_equal(d, d2)
        np.testing.assert_array_equal(lab, lab2)
    for d, lab in first:
        seen = sorted(int(np.flatnonzero([np.array_equal(x, bgr(im)) for im in IMAGES])[0])
                      for x in d)
        assert seen == list(range(COUNT))
        assert sorted(lab.tolist()) == sorted(LABELS)
    orders = [tuple(lab.tolist()) for _, lab in first]
    assert len(set(orders)) > 1 or orders[0] != tuple(LABELS)


def test_seek_batch_resumes_exactly(listing):
    """seek_batch(k) makes the next forward equal batch k of an uninterrupted run."""
    rng.set_random_seed(9)
    layer = image_layer(*listing, "batch_size: 2 shuffle: true", "mirror: true")
    top = setup_layer(layer, [], 2)
    run = forward_batches(layer, top, 4)
    layer.seek_batch(2)
    (d, lab), = forward_batches(layer, top, 1)
    np.testing.assert_array_equal(d, run[2][0])
    np.testing.assert_array_equal(lab, run[2][1])


def test_rand_skip_starts_within_list(listing):
    """rand_skip starts reading at a random line below rand_skip, then in order."""
    rng.set_random_seed(1)
    layer = image_layer(*listing, "batch_size: 5 rand_skip: 4")
    top = setup_layer(layer, [], 2)
    layer.forward([], top)
    start = layer.start
    assert 0 <= start < 4
    assert top[1].data.tolist() == [LABELS[(start + i) % COUNT] for i in range(COUNT)]


def test_errors_name_layer_and_path(listing, tmp_path):
    """A missing list file, a missing image or images of different sizes are NetErrors
    naming the layer and the path."""
    source, root = listing
    with pytest.raises(NetError, match=r"img.*cannot open the image list '.*nothere.txt'"):
        setup_layer(image_layer(tmp_path / "nothere.txt", root, "batch_size: 1"), [], 2)
    bad = tmp_path / "bad.txt"
    bad.write_text("img0.png 1\nghost.png 2\n")
    layer = image_layer(bad, root, "batch_size: 2")
    top = setup_layer(layer, [], 2)
    with pytest.raises(NetError, match=r"img.*image '.*ghost.png' cannot be read"):
        layer.forward([], top)
    Image.fromarray(IMAGES[0][:3]).save(tmp_path / "imgs" / "small.png")
    mixed = tmp_path / "mixed.txt"
    mixed.write_text("img0.png 1\nsmall.png 2\n")
    layer = image_layer(mixed, root, "batch_size: 2")
    top = setup_layer(layer, [], 2)
    with pytest.raises(NetError, match=r"image '.*small.png' is 3×6×3 .* 4×6×3"):
        layer.forward([], top)
    layer = image_layer(mixed, root, "batch_size: 2 new_height: 4 new_width: 6")
    top = setup_layer(layer, [], 2)
    layer.forward([], top)  # resizing makes the sizes agree
    with pytest.raises(NetError, match="new_height and new_width"):
        setup_layer(image_layer(source, root, "new_height: 3"), [], 2)


def test_missing_pillow_message(listing, no_pillow):
    """Without Pillow, setup is a NetError naming the layer and pip install 'brewnet[image]'."""
    with pytest.raises(NetError, match=r"img.*needs Pillow .*pip install 'brewnet\[image\]'"):
        setup_layer(image_layer(*listing, "batch_size: 1"), [], 2)


def test_same_batches_for_any_worker_count(listing, monkeypatch):
    """ImageData decodes with the Data layer's workers: 1 and 3 (BREWNET_DATA_WORKERS) give
    bitwise the same shuffled, cropped and mirrored batches, and both close their threads."""
    def run(workers):
        monkeypatch.setenv("BREWNET_DATA_WORKERS", str(workers))
        rng.set_random_seed(4)
        layer = image_layer(*listing, "batch_size: 4 shuffle: true",
                            "crop_size: 3 mirror: true")
        try:
            top = setup_layer(layer, [], 2)
            return forward_batches(layer, top, 4)
        finally:
            layer.close()

    for (d, lab), (d2, lab2) in zip(run(1), run(3), strict=True):
        assert d.tobytes() == d2.tobytes() and lab.tobytes() == lab2.tobytes()
    gc.collect()  # earlier tests' unclosed layers close when collected
    assert not [t for t in threading.enumerate() if t.name.startswith("brewnet-data")]


def test_first_error_in_list_order_with_workers(listing, tmp_path, monkeypatch):
    """With 2 workers a wrong size before a missing file is the error raised, as reading the
    list in order meets it."""
    _, root = listing
    Image.fromarray(IMAGES[0][:3]).save(tmp_path / "imgs" / "small.png")
    mixed = tmp_path / "mixed.txt"
    mixed.write_text("img0.png 1\nsmall.png 2\nimg1.png 3\nghost.png 4\n")
    monkeypatch.setenv("BREWNET_DATA_WORKERS", "2")
    layer = image_layer(mixed, root, "batch_size: 4")
    try:
        top = setup_layer(layer, [], 2)
        with pytest.raises(NetError, match=r"image '.*small.png' is 3×6×3"):
            layer.forward([], top)
    finally:
        layer.close()

