"""Draws images from a trained run: a grid, an .npz of samples, one class, or latent walks.

Usage:
  python -m ganpipe.sample --run_dir=runs/recommended [--checkpoint=final|best|latest|PATH]
      [--num=64] [--seed=S] [--grid=out.png] [--npz=out.npz] [--class=K] [--interpolate=STEPS]
      [--columns=C] [--live_generator]

Reads the run's config.gin and its generator only (no training data, no critic) and writes
nothing into the run directory: a --grid or --npz path inside it is refused. Where it writes:
--grid=PATH writes one PNG grid, --npz=PATH the images (uint8, NHWC), their noise and (in a
class-conditional run) their labels; with neither, it writes a grid to samples.png in the current
directory. Relative paths are relative to the current directory.

Flags: --run_dir (required) names the run; --checkpoint picks the weights (final:
generator.keras, the default; best: the lowest FD during training; latest; or a checkpoint path);
--num images (64) from noise seeded by --seed (0); --class=K draws every image in class K
(class-conditional runs only; otherwise the classes are drawn at random); --interpolate=N draws
--num // N rows, each a walk of N images between two random latent points (spherical for normal
noise, straight for uniform noise); --columns sets the grid's width (8, or the walk's length). A
run trained with a weight average samples from the average; --live_generator samples the live
weights instead.
"""

from __future__ import annotations

import os
import sys

from ganpipe.console import quiet_tensorflow

quiet_tensorflow()  # before anything imports TensorFlow

from absl import app, flags, logging  # noqa: E402

flags.DEFINE_string("run_dir", None, "Run directory to sample from.")
flags.DEFINE_string("checkpoint", "final", "final (generator.keras), best, latest or a path.")
flags.DEFINE_integer("num", 64, "Images to draw (>= 1).")
flags.DEFINE_integer("seed", 0, "Seed of the noise (and of random classes).")
flags.DEFINE_string(
    "grid", None,
    "Write the images as one PNG grid here (outside the run directory). Without --grid and "
    "--npz the grid goes to samples.png in the current directory.",
)  # fmt: skip
flags.DEFINE_string(
    "npz", None,
    "Write the images (uint8, NHWC), their noise and any labels here, as a compressed .npz "
    "(outside the run directory).",
)  # fmt: skip
flags.DEFINE_integer("class", None, "Draw every image in this class (conditional runs).")
flags.DEFINE_integer("interpolate", None, "Images per latent walk (>= 2).")
flags.DEFINE_integer("columns", None, "Grid columns (default 8, or the walk's length).")
flags.DEFINE_bool("live_generator", False, "Sample the live weights of an averaged run.")
FLAGS = flags.FLAGS


class SampleError(ValueError):
    """Bad input to the sample command; the message says what to change."""


def check_request(
    num: int, interpolate: int | None, label: int | None, num_classes, columns: int | None = None
) -> None:
    if num < 1:
        raise SampleError(f"--num must be >= 1, got {num}.")
    if columns is not None and columns < 1:
        raise SampleError(f"--columns must be >= 1, got {columns}.")
    if interpolate is not None and (interpolate < 2 or interpolate > num):
        raise SampleError(f"--interpolate must be between 2 and --num ({num}), got {interpolate}.")
    if label is not None:
        if num_classes is None:
            raise SampleError(
                f"--class={label} needs a class-conditional run; this run is unconditional "
                "(train.num_classes is None). Leave --class out."
            )
        if not 0 <= label < num_classes:
            raise SampleError(f"--class must be in [0, {num_classes}), got {label}.")


def slerp(a, b, t):
    """Spherical interpolation between rows of ``a`` and ``b`` at fractions ``t`` (NumPy)."""
    import numpy as np

    na, nb = np.linalg.norm(a, axis=-1, keepdims=True), np.linalg.norm(b, axis=-1, keepdims=True)
    cos = np.clip(np.sum(a * b, axis=-1, keepdims=True) / (na * nb), -1.0, 1.0)
    omega = np.arccos(cos)
    sin = np.sin(omega)
    straight = sin < 1e-6
    safe = np.where(straight, 1.0, sin)
    wa = np.where(straight, 1.0 - t, np.sin((1.0 - t) * omega) / safe)
    wb = np.where(straight, t, np.sin(t * omega) / safe)
    return wa * a + wb * b


