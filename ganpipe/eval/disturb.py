"""The disturbances of Heusel et al. (2017, "GANs trained by a two time-scale update rule converge
to a local Nash equilibrium", Fig. 2 and appendix A): an evaluator's distance should rise with each
one's level. Each takes images in [0, 1], ``(n, H, W, 1)``, a level and a seeded NumPy generator,
and returns disturbed images in [0, 1]. ``LEVELS`` gives the levels the evaluator tests use, from
none to strong.

``python -m ganpipe.eval.disturb [--evaluator=fashion_mnist-v2] [--num=2000]`` prints the FD of
every disturbance at every level against the test split.
"""

from __future__ import annotations

import numpy as np

from ganpipe.eval import negatives


def gaussian_noise(images, level, rng):
    return np.clip(images + rng.normal(0.0, level, images.shape), 0.0, 1.0)


def blur(images, level, rng):
    del rng
    return negatives.blur(images, level)


def black_rectangles(images, level, rng):
    """``level`` black 8x8 rectangles at random places in each image."""
    out = images.copy()
    n, h, w = images.shape[:3]
    for _ in range(int(level)):
        ys, xs = rng.integers(0, h - 8, n), rng.integers(0, w - 8, n)
        for i in range(n):
            out[i, ys[i] : ys[i] + 8, xs[i] : xs[i] + 8] = 0.0
    return out


def swirl(images, level, rng):
    """A swirl about the centre: angle + level * exp(-r / radius), radius half the size
    (nearest-pixel resampling)."""
    del rng
    n, h, w, c = images.shape
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    dy, dx = y - cy, x - cx
    r = np.hypot(dy, dx)
    theta = np.arctan2(dy, dx) + level * np.exp(-r / (0.5 * h))
    sy = np.clip(np.round(cy + r * np.sin(theta)), 0, h - 1).astype(int)
    sx = np.clip(np.round(cx + r * np.cos(theta)), 0, w - 1).astype(int)
    return images[:, sy, sx]


def salt_and_pepper(images, level, rng):
    """A fraction ``level`` of the pixels set to 0 or 1 (half each)."""
    out = images.copy()
    hit = rng.random(images.shape) < level
    out[hit] = (rng.random(int(hit.sum())) < 0.5).astype(images.dtype)
    return out


def mixed_noise(images, level, rng):
    """A fraction ``level`` of the images replaced by uniform noise images."""
    out = images.copy()
    hit = rng.random(len(images)) < level
    out[hit] = rng.random((int(hit.sum()), *images.shape[1:]))
    return out


def drop_classes(images, level, rng, labels):
    """Mode collapse: only images of the first ``10 - level`` classes, resampled to the same count
    (``labels`` are the images' classes)."""
    keep = np.flatnonzero(labels < labels.max() + 1 - int(level))
    return images[rng.choice(keep, len(images), replace=True)]


DISTURBANCES = {
    "gaussian_noise": (gaussian_noise, (0.0, 0.05, 0.1, 0.2, 0.35)),
    "blur": (blur, (0.0, 0.5, 1.0, 2.0, 3.0)),
    "black_rectangles": (black_rectangles, (0, 1, 2, 3, 4)),
    "swirl": (swirl, (0.0, 0.25, 0.5, 1.0, 2.0)),
    "salt_and_pepper": (salt_and_pepper, (0.0, 0.05, 0.1, 0.2, 0.4)),
    "mixed_noise": (mixed_noise, (0.0, 0.1, 0.25, 0.5, 0.75)),
    "drop_classes": (drop_classes, (0, 2, 4, 6, 8)),
}


def disturbed(name: str, images, labels, level, seed: int = 0) -> np.ndarray:
    """``images`` under disturbance ``name`` at ``level``."""
    fn = DISTURBANCES[name][0]
    rng = np.random.default_rng(seed)
    if name == "drop_classes":
        return fn(images, level, rng, labels).astype(np.float32)
    return fn(images, level, rng).astype(np.float32)


def noise_sets(n: int, shape, seed: int = 0) -> dict[str, np.ndarray]:
    """Image sets with no garment in them: uniform, Gaussian and binary noise."""
    rng = np.random.default_rng(seed)
    shape = (n, *shape)
    return {
        "uniform": rng.random(shape).astype(np.float32),
        "gaussian": np.clip(rng.normal(0.5, 0.25, shape), 0, 1).astype(np.float32),
        "binary": (rng.random(shape) < 0.5).astype(np.float32),
        "sparse_binary": (rng.random(shape) < 0.15).astype(np.float32),
    }


def table(evaluator_name: str, num: int, seed: int = 0) -> dict:
    """FD of every disturbance at every level, and of the noise sets, against the test split."""
    from ganpipe.data import load_images
    from ganpipe.eval import classifier, evaluation, quality

    evaluator = classifier.load_evaluator(evaluator_name)
    reference = evaluation.real_reference(evaluator, evaluator.spec.data_set)
    train = load_images(source=evaluator.spec.data_set, split="train")
    pick = np.random.default_rng(seed).choice(len(train.images), num, replace=False)
    images, labels = train.images[pick].astype(np.float32) / 255.0, train.labels[pick]

    def fd(x):
        return quality.score(evaluator, x, reference, kid_subsets=2)["fd"]

    out = {name: [fd(disturbed(name, images, labels, lv, seed)) for lv in levels]
           for name, (_, levels) in DISTURBANCES.items()}  # fmt: skip
    out["noise"] = {k: fd(v) for k, v in noise_sets(num, images.shape[1:], seed).items()}
    return out


if __name__ == "__main__":
    import json

    from absl import app, flags

    flags.DEFINE_string("evaluator", "fashion_mnist", "Evaluator name.")
    flags.DEFINE_integer("num", 2000, "Images per set.")

    def _main(argv):
        del argv
        print(json.dumps(table(flags.FLAGS.evaluator, flags.FLAGS.num), indent=1))

    app.run(_main)
