"""Reading the IDX format of MNIST and Fashion-MNIST (http://yann.lecun.com/exdb/mnist/)."""

from __future__ import annotations

import gzip
import os
import zlib

import numpy as np

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801

# Both data sets name their test split "t10k" on disk.
_SPLIT_PREFIXES = {"train": "train", "test": "t10k"}
# Some mirrors (e.g. Kaggle) use a dot instead of a dash before "idx".
_SEPARATORS = ("-", ".")


def read_idx(path: str | os.PathLike[str], *, expected_magic: int) -> np.ndarray:
    """Reads one unsigned-byte IDX file, gzip-compressed or not.

    Args:
        path: The file; a name ending in ".gz" is decompressed with gzip.
        expected_magic: IMAGES_MAGIC or LABELS_MAGIC.

    Returns:
        A uint8 array whose shape is given by the file's header.

    Raises:
        ValueError: If the file is corrupt, truncated or not of the expected kind; the message
            names the file.
    """
    path = os.fspath(path)
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            with open(path, "rb") as f:
                raw = f.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise ValueError(f"IDX file {path} is not a valid gzip file: {e}") from e

    if len(raw) < 4:
        raise ValueError(f"IDX file {path} is truncated: {len(raw)} bytes, no 4-byte magic.")
    magic = int.from_bytes(raw[:4], "big")
    if magic != expected_magic:
        raise ValueError(
            f"IDX file {path} has bad magic number 0x{magic:08x}; expected "
            f"0x{expected_magic:08x} ({_magic_name(expected_magic)})."
        )
    ndim = magic & 0xFF
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise ValueError(
            f"IDX file {path} is truncated: header needs {header_size} bytes, file has {len(raw)}."
        )
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected_size = header_size + int(np.prod(shape, dtype=np.int64))
    if len(raw) != expected_size:
        raise ValueError(
            f"IDX file {path} has a size mismatch: header says shape {shape} "
            f"({expected_size} bytes with header) but the file has {len(raw)} bytes."
        )
    # Copy so the array owns writable memory instead of viewing the immutable bytes.
    return np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape(shape).copy()


def _magic_name(magic: int) -> str:
    return {IMAGES_MAGIC: "images", LABELS_MAGIC: "labels"}.get(magic, "unknown")


def find_idx_files(directory: str, split: str) -> tuple[str, str] | None:
    """Finds the images and labels files of a split in a directory.

    Uncompressed files are preferred over ".gz" ones because they load faster.

    Args:
        directory: Folder to look in (not recursively).
        split: "train" or "test".

    Returns:
        (images_path, labels_path), or None if either is missing.
    """
    prefix = _SPLIT_PREFIXES[split]
    found = []
    for kind, suffix in (("images", "idx3-ubyte"), ("labels", "idx1-ubyte")):
        candidates = [
            os.path.join(directory, f"{prefix}-{kind}{sep}{suffix}{ext}")
            for sep in _SEPARATORS
            for ext in ("", ".gz")
        ]
        path = next((c for c in candidates if os.path.isfile(c)), None)
        if path is None:
            return None
        found.append(path)
    return found[0], found[1]


def idx_file_names(split: str) -> tuple[str, str]:
    """The standard file names of a split, for error messages."""
    prefix = _SPLIT_PREFIXES[split]
    return f"{prefix}-images-idx3-ubyte[.gz]", f"{prefix}-labels-idx1-ubyte[.gz]"


def load_idx_split(directory: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Loads a split of an MNIST-style data set from IDX files.

    Args:
        directory: Folder holding the IDX files.
        split: "train" or "test".

    Returns:
        images as uint8 (N, H, W, 1) and labels as int64 (N,).

    Raises:
        FileNotFoundError: If the files are not in the folder.
        ValueError: If a file is corrupt or the two files disagree on the number of examples.
    """
    paths = find_idx_files(directory, split)
    if paths is None:
        names = " and ".join(idx_file_names(split))
        raise FileNotFoundError(f"no {names} in {directory}")
    images_path, labels_path = paths
    images = read_idx(images_path, expected_magic=IMAGES_MAGIC)
    labels = read_idx(labels_path, expected_magic=LABELS_MAGIC).astype(np.int64)
    if images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"IDX files disagree: {images_path} has {images.shape[0]} images but "
            f"{labels_path} has {labels.shape[0]} labels."
        )
    return images[..., np.newaxis], labels
