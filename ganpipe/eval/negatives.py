"""Synthetic "not a garment" images: the extra class that evaluator v2 is trained with, so that
images a generator should never produce land away from the real data in its feature space.

Every kind is made from a seeded NumPy generator, in [0, 1], shape (n, H, W, C) (any size; the
patch and blur scales below are for 28x28 and grow with the image):

- ``uniform``, ``gaussian``, ``binary``: pixel noise (uniform; normal around a random level with a
  random spread; Bernoulli with a random density);
- ``blobs``: low-frequency noise (a 3x3 to 7x7 grid of random levels, smoothly upsampled);
- ``blurred``: real images under a strong Gaussian blur (sigma 1.5 to 4 pixels);
- ``shuffled``: real images cut into patches of a quarter side (7x7), put back in a random order;
- ``blend``: two real images of different classes mixed with a weight in [0.35, 0.65];
- ``noisy``: real images with heavy added noise (a mix weight of noise in [0.5, 0.9]).
"""

from __future__ import annotations

import numpy as np

KINDS = ("uniform", "gaussian", "binary", "blobs", "blurred", "shuffled", "blend", "noisy")


def _gaussian_kernel(sigma: float) -> np.ndarray:
    radius = max(1, int(3 * sigma + 0.5))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def blur(images: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of (n, H, W, C) images, edges padded by reflection."""
    if sigma <= 0:
        return images.copy()
    k = _gaussian_kernel(sigma)
    r = len(k) // 2
    out = images.astype(np.float64)
    for axis in (1, 2):
        pad = [(0, 0)] * 4
        pad[axis] = (r, r)
        padded = np.pad(out, pad, mode="reflect")
        size = out.shape[axis]
        out = sum(w * np.take(padded, np.arange(i, i + size), axis=axis) for i, w in enumerate(k))
    return out.astype(images.dtype)


def _upsample(grid: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear upsampling of (n, h, w) grids to (n, H, W)."""
    n, h, w = grid.shape
    ys = np.linspace(0, h - 1, size[0])
    xs = np.linspace(0, w - 1, size[1])
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    fy, fx = (ys - y0)[None, :, None], (xs - x0)[None, None, :]
    top = grid[:, y0][:, :, x0] * (1 - fx) + grid[:, y0][:, :, x1] * fx
    bottom = grid[:, y1][:, :, x0] * (1 - fx) + grid[:, y1][:, :, x1] * fx
    return top * (1 - fy) + bottom * fy


def shuffle_patches(images: np.ndarray, patch: int, rng: np.random.Generator) -> np.ndarray:
    n, h, w, c = images.shape
    gh, gw = h // patch, w // patch
    tiles = images[:, : gh * patch, : gw * patch].reshape(n, gh, patch, gw, patch, c)
    tiles = tiles.transpose(0, 1, 3, 2, 4, 5).reshape(n, gh * gw, patch, patch, c)
    order = np.argsort(rng.random((n, gh * gw)), axis=1)
    tiles = np.take_along_axis(tiles, order[:, :, None, None, None], axis=1)
    out = images.copy()
    out[:, : gh * patch, : gw * patch] = (
        tiles.reshape(n, gh, gw, patch, patch, c)
        .transpose(0, 1, 3, 2, 4, 5)
        .reshape(n, gh * patch, gw * patch, c)
    )
    return out


def make(kind: str, n: int, real: np.ndarray, labels: np.ndarray | None,
         rng: np.random.Generator) -> np.ndarray:  # fmt: skip
    """``n`` negatives of one kind; ``real`` are real images in [0, 1] (n_real, H, W, C)."""
    shape = (n, *real.shape[1:])
    level = rng.uniform(0.0, 1.0, (n, 1, 1, 1))
    if kind == "uniform":
        out = rng.random(shape)
    elif kind == "gaussian":
        out = rng.normal(level, rng.uniform(0.1, 0.5, (n, 1, 1, 1)), shape)
    elif kind == "binary":
        out = (rng.random(shape) < rng.uniform(0.05, 0.95, (n, 1, 1, 1))).astype(np.float64)
    elif kind == "blobs":
        cells = int(rng.integers(3, 8))
        channels = shape[-1]  # one grid per channel: colour blobs in colour
        grids = _upsample(rng.random((n * channels, cells, cells)), shape[1:3])
        out = grids.reshape(n, channels, *shape[1:3]).transpose(0, 2, 3, 1)
    else:
        pick = rng.integers(0, len(real), n)
        base = real[pick].astype(np.float64)
        # Scales in pixels were chosen at 28x28; larger images scale them with their side.
        scale = min(shape[1:3]) / 28
        if kind == "blurred":
            out = blur(base, float(rng.uniform(1.5, 4.0)) * scale)
        elif kind == "shuffled":
            out = base.copy()  # a side that the patches do not fill keeps its pixels
            shuffled = shuffle_patches(base, max(2, min(shape[1:3]) // 4), rng)
            out[:, : shuffled.shape[1], : shuffled.shape[2]] = shuffled
        elif kind == "blend":
            other = rng.integers(0, len(real), n)
            if labels is not None:  # a partner of another class
                for _ in range(4):
                    same = labels[other] == labels[pick]
                    other[same] = rng.integers(0, len(real), int(same.sum()))
            alpha = rng.uniform(0.35, 0.65, (n, 1, 1, 1))
            out = alpha * base + (1 - alpha) * real[other]
        elif kind == "noisy":
            weight = rng.uniform(0.5, 0.9, (n, 1, 1, 1))
            out = (1 - weight) * base + weight * rng.random(shape)
        else:
            raise ValueError(f"Unknown negative kind {kind!r}; known: {', '.join(KINDS)}.")
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def mixture(n: int, real: np.ndarray, labels: np.ndarray | None, seed: int) -> np.ndarray:
    """``n`` negatives, an equal share of every kind, in a seeded random order."""
    rng = np.random.default_rng(seed)
    per_kind = -(-n // len(KINDS))
    # In chunks, so that per-call draws (blur sigma, blob grid) vary within a kind.
    chunks = [
        make(kind, min(CHUNK, per_kind - start), real, labels, rng)
        for kind in KINDS
        for start in range(0, per_kind, CHUNK)
    ]
    out = np.concatenate(chunks)
    return out[rng.permutation(len(out))[:n]]


CHUNK = 100
