"""load_images: one entry point over every image source, dispatched through SOURCES."""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from collections.abc import Callable

import numpy as np
from absl import logging

from ganpipe.data import folder as folder_lib
from ganpipe.data import idx as idx_lib
from ganpipe.data import prepared as prepared_lib
from ganpipe.data import synthetic as synthetic_lib
from ganpipe.data import tfds_source, transforms
from ganpipe.data.core import DatasetNotFoundError, ImageArray
from ganpipe.data.tfds_source import SourceUnavailable
from ganpipe.registry import Registry
from ganpipe.validate import at_least

# Roots searched (after data_dir and $GANPIPE_IDX_DIR) for <root>/<IdxDataset.subdir>; Debian's
# dataset-fashion-mnist package installs into /usr/share/datasets/fashion-mnist.
IDX_SEARCH_ROOTS: tuple[str, ...] = ("/usr/share/datasets",)
IDX_DIR_ENV_VAR = "GANPIPE_IDX_DIR"
IDX_SPLITS = ("train", "test")


@dataclasses.dataclass(frozen=True)
class IdxDataset:
    """An MNIST-style data set available from TFDS and as IDX files.

    Attributes:
        tfds_name: Its TFDS name.
        subdir: Folder name under each of IDX_SEARCH_ROOTS (and tried under user folders).
        apt_package: Debian package that installs the IDX files, if there is one.
    """

    tfds_name: str
    subdir: str
    apt_package: str | None = None


IDX_DATASETS = {
    "fashion_mnist": IdxDataset("fashion_mnist", "fashion-mnist", "dataset-fashion-mnist"),
    "mnist": IdxDataset("mnist", "mnist"),
}


@dataclasses.dataclass(frozen=True)
class Request:
    """Arguments of load_images as seen by a source loader.

    Attributes:
        argument: What follows the ':' of the source (``'cifar10'`` in ``'tfds:cifar10'``), or
            None.
        split, data_dir, image_size, channels, limit, num_synthetic, seed: load_images' own.
            A loader may apply ``limit``, ``image_size`` and ``channels`` itself (to read less);
            load_images applies whatever is left.
    """

    argument: str | None
    split: str
    data_dir: str | None
    image_size: tuple[int, int] | None
    channels: int | None
    limit: int | None
    num_synthetic: int
    seed: int


@dataclasses.dataclass(frozen=True)
class Loaded:
    """What a source loader returns.

    Attributes:
        images: uint8 images, ``(n, height, width, channels)``.
        labels: Integer class labels ``(n,)``, or None.
        source: Where the images came from, in words (logged, and kept in ``ImageArray``).
        class_names, fingerprint: As ``ImageArray``'s.
    """

    images: np.ndarray
    labels: np.ndarray | None
    source: str
    class_names: tuple[str, ...] = ()
    fingerprint: str | None = None


@dataclasses.dataclass(frozen=True)
class Source:
    """A ``SOURCES`` entry.

    Attributes:
        load: Loads the data for a request.
        argument: None if the source takes no ":argument"; otherwise what the argument is,
            for messages (e.g. "<TFDS name>").
    """

    load: Callable[[Request], Loaded]
    argument: str | None = None


def _load_idx_dataset(dataset: IdxDataset, request: Request) -> Loaded:
    """Tries TFDS (prepared), user IDX folders, TFDS download, then system IDX folders."""
    _check_idx_split(request.split)
    name = dataset.tfds_name
    user_dirs = _user_idx_dirs(dataset, request.data_dir)
    system_dirs = [os.path.join(root, dataset.subdir) for root in IDX_SEARCH_ROOTS]
    attempts: list[tuple[str, Callable[[], Loaded]]] = [
        (
            "TFDS, already prepared",
            lambda: Loaded(
                *tfds_source.load_prepared(
                    name,
                    split=request.split,
                    data_dirs=[request.data_dir, None] if request.data_dir else [None],
                    image_size=None,
                    limit=request.limit,
                )
            ),
        ),
        # IDX files the user pointed at explicitly win over downloading a fresh copy.
        ("IDX files in data_dir / $" + IDX_DIR_ENV_VAR, lambda: _first_idx_dir(user_dirs, request)),
        (
            "TFDS download",
            lambda: Loaded(
                *tfds_source.download_and_load(
                    name,
                    split=request.split,
                    data_dir=request.data_dir,
                    image_size=None,
                    limit=request.limit,
                )
            ),
        ),
        ("IDX files in system folders", lambda: _first_idx_dir(system_dirs, request)),
    ]
    from ganpipe import backend  # Here: the backend imports the data's batches.

    if not backend.TFDS_FIRST:
        # TFDS imports TensorFlow: under another backend, IDX files come first.
        attempts = [attempts[1], attempts[3], attempts[0], attempts[2]]
    loaded, failures = _first_available(f"{name}/{request.split}", attempts)
    if loaded is None:
        raise DatasetNotFoundError(_not_found_message(dataset, request.split, failures))
    return loaded


