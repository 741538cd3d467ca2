"""Tests for ganpipe.data: loaders, IDX parsing, the fallback chain and the tf.data pipeline."""

import contextlib
import gzip
import os
import socket
import threading
import uuid

import numpy as np
import pytest
from PIL import Image

from ganpipe import data
from ganpipe.data import idx, sources, tfds_source

FASHION_DIR = "/usr/share/datasets/fashion-mnist"


def write_idx(path, array, *, magic=None):
    """Writes a uint8 array as an IDX file, gzip-compressed if the name ends in .gz."""
    if magic is None:
        magic = 0x00000800 | array.ndim
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    payload = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(payload)


def write_split(directory, split, images, labels, *, ext=""):
    prefix = {"train": "train", "test": "t10k"}[split]
    write_idx(directory / f"{prefix}-images-idx3-ubyte{ext}", images)
    write_idx(directory / f"{prefix}-labels-idx1-ubyte{ext}", labels)


def random_split(seed, n=7, height=5, width=4):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, height, width), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    return images, labels


@pytest.fixture
def no_tfds(monkeypatch):
    """Takes TFDS out of the fallback chain so results do not depend on the machine."""

    def unavailable(*args, **kwargs):
        raise tfds_source.SourceUnavailable("TFDS disabled in tests")

    monkeypatch.setattr(tfds_source, "load_prepared", unavailable)
    monkeypatch.setattr(tfds_source, "network_available", lambda *a, **k: False)
    monkeypatch.delenv(sources.IDX_DIR_ENV_VAR, raising=False)


# IDX parsing.


@pytest.mark.parametrize("ext", ["", ".gz"])
def test_idx_round_trip(tmp_path, ext):
    train_images, train_labels = random_split(0)
    test_images, test_labels = random_split(1, n=3)
    write_split(tmp_path, "train", train_images, train_labels, ext=ext)
    write_split(tmp_path, "test", test_images, test_labels, ext=ext)

    train = data.load_images(source="idx", data_dir=str(tmp_path))
    test = data.load_images(source="idx", split="test", data_dir=str(tmp_path))

    assert train.images.dtype == np.uint8 and train.images.shape == (7, 5, 4, 1)
    np.testing.assert_array_equal(train.images[..., 0], train_images)
    np.testing.assert_array_equal(train.labels, train_labels)
    assert train.labels.dtype == np.int64
    np.testing.assert_array_equal(test.images[..., 0], test_images)
    np.testing.assert_array_equal(test.labels, test_labels)
    assert str(tmp_path) in train.source


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda p: write_idx(p, np.zeros((2, 3, 3), np.uint8), magic=0x00000801), "bad magic"),
        (lambda p: p.write_bytes(p.read_bytes()[:-5]), "size mismatch"),
        (lambda p: p.write_bytes(p.read_bytes()[:6]), "truncated"),
        (lambda p: p.write_bytes(p.read_bytes() + b"\0"), "size mismatch"),
    ],
)
def test_corrupt_idx_raises_naming_file(tmp_path, corrupt, message):
    write_split(tmp_path, "train", *random_split(0))
    path = tmp_path / "train-images-idx3-ubyte"
    corrupt(path)
    with pytest.raises(ValueError, match=message) as info:
        data.load_images(source="idx", data_dir=str(tmp_path))
    assert str(path) in str(info.value)


def test_truncated_gzip_raises_naming_file(tmp_path):
    write_split(tmp_path, "train", *random_split(0, n=50), ext=".gz")
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(ValueError, match="gzip") as info:
        idx.read_idx(path, expected_magic=idx.IMAGES_MAGIC)
    assert str(path) in str(info.value)


def test_idx_label_count_mismatch(tmp_path):
    images, labels = random_split(0)
    write_split(tmp_path, "train", images, labels[:-1])
    with pytest.raises(ValueError, match="disagree"):
        data.load_images(source="idx", data_dir=str(tmp_path))


def test_idx_source_needs_existing_files(tmp_path):
    with pytest.raises(ValueError, match="data_dir"):
        data.load_images(source="idx")
    with pytest.raises(data.DatasetNotFoundError, match="train-images-idx3-ubyte"):
        data.load_images(source="idx", data_dir=str(tmp_path))
    with pytest.raises(ValueError, match="split"):
        data.load_images(source="idx", split="validation", data_dir=str(tmp_path))


# The fashion_mnist fallback chain.


def _unreached_host(name):
    """A host name no earlier probe asked about: each probe's answer is kept for the process."""
    return (f"{name}-{uuid.uuid4().hex}.invalid", 80)


