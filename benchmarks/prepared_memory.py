"""Training from a large prepared data set: the process's own memory and whether the input
pipeline keeps up, against the same model fed from a small in-memory set, side by side.

    python benchmarks/make_folder.py --kind=prepared_noise --size=128 --channels=3 \
        --num=200000 --output=/data/big.prepared          # 9.8 GB
    python benchmarks/prepared_memory.py --data=/data/big.prepared [--steps=300]
    KERAS_BACKEND=jax python benchmarks/prepared_memory.py --data=/data/big.prepared

For each feed (the memory-mapped prepared set, then 2,048 synthetic images of the same shape
held in memory) it builds the recipe (the lean family at the data's shape, unconditional),
trains ``--steps`` generator steps after a warm-up, and prints the steps per second and the
process's RssAnon (anonymous resident memory from /proc/self/status: the process's own pages,
not the file pages the kernel keeps cached and may drop) at its peak during the timed steps. If
the pipeline keeps up, both feeds train at the same rate.
"""

from __future__ import annotations

import os
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

flags.DEFINE_string("data", None, "The prepared data set.")
flags.DEFINE_integer("steps", 300, "Timed generator steps per feed.")
flags.DEFINE_integer("warmup", 40, "Untimed steps first.")
FLAGS = flags.FLAGS


def status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class Peak:
    """Samples RssAnon every 50 ms in a thread; ``peak`` in GiB."""

    def __init__(self):
        self.peak, self._stop = 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, status_kib("RssAnon"))
            time.sleep(0.05)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def measure(bindings: list[str]) -> dict:
    import gin
    from ganpipe import config

    gin.clear_config()
    config.parse(["gin/recommended.gin"], [
        "train.num_classes = 'auto'", "train.evaluator = None", "Intervals.eval_every = 0",
        *bindings,
    ])  # fmt: skip
    trainer = config.make_trainer()
    trainer.train_steps(FLAGS.warmup)
    with Peak() as peak:
        start = time.perf_counter()
        trainer.train_steps(FLAGS.steps)
        seconds = time.perf_counter() - start
    return {"steps_per_second": FLAGS.steps / seconds, "rss_anon_gib": peak.peak / 2**20,
            "shape": trainer.images.image_shape, "images": len(trainer.images)}  # fmt: skip


def main(argv):
    del argv
    import keras

    from ganpipe.data import prepared

    height, width, channels = prepared.read_index(FLAGS.data)["image_shape"]
    feeds = {
        "prepared (memory-mapped)": [
            "load_images.source = 'prepared'", f"load_images.data_dir = '{FLAGS.data}'"],
        "in memory (2,048 synthetic)": [
            "load_images.source = 'synthetic'", "load_images.num_synthetic = 2048",
            f"load_images.image_size = ({height}, {width})", f"load_images.channels = {channels}",
            "train.num_classes = None", "build_generator.conditioning = None",
            "build_critic.conditioning = None"],
    }  # fmt: skip
    print(f"backend {keras.backend.backend()}, {os.cpu_count()} CPUs; RssAnon before: "
          f"{status_kib('RssAnon') / 2**20:.2f} GiB")  # fmt: skip
    for name, bindings in feeds.items():
        result = measure(bindings)
        print(
            f"{name}: {result['images']:,} images of {result['shape']}, "
            f"{result['steps_per_second']:.2f} steps/s, peak RssAnon "
            f"{result['rss_anon_gib']:.2f} GiB",
            flush=True,
        )


if __name__ == "__main__":
    flags.mark_flag_as_required("data")
    app.run(main)