def _first_available(
    what: str, attempts: list[tuple[str, Callable[[], Loaded]]]
) -> tuple[Loaded | None, list[tuple[str, str]]]:
    """Runs attempts in order until one does not raise SourceUnavailable, logging the path taken.

    Args:
        what: What is being loaded, for the log line, e.g. "fashion_mnist/train".
        attempts: (description, loader) pairs.

    Returns:
        (the first successful result or None, [(description, reason)] of the failed attempts).
    """
    failures: list[tuple[str, str]] = []
    for attempt, load in attempts:
        try:
            loaded = load()
        except SourceUnavailable as e:
            failures.append((attempt, str(e)))
            continue
        reasons = [reason for _, reason in failures] + [f"using {loaded.source}"]
        logging.info("Loading %s: %s", what, "; ".join(reasons))
        return loaded, failures
    logging.info("Loading %s failed: %s", what, "; ".join(reason for _, reason in failures))
    return None, failures


def _user_idx_dirs(dataset: IdxDataset, data_dir: str | None) -> list[str]:
    dirs = []
    for base in (data_dir, os.environ.get(IDX_DIR_ENV_VAR)):
        if base:
            base = os.path.expanduser(base)
            dirs += [base, os.path.join(base, dataset.subdir)]
    return dirs


def _first_idx_dir(dirs: list[str], request: Request) -> Loaded:
    for directory in dirs:
        if idx_lib.find_idx_files(directory, request.split) is not None:
            return _load_idx_dir(directory, request.split)
    if not dirs:
        raise SourceUnavailable(f"data_dir not given and ${IDX_DIR_ENV_VAR} not set")
    names = ", ".join(idx_lib.idx_file_names(request.split))
    raise SourceUnavailable(f"no IDX files ({names}) in {', '.join(dirs)}")


def _load_idx_dir(directory: str, split: str) -> Loaded:
    images, labels = idx_lib.load_idx_split(directory, split)
    return Loaded(images, labels, f"IDX files in {directory}")


def _not_found_message(dataset: IdxDataset, split: str, failures: list[tuple[str, str]]) -> str:
    images_name, labels_name = idx_lib.idx_file_names(split)
    ways = []
    if dataset.apt_package:
        ways.append(
            f"Debian/Ubuntu, works offline: apt-get install {dataset.apt_package} "
            f"(installs IDX files into {IDX_SEARCH_ROOTS[0]}/{dataset.subdir})"
        )
    ways += [
        f"put the IDX files ({images_name}, {labels_name}) in a folder and pass "
        f"data_dir=<folder> or set {IDX_DIR_ENV_VAR}=<folder>",
        f"with internet access, TFDS downloads {dataset.tfds_name} automatically "
        f"(or prepare it beforehand with `tfds build {dataset.tfds_name}`)",
    ]
    return (
        f"Could not load {dataset.tfds_name} (split {split!r}). Tried:\n"
        + "".join(f"  - {attempt}: {reason}\n" for attempt, reason in failures)
        + "To get the data, any of:\n"
        + "".join(f"  - {way}\n" for way in ways)
    ).rstrip()


def _check_idx_split(split: str) -> None:
    if split not in IDX_SPLITS:
        raise ValueError(f"Unknown split {split!r}; IDX data sets have splits {IDX_SPLITS}.")


def _load_idx_source(request: Request) -> Loaded:
    _check_idx_split(request.split)
    if not request.data_dir:
        raise ValueError("source='idx' needs data_dir, the folder holding the IDX files.")
    directory = os.path.expanduser(request.data_dir)
    try:
        return _load_idx_dir(directory, request.split)
    except FileNotFoundError as e:
        raise DatasetNotFoundError(f"source='idx': {e}") from e


