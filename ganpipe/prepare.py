"""Packs a folder of images once into a prepared data set that training memory-maps.

    python -m ganpipe.prepare --source=DIR --output=PATH [--size=64 | --size=48,64]
        [--resize=crop|pad|stretch] [--channels=1|3] [--labels=subfolders|none|FILE.json]
        [--skip_unreadable] [--upscale] [--workers=N] [--overwrite]

Labels come from class subfolders (``DIR/<class>/...``, the default), from a ``dataset.json``
in StyleGAN's format (``{"labels": [["00000/img.png", 3], ...]}``), or not at all. Without
--size every image must already share one size. Every file is decoded on every core, resized
with an antialiased Lanczos filter (centre crop, black padding or stretch) and written into
PATH/images.npy; PATH/index.json records the classes, the pixels' SHA-256, the source folder's
fingerprint and these settings (``ganpipe.data.prepared``). PATH appears only once it is whole.

Then train on it:

    python -m ganpipe.main --gin_file=gin/recommended.gin --gin_file=gin/data/prepared.gin \\
        --gin_param="DATA='PATH'" --output_dir=runs/mine
"""

from __future__ import annotations

import contextlib
import hashlib
import multiprocessing
import os
import shutil
import sys
import time

from absl import app, flags, logging

from ganpipe.data import packing  # no Keras, no TensorFlow

flags.DEFINE_string("source", None, "The folder of images (searched recursively).")
flags.DEFINE_string("output", None, "The prepared data set's folder (must not exist yet).")
flags.DEFINE_string(
    "size", None, "Target size: N (square) or H,W. Default: the images' own, if they share one."
)
flags.DEFINE_enum("resize", "crop", list(packing.RESIZE_MODES),
                  "crop: scale to cover, cut the centre; pad: scale to fit, pad with black; "
                  "stretch: scale each side alone.")  # fmt: skip
flags.DEFINE_integer("channels", None, "1 (grayscale) or 3 (RGB). Default: the files' own.")
flags.DEFINE_string("labels", "subfolders", "subfolders, none, or the path of a dataset.json.")
flags.DEFINE_bool("skip_unreadable", False, "Prepare the readable files and count the rest.")
flags.DEFINE_bool("upscale", False, "Allow images smaller than --size (enlarged; blurrier).")
flags.DEFINE_integer("workers", None, "Decoding processes (default: every core).")
flags.DEFINE_integer("max_pixels", None, "Largest image in pixels (default: Pillow's limit).")
flags.DEFINE_bool("overwrite", False, "Replace an existing --output.")
FLAGS = flags.FLAGS

# Seconds between progress lines.
PROGRESS_EVERY = 2.0
CHUNK = 64


def parse_size(text: str | None) -> tuple[int, int] | None:
    """``"64"`` -> (64, 64); ``"48,64"`` -> (48, 64) (height, width)."""
    if text is None:
        return None
    try:
        sides = tuple(int(v) for v in str(text).replace("x", ",").split(","))
    except ValueError:
        sides = ()
    if len(sides) == 1:
        sides = sides * 2
    if len(sides) != 2 or min(sides) < 1 or max(sides) > 4096:
        raise packing.PrepareError(
            f"--size={text} is not a size: give N (square) or H,W, each from 1 to 4096."
        )
    return sides


@contextlib.contextmanager
def _pool(workers: int):
    """Worker processes (None for one worker: decode here), closed and joined after."""
    if workers <= 1:
        yield None
        return
    pool = multiprocessing.get_context("fork").Pool(workers)
    try:
        yield pool
    finally:
        pool.close()
        pool.join()


def _map(pool, function, items):
    """``function`` over ``items`` in order, in the pool's processes (or here)."""
    if pool is None:
        return map(function, items)
    return pool.imap(function, items, chunksize=CHUNK)


