"""Runs a grid of experiments over seeds, scores every run, and tabulates mean +- std per cell.

    python -m ganpipe.sweep --gin_file=gin/gan.gin \\
        --axis="train.loss='non_saturating','hinge'" --seeds=3 --output_dir=sweeps/losses \\
        [--parallel=K]
    python -m ganpipe.sweep --sweep=gin/sweeps/gan_to_wgan.gin --output_dir=sweeps/ladder

A cell is one point of the grid: the product of every ``--axis`` (a gin binding and the values it
takes) and, for a sweep file, of its ladder (cumulative rungs of bindings). Each (cell, seed) is a
normal run directory, trained by ``python -m ganpipe.main`` and scored by ``python -m
ganpipe.evaluate``, both in their own process. The sweep directory receives:

    sweep.json        what was asked (a rerun with another grid is refused)
    runs/CELL/seedN/  the run directories, each with result.json once finished
    logs/             each process's output
    results.csv       one row per run
    results.md        one row per cell: mean +- std over seeds
    fd.png            FD per cell: every seed, the mean and its spread

Rerunning the same command resumes: finished runs are not rerun, an interrupted run resumes from its
last checkpoint. Exit statuses: 0 done, 2 bad input, 4 interrupted (SIGTERM/SIGINT).
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys

from ganpipe.console import quiet_tensorflow  # noqa: E402

quiet_tensorflow()  # before anything imports TensorFlow

from absl import app, flags, logging  # noqa: E402

from ganpipe.sweeps import (  # noqa: E402
    Runner,
    Sweep,
    SweepError,
    SweepInterrupted,
    load_sweep_file,
    make_sweep,
    resolve_gin_file,
    validate,
    write_reports,
)

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "sweep", None, "A sweep gin file (gin/sweeps/*.gin) naming the experiment, axes, ladder, seeds."
)
flags.DEFINE_multi_string("gin_file", [], "Experiment file(s) every run starts from.")
flags.DEFINE_multi_string("gin_param", [], "Binding applied to every run (after the files).")
flags.DEFINE_multi_string(
    "axis",
    [],
    "An axis of the grid: '<binding>=<v1>,<v2>,...', values in gin syntax (commas inside "
    "brackets or quotes do not split). Repeat for more axes: the grid is their product.",
)
flags.DEFINE_integer(
    "seeds",
    None,
    "Seeds per cell (train.seed = first_seed .. first_seed + seeds - 1). Default 3. Rerunning a "
    "sweep with more seeds extends it.",
)
flags.DEFINE_integer("first_seed", None, "The first seed. Default 0.")
flags.DEFINE_string("output_dir", None, "Sweep directory (required).")
flags.DEFINE_integer("parallel", 1, "Runs trained at the same time.")
flags.DEFINE_integer("eval_samples", None, "Generated images scored per run. Default 10000.")
flags.DEFINE_string(
    "checkpoint", None, "What each run is scored on: final (default), best or latest."
)


def sweep_from_flags() -> Sweep:
    if FLAGS.sweep:
        spec = load_sweep_file(FLAGS.sweep)
        spec = dataclasses.replace(
            spec,
            gin_files=spec.gin_files + tuple(resolve_gin_file(f) for f in FLAGS.gin_file),
            gin_params=spec.gin_params + tuple(FLAGS.gin_param),
            axes=spec.axes + tuple(FLAGS.axis),
        )
    else:
        spec = make_sweep(
            gin_files=[resolve_gin_file(f) for f in FLAGS.gin_file],
            gin_params=FLAGS.gin_param,
            axes=FLAGS.axis,
        )
    overrides = {
        name: getattr(FLAGS, name)
        for name in ("seeds", "first_seed", "eval_samples", "checkpoint")
        if getattr(FLAGS, name) is not None
    }
    return dataclasses.replace(spec, **overrides)


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}.")
    try:
        if not FLAGS.output_dir:
            raise SweepError("Give --output_dir=sweeps/NAME.")
        sweep = sweep_from_flags()
        runner = Runner(sweep, FLAGS.output_dir, parallel=FLAGS.parallel)
        validate(sweep)
        runner.check_directory()
    except SweepError as error:
        print(f"ganpipe.sweep: error: {error}", file=sys.stderr)
        return 2

    def handle(signum, frame):
        del frame
        logging.warning("Signal %d: stopping the runs in flight (they checkpoint).", signum)
        runner.stop_children(signum)

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    status = 0
    try:
        runner.run()
    except SweepInterrupted as error:
        logging.warning("%s Rerun the same command to resume the sweep.", error)
        status = 4
    except SweepError as error:
        print(f"ganpipe.sweep: error: {error}", file=sys.stderr)
        status = 2
    except RuntimeError as error:  # a run or its scoring failed; its log is named
        print(f"ganpipe.sweep: error: {error}", file=sys.stderr)
        status = 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        # Whatever finished is reported, also after an interruption or a failure.
        finished = [runner.finished(cell, seed) for cell, seed in runner.jobs()]
        if any(finished):
            print(write_reports(FLAGS.output_dir, finished, runner.cells))
            logging.info("Results: %s", os.path.join(FLAGS.output_dir, "results.md"))
    return status


if __name__ == "__main__":
    app.run(main)