def test_fashion_mnist_offline_probes_the_network_once_then_reads_the_system_files(monkeypatch):
    # Offline, the chain must not hang: its one network contact is a probe bounded by its
    # timeout (the probe itself is tested below), made once for both splits.
    if not os.path.isdir(FASHION_DIR):
        pytest.skip(f"{FASHION_DIR} is absent (apt-get install dataset-fashion-mnist)")
    monkeypatch.delenv(sources.IDX_DIR_ENV_VAR, raising=False)

    def not_prepared(*args, **kwargs):
        raise tfds_source.SourceUnavailable("no prepared TFDS copy in this test")

    monkeypatch.setattr(tfds_source, "load_prepared", not_prepared)
    host = _unreached_host("fashion-mnist")
    monkeypatch.setitem(tfds_source.DOWNLOAD_HOSTS, "fashion_mnist", host)
    probes = []

    def offline(address, timeout=None, **kwargs):
        probes.append((address, timeout))
        raise OSError("network unreachable")

    monkeypatch.setattr(socket, "create_connection", offline)
    train = data.load_images()
    test = data.load_images(split="test", limit=10)
    assert probes == [(host, tfds_source.NETWORK_PROBE_TIMEOUT_S)]
    assert train.source == test.source == f"IDX files in {FASHION_DIR}"
    assert train.images.shape == (60000, 28, 28, 1) and train.images.dtype == np.uint8
    assert train.labels.shape == (60000,) and test.images.shape == (10, 28, 28, 1)
    assert train.labels[0] == 9  # Ankle boot, the first image of the official files.


def test_fashion_mnist_from_system_idx_files(no_tfds):
    if not os.path.isdir(FASHION_DIR):
        pytest.skip(f"{FASHION_DIR} is absent (apt-get install dataset-fashion-mnist)")
    test = data.load_images(split="test")
    assert test.images.shape == (10000, 28, 28, 1)
    assert test.source == f"IDX files in {FASHION_DIR}"
    first = data.load_images(limit=200, image_size=(32, 32), channels=3)
    assert first.images.shape == (200, 32, 32, 3)
    assert first.labels[0] == 9


def test_missing_dataset_explains_how_to_get_it(tmp_path, monkeypatch, no_tfds):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setattr(sources, "IDX_SEARCH_ROOTS", (str(empty),))
    monkeypatch.setenv(sources.IDX_DIR_ENV_VAR, str(empty))
    with pytest.raises(data.DatasetNotFoundError) as info:
        data.load_images(source="fashion_mnist", data_dir=str(empty))
    message = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    assert "apt-get install dataset-fashion-mnist" in message
    assert "GANPIPE_IDX_DIR" in message and "data_dir" in message
    assert "TFDS disabled in tests" in message  # The per-attempt reasons.
    assert "train-images-idx3-ubyte" in message


def test_user_idx_dirs_are_searched(tmp_path, monkeypatch, no_tfds):
    monkeypatch.setattr(sources, "IDX_SEARCH_ROOTS", (str(tmp_path / "nowhere"),))
    images, labels = random_split(3)
    nested = tmp_path / "fashion-mnist"
    nested.mkdir()
    write_split(nested, "train", images, labels, ext=".gz")

    from_data_dir = data.load_images(data_dir=str(tmp_path))
    monkeypatch.setenv(sources.IDX_DIR_ENV_VAR, str(nested))
    from_env = data.load_images()

    for loaded in (from_data_dir, from_env):
        np.testing.assert_array_equal(loaded.images[..., 0], images)
        assert loaded.source == f"IDX files in {nested}"


def test_network_probe_gives_up_at_its_timeout_while_the_connection_hangs(monkeypatch):
    # The connection hangs until the probe has answered (or 10 s, so that a probe that waits
    # for it ends): one that waited would then see it succeed and answer True.
    released, calls = threading.Event(), []

    def hanging(address, timeout=None, **kwargs):
        calls.append((address, timeout))
        released.wait(10)
        return contextlib.nullcontext()

    monkeypatch.setattr(socket, "create_connection", hanging)
    host, port = _unreached_host("hangs")
    try:
        assert not tfds_source.network_available(host, port, timeout=0.05)
        assert not tfds_source.network_available(host, port, timeout=0.05)  # the kept answer
    finally:
        released.set()
    assert calls == [((host, port), 0.05)]


# Other sources and arguments.