class Progress:
    """Progress lines: done, rate and time left, every PROGRESS_EVERY seconds."""

    def __init__(self, what: str, total: int):
        self.what, self.total, self.start = what, total, time.monotonic()
        self.last = self.start

    def update(self, done: int, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last < PROGRESS_EVERY:
            return
        self.last = now
        rate = done / max(now - self.start, 1e-9)
        left = (self.total - done) / rate if rate > 0 else 0.0
        logging.info(
            "%s: %d / %d (%.0f%%), %.0f images/s, %.0f s left",
            self.what, done, self.total, 100.0 * done / max(self.total, 1), rate, left,
        )  # fmt: skip

    def rate(self, done: int) -> float:
        return done / max(time.monotonic() - self.start, 1e-9)


def _header(path):
    return packing.read_header(path, FLAGS.max_pixels or packing.MAX_PIXELS)


def _decode(path):
    return packing.decode(path, _SETTINGS)


_SETTINGS = None  # the decode settings, set before the pool forks


def main(argv) -> int:
    del argv
    try:
        return prepare(FLAGS.source, FLAGS.output)
    except packing.PrepareError as error:
        logging.error("%s", error)
        print(f"prepare: {error}", file=sys.stderr)
        return 2


def prepare(source: str, output: str) -> int:
    """The command's work; returns the exit status."""
    if not source or not output:
        raise packing.PrepareError("Give both --source=<image folder> and --output=<new folder>.")
    source, output = os.path.abspath(source), os.path.abspath(output)
    if os.path.exists(output) and not FLAGS.overwrite:
        raise packing.PrepareError(
            f"--output={output} already exists. Choose another path, or add --overwrite."
        )
    if FLAGS.channels not in (None, 1, 3):
        raise packing.PrepareError(f"--channels must be 1 or 3, got {FLAGS.channels}.")
    size = parse_size(FLAGS.size)
    files, labels, class_names = _files_and_labels(source)
    workers = FLAGS.workers or os.cpu_count() or 1
    with _pool(workers) as pool:
        headers = _headers(files, pool, workers)
        settings, files, labels, unreadable = _settings(source, headers, labels, size)
    global _SETTINGS
    _SETTINGS = settings
    with _pool(workers) as pool:
        written = _write(source, output, files, labels, class_names, settings, pool, unreadable)
    logging.info("Wrote %s: %s", output, written)
    print(written)
    return 0


def _files_and_labels(source: str):
    listing = packing.list_files(source)
    if listing.other_files:
        logging.warning(
            "Leaving out %d file(s) that are not images (by their extension): %s",
            len(listing.other_files), packing.listed(listing.other_files, source),
        )  # fmt: skip
    mode = FLAGS.labels
    if mode == "none":
        return listing.images, None, ()
    if mode == "subfolders":
        labels, names = packing.subfolder_labels(source, listing.images)
        return listing.images, labels, names
    if not mode.endswith(".json"):
        raise packing.PrepareError(
            f"--labels={mode}: give subfolders, none, or the path of a dataset.json."
        )
    path = mode if os.path.isabs(mode) or os.path.isfile(mode) else os.path.join(source, mode)
    return packing.json_labels(source, path, listing.images)


def _headers(files, pool, workers):
    logging.info("Reading %d image headers on %d process(es)...", len(files), workers)
    return list(_map(pool, _header, files))


def _settings(source, headers, labels, size):
    """The decode settings; drops (or refuses) unreadable files and checks sizes and colour."""
    bad = [h for h in headers if h.error]
    if bad and not FLAGS.skip_unreadable:
        shown = "; ".join(f"{os.path.relpath(h.path, source)}: {h.error}" for h in bad[:8])
        raise packing.PrepareError(
            f"{len(bad)} file(s) cannot be read: {shown}"
            + (f" (and {len(bad) - 8} more)" if len(bad) > 8 else "")
            + ". Remove or fix them, or add --skip_unreadable to prepare the rest."
        )
    keep = [i for i, h in enumerate(headers) if not h.error]
    headers = [headers[i] for i in keep]
    labels = None if labels is None else labels[keep]
    if bad:
        logging.warning("Skipping %d unreadable file(s) (--skip_unreadable).", len(bad))
    if not headers:
        raise packing.PrepareError(f"No readable image in {source}.")
    sizes = {h.size for h in headers}
    if size is None and len(sizes) > 1:
        raise packing.PrepareError(
            f"The images in {source} have different sizes (height x width): "
            f"{packing.summarize_sizes(headers)}. Give --size=N or --size=H,W (and --resize)."
        )
    size = size or next(iter(sizes))
    grays = sum(h.gray for h in headers)
    channels = FLAGS.channels
    if channels is None and 0 < grays < len(headers):
        raise packing.PrepareError(
            f"{source} mixes {grays} grayscale and {len(headers) - grays} colour files. Give "
            "--channels=1 (all grayscale) or --channels=3 (all RGB)."
        )
    channels = channels or (1 if grays else 3)
    small = [h.path for h in headers if h.size[0] < size[0] or h.size[1] < size[1]]
    if small and not FLAGS.upscale:
        raise packing.PrepareError(
            f"{len(small)} image(s) are smaller than --size {size[0]}x{size[1]}: "
            f"{packing.listed(small, source)}. Enlarging them would blur them; give a smaller "
            "--size, or add --upscale to enlarge them anyway."
        )
    _warn_if_no_family_builds(size)
    settings = packing.Settings(size, channels, FLAGS.resize, FLAGS.upscale)
    return settings, [h.path for h in headers], labels, [(h.path, h.error) for h in bad]


def _warn_if_no_family_builds(size):
    """Logs (does not refuse) a size the model families cannot build: a user's own models may."""
    from ganpipe import resolution  # no Keras: the families' sizes alone

    try:
        resolution.check_shape((*size, 1), "--size")
    except resolution.SizeError as error:
        logging.warning("%s", error)


def _write(source, output, files, labels, class_names, settings, pool, unreadable) -> str:
    """Decodes every file into a temporary folder, then renames it to ``output``;
    ``unreadable`` are the (path, why) skipped already (their headers did not read)."""
    import numpy as np

    from ganpipe.data import prepared

    partial = f"{output}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    os.makedirs(partial)
    try:
        shape = (len(files), *settings.size, settings.channels)
        images = np.lib.format.open_memmap(
            os.path.join(partial, prepared.IMAGES), mode="w+", dtype=np.uint8, shape=shape
        )
        kept, skipped, digest, seconds, rate = _fill(images, files, pool)
        count = len(kept)
        skipped = unreadable + skipped
        del images
        if count < len(files):
            _truncate(os.path.join(partial, prepared.IMAGES), shape, count)
        if skipped:
            logging.warning("Skipped %d unreadable file(s): %s", len(skipped),
                            "; ".join(f"{p}: {why}" for p, why in skipped[:8]))  # fmt: skip
        if labels is not None:
            np.save(os.path.join(partial, prepared.LABELS), labels[kept].astype(np.int32))
        index = _index(source, files, count, class_names, labels, settings, digest, skipped)
        index.update(seconds=round(seconds, 1), images_per_second=round(rate, 1))
        prepared.write_index(partial, index)
        _move_into_place(partial, output)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return (
        f"{count} images of {settings.size[0]}x{settings.size[1]}x{settings.channels}"
        + (f", {len(class_names)} classes" if labels is not None else ", no labels")
        + f", {len(skipped)} skipped, in {seconds:.1f} s ({rate:.0f} images/s)"
    )


def _index(source, files, count, class_names, labels, settings, digest, skipped) -> dict:
    """index.json's contents (``ganpipe.data.prepared.make_index``)."""
    from ganpipe.data import prepared

    return prepared.make_index(
        count=count, image_shape=[*settings.size, settings.channels], class_names=class_names,
        labelled=labels is not None, images_sha256=digest,
        source={"path": source, "files": len(files),
                "fingerprint": packing.source_fingerprint(files)},
        settings={"size": list(settings.size), "channels": settings.channels,
                  "resize": settings.resize, "labels": FLAGS.labels, "upscale": settings.upscale},
        skipped=[os.path.relpath(p, source) for p, _ in skipped],
    )  # fmt: skip


def _fill(images, files, pool):
    """Decodes ``files`` into the rows of ``images`` in order; returns (indices kept,
    [(path, why)] skipped, the pixels' SHA-256, seconds, images per second)."""
    progress = Progress("Decoding", len(files))
    digest, kept, skipped = hashlib.sha256(), [], []
    for i, result in enumerate(_map(pool, _decode, files)):
        if isinstance(result, str):
            if not FLAGS.skip_unreadable:
                raise packing.PrepareError(
                    f"{files[i]} {result}. Remove or fix it, or add --skip_unreadable."
                )
            skipped.append((files[i], result))
        else:
            images[len(kept)] = result
            digest.update(result.tobytes())
            kept.append(i)
        progress.update(i + 1)
    progress.update(len(files), force=True)
    images.flush()
    seconds = time.monotonic() - progress.start
    return kept, skipped, digest.hexdigest(), seconds, progress.rate(len(files))


def _truncate(path: str, shape: tuple, count: int) -> None:
    """Rewrites an .npy file's header for ``count`` rows and cuts the rest off (the header is
    padded to a fixed length, so a smaller count fits in place)."""
    import io

    import numpy as np

    def header(rows):
        buffer = io.BytesIO()
        np.lib.format.write_array_header_1_0(
            buffer, {"descr": "|u1", "fortran_order": False, "shape": (rows, *shape[1:])}
        )
        return buffer.getvalue()

    old, new = header(shape[0]), header(count)
    if len(old) != len(new):
        raise RuntimeError("npy header length changed")  # not reached: padding absorbs it
    row = int(np.prod(shape[1:]))
    with open(path, "r+b") as f:
        f.write(new)
        f.truncate(len(new) + count * row)


def _move_into_place(partial: str, output: str) -> None:
    """``partial`` becomes ``output``; an existing ``output`` (--overwrite) goes only then."""
    old = None
    if os.path.exists(output):
        old = f"{output}.old-{os.getpid()}"
        os.replace(output, old)
    os.replace(partial, output)
    if old:
        shutil.rmtree(old, ignore_errors=True)


def run() -> None:
    app.run(lambda argv: sys.exit(main(argv)))


if __name__ == "__main__":
    run()