def _load_tfds_source(request: Request) -> Loaded:
    name = request.argument
    kwargs = dict(split=request.split, image_size=request.image_size, limit=request.limit)
    dirs = [request.data_dir, None] if request.data_dir else [None]
    loaded, failures = _first_available(
        f"tfds:{name}/{request.split}",
        [
            (
                "TFDS, already prepared",
                lambda: Loaded(*tfds_source.load_prepared(name, data_dirs=dirs, **kwargs)),
            ),
            (
                "TFDS download",
                lambda: Loaded(
                    *tfds_source.download_and_load(name, data_dir=request.data_dir, **kwargs)
                ),
            ),
        ],
    )
    if loaded is None:
        raise DatasetNotFoundError(
            f"Could not load TFDS data set {name!r}: "
            f"{'; '.join(reason for _, reason in failures)}. Run with internet access, or "
            f"prepare it beforehand with `tfds build {name}` (and pass its data_dir if that is "
            "not TFDS' default)."
        )
    return loaded


# Decoding a folder for longer than this (seconds) logs that a prepared data set would be faster.
PREPARE_HINT_SECONDS = 10.0

# Class names listed in the source description, at most.
_LISTED_CLASSES = 10


def _load_folder_source(request: Request) -> Loaded:
    if not request.data_dir:
        raise ValueError(
            "source='folder' needs data_dir, the folder holding the image files. Set it with "
            "--gin_param=\"load_images.data_dir='/path/to/images'\" (or DATA_DIR='/path/to/images' "
            "with gin/data/folder.gin)."
        )
    directory = os.path.expanduser(request.data_dir)
    started = time.monotonic()
    loaded = folder_lib.load_folder(
        directory, image_size=request.image_size, channels=request.channels, limit=request.limit
    )
    seconds = time.monotonic() - started
    if seconds > PREPARE_HINT_SECONDS:
        logging.warning(
            "Decoding the %d image files in %s took %.0f s, and every run decodes them again. "
            "`python -m ganpipe.prepare --source=%s --output=<folder>` decodes them once (on "
            "every core); then train with gin/data/prepared.gin and DATA='<folder>', which "
            "memory-maps the images and starts at once.",
            len(loaded.images), directory, seconds, directory,
        )  # fmt: skip
    source = f"{len(loaded.images)} image files in {directory}"
    if loaded.labels is not None:
        names = ", ".join(
            f"{name}={i}" for i, name in enumerate(loaded.class_names[:_LISTED_CLASSES])
        )
        more = ", ..." if len(loaded.class_names) > _LISTED_CLASSES else ""
        source += f", labels from {len(loaded.class_names)} class folders ({names}{more})"
    else:
        source += ", no labels (no class subfolders)"
    logging.info("Loading folder: using %s", source)
    return Loaded(loaded.images, loaded.labels, source, class_names=loaded.class_names)


def _load_prepared_source(request: Request) -> Loaded:
    if not request.data_dir:
        raise ValueError(
            "source='prepared' needs data_dir, the prepared data set's folder (made by "
            "`python -m ganpipe.prepare`). With gin/data/prepared.gin: "
            "--gin_param=\"DATA='/path/to/prepared'\"."
        )
    data = prepared_lib.open_prepared(
        request.data_dir,
        image_size=request.image_size,
        channels=request.channels,
        limit=request.limit,
    )
    logging.info("Loading prepared: using %s", data.source)
    return Loaded(data.images, data.labels, data.source, data.class_names, data.fingerprint)


def _load_synthetic_source(request: Request) -> Loaded:
    size = request.image_size or (28, 28)
    channels = request.channels or 1
    count = min(request.num_synthetic, request.limit or request.num_synthetic)
    images, labels = synthetic_lib.make_shapes(
        num=count, image_size=size, channels=channels, seed=request.seed
    )
    source = f"synthetic shapes ({', '.join(synthetic_lib.SHAPE_CLASSES)}), seed {request.seed}"
    logging.info("Loading synthetic: using %s", source)
    return Loaded(images, labels, source)


# The values of load_images' `source` (before any ':argument'). A new source: its loader
# (Request -> Loaded) and its entry here, and a test in tests/data/.
SOURCES = Registry(
    "data source",
    {
        "fashion_mnist": Source(
            functools.partial(_load_idx_dataset, IDX_DATASETS["fashion_mnist"])
        ),
        "mnist": Source(functools.partial(_load_idx_dataset, IDX_DATASETS["mnist"])),
        "idx": Source(_load_idx_source),
        "tfds": Source(_load_tfds_source, argument="<TFDS name>"),
        "folder": Source(_load_folder_source),
        "prepared": Source(_load_prepared_source),
        "synthetic": Source(_load_synthetic_source),
    },
    base=Source,
    instantiate=False,
)


