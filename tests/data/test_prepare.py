"""python -m ganpipe.prepare: a folder packed once into a memory-mapped prepared data set, and
every bad input refused (or skipped) with a message that names the file or the setting."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from ganpipe.data import prepared

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _image(path, size=(20, 24), mode="L", value=None, seed=0):
    """A PNG of (height, width) ``size``: seeded noise, or one ``value`` everywhere."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rng = np.random.default_rng(seed)
    shape = size if mode == "L" else (*size, 3)
    pixels = (
        np.full(shape, value, np.uint8)
        if value is not None
        else rng.integers(0, 256, shape, dtype=np.uint8)
    )
    Image.fromarray(pixels, mode).save(path)


def _classes(root, per_class=3, size=(20, 24), mode="L"):
    for c, name in enumerate(("cat", "dog")):
        for i in range(per_class):
            _image(os.path.join(root, name, f"{i}.png"), size, mode, seed=10 * c + i)


def _prepare(*args, expect_ok=True):
    result = subprocess.run(
        [sys.executable, "-m", "ganpipe.prepare", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert (result.returncode == 0) == expect_ok, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return result.stdout + result.stderr


def test_class_subfolders_become_labels_and_the_set_is_memory_mapped(tmp_path):
    _classes(tmp_path / "src")
    out = tmp_path / "set"
    log = _prepare(f"--source={tmp_path / 'src'}", f"--output={out}", "--size=16")
    assert "6 images of 16x16x1, 2 classes" in log and "images/s" in log
    data = prepared.open_prepared(str(out))
    assert isinstance(data.images, np.memmap) and data.images.shape == (6, 16, 16, 1)
    assert data.class_names == ("cat", "dog") and list(data.labels) == [0, 0, 0, 1, 1, 1]
    index = json.loads((out / "index.json").read_text())
    assert index["settings"] == {"size": [16, 16], "channels": 1, "resize": "crop",
                                 "labels": "subfolders", "upscale": False}  # fmt: skip
    import hashlib

    assert data.fingerprint == hashlib.sha256(np.asarray(data.images).tobytes()).hexdigest()


def test_without_size_the_common_size_is_kept_and_mixed_sizes_are_refused(tmp_path):
    _classes(tmp_path / "src")
    _prepare(f"--source={tmp_path / 'src'}", f"--output={tmp_path / 'a'}")
    assert prepared.open_prepared(str(tmp_path / "a")).image_shape == (20, 24, 1)
    _image(str(tmp_path / "src" / "cat" / "big.png"), (30, 30))
    log = _prepare(f"--source={tmp_path / 'src'}", f"--output={tmp_path / 'b'}", expect_ok=False)
    assert "different sizes" in log and "20x24 (6 files)" in log and "30x30 (1 files)" in log
    assert not (tmp_path / "b").exists()


def test_resize_crops_the_centre_pads_with_black_or_stretches(tmp_path):
    # A 20x40 image, white: crop fills 16x16; pad leaves black bars above and below.
    _image(str(tmp_path / "src" / "a.png"), (20, 40), value=255)
    for mode in ("crop", "pad", "stretch"):
        _prepare(f"--source={tmp_path / 'src'}", f"--output={tmp_path / mode}", "--size=16",
                 f"--resize={mode}", "--labels=none")  # fmt: skip
    crop = prepared.open_prepared(str(tmp_path / "crop")).images[0, ..., 0]
    pad = prepared.open_prepared(str(tmp_path / "pad")).images[0, ..., 0]
    stretch = prepared.open_prepared(str(tmp_path / "stretch")).images[0, ..., 0]
    assert crop.min() == 255 and stretch.min() == 255
    assert (pad[:4] == 0).all() and (pad[-4:] == 0).all() and (pad[5:11] == 255).all()


def test_a_stylegan_dataset_json_gives_the_labels(tmp_path):
    src = tmp_path / "src"
    for i in range(4):
        _image(str(src / "00000" / f"img{i}.png"), seed=i)
    (src / "dataset.json").write_text(json.dumps(
        {"labels": [[f"00000/img{i}.png", i % 2 + 1] for i in range(4)]}))  # fmt: skip
    _prepare(f"--source={src}", f"--output={tmp_path / 'ok'}", "--labels=dataset.json")
    data = prepared.open_prepared(str(tmp_path / "ok"))
    assert list(data.labels) == [1, 2, 1, 2] and data.class_names == ("0", "1", "2")
    (src / "dataset.json").write_text(
        json.dumps({"labels": [["00000/img0.png", 0], ["00000/gone.png", 1]]})
    )
    log = _prepare(f"--source={src}", f"--output={tmp_path / 'x'}", "--labels=dataset.json",
                   expect_ok=False)  # fmt: skip
    assert "names 1 file(s) that are not in" in log and "gone.png" in log
    (src / "dataset.json").write_text(json.dumps({"labels": [["00000/img0.png", "cat"]]}))
    log = _prepare(f"--source={src}", f"--output={tmp_path / 'y'}", "--labels=dataset.json",
                   expect_ok=False)  # fmt: skip
    assert "not integers" in log and "img0.png" in log


def test_unreadable_files_are_refused_by_name_or_skipped_and_counted(tmp_path):
    src = tmp_path / "src"
    _classes(src)
    (src / "cat" / "broken.png").write_bytes(b"not a png at all")
    # A truncated PNG: its header reads, its pixels do not.
    good = (src / "dog" / "0.png").read_bytes()
    (src / "dog" / "truncated.png").write_bytes(good[: len(good) // 2])
    (src / "notes.txt").write_text("a file that is not an image")
    log = _prepare(f"--source={src}", f"--output={tmp_path / 'x'}", expect_ok=False)
    assert "broken.png" in log and "--skip_unreadable" in log
    assert not (tmp_path / "x").exists()
    log = _prepare(f"--source={src}", f"--output={tmp_path / 'ok'}", "--skip_unreadable")
    assert "notes.txt" in log and "2 skipped" in log
    data = prepared.open_prepared(str(tmp_path / "ok"))
    assert len(data) == 6 and len(data.labels) == 6
    assert json.loads((tmp_path / "ok" / "index.json").read_text())["skipped"] == 2


@pytest.mark.parametrize(
    "layout, message",
    [
        ("empty", "holds no image files"),
        ("empty_class", "hold no images"),
        ("loop", "symlink loop"),
        ("mixed", "mixes 6 grayscale and 1 colour"),
        ("small", "smaller than --size"),
        ("bomb", "decompression-bomb limit"),
    ],
)
def test_bad_folders_are_refused_with_the_reason(tmp_path, layout, message):
    src = tmp_path / "src"
    os.makedirs(src)
    args = []
    if layout != "empty":
        _classes(src)
    if layout == "empty_class":
        os.makedirs(src / "zebra")
    elif layout == "loop":
        os.symlink(src, src / "cat" / "again")
    elif layout == "mixed":
        _image(str(src / "dog" / "colour.png"), mode="RGB")
    elif layout == "small":
        args = ["--size=32"]
    elif layout == "bomb":
        args = ["--max_pixels=100"]
    log = _prepare(f"--source={src}", f"--output={tmp_path / 'out'}", *args, expect_ok=False)
    assert message in log
    assert not (tmp_path / "out").exists()


def test_mixed_colour_is_converted_when_channels_are_given_and_small_images_with_upscale(
    tmp_path,
):
    src = tmp_path / "src"
    _classes(src)
    _image(str(src / "dog" / "colour.png"), mode="RGB")
    _prepare(f"--source={src}", f"--output={tmp_path / 'a'}", "--channels=3", "--size=32",
             "--upscale")  # fmt: skip
    assert prepared.open_prepared(str(tmp_path / "a")).image_shape == (32, 32, 3)
    log = _prepare(f"--source={src}", f"--output={tmp_path / 'a'}", "--channels=3",
                   expect_ok=False)  # fmt: skip
    assert "already exists" in log and "--overwrite" in log


def test_a_damaged_set_or_other_settings_are_refused(tmp_path):
    _classes(tmp_path / "src")
    out = tmp_path / "set"
    _prepare(f"--source={tmp_path / 'src'}", f"--output={out}", "--size=16")
    with pytest.raises(prepared.PreparedDataError, match="prepared at \\(16, 16\\)"):
        prepared.open_prepared(str(out), image_size=(32, 32))
    with pytest.raises(prepared.PreparedDataError, match="--channels=3"):
        prepared.open_prepared(str(out), channels=3)
    index = json.loads((out / "index.json").read_text())
    (out / "index.json").write_text(json.dumps({**index, "count": 7}))
    with pytest.raises(prepared.PreparedDataError, match="damaged.*prepare it again"):
        prepared.open_prepared(str(out))
    # What an interrupted prepare leaves behind is never at the output's name.
    with pytest.raises(FileNotFoundError, match="not a prepared data set"):
        prepared.open_prepared(str(tmp_path / "never-finished"))


def test_training_batches_from_the_map_equal_batches_from_memory(tmp_path):
    from ganpipe.data import ImageArray, make_training_dataset

    _classes(tmp_path / "src", per_class=10)
    _prepare(f"--source={tmp_path / 'src'}", f"--output={tmp_path / 'set'}", "--size=16")
    mapped = prepared.open_prepared(str(tmp_path / "set"))
    loaded = ImageArray(np.array(mapped.images), mapped.labels, "memory")
    batches = [
        list(make_training_dataset(images=d, batch_size=4, seed=3, with_labels=True).take(6))
        for d in (mapped, loaded)
    ]
    for (a, la), (b, lb) in zip(*batches):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
        np.testing.assert_array_equal(la.numpy(), lb.numpy())


def test_one_worker_prepares_the_same_pixels_as_every_core(tmp_path):
    _classes(tmp_path / "src")
    _prepare(f"--source={tmp_path / 'src'}", f"--output={tmp_path / 'one'}", "--workers=1")
    _prepare(f"--source={tmp_path / 'src'}", f"--output={tmp_path / 'all'}", "--workers=2")
    one, every = (prepared.open_prepared(str(tmp_path / n)) for n in ("one", "all"))
    assert one.fingerprint == every.fingerprint and list(one.labels) == list(every.labels)
