"""A sweep's runs in TensorBoard's HParams view: each run's coordinates and final metrics.

``write(output_dir, rows)`` rewrites ``<sweep>/hparams/`` from the result rows: one TensorBoard
run per (cell, seed) holding its hyperparameters (the cell's axis values or ladder rung, and the
seed) and its final metrics, plus the experiment's configuration at the top. Rewritten whole
each time, so a resumed sweep never shows a run twice. ``tensorboard --logdir=<sweep>`` then
compares the runs (HPARAMS tab) beside their training curves (``runs/*/seed*/tensorboard``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence

from ganpipe.eval import metric_table

FOLDER = "hparams"
# Training numbers shown per run after the metric table's sweep metrics.
TRAINING_METRICS = ("steps", "train_seconds")
# Result columns that are neither a metric nor a hyperparameter.
_NOT_HPARAMS = {"cell", "label", "run_dir", "status", "wall_seconds", "w_estimate_first",
                "w_estimate_last", *TRAINING_METRICS}  # fmt: skip


def metrics() -> tuple[tuple[str, str], ...]:
    """(name, description) of the final metrics shown per run, in the HParams table's order:
    the metric table's sweep metrics (the description says which way is better), then
    ``TRAINING_METRICS``."""
    scores = tuple((m.name, m.hint) for m in metric_table.sweep_metrics())
    return (*scores, *((name, "") for name in TRAINING_METRICS))


def _value(text):
    """A hyperparameter's value: a number where the gin text is one, else the text."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return text
    try:
        return float(text)
    except (TypeError, ValueError):
        return str(text)


def hyperparameters(row: Mapping) -> dict:
    """The row's coordinates (every key that is not a result) and its seed."""
    results = _NOT_HPARAMS | set(metric_table.names())
    return {key: _value(value) for key, value in row.items() if key not in results}


def write(output_dir: str, rows: Sequence[Mapping]) -> str:
    """Rewrites ``output_dir/hparams`` from the sweep's result rows; returns that folder."""
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp

    folder = os.path.join(output_dir, FOLDER)
    shutil.rmtree(folder, ignore_errors=True)
    rows = [r for r in rows if r]
    table = [hyperparameters(row) for row in rows]
    names = sorted({name for values in table for name in values})
    numeric = {  # a column of numbers is numeric; any text makes it text
        name: all(
            isinstance(values.get(name), (int, float, type(None)))
            and not isinstance(values.get(name), bool)
            for values in table
        )
        for name in names
    }
    params = {name: hp.HParam(name) for name in names}
    present = [(m, hint) for m, hint in metrics() if any(m in r for r in rows)]
    with tf.summary.create_file_writer(folder).as_default():
        hp.hparams_config(
            hparams=list(params.values()),
            metrics=[hp.Metric(m, display_name=m, description=hint) for m, hint in present],
        )
    for row, values in zip(rows, table):
        values = {params[k]: (v if numeric[k] else str(v)) for k, v in values.items()}
        trial = f"{row['cell']}/seed{row['seed']}"
        with tf.summary.create_file_writer(os.path.join(folder, trial)).as_default():
            hp.hparams(values, trial_id=trial)
            step = int(row.get("steps") or 0)
            for metric, _ in present:
                if isinstance(row.get(metric), (int, float)):
                    tf.summary.scalar(metric, float(row[metric]), step=step)
    return folder
