"""Prepared data sets: a folder of images packed once (``python -m ganpipe.prepare``) into arrays
that training memory-maps instead of decoding the files again.

A prepared data set is a directory::

    images.npy    uint8 (N, H, W, C), NumPy's .npy format: memory-mapped, read by both backends
                  without TensorFlow; training gathers each batch's rows from it
    labels.npy    int32 (N,), only when the images have labels
    index.json    the format and its version, the shape and count, the class names, the SHA-256
                  of images.npy's pixels (the fingerprint an evaluator is pinned to), the
                  source folder's fingerprint and the settings it was prepared with

``prepare`` writes it under a temporary name and renames it into place when it is whole, so a
directory with this name is always complete; ``open_prepared`` still checks the index against
the arrays before training reads them.
"""

from __future__ import annotations

import json
import os

import numpy as np

from ganpipe.data.core import DatasetNotFoundError, ImageArray

FORMAT = "ganpipe-prepared"
VERSION = 1
IMAGES, LABELS, INDEX = "images.npy", "labels.npy", "index.json"


class PreparedDataError(ValueError):
    """A prepared data set that is damaged, or made with other settings than the run asks for."""


def read_index(path: str) -> dict:
    """The prepared data set's index.json, checked to be one.

    Raises:
        DatasetNotFoundError: ``path`` is not a directory holding an index.json.
        PreparedDataError: The index is not a prepared data set's, or of another version.
    """
    index_path = os.path.join(path, INDEX)
    if not os.path.isfile(index_path):
        raise DatasetNotFoundError(
            f"{path} is not a prepared data set (it has no {INDEX}). Make one with "
            f"`python -m ganpipe.prepare --source=<image folder> --output={path}`."
        )
    try:
        with open(index_path) as f:
            index = json.load(f)
    except (OSError, json.JSONDecodeError) as error:
        raise PreparedDataError(
            f"{index_path} cannot be read ({error}); prepare the data set again."
        ) from None
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise PreparedDataError(f"{index_path} is not a {FORMAT} index; prepare it again.")
    if index.get("version") != VERSION:
        raise PreparedDataError(
            f"{path} is a version {index.get('version')} prepared data set; this ganpipe reads "
            f"version {VERSION}. Prepare it again with this version."
        )
    return index


def _damaged(path: str, what: str) -> PreparedDataError:
    return PreparedDataError(
        f"The prepared data set {path} is damaged: {what}. Its index and its arrays disagree "
        "(a file was replaced or truncated); prepare it again."
    )


def open_arrays(path: str, index: dict) -> tuple[np.ndarray, np.ndarray | None]:
    """The memory-mapped images and the labels, checked against the index."""
    shape = (int(index["count"]), *(int(v) for v in index["image_shape"]))
    try:
        images = np.load(os.path.join(path, IMAGES), mmap_mode="r")
    except (OSError, ValueError) as error:
        raise _damaged(path, f"{IMAGES} cannot be read ({error})") from None
    if images.dtype != np.uint8 or tuple(images.shape) != shape:
        raise _damaged(
            path,
            f"{INDEX} says {shape} uint8 images, {IMAGES} holds {tuple(images.shape)} "
            f"{images.dtype}",
        )
    labels = None
    if index.get("labelled"):
        try:
            labels = np.load(os.path.join(path, LABELS))
        except (OSError, ValueError) as error:
            raise _damaged(path, f"{LABELS} cannot be read ({error})") from None
        classes = len(index.get("class_names") or ())
        if labels.shape != (shape[0],) or not np.issubdtype(labels.dtype, np.integer):
            raise _damaged(path, f"{LABELS} holds {labels.shape} {labels.dtype} for {shape[0]}")
        if len(labels) and (labels.min() < 0 or labels.max() >= classes):
            raise _damaged(path, f"labels outside the {classes} classes of {INDEX}")
    return images, labels


