"""Training throughput of a shipped experiment, in generator updates per second.

    python benchmarks/steps_per_second.py --gin_file=gin/gan.gin --gin_param=BATCH_SIZE=500

Builds the trainer exactly as ``ganpipe.main`` does (same gin files, same data), warms up (tracing
and the first batches), then times ``--repeats`` blocks of ``--rounds`` training rounds each and
prints every block's rate and their median. Nothing is written to disk. Run it alone: the figure
is only as quiet as the machine.
"""

from __future__ import annotations

import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

flags.DEFINE_multi_string("gin_file", ["gin/gan.gin"], "Experiment file(s).")
flags.DEFINE_multi_string("gin_param", [], "Extra bindings.")
flags.DEFINE_integer("rounds", 200, "Training rounds per timed block.")
flags.DEFINE_integer("repeats", 5, "Timed blocks.")
flags.DEFINE_integer("warmup_rounds", 20, "Untimed rounds first.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    import tensorflow as tf

    from ganpipe import config

    config.parse(FLAGS.gin_file, FLAGS.gin_param)
    trainer = config.make_trainer()
    schedule, batch_size = trainer.settings.schedule, trainer.settings.batch_size
    per_round = schedule.generator_steps
    for _ in range(FLAGS.warmup_rounds):
        trainer.train_round()
    rates = []
    for repeat in range(FLAGS.repeats):
        start = time.perf_counter()
        for _ in range(FLAGS.rounds):
            trainer.train_round()
        seconds = time.perf_counter() - start
        rates.append(FLAGS.rounds * per_round / seconds)
        print(f"block {repeat + 1}/{FLAGS.repeats}: {rates[-1]:.1f} generator steps/s", flush=True)
    median = statistics.median(rates)
    images = median / per_round * schedule.critic_steps * batch_size
    print(
        f"{' + '.join(FLAGS.gin_file)} {' '.join(FLAGS.gin_param)}: batch {batch_size}, "
        f"{schedule.critic_steps}/{schedule.generator_steps} critic/generator "
        f"updates per round, {trainer.strategy.num_replicas_in_sync} replica(s), "
        f"TensorFlow {tf.__version__}, {os.cpu_count()} CPUs"
    )
    print(
        f"median {median:.1f} generator steps/s ({images:.0f} real images/s) over "
        f"{FLAGS.repeats} blocks of {FLAGS.rounds} rounds; min {min(rates):.1f}, "
        f"max {max(rates):.1f}"
    )
    logging.flush()


if __name__ == "__main__":
    app.run(main)
