"""What ``python -m ganpipe.prepare`` does to a folder of images: list the files (no symlink
loops), read their labels (class subfolders, a StyleGAN ``dataset.json``, or none), decode and
resize each (in worker processes), and write the prepared data set atomically.

Every refusal is a ``PrepareError`` whose message names the files or the setting and the fix.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import os

import numpy as np
from PIL import Image, UnidentifiedImageError

from ganpipe.data.folder import IMAGE_EXTENSIONS

RESIZE_MODES = ("crop", "pad", "stretch")
# Files named in a message, at most.
LISTED = 8
# Pillow's decompression-bomb limit (Image.MAX_IMAGE_PIXELS, about 89 million pixels).
MAX_PIXELS = Image.MAX_IMAGE_PIXELS
_GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "F"})


class PrepareError(ValueError):
    """Bad input to ``prepare``: the message names the files or setting and the fix."""


def listed(paths, root: str | None = None) -> str:
    """The first ``LISTED`` paths (relative to ``root``), and how many more."""
    paths = list(paths)
    shown = [os.path.relpath(p, root) if root else p for p in paths[:LISTED]]
    more = f" and {len(paths) - LISTED} more" if len(paths) > LISTED else ""
    return ", ".join(shown) + more


@dataclasses.dataclass(frozen=True)
class Listing:
    """The source folder's files: images (sorted), and what was left out."""

    images: list[str]
    other_files: list[str]


def list_files(folder: str) -> Listing:
    """Every file under ``folder``, following symlinks, refusing a symlink loop.

    Raises:
        PrepareError: not a folder, a symlink loop, or no image file at all.
    """
    if not os.path.isdir(folder):
        raise PrepareError(f"--source={folder} is not a folder.")
    images, other, seen = [], [], set()
    pending = [folder]
    while pending:
        directory = pending.pop()
        real = os.path.realpath(directory)
        if real in seen:
            raise PrepareError(
                f"{directory} leads back to {real}, a folder already read: a symlink loop. "
                "Remove the link, or point --source at a folder without one."
            )
        seen.add(real)
        with os.scandir(directory) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                if entry.is_dir(follow_symlinks=True):
                    pending.append(entry.path)
                elif entry.name.lower().endswith(IMAGE_EXTENSIONS):
                    images.append(entry.path)
                elif entry.name != "dataset.json":
                    other.append(entry.path)
    if not images:
        raise PrepareError(
            f"{folder} holds no image files (searched recursively for "
            f"{', '.join(IMAGE_EXTENSIONS)}, any case)."
        )
    return Listing(sorted(images), sorted(other))


def subfolder_labels(folder: str, paths: list[str]) -> tuple[np.ndarray, tuple[str, ...]]:
    """Labels from first-level subfolders (sorted names, label i for the i-th).

    Raises:
        PrepareError: an image directly in ``folder``, or a class folder without images.
    """
    top = [p for p in paths if os.path.dirname(p) == folder.rstrip(os.sep)]
    if top:
        raise PrepareError(
            f"--labels=subfolders reads each image's class from its first-level subfolder, but "
            f"{len(top)} image(s) lie directly in {folder}: {listed(top, folder)}. Move them "
            "into class folders, or give --labels=none."
        )
    first = [os.path.relpath(p, folder).split(os.sep)[0] for p in paths]
    names = tuple(sorted(set(first)))
    folders = sorted(
        e.name for e in os.scandir(folder) if e.is_dir(follow_symlinks=True)
    )  # fmt: skip
    empty = [name for name in folders if name not in names]
    if empty:
        raise PrepareError(
            f"Class folder(s) {', '.join(empty)} in {folder} hold no images: every class needs "
            "images. Remove the empty folder(s) or add images."
        )
    index = {name: i for i, name in enumerate(names)}
    return np.array([index[name] for name in first], np.int32), names


