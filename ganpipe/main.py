"""Trains a GAN described by gin files.

Usage:
  python -m ganpipe.main --gin_file=gin/wgan.gin
  python -m ganpipe.main --gin_file=gin/gan.gin --gin_param=NUM_STEPS=2000 --output_dir=runs/gan

Every shipped experiment honours the macros NUM_STEPS (generator updates) and BATCH_SIZE (global
batch). The run directory receives config.gin, operative_config.gin, metrics.jsonl, samples/,
tensorboard/, checkpoints/ and generator.keras; rerunning the same command resumes.
"""

from __future__ import annotations

import os
import sys

from ganpipe.console import quiet_tensorflow  # noqa: E402

quiet_tensorflow()  # before anything imports TensorFlow

from absl import app, flags, logging  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_multi_string(
    "gin_file", None, "Experiment file; repeat it to layer files, later ones overriding earlier."
)
flags.DEFINE_multi_string(
    "gin_param",
    [],
    "One gin binding, e.g. 'NUM_STEPS=2000' or 'critic/Adam.learning_rate=1e-4'; "
    "repeatable, applied after the files.",
)
flags.DEFINE_string(
    "output_dir",
    None,
    "Run directory (default: runs/<stem of the first --gin_file that is not a shared part in "
    "gin's data/, models/, losses/ or testing/ folders>). An existing one with the same config "
    "is resumed; one with another config is refused.",
)


flags.DEFINE_bool(
    "list_experiments", False, "Print every shipped experiment file with its first comment line."
)


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}. Use --gin_param for bindings.")
    if FLAGS.list_experiments:
        from ganpipe import shipped

        print(f"Shipped experiments ({shipped.folder()}); run one with --gin_file=NAME:")
        for name, summary in shipped.experiments():
            print(f"{name:30s} {summary}")
        return 0
    if not FLAGS.gin_file:
        raise app.UsageError("Give --gin_file=FILE (--list_experiments lists the shipped ones).")
    from ganpipe import backend, config  # Imported here so --help stays fast.
    from ganpipe.rundir import RunDirectory, RunDirectoryError, default_output_dir
    from ganpipe.training.callbacks import NonFiniteLossError, Preempted

    logging.info(
        "Keras backend: %s (KERAS_BACKEND or ~/.keras/keras.json; recorded in the run directory).",
        backend.NAME,
    )
    for note in backend.notes():
        logging.info("%s", note)
    output_dir = FLAGS.output_dir
    if not output_dir:
        output_dir, why = default_output_dir(FLAGS.gin_file)
        logging.info("No --output_dir: the run directory is %s, %s.", output_dir, why)
    try:
        config_text = config.parse(FLAGS.gin_file, FLAGS.gin_param)
        import gin

        # Refuse a run directory holding another config before any data or model is built.
        RunDirectory(output_dir, config_text).check()
        header = [f"--gin_file={f}" for f in FLAGS.gin_file]
        header += [f"--gin_param={p}" for p in FLAGS.gin_param]
        config.make_trainer().fit(
            output_dir,
            config_text=config_text,
            config_header=header,
            operative_config=gin.operative_config_str,
        )
    except NonFiniteLossError as error:
        logging.error("%s", error)
        return 3
    except Preempted as error:
        logging.warning("%s", error)
        return 4
    except (ValueError, RunDirectoryError, FileNotFoundError) as error:
        print(f"ganpipe: error: {error}", file=sys.stderr)
        return 2
    logging.info("Done. Outputs are in %s", os.path.abspath(output_dir))
    return 0


def run() -> None:
    """Console-script entry point: ``ganpipe --gin_file=...`` trains; ``ganpipe sample ...``
    draws images from a run (``python -m ganpipe.sample``)."""
    if sys.argv[1:2] == ["sample"]:
        from ganpipe import sample

        sys.argv = [f"{sys.argv[0]} sample", *sys.argv[2:]]
        app.run(sample.main)
        return
    app.run(main)


if __name__ == "__main__":
    run()
