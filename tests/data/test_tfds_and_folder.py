"""TFDS data sets (offline, through tfds.testing.mock_data) and image folders with class labels.

`tfds.testing.mock_data` builds the real TFDS builders (cifar10, mnist) from the code TFDS ships
and fakes their examples from the builders' feature specs; no data or metadata files are read and
its `download_and_prepare` does nothing. Our TFDS path tries a prepared copy first (none: the
mock's data folder does not exist), then the download, which is reached by reporting the network
as up.
"""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from ganpipe import config, data
from ganpipe.data import sources, tfds_source
from tests.conftest import GIN

# (TFDS name, native image shape).
TFDS_CASES = [("cifar10", (32, 32, 3)), ("mnist", (28, 28, 1))]


@pytest.fixture
def offline_tfds(monkeypatch):
    """Lets the mocked download run without a network; no IDX folders get in the way."""
    monkeypatch.setattr(tfds_source, "network_available", lambda *args, **kwargs: True)
    monkeypatch.delenv(sources.IDX_DIR_ENV_VAR, raising=False)


def _known_examples(count, requested):
    """An as_dataset replacement: example i has label i % 10 and one known colour everywhere.

    Colour of example i: (10 i, 5 i + 3, 255 - 7 i) per channel (mod 256), the first channels of
    it for a grayscale builder. Each requested split is appended to `requested`.
    """

    def as_dataset(self, split, decoders=None, read_config=None, **kwargs):
        del decoders, read_config, kwargs
        requested.append(str(split))
        shape = self.info.features["image"].shape
        colours = _colours(count)[:, : shape[-1]]
        images = np.broadcast_to(colours[:, None, None, :], (count, *shape)).astype(np.uint8)
        labels = np.arange(count, dtype=np.int64) % 10
        return tf.data.Dataset.from_tensor_slices({"image": images, "label": labels})

    return as_dataset


def _colours(count):
    i = np.arange(count)
    return np.stack([10 * i, 5 * i + 3, 255 - 7 * i], axis=-1) % 256


@pytest.mark.parametrize("name, shape", TFDS_CASES)
def test_tfds_source_reads_the_builders_feature_spec(name, shape, offline_tfds):
    with tfds.testing.mock_data(num_examples=12):
        loaded = data.load_images(source=f"tfds:{name}")
        test = data.load_images(source=f"tfds:{name}", split="test")
    assert loaded.images.shape == (12, *shape) and loaded.images.dtype == np.uint8
    assert loaded.labels.shape == (12,) and loaded.labels.dtype == np.int64
    assert loaded.labels.min() >= 0 and loaded.labels.max() < 10  # ClassLabel(num_classes=10)
    assert loaded.images.std() > 0  # random pixels, not a constant
    assert f"TFDS {name}" in loaded.source
    assert test.images.shape == (12, *shape)


@pytest.mark.parametrize("name, shape", TFDS_CASES)
def test_tfds_source_content_labels_and_limit(name, shape, offline_tfds):
    requested = []
    with tfds.testing.mock_data(as_dataset_fn=_known_examples(12, requested)):
        everything = data.load_images(source=f"tfds:{name}")
        first = data.load_images(source=f"tfds:{name}", limit=5)
    assert requested == ["train", "train[:5]"]  # the limit is read as a slice of the split
    expected = _colours(12)[:, : shape[-1]]
    np.testing.assert_array_equal(everything.images[:, 3, 4, :], expected)
    assert (everything.images == expected[:, None, None, :]).all()
    np.testing.assert_array_equal(everything.labels, np.arange(12) % 10)
    assert first.images.shape == (5, *shape)
    np.testing.assert_array_equal(first.images, everything.images[:5])
    np.testing.assert_array_equal(first.labels, [0, 1, 2, 3, 4])


def test_tfds_source_resizes_and_converts_channels(offline_tfds):
    requested = []
    with tfds.testing.mock_data(as_dataset_fn=_known_examples(6, requested)):
        gray = data.load_images(source="tfds:cifar10", image_size=(16, 20), channels=1)
        rgb = data.load_images(source="tfds:mnist", image_size=(32, 32), channels=3)
    # A one-colour image stays one colour through resizing; gray is the BT.601 luma.
    r, g, b = _colours(6).T
    luma = np.rint(0.299 * r + 0.587 * g + 0.114 * b)
    assert gray.images.shape == (6, 16, 20, 1)
    np.testing.assert_array_equal(
        gray.images, np.broadcast_to(luma[:, None, None, None], (6, 16, 20, 1))
    )
    assert rgb.images.shape == (6, 32, 32, 3)
    np.testing.assert_array_equal(
        rgb.images, np.broadcast_to(r[:, None, None, None], (6, 32, 32, 3))
    )
    np.testing.assert_array_equal(gray.labels, np.arange(6))


def test_resizing_really_interpolates(offline_tfds):
    """A left/right split image shrunk 32 -> 16 keeps its halves; the seam is blended."""

    def halves(self, split, decoders=None, read_config=None, **kwargs):
        image = np.zeros((1, 32, 32, 3), np.uint8)
        image[:, :, 16:] = 200
        return tf.data.Dataset.from_tensor_slices({"image": image, "label": np.zeros(1, np.int64)})

    with tfds.testing.mock_data(as_dataset_fn=halves):
        small = data.load_images(source="tfds:cifar10", image_size=(16, 16))
    row = small.images[0, 5, :, 0]
    assert (row[:7] == 0).all() and (row[9:] == 200).all()
    assert 0 < row[7] < 200 or 0 < row[8] < 200


