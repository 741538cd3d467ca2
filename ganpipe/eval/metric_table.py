"""The one table of sample-quality metrics: each metric's name, label, direction, formats and
plot scale, written once and read by everything that computes, prints, compares or draws one.

- ``eval/quality.py``: ``score()`` refuses a number that has no entry here.
- ``evaluate.py``: its printed table (``text_table``), in this order, in each metric's ``fmt``.
- The training loop: ``metrics.jsonl`` names a metric ``eval_<name>`` (``TRAINING_PREFIX``); the
  best checkpoint is the one ``better`` by FD; ``metrics.png`` draws each metric on its
  ``plot_scale``.
- ``sweeps.py``: the ``sweep`` metrics are results.csv's columns from each run's eval.json, those
  with a ``report_fmt`` are results.md's columns, and the plot's axis says the direction.
- ``hparams.py``: the ``sweep`` metrics are TensorBoard's HParams metrics.

Adding a metric is one ``Metric`` here and the function that computes it in ``eval/quality.py``
(``@metric_function``); docs/extending.md shows one. Plain Python: the training loop, the plots
and the sweep read it without NumPy or TensorFlow.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

LOWER, HIGHER = "lower", "higher"
LOG, LINEAR = "log", "linear"
# metrics.jsonl and TensorBoard name a metric scored during training eval_<name>.
TRAINING_PREFIX = "eval_"


@dataclasses.dataclass(frozen=True)
class Metric:
    """One sample-quality number.

    Attributes:
        name: Its key in ``score()``'s result, eval.json and results.csv (``eval_<name>`` in
            metrics.jsonl).
        label: Its short title: results.md's column, the sweep plot's axis, metrics.png's panel.
        direction: ``'lower'`` or ``'higher'`` (is better); None for a number that is not a
            score of its own (a spread over subsets, a count).
        fmt: ``str.format`` pattern of one value: evaluate's table and the training log.
        plot_scale: metrics.png's y axis, ``'log'`` or ``'linear'``; None: not drawn (a spread).
        report_fmt: ``str.format`` pattern of a sweep's mean and std in results.md; None: not a
            column there.
        sweep: Copied from each run's eval.json into a sweep's results.csv and HParams view.
        title: metrics.png's panel title, where longer than the label.
    """

    name: str
    label: str
    direction: str | None
    fmt: str = "{:.4g}"
    plot_scale: str | None = LINEAR
    report_fmt: str | None = None
    sweep: bool = False
    title: str | None = None

    def __post_init__(self):
        if self.direction not in (LOWER, HIGHER, None):
            raise ValueError(f"{self.name}: direction must be 'lower', 'higher' or None.")
        if self.plot_scale not in (LOG, LINEAR, None):
            raise ValueError(f"{self.name}: plot_scale must be 'log', 'linear' or None.")
        if self.report_fmt is not None and not self.sweep:
            raise ValueError(f"{self.name}: a results.md column (report_fmt) needs sweep=True.")

    @property
    def hint(self) -> str:
        """``'lower is better'``, ``'higher is better'`` or ``''``."""
        return f"{self.direction} is better" if self.direction else ""


METRICS: tuple[Metric, ...] = (
    Metric("fd", "FD", LOWER, plot_scale=LOG, report_fmt="{:.2f}", sweep=True,
           title="Fréchet distance"),
    Metric("kid", "KID", LOWER, plot_scale=LOG, report_fmt="{:.3f}", sweep=True),
    Metric("kid_std", "KID std", None, plot_scale=None),
    Metric("classifier_score", "classifier score", HIGHER, sweep=True),
    Metric("classifier_score_std", "classifier score std", None, plot_scale=None),
    Metric("classes_covered", "classes", HIGHER, fmt="{:.0f}", report_fmt="{:.1f}", sweep=True,
           title="classes covered"),
    Metric("class_kl", "class KL", LOWER, report_fmt="{:.2f}", sweep=True),
    Metric("non_garment", "not a garment", LOWER),
    Metric("precision", "precision", HIGHER, report_fmt="{:.3f}", sweep=True),
    Metric("recall", "recall", HIGHER, report_fmt="{:.3f}", sweep=True),
    Metric("conditional_accuracy", "conditional accuracy", HIGHER),
    Metric("inception_fid", "Inception FID", LOWER, plot_scale=LOG),
    Metric("inception_kid", "Inception KID", LOWER, plot_scale=LOG),
    Metric("inception_kid_std", "Inception KID std", None, plot_scale=None),
    Metric("num_samples", "samples", None, fmt="{:.0f}", plot_scale=None),
)  # fmt: skip


def by_name() -> dict[str, Metric]:
    """The table, by name."""
    return {metric.name: metric for metric in METRICS}


def get(name: str) -> Metric:
    """The entry of ``name``; a KeyError saying where to add one."""
    table = by_name()
    if name not in table:
        raise KeyError(
            f"No metric {name!r} in ganpipe/eval/metric_table.py METRICS (known: "
            f"{', '.join(table)}); a metric needs its entry there."
        )
    return table[name]


def names() -> tuple[str, ...]:
    return tuple(metric.name for metric in METRICS)


def unknown(values: Mapping) -> list[str]:
    """The keys of ``values`` the table does not hold."""
    table = by_name()
    return [name for name in values if name not in table]


def sweep_metrics() -> tuple[Metric, ...]:
    """A sweep's metrics (results.csv columns, HParams metrics), in table order."""
    return tuple(metric for metric in METRICS if metric.sweep)


def better(name: str, a: float, b: float) -> bool:
    """Whether ``a`` is strictly better than ``b`` by metric ``name``."""
    direction = get(name).direction
    if direction is None:
        raise ValueError(f"{name!r} is not a score: neither lower nor higher is better.")
    return a < b if direction == LOWER else a > b


def format_value(name: str, value) -> str:
    """``value`` in the metric's ``fmt`` (a name not in the table: 4 significant digits if it
    is a float)."""
    metric = by_name().get(name)
    if metric is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
        return metric.fmt.format(value)
    return f"{value:.4g}" if isinstance(value, float) else f"{value}"


def text_table(values: Mapping) -> str:
    """A two-column text table of the table's metrics in ``values``, in table order."""
    rows = [(name, values[name]) for name in names() if name in values]
    width = max((len(name) for name, _ in rows), default=0)
    return "\n".join(f"{name:<{width}}  {format_value(name, value)}" for name, value in rows)