def latent_points(latent, num: int, dim: int, seed: int, interpolate: int | None):
    """(num, dim) noise: draws of the run's distribution, or walks between pairs of draws."""
    import numpy as np

    from ganpipe import backend

    # TensorFlow's generator, or NumPy's under JAX: other draws, the same distribution.
    rng = backend.draws(seed + 12345)
    if interpolate is None:
        return np.asarray(latent.sample(rng, [num, dim]))
    walks = num // interpolate
    ends = np.asarray(latent.sample(rng, [2 * walks, dim]))
    t = np.linspace(0.0, 1.0, interpolate)[None, :, None]
    a, b = ends[:walks, None, :], ends[walks:, None, :]
    if getattr(latent, "distribution", "normal") == "normal":
        path = slerp(np.broadcast_to(a, (walks, interpolate, dim)),
                     np.broadcast_to(b, (walks, interpolate, dim)), t)  # fmt: skip
    else:
        path = (1.0 - t) * a + t * b
    return path.reshape(walks * interpolate, dim).astype(np.float32)


def draw(run_dir, *, checkpoint="final", num=64, seed=0, label=None, interpolate=None,
         live=False):  # fmt: skip
    """Images in [0, 1] ``(n, H, W, C)``, their noise and labels (None when unconditional)."""
    import numpy as np

    from ganpipe.eval import evaluation, run

    restored, setup = run.restore_run_generator(run_dir, checkpoint, live=live)
    check_request(num, interpolate, label, setup.num_classes)
    model = restored.model
    noise = latent_points(setup.latent, num, int(model.inputs[0].shape[-1]), seed, interpolate)
    labels = None
    if label is not None:
        labels = np.full(len(noise), label, np.int32)
    elif setup.num_classes is not None:
        labels = np.random.default_rng(seed).integers(0, setup.num_classes, len(noise))
        labels = labels.astype(np.int32)
    images = evaluation.render(model, noise, labels, setup.value_range)
    logging.info("Drew %d images from %s (step %d, %s).", len(noise), restored.source,
                 restored.step, restored.weights)  # fmt: skip
    return images, noise, labels


def main(argv) -> int:
    del argv
    import numpy as np
    from PIL import Image

    from ganpipe.data.scaling import image_grid

    try:
        if not FLAGS.run_dir:
            raise SampleError("Give --run_dir=RUN, a run directory written by ganpipe.main.")
        check_request(FLAGS.num, FLAGS.interpolate, None, None, FLAGS.columns)
        images, noise, labels = draw(
            FLAGS.run_dir, checkpoint=FLAGS.checkpoint, num=FLAGS.num, seed=FLAGS.seed,
            label=FLAGS["class"].value, interpolate=FLAGS.interpolate, live=FLAGS.live_generator,
        )  # fmt: skip
    except (ValueError, FileNotFoundError) as error:
        print(f"ganpipe.sample: error: {error}", file=sys.stderr)
        return 2
    grid_path = FLAGS.grid or (None if FLAGS.npz else "samples.png")
    for path in filter(None, (grid_path, FLAGS.npz)):
        if os.path.abspath(path).startswith(os.path.abspath(FLAGS.run_dir) + os.sep):
            print(f"ganpipe.sample: error: {path} is inside the run directory; write it "
                  "elsewhere (the run directory is not changed).", file=sys.stderr)  # fmt: skip
            return 2
    pixels = np.round(images * 255.0).astype(np.uint8)
    if grid_path:
        columns = FLAGS.columns or FLAGS.interpolate or 8
        grid = image_grid(images, (0.0, 1.0), columns=columns)
        Image.fromarray(grid.squeeze(-1) if grid.shape[-1] == 1 else grid).save(grid_path)
        logging.info("Wrote %s", grid_path)
    if FLAGS.npz:
        arrays = {"images": pixels, "noise": noise}
        if labels is not None:
            arrays["labels"] = labels
        np.savez_compressed(FLAGS.npz, **arrays)
        logging.info("Wrote %s", FLAGS.npz)
    return 0


if __name__ == "__main__":
    app.run(main)