def test_unknown_source_lists_known_sources():
    with pytest.raises(ValueError, match="bogus") as info:
        data.load_images(source="bogus")
    for known in ("fashion_mnist", "mnist", "idx", "tfds:", "folder", "synthetic"):
        assert known in str(info.value)
    with pytest.raises(ValueError, match="malformed"):
        data.load_images(source="tfds")
    with pytest.raises(ValueError, match="malformed"):
        data.load_images(source="synthetic:x")


def test_limit_keeps_first_examples_in_order(tmp_path):
    images, labels = random_split(5, n=10)
    write_split(tmp_path, "train", images, labels)
    first = data.load_images(source="idx", data_dir=str(tmp_path), limit=4)
    np.testing.assert_array_equal(first.images[..., 0], images[:4])
    np.testing.assert_array_equal(first.labels, labels[:4])
    everything = data.load_images(source="idx", data_dir=str(tmp_path), limit=100)
    assert len(everything) == 10
    for bad in (0, -1):
        with pytest.raises(ValueError, match="limit"):
            data.load_images(source="idx", data_dir=str(tmp_path), limit=bad)


def test_resize_and_channels_for_in_memory_sources(tmp_path):
    images, labels = random_split(6, n=3, height=8, width=8)
    write_split(tmp_path, "train", images, labels)
    rgb = data.load_images(source="idx", data_dir=str(tmp_path), channels=3, image_size=(4, 6))
    assert rgb.images.shape == (3, 4, 6, 3) and rgb.images.dtype == np.uint8
    np.testing.assert_array_equal(rgb.images[..., 0], rgb.images[..., 2])
    back = data.load_images(source="synthetic", channels=3, num_synthetic=4)
    gray = sources.transforms.convert_channels(back.images, 1)
    assert gray.shape == (4, 28, 28, 1)
    with pytest.raises(ValueError, match="channels"):
        data.load_images(source="synthetic", channels=2)
    with pytest.raises(ValueError, match="image_size"):
        data.load_images(source="synthetic", image_size=(0, 4))


def write_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_folder_source(tmp_path):
    rng = np.random.default_rng(0)
    pictures = [rng.integers(0, 256, size=(6, 5), dtype=np.uint8) for _ in range(3)]
    write_png(tmp_path / "b.png", pictures[1])
    write_png(tmp_path / "a.PNG", pictures[0])
    write_png(tmp_path / "sub" / "c.png", pictures[2])
    (tmp_path / "notes.txt").write_text("not an image")

    gray = data.load_images(source="folder", data_dir=str(tmp_path))
    assert gray.images.shape == (3, 6, 5, 1) and gray.labels is None
    np.testing.assert_array_equal(gray.images[..., 0], np.stack(pictures))

    write_png(tmp_path / "d.png", rng.integers(0, 256, size=(6, 5, 3), dtype=np.uint8))
    colour = data.load_images(source="folder", data_dir=str(tmp_path))
    assert colour.images.shape == (4, 6, 5, 3)
    forced = data.load_images(source="folder", data_dir=str(tmp_path), channels=1, limit=2)
    assert forced.images.shape == (2, 6, 5, 1)


