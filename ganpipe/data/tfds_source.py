"""Loading image data sets through TensorFlow Datasets (TFDS), without ever hanging offline.

Both entry points raise SourceUnavailable (with a one-line reason) when TFDS cannot provide the
data, so that callers can fall back to another source. Tests monkeypatch `network_available`
and `load_prepared` to take TFDS out of the picture.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import threading
from collections.abc import Sequence

import numpy as np

from ganpipe.lazy_tf import tf

NETWORK_PROBE_TIMEOUT_S = 3.0

# Where TFDS fetches a data set from; the probe only checks that this host is reachable.
DOWNLOAD_HOSTS: dict[str, tuple[str, int]] = {
    "fashion_mnist": ("fashion-mnist.s3-website.eu-central-1.amazonaws.com", 80),
    "mnist": ("storage.googleapis.com", 443),
}
# TFDS' own mirror, and a reasonable reachability check for data sets not listed above.
DEFAULT_DOWNLOAD_HOST = ("storage.googleapis.com", 443)

_READ_BATCH = 1024


class SourceUnavailable(Exception):
    """A source cannot provide the data; str(e) is a short reason for logs and errors."""


def network_available(host: str, port: int, *, timeout: float = NETWORK_PROBE_TIMEOUT_S) -> bool:
    """Checks whether a TCP connection to host:port succeeds within timeout seconds.

    Args:
        host: Host name to connect to.
        port: TCP port.
        timeout: Upper bound, in seconds, on the whole probe including name resolution.

    Returns:
        True if the connection was established in time. The answer is kept for the process: a
        run that loads two splits probes once.
    """
    if (host, port) in _PROBED:
        return _PROBED[(host, port)]
    reachable = threading.Event()

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                reachable.set()
        except OSError:
            pass

    # getaddrinfo ignores socket timeouts, so a stalled resolver could block for much longer
    # than `timeout`; a daemon thread lets us give up on it without waiting.
    thread = threading.Thread(target=probe, name="ganpipe-network-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    _PROBED[(host, port)] = reachable.is_set()
    return _PROBED[(host, port)]


_PROBED: dict[tuple[str, int], bool] = {}


def default_data_dir() -> str:
    """TFDS' default data directory (honours TFDS_DATA_DIR)."""
    tfds = _import_tfds()
    return os.path.expanduser(tfds.core.constants.DATA_DIR)


def load_prepared(
    name: str,
    *,
    split: str,
    data_dirs: Sequence[str | None],
    image_size: tuple[int, int] | None,
    limit: int | None,
) -> tuple[np.ndarray, np.ndarray | None, str]:
    """Loads a data set that TFDS has already prepared; never downloads.

    Args:
        name: TFDS data set name, e.g. "fashion_mnist".
        split: TFDS split, e.g. "train" or "test[:10%]".
        data_dirs: Directories to look in, in order; None means TFDS' default directory.
        image_size: Needed only for data sets whose images vary in size.
        limit: If set, read only the first `limit` examples.

    Returns:
        (images uint8 (N, H, W, C), labels int64 (N,) or None, description of the source).

    Raises:
        SourceUnavailable: If no directory holds the prepared data set.
    """
    dirs = [d if d is not None else default_data_dir() for d in data_dirs]
    dirs = list(dict.fromkeys(os.path.expanduser(d) for d in dirs))
    for data_dir in dirs:
        builder = _builder(name, data_dir)
        # is_prepared() logs a warning for a missing folder; a missing folder is the common case.
        if tf.io.gfile.isdir(builder.data_dir) and builder.is_prepared():
            images, labels = _read(builder, name, split, image_size, limit)
            return images, labels, f"TFDS {name} prepared in {data_dir}"
    raise SourceUnavailable(f"TFDS has no prepared {name} in {', '.join(dirs)}")


