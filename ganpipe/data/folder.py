"""Loading a folder of the user's own image files with Pillow.

Labels come from class subfolders: when every image lies inside a first-level subfolder of the
folder (``<folder>/<class>/...``, deeper folders included), the subfolder names, sorted, are the
classes and each image's label is the index of its class (``cat/`` 0, ``dog/`` 1, ...). With any
image directly in the folder there are no labels.
"""

from __future__ import annotations

import collections
import dataclasses
import os

import numpy as np
from PIL import Image, UnidentifiedImageError

from ganpipe.data.core import DatasetNotFoundError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")

# Pillow modes without colour; "P" (palette) is treated as colour since its palette may be.
_GRAYSCALE_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "F"})
_PIL_MODES = {1: "L", 3: "RGB"}


def list_image_files(folder: str) -> list[str]:
    """Returns the image files under folder, recursively, sorted by path for determinism."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        found.extend(os.path.join(root, f) for f in files if f.lower().endswith(IMAGE_EXTENSIONS))
    return sorted(found)


@dataclasses.dataclass(frozen=True)
class FolderImages:
    """What load_folder read.

    Attributes:
        images: uint8 array (N, H, W, C).
        labels: int64 array (N,) of class indices, or None without class subfolders.
        class_names: The class subfolder names in label order (empty without labels).
    """

    images: np.ndarray
    labels: np.ndarray | None
    class_names: tuple[str, ...]


def class_labels(folder: str, paths: list[str]) -> tuple[np.ndarray | None, tuple[str, ...]]:
    """Labels from class subfolders: (int64 labels, sorted class names), or (None, ()).

    Args:
        folder: The data folder.
        paths: Image files under it.

    Returns:
        Each path's label, the index of its first-level subfolder among the sorted subfolder
        names, and those names; (None, ()) if any path lies directly in `folder`.
    """
    first_parts = []
    for path in paths:
        parts = os.path.relpath(path, folder).split(os.sep)
        if len(parts) < 2:
            return None, ()
        first_parts.append(parts[0])
    class_names = tuple(sorted(set(first_parts)))
    index = {name: i for i, name in enumerate(class_names)}
    return np.array([index[name] for name in first_parts], dtype=np.int64), class_names


def load_folder(
    folder: str,
    *,
    image_size: tuple[int, int] | None,
    channels: int | None,
    limit: int | None,
) -> FolderImages:
    """Loads every image file under a folder into one array, with class-subfolder labels.

    Args:
        folder: Directory searched recursively for IMAGE_EXTENSIONS (case-insensitive).
        image_size: (height, width) to resize every image to; required when sizes differ.
        channels: 1 or 3; None picks 1 if every image is grayscale, else 3.
        limit: If set, load only the first `limit` files in sorted order (the classes are
            still numbered over all files, so a limit never renumbers them).

    Returns:
        The images (uint8 (N, H, W, C)), their labels and the class names; see the module
        docstring for how labels are read off subfolders.

    Raises:
        DatasetNotFoundError: If the folder does not exist or holds no image files.
        ValueError: If a file cannot be decoded, or sizes differ and image_size is None.
    """
    if not os.path.isdir(folder):
        raise DatasetNotFoundError(f"Image folder {folder} does not exist or is not a directory.")
    paths = list_image_files(folder)
    if not paths:
        raise DatasetNotFoundError(
            f"No images found in {folder} (searched recursively for "
            f"{', '.join(IMAGE_EXTENSIONS)}, any case)."
        )
    labels, class_names = class_labels(folder, paths)
    if limit is not None:
        paths = paths[:limit]
        labels = labels[:limit] if labels is not None else None

    pictures = [_open(p) for p in paths]
    if channels is None:
        channels = 1 if all(p.mode in _GRAYSCALE_MODES for p in pictures) else 3
    sizes = collections.Counter((p.height, p.width) for p in pictures)
    if image_size is None and len(sizes) > 1:
        listed = ", ".join(f"{h}x{w} ({n} files)" for (h, w), n in sizes.most_common(5))
        more = f" and {len(sizes) - 5} more" if len(sizes) > 5 else ""
        raise ValueError(
            f"Images in {folder} have different sizes (height x width): {listed}{more}. "
            "Set image_size=(height, width) to resize them all to one size."
        )

    arrays = []
    for picture in pictures:
        picture = picture.convert(_PIL_MODES[channels])
        if image_size is not None and (picture.height, picture.width) != tuple(image_size):
            # Pillow takes (width, height); BILINEAR widens its filter when shrinking (antialias).
            picture = picture.resize((image_size[1], image_size[0]), Image.Resampling.BILINEAR)
        arrays.append(
            np.asarray(picture, dtype=np.uint8).reshape(picture.height, picture.width, -1)
        )
    return FolderImages(np.stack(arrays), labels, class_names)


def _open(path: str) -> Image.Image:
    try:
        with Image.open(path) as picture:
            # load() reads the pixels now so the file can be closed; GIFs keep their first frame.
            picture.load()
            return picture
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"Cannot read image file {path}: {e}") from e