@pytest.mark.parametrize(
    "gin_files, bindings, shape",
    [
        (["dcgan_radford_cifar10.gin"], [], (32, 32, 3)),
        (["dcgan_radford.gin", "data/mnist.gin"], ["load_images.source = 'mnist'"], (28, 28, 1)),
    ],
)
def test_data_gin_parts_train_through_tfds(gin_files, bindings, shape, offline_tfds):
    files = [str(GIN / f) for f in gin_files] + [str(GIN / "testing" / "tiny.gin")]
    config.parse(files, ["load_images.source = 'tfds:cifar10'", *bindings])
    with tfds.testing.mock_data(num_examples=24):
        trainer = config.make_trainer()
    assert trainer.images.images.shape == (24, *shape)
    assert "TFDS" in trainer.images.source
    metrics = trainer.train_steps(2)
    assert int(trainer.step.numpy()) == 2 and all(np.isfinite(v) for v in metrics.values())


# Image folders.


def _save(path, array, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    picture = Image.fromarray(np.asarray(array, np.uint8))
    if mode == "P":
        picture = picture.convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    elif mode:
        picture = picture.convert(mode)
    picture.save(path, quality=100) if path.suffix == ".jpg" else picture.save(path)


@pytest.fixture
def class_folders(tmp_path):
    """Five one-colour images of mixed sizes, modes and formats in three class folders.

    Returns (folder, [(relative path, RGB colour)] in sorted path order).
    """
    files = [
        ("birds/x.jpg", (30, 17), (200, 40, 40), None),  # JPEG, RGB
        ("cats/a.png", (40, 30), (10, 120, 250), None),  # PNG, RGB
        ("cats/b.jpg", (20, 20), (90, 90, 90), "L"),  # JPEG, grayscale
        ("dogs/sub/c.png", (12, 10), (0, 255, 0), "RGBA"),  # deeper folder, alpha
        ("dogs/d.png", (8, 8), (255, 255, 0), "P"),  # palette
    ]
    for name, (height, width), colour, mode in files:
        _save(tmp_path / name, np.broadcast_to(colour, (height, width, 3)), mode)
    order = sorted(files, key=lambda f: f[0])
    return tmp_path, [(name, colour) for name, _, colour, _ in order]


def test_folder_labels_from_class_subfolders(class_folders):
    folder, files = class_folders
    loaded = data.load_images(source="folder", data_dir=str(folder), image_size=(16, 16))
    # Classes sorted by name: birds 0, cats 1, dogs 2; files in sorted path order.
    assert [name for name, _ in files] == [
        "birds/x.jpg",
        "cats/a.png",
        "cats/b.jpg",
        "dogs/d.png",
        "dogs/sub/c.png",
    ]
    np.testing.assert_array_equal(loaded.labels, [0, 1, 1, 2, 2])
    assert loaded.labels.dtype == np.int64
    assert loaded.images.shape == (5, 16, 16, 3)  # mixed modes: colour
    for image, (name, colour) in zip(loaded.images, files):
        # Resizing keeps one-colour images one colour; JPEG may move a value by a few levels.
        tolerance = 3 if name.endswith(".jpg") else 0
        np.testing.assert_allclose(image[8, 8], colour, atol=tolerance, err_msg=name)
        assert np.ptp(image.reshape(-1, 3), axis=0).max() <= 2 * tolerance
    assert "labels from 3 class folders (birds=0, cats=1, dogs=2)" in loaded.source


def test_folder_grayscale_size_and_limit(class_folders):
    folder, files = class_folders
    gray = data.load_images(
        source="folder", data_dir=str(folder), image_size=(7, 9), channels=1, limit=3
    )
    assert gray.images.shape == (3, 7, 9, 1)
    np.testing.assert_array_equal(gray.labels, [0, 1, 1])  # numbered over all classes
    for image, (name, (r, g, b)) in zip(gray.images, files):
        tolerance = 3 if name.endswith(".jpg") else 0
        luma = 0.299 * r + 0.587 * g + 0.114 * b
        assert abs(int(image[3, 4, 0]) - luma) <= tolerance + 0.5, name


def test_folder_without_class_subfolders_has_no_labels(class_folders):
    folder, _ = class_folders
    _save(folder / "loose.png", np.zeros((8, 8, 3)))
    loaded = data.load_images(source="folder", data_dir=str(folder), image_size=(8, 8))
    assert loaded.labels is None and len(loaded) == 6
    assert "no labels" in loaded.source


def test_folder_gin_part_trains_at_its_resolution(class_folders):
    folder, _ = class_folders
    files = [
        str(GIN / "dcgan_radford_cifar10.gin"),
        str(GIN / "data" / "folder.gin"),
        str(GIN / "testing" / "tiny.gin"),
    ]
    # tiny.gin switches to synthetic data; the folder comes back after it. Batch 4 of 5 images.
    config.parse(
        files, ["load_images.source = 'folder'", f"DATA_DIR = '{folder}'", "BATCH_SIZE = 4"]
    )
    trainer = config.make_trainer()
    assert trainer.images.images.shape == (5, 32, 32, 3)
    np.testing.assert_array_equal(trainer.images.labels, [0, 1, 1, 2, 2])
    metrics = trainer.train_steps(2)
    assert all(np.isfinite(v) for v in metrics.values())


def test_folder_gin_part_without_data_dir_says_how_to_set_it():
    files = [str(GIN / "dcgan_radford_cifar10.gin"), str(GIN / "data" / "folder.gin")]
    config.parse(files, ["NUM_STEPS = 2", "train.strategy = 'default'"])
    with pytest.raises(ValueError, match="needs data_dir") as info:
        config.make_trainer()
    assert "DATA_DIR=" in str(info.value) and "load_images.data_dir" in str(info.value)