def download_and_load(
    name: str,
    *,
    split: str,
    data_dir: str | None,
    image_size: tuple[int, int] | None,
    limit: int | None,
) -> tuple[np.ndarray, np.ndarray | None, str]:
    """Lets TFDS download and prepare a data set, after checking the network is reachable.

    Args:
        name: TFDS data set name.
        split: TFDS split.
        data_dir: Where TFDS stores the data set; None means TFDS' default directory.
        image_size: Needed only for data sets whose images vary in size.
        limit: If set, read only the first `limit` examples.

    Returns:
        As load_prepared.

    Raises:
        SourceUnavailable: If there is no network or the download fails.
    """
    host, port = DOWNLOAD_HOSTS.get(name, DEFAULT_DOWNLOAD_HOST)
    if not network_available(host, port):
        raise SourceUnavailable(
            f"no network to download it (could not reach {host}:{port} "
            f"within {NETWORK_PROBE_TIMEOUT_S:g} s)"
        )
    target = os.path.expanduser(data_dir) if data_dir is not None else default_data_dir()
    builder = _builder(name, target)
    try:
        builder.download_and_prepare()
    # TFDS raises many unrelated types for network, checksum and disk problems; any of them just
    # means this source did not work and the next one should be tried.
    except Exception as e:
        raise SourceUnavailable(f"TFDS download of {name} failed: {type(e).__name__}: {e}") from e
    images, labels = _read(builder, name, split, image_size, limit)
    return images, labels, f"TFDS {name} downloaded to {target}"


def _import_tfds():
    # Imported lazily: TFDS is slow to import and only some sources need it. It needs
    # TensorFlow, which another Keras backend may run without.
    try:
        has_tensorflow = importlib.util.find_spec("tensorflow") is not None
    except ValueError:  # Present in sys.modules as None: importing it is refused.
        has_tensorflow = False
    if not has_tensorflow:
        raise SourceUnavailable("TFDS needs TensorFlow, which is not installed")
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:
        raise SourceUnavailable(f"tensorflow_datasets cannot be imported ({e})") from e
    return tfds


def _builder(name: str, data_dir: str):
    tfds = _import_tfds()
    try:
        return tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError as e:
        # The TFDS message lists every registered data set; keep ours to one line.
        raise SourceUnavailable(f"TFDS has no data set named {name!r}") from e


def _read(
    builder,
    name: str,
    split: str,
    image_size: tuple[int, int] | None,
    limit: int | None,
) -> tuple[np.ndarray, np.ndarray | None]:
    features = builder.info.features
    if "image" not in features:
        raise ValueError(
            f"TFDS data set {name} has no 'image' feature (features: {', '.join(features)})."
        )
    image_shape = tuple(features["image"].shape)
    variable_size = None in image_shape[:2]
    if variable_size and image_size is None:
        raise ValueError(
            f"TFDS data set {name} has images of varying size {image_shape}; set image_size."
        )
    has_label = "label" in features and tuple(features["label"].shape) == ()
    if limit is not None and "[" not in split:
        # Slicing the split keeps large data sets from being read in full.
        split = f"{split}[:{limit}]"

    def select(example):
        image = example["image"]
        if variable_size:
            resized = tf.image.resize(image, image_size, method="bilinear", antialias=True)
            image = tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)
        label = example["label"] if has_label else tf.zeros((), tf.int64)
        return image, label

    dataset = builder.as_dataset(split=split, shuffle_files=False).map(select)
    image_batches, label_batches = [], []
    for images, labels in dataset.batch(_READ_BATCH).as_numpy_iterator():
        image_batches.append(images)
        label_batches.append(labels)
    if not image_batches:
        raise ValueError(f"TFDS data set {name} split {split!r} is empty.")
    images = np.concatenate(image_batches)
    if images.dtype != np.uint8:
        raise ValueError(
            f"TFDS data set {name} has {images.dtype} images; only uint8 is supported."
        )
    labels = np.concatenate(label_batches).astype(np.int64) if has_label else None
    return images, labels