def available_sources() -> tuple[str, ...]:
    """The accepted values of load_images' `source`, e.g. ("fashion_mnist", ..., "tfds:<name>")."""
    return tuple(
        f"{name}:{spec.argument}" if spec.argument else name
        for name, spec in SOURCES.entries.items()
    )


def load_images(
    *,
    source: str = "fashion_mnist",
    split: str = "train",
    data_dir: str | None = None,
    image_size: tuple[int, int] | None = None,
    channels: int | None = None,
    limit: int | None = None,
    num_synthetic: int = 1024,
    seed: int = 0,
) -> ImageArray:
    """Loads a whole image data set into memory as uint8.

    Args:
        source: One of available_sources(): "fashion_mnist" and "mnist" (TFDS if prepared, else
            IDX files, else a TFDS download), "idx" (IDX files in data_dir), "tfds:<name>" (any
            TFDS image data set), "folder" (image files under data_dir; labelled by class
            subfolder when every image lies in one, see ganpipe.data.folder), "prepared" (a data
            set ``python -m ganpipe.prepare`` made in data_dir: memory-mapped, not loaded) or
            "synthetic".
        split: "train" or "test" (any TFDS split string for "tfds:<name>").
        data_dir: Folder for the "idx" and "folder" sources; also searched first by
            "fashion_mnist"/"mnist" (as TFDS data dir and IDX folder) and used by TFDS.
        image_size: (height, width) to resize to; None keeps the native size.
        channels: 1 or 3 to convert to; None keeps the native channels.
        limit: Keep only the first `limit` examples, in the source's order.
        num_synthetic: Number of images of the "synthetic" source.
        seed: Seed of the "synthetic" source.

    Returns:
        The data set.

    Raises:
        ValueError: For an unknown source, bad arguments or corrupt data.
        DatasetNotFoundError: If the data cannot be found; the message says how to get it.
    """
    spec, argument, image_size = _check_request(source, limit, image_size, channels)
    loaded = spec.load(
        Request(
            argument=argument or None,
            split=split,
            data_dir=data_dir,
            image_size=image_size,
            channels=channels,
            limit=limit,
            num_synthetic=num_synthetic,
            seed=seed,
        )
    )
    return _to_image_array(loaded, limit=limit, image_size=image_size, channels=channels)


def _check_request(
    source: str,
    limit: int | None,
    image_size: tuple[int, int] | None,
    channels: int | None,
) -> tuple[Source, str, tuple[int, int] | None]:
    """Validates load_images' arguments before any loading.

    Returns:
        (the source's registry entry, its ":argument" or "", the validated image_size).
    """
    kind, has_argument, argument = source.partition(":")
    known = ", ".join(available_sources())
    try:
        spec = SOURCES[kind]
    except ValueError as error:
        with_argument = [name for name in available_sources() if ":" in name]
        raise ValueError(f"{error} Written with an argument: {', '.join(with_argument)}.") from None
    if bool(spec.argument) != bool(has_argument and argument):
        raise ValueError(f"Data source {source!r} is malformed; known sources: {known}.")
    if limit is not None:
        at_least("load_images.limit", limit, 1, hint="None loads every image.")
    image_size = transforms.validate_image_size(image_size)
    transforms.validate_channels(channels)
    return spec, argument, image_size


def _to_image_array(
    loaded: Loaded,
    *,
    limit: int | None,
    image_size: tuple[int, int] | None,
    channels: int | None,
) -> ImageArray:
    """Applies ``limit``, then resizing and channel conversion, to what a source loaded."""
    images, labels = loaded.images, loaded.labels
    if limit is not None and limit < len(images) and not isinstance(images, np.memmap):
        # Copies so the rest of a large data set can be freed.
        images = images[:limit].copy()
        labels = labels[:limit].copy() if labels is not None else None
    if not isinstance(images, np.memmap):  # a prepared set stays mapped (it matches already)
        images = np.ascontiguousarray(
            transforms.finish(images, image_size=image_size, channels=channels)
        )
    return ImageArray(
        images=images, labels=labels, source=loaded.source, class_names=loaded.class_names,
        fingerprint=loaded.fingerprint,
    )  # fmt: skip
