"""Writes image folders in the layout users bring, for `python -m ganpipe.prepare` to read.

    python benchmarks/make_folder.py --kind=fashion_mnist --size=64 --output=/tmp/fmnist64
    python benchmarks/make_folder.py --kind=shapes --size=48,64 --channels=3 --num=20000 \
        --output=/tmp/shapes
    python benchmarks/make_folder.py --kind=prepared_noise --size=128 --channels=3 \
        --num=200000 --output=/tmp/big.prepared

- fashion_mnist: the train split (or --num of it) as PNGs in one folder per class
  (``t-shirt_top/00000.png``...), upscaled with Pillow's Lanczos filter to --size.
- shapes: the synthetic source's shapes (rectangle, disc, triangle) in colour, one folder per
  class, at --size (non-square allowed).
- prepared_noise: a prepared data set written directly (no PNGs), of smooth random colour
  fields: for measuring training's memory and input speed on a set far larger than memory
  would like (200,000 x 128 x 128 x 3 = 9.8 GB), not for quality.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import time

import numpy as np
from PIL import Image

# Numbered, so that the folders sort (and prepare numbers them) in Fashion-MNIST's label order.
FASHION_CLASSES = ("0_t-shirt_top", "1_trouser", "2_pullover", "3_dress", "4_coat", "5_sandal",
                   "6_shirt", "7_sneaker", "8_bag", "9_ankle_boot")  # fmt: skip


def _size(text):
    sides = [int(v) for v in text.split(",")]
    return (sides[0], sides[0]) if len(sides) == 1 else tuple(sides)


def _write_classes(images, labels, names, output, size):
    for name in names:
        os.makedirs(os.path.join(output, name), exist_ok=True)
    for i, (image, label) in enumerate(zip(images, labels)):
        picture = Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image)
        if picture.size != (size[1], size[0]):
            picture = picture.resize((size[1], size[0]), Image.Resampling.LANCZOS)
        picture.save(os.path.join(output, names[int(label)], f"{i:06d}.png"))


def fashion_mnist(args):
    from ganpipe.data import load_images

    data = load_images(source="fashion_mnist", split="train", limit=args.num)
    _write_classes(data.images, data.labels, FASHION_CLASSES, args.output, _size(args.size))


def shapes(args):
    from ganpipe.data import synthetic

    images, labels = synthetic.make_shapes(
        num=args.num or 20000, image_size=_size(args.size), channels=args.channels, seed=args.seed
    )
    _write_classes(images, labels, synthetic.SHAPE_CLASSES, args.output, _size(args.size))


def prepared_noise(args):
    """A prepared set written directly: each image a random 4x4 colour grid, upsampled."""
    from ganpipe.data import prepared

    height, width = _size(args.size)
    count = args.num or 200_000
    os.makedirs(args.output)
    images = np.lib.format.open_memmap(
        os.path.join(args.output, prepared.IMAGES), mode="w+", dtype=np.uint8,
        shape=(count, height, width, args.channels),
    )  # fmt: skip
    rng, digest, start = np.random.default_rng(args.seed), hashlib.sha256(), time.time()
    for first in range(0, count, 1000):
        n = min(1000, count - first)
        grid = rng.integers(0, 256, (n, 4, 4, args.channels), dtype=np.uint8)
        block = np.repeat(np.repeat(grid, height // 4, axis=1), width // 4, axis=2)
        images[first : first + n] = block
        digest.update(block.tobytes())
        if first % 20000 == 0:
            print(f"{first + n} / {count} images, {time.time() - start:.0f} s", flush=True)
    images.flush()
    prepared.write_index(args.output, prepared.make_index(
        count=count, image_shape=(height, width, args.channels), class_names=(),
        labelled=False, images_sha256=digest.hexdigest(),
        source={"path": "benchmarks/make_folder.py --kind=prepared_noise", "files": 0,
                "fingerprint": None},
        settings={"size": [height, width], "channels": args.channels, "resize": None,
                  "labels": "none", "upscale": False},
    ))  # fmt: skip


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=["fashion_mnist", "shapes", "prepared_noise"],
                        required=True)  # fmt: skip
    parser.add_argument("--output", required=True)
    parser.add_argument("--size", default="64")
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--num", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    start = time.time()
    {"fashion_mnist": fashion_mnist, "shapes": shapes, "prepared_noise": prepared_noise}[args.kind](
        args
    )
    print(f"Wrote {args.output} in {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