def json_labels(folder: str, path: str, paths: list[str]) -> tuple[list[str], np.ndarray, tuple]:
    """The files and labels a StyleGAN ``dataset.json`` names (``{"labels": [[file, int],
    ...]}``, paths relative to ``folder``); only those files are prepared.

    Raises:
        PrepareError: unreadable JSON, another layout, missing files or non-integer labels.
    """
    try:
        with open(path) as f:
            pairs = json.load(f)["labels"]
        if pairs is None:
            return paths, None, ()
        pairs = [(str(name), label) for name, label in pairs]
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise PrepareError(
            f'{path} is not a dataset.json in StyleGAN\'s format ({{"labels": [["file", '
            f"class], ...]}}): {error}."
        ) from None
    bad = [name for name, label in pairs if isinstance(label, bool) or not isinstance(label, int)]
    if bad:
        raise PrepareError(
            f"{path} gives labels that are not integers (class indices) for: {listed(bad)}."
        )
    negative = [name for name, label in pairs if label < 0]
    if negative:
        raise PrepareError(f"{path} gives negative labels for: {listed(negative)}.")
    files = [os.path.normpath(os.path.join(folder, name)) for name, _ in pairs]
    missing = [name for name, file in zip((n for n, _ in pairs), files) if not os.path.isfile(file)]
    if missing:
        raise PrepareError(
            f"{path} names {len(missing)} file(s) that are not in {folder}: {listed(missing)}."
        )
    labels = np.array([label for _, label in pairs], np.int32)
    names = tuple(str(i) for i in range(int(labels.max()) + 1)) if len(labels) else ()
    return files, labels, names


def source_fingerprint(paths: list[str]) -> str:
    """SHA-256 over each file's path, size and modification time: changes when the folder
    does (a file added, removed or rewritten), without reading the pixels."""
    digest = hashlib.sha256()
    for path in paths:
        stat = os.stat(path)
        digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


@dataclasses.dataclass(frozen=True)
class Header:
    """What a file's header says, read without decoding the pixels."""

    path: str
    size: tuple[int, int] | None  # (height, width)
    gray: bool
    error: str | None = None


def read_header(path: str, max_pixels: int) -> Header:
    """The file's size and colour, or why it cannot be an image (worker processes call it)."""
    try:
        with Image.open(path) as picture:
            width, height = picture.size
            gray = picture.mode in _GRAY_MODES
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        return Header(path, None, False, f"not a readable image ({type(e).__name__}: {e})")
    if width * height > max_pixels:
        return Header(
            path, None, False,
            f"{width}x{height} pixels, over the decompression-bomb limit of {max_pixels:,} "
            "(--max_pixels)",
        )  # fmt: skip
    return Header(path, (height, width), gray)


def summarize_sizes(headers: list[Header]) -> str:
    sizes = collections.Counter(h.size for h in headers)
    shown = ", ".join(f"{h}x{w} ({n} files)" for (h, w), n in sizes.most_common(5))
    return shown + (f" and {len(sizes) - 5} more sizes" if len(sizes) > 5 else "")


@dataclasses.dataclass(frozen=True)
class Settings:
    """How every image is turned into the prepared one."""

    size: tuple[int, int]  # (height, width)
    channels: int
    resize: str
    upscale: bool


def target_box(source: tuple[int, int], settings: Settings) -> tuple[tuple[int, int], tuple]:
    """The (height, width) to resize ``source`` to, and the (top, left) offset at which the
    target window sits in it (crop: inside the resized image; pad: the image inside the
    window)."""
    (height, width), (out_h, out_w) = source, settings.size
    if settings.resize == "stretch":
        return (out_h, out_w), (0, 0)
    scale = (max if settings.resize == "crop" else min)(out_h / height, out_w / width)
    new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
    if settings.resize == "crop":
        new_h, new_w = max(new_h, out_h), max(new_w, out_w)
        return (new_h, new_w), ((new_h - out_h) // 2, (new_w - out_w) // 2)
    new_h, new_w = min(new_h, out_h), min(new_w, out_w)
    return (new_h, new_w), ((out_h - new_h) // 2, (out_w - new_w) // 2)


def decode(path: str, settings: Settings) -> np.ndarray | str:
    """The file as a uint8 (H, W, C) array at the target size, or why it cannot be read.

    Resampling is Pillow's Lanczos filter, antialiased when shrinking. Pad fills with black.
    """
    try:
        with Image.open(path) as picture:
            picture.load()
            picture = picture.convert("L" if settings.channels == 1 else "RGB")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        return f"cannot be decoded ({type(e).__name__}: {e})"
    (new_h, new_w), (top, left) = target_box((picture.height, picture.width), settings)
    if (picture.height, picture.width) != (new_h, new_w):
        picture = picture.resize((new_w, new_h), Image.Resampling.LANCZOS)
    pixels = np.asarray(picture, np.uint8).reshape(new_h, new_w, settings.channels)
    out_h, out_w = settings.size
    if settings.resize == "pad":
        out = np.zeros((out_h, out_w, settings.channels), np.uint8)
        out[top : top + new_h, left : left + new_w] = pixels
        return out
    return np.ascontiguousarray(pixels[top : top + out_h, left : left + out_w])