def check_request(path: str, index: dict, image_size, channels) -> None:
    """Refuses a run that asks for another size or channel count than the data was prepared
    with: a prepared set is read as it is, never resized on the fly."""
    height, width, depth = (int(v) for v in index["image_shape"])
    if image_size is not None and tuple(int(v) for v in image_size) != (height, width):
        raise PreparedDataError(
            f"The run asks for {tuple(image_size)} images (load_images.image_size), but {path} "
            f"was prepared at {(height, width)}. Prepare it again with "
            f"--size={image_size[0]},{image_size[1]}, or leave load_images.image_size unset "
            "(None follows the data)."
        )
    if channels is not None and int(channels) != depth:
        raise PreparedDataError(
            f"The run asks for {channels} channel(s) (load_images.channels), but {path} was "
            f"prepared with {depth}. Prepare it again with --channels={channels}, or leave "
            "load_images.channels unset (None follows the data)."
        )


def open_prepared(
    path: str, *, image_size=None, channels=None, limit: int | None = None
) -> ImageArray:
    """The prepared data set at ``path`` as an ``ImageArray`` whose images are a read-only
    memory map: only the rows a batch gathers are read, and the kernel may drop them again.

    Raises:
        DatasetNotFoundError: No prepared data set there.
        PreparedDataError: It is damaged, or made with another size or channel count than
            ``image_size`` / ``channels`` ask for.
    """
    path = os.path.expanduser(path)
    index = read_index(path)
    check_request(path, index, image_size, channels)
    images, labels = open_arrays(path, index)
    if limit is not None:
        images = images[:limit]
        labels = None if labels is None else labels[:limit]
    names = tuple(index.get("class_names") or ())
    height, width, depth = images.shape[1:]
    source = (
        f"the prepared data set {path} ({height}x{width}x{depth}, "
        + (f"{len(names)} classes" if labels is not None else "no labels")
        + f", from {index.get('source', {}).get('path', '?')})"
    )
    return ImageArray(
        images=images,
        labels=None if labels is None else labels.astype(np.int64),
        source=source,
        class_names=names,
        fingerprint=index["images_sha256"],
    )


def make_index(
    *, count: int, image_shape, class_names, labelled: bool, images_sha256: str,
    source: dict, settings: dict | None, skipped=(),
) -> dict:  # fmt: skip
    """index.json's contents: every writer of a prepared data set builds it here.

    Args:
        source: ``{"path", "files", "fingerprint"}`` of what it was made from.
        settings: How it was prepared (size, channels, resize, labels, upscale), or None.
        skipped: The source-relative paths of the files left out as unreadable.
    """
    skipped = list(skipped)
    return {
        "format": FORMAT,
        "version": VERSION,
        "count": int(count),
        "image_shape": [int(v) for v in image_shape],
        "labelled": bool(labelled),
        "class_names": list(class_names) if labelled else [],
        "images_sha256": images_sha256,
        "source": source,
        "settings": settings,
        "skipped": len(skipped),
        "skipped_files": skipped[:100],
    }


def write_index(path: str, index: dict) -> None:
    with open(os.path.join(path, INDEX), "w") as f:
        json.dump(index, f, indent=2)


def write(path: str, images: np.ndarray, labels=None, class_names=(), source: str = "") -> str:
    """Writes in-memory uint8 (N, H, W, C) images (and labels) as a prepared data set, for
    programs and tests that make their data rather than read a folder; returns the
    fingerprint. ``python -m ganpipe.prepare`` streams a folder into the same layout."""
    import hashlib

    images = np.ascontiguousarray(images, np.uint8)
    if images.ndim != 4:
        raise ValueError(f"images must be (N, H, W, C) uint8, got shape {images.shape}.")
    partial = f"{path}.partial-{os.getpid()}"
    os.makedirs(partial)
    np.save(os.path.join(partial, IMAGES), images)
    if labels is not None:
        np.save(os.path.join(partial, LABELS), np.asarray(labels, np.int32))
        class_names = tuple(class_names) or tuple(str(i) for i in range(int(max(labels)) + 1))
    fingerprint = hashlib.sha256(images.tobytes()).hexdigest()
    write_index(partial, make_index(
        count=len(images), image_shape=images.shape[1:], class_names=class_names,
        labelled=labels is not None, images_sha256=fingerprint,
        source={"path": source, "files": 0, "fingerprint": None}, settings=None,
    ))  # fmt: skip
    os.replace(partial, path)
    return fingerprint