def test_folder_mixed_sizes_need_image_size(tmp_path):
    write_png(tmp_path / "a.png", np.zeros((6, 5), np.uint8))
    write_png(tmp_path / "b.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match="image_size") as info:
        data.load_images(source="folder", data_dir=str(tmp_path))
    assert "6x5" in str(info.value) and "8x8" in str(info.value)
    resized = data.load_images(source="folder", data_dir=str(tmp_path), image_size=(4, 3))
    assert resized.images.shape == (2, 4, 3, 1)


def test_folder_empty_or_missing(tmp_path):
    with pytest.raises(data.DatasetNotFoundError, match=".png") as info:
        data.load_images(source="folder", data_dir=str(tmp_path))
    assert str(tmp_path) in str(info.value)
    with pytest.raises(data.DatasetNotFoundError):
        data.load_images(source="folder", data_dir=str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="data_dir"):
        data.load_images(source="folder")


def test_synthetic_is_deterministic():
    a = data.load_images(source="synthetic", num_synthetic=16, seed=3)
    b = data.load_images(source="synthetic", num_synthetic=16, seed=3)
    c = data.load_images(source="synthetic", num_synthetic=16, seed=4)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert not np.array_equal(a.images, c.images)
    assert a.images.shape == (16, 28, 28, 1) and a.images.dtype == np.uint8
    assert set(a.labels.tolist()) <= {0, 1, 2}
    # A bright shape on a dark background.
    assert (a.images.max(axis=(1, 2, 3)) >= 180).all() and np.median(a.images) < 25
    rgb = data.load_images(source="synthetic", num_synthetic=5, image_size=(16, 20), channels=3)
    assert rgb.images.shape == (5, 16, 20, 3)


def test_describe():
    line = data.describe(data.load_images(source="synthetic", num_synthetic=8))
    assert "\n" not in line
    assert "8 images" in line and "28x28x1" in line and "synthetic" in line


# make_dataset.


def test_make_dataset_shapes_and_drop_remainder():
    images = data.load_images(source="synthetic", num_synthetic=10)
    batches = list(make(images, batch_size=4, repeat=False))
    assert [b.shape for b in batches] == [(4, 28, 28, 1)] * 2
    assert all(b.dtype.name == "float32" for b in batches)
    kept = list(make(images, batch_size=4, repeat=False, drop_remainder=False))
    assert [b.shape[0] for b in kept] == [4, 4, 2]
    repeated = data.make_dataset(images=images, batch_size=4)
    assert repeated.element_spec.shape == (4, 28, 28, 1)
    assert len(list(repeated.take(5))) == 5


def make(images, **kwargs):
    return data.make_dataset(images=images, **kwargs).as_numpy_iterator()


@pytest.mark.parametrize(
    "value_range, formula",
    [
        ((0.0, 1.0), lambda x: x / np.float32(255)),
        ((-1.0, 1.0), lambda x: (x - np.float32(127.5)) / np.float32(127.5)),
    ],
)
def test_make_dataset_value_range_matches_formulas(value_range, formula):
    pixels = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1)
    (batch,) = make(pixels, batch_size=1, value_range=value_range, shuffle=False, repeat=False)
    np.testing.assert_array_equal(batch, formula(pixels.astype(np.float32)))
    assert batch.flat[0] == value_range[0] and batch.flat[255] == value_range[1]


def test_make_dataset_odd_range_hits_endpoints():
    pixels = np.array([0, 255], dtype=np.uint8).reshape(2, 1, 1)  # (N, H, W) is accepted.
    (batch,) = make(pixels, batch_size=2, value_range=(-0.3, 0.7), shuffle=False, repeat=False)
    assert batch.shape == (2, 1, 1, 1)
    assert batch[0].item() == np.float32(-0.3) and batch[1].item() == np.float32(0.7)


def test_make_dataset_shuffle_is_seeded():
    pixels = np.arange(64, dtype=np.uint8).reshape(64, 1, 1, 1)

    def first_batches(seed):
        it = make(pixels, batch_size=16, seed=seed, value_range=(0.0, 255.0))
        return np.concatenate([next(it) for _ in range(8)]).ravel()

    same = first_batches(7)
    np.testing.assert_array_equal(same, first_batches(7))
    assert not np.array_equal(same, first_batches(8))
    # Each epoch is a permutation, reshuffled between epochs.
    epochs = same.reshape(2, 64)
    np.testing.assert_array_equal(np.sort(epochs, axis=1), np.tile(np.arange(64.0), (2, 1)))
    assert not np.array_equal(epochs[0], epochs[1])
    unshuffled = next(make(pixels, batch_size=16, shuffle=False, value_range=(0.0, 255.0)))
    np.testing.assert_array_equal(unshuffled.ravel(), np.arange(16.0))


def test_make_dataset_validation():
    images = data.load_images(source="synthetic", num_synthetic=8)
    for bad in (0, -3):
        with pytest.raises(ValueError, match="batch_size"):
            data.make_dataset(images=images, batch_size=bad)
    with pytest.raises(ValueError, match="larger than the number of images"):
        data.make_dataset(images=images, batch_size=9)
    data.make_dataset(images=images, batch_size=9, drop_remainder=False)
    for bad in ((1.0, 1.0), (1.0, -1.0)):
        with pytest.raises(ValueError, match="value_range"):
            data.make_dataset(images=images, batch_size=4, value_range=bad)
    with pytest.raises(ValueError, match="uint8"):
        data.make_dataset(images=images.images.astype(np.float32), batch_size=4)
    with pytest.raises(ValueError, match="shuffle_buffer"):
        data.make_dataset(images=images, batch_size=4, shuffle_buffer=0)


def test_tfds_source_offline_fails_fast_with_advice(no_tfds):
    with pytest.raises(data.DatasetNotFoundError, match="tfds build cifar10"):
        data.load_images(source="tfds:cifar10")
