"""The run's pictures: plots/metrics.png (every logged metric against the step) and
samples/timeline.png (up to 8 sample grids side by side, each under its step).

Plain writers with no schedule: the ``Plots`` callback decides when to refresh them. Both are
written atomically (a temporary file, then a rename).
"""

from __future__ import annotations

import io
import math
import os
import re

import numpy as np
from PIL import Image, ImageDraw

from ganpipe.eval import metric_table
from ganpipe.rundir import SAMPLE_GRID_NAME, atomic_write

# Panels of metrics.png: (title, metrics, log scale). Then one panel per metric of the metric
# table (eval_<name>, on its plot scale), then one per other metric.
PANELS = (
    ("losses", ("critic_loss", "generator_loss"), False),
    ("critic scores on real and fake, and their gap", (
        "critic_real", "critic_fake", "wasserstein_estimate", "real_minus_fake"), False),
)  # fmt: skip
_SKIP = {"step", "elapsed_seconds", "images_per_second"}
# The training metrics drawn on a log scale (the evaluation's are the metric table's).
_LOG = re.compile(r"penalty|^r1|^r2")


def evaluation_panels() -> tuple[tuple[str, tuple[str, ...], bool], ...]:
    """A panel per drawn metric of the metric table, in its order."""
    prefix = metric_table.TRAINING_PREFIX
    return tuple(
        (f"{m.title or m.label} (evaluator)", (prefix + m.name,), m.plot_scale == metric_table.LOG)
        for m in metric_table.METRICS
        if m.plot_scale is not None
    )


def _skipped() -> set[str]:
    """What metrics.png never draws: counters, and the table's metrics without a plot scale."""
    prefix = metric_table.TRAINING_PREFIX
    return _SKIP | {prefix + m.name for m in metric_table.METRICS if m.plot_scale is None}


def series(rows: list[dict]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """metric -> (steps, values) over the rows that hold it. Where both critic scores are logged
    and the loss logs no Wasserstein estimate, adds their gap (real minus fake) as
    ``real_minus_fake``."""
    out: dict[str, list] = {}
    skipped = _skipped()
    for row in rows:
        step = row.get("step")
        values = dict(row)
        if "critic_real" in row and "critic_fake" in row and "wasserstein_estimate" not in row:
            values["real_minus_fake"] = row["critic_real"] - row["critic_fake"]
        for name, value in values.items():
            if name in skipped or not isinstance(value, (int, float)) or isinstance(value, bool):
                continue
            out.setdefault(name, []).append((step, float(value)))
    return {k: (np.array([s for s, _ in v]), np.array([x for _, x in v])) for k, v in out.items()}


def panels(names) -> list[tuple[str, tuple[str, ...], bool]]:
    """The panels for the metrics present: the fixed ones first, the metric table's next, then
    one per other metric."""
    names = set(names)
    chosen, placed = [], set()
    for title, members, log in (*PANELS, *evaluation_panels()):
        present = tuple(m for m in members if m in names)
        if present:
            chosen.append((title, present, log))
            placed.update(present)
    for name in sorted(names - placed):
        chosen.append((name.replace("_", " "), (name,), bool(_LOG.search(name))))
    return chosen


def plain_log_axis(axes) -> None:
    """Puts the y axis of ``axes`` on a log scale labelled in plain numbers (0.3, not 3e-01).

    Minor ticks are labelled as Matplotlib's LogFormatter would choose them: all of them on a
    short axis, 2, 3, 4 and 6 of each decade on one about a decade long, none on a longer one, so
    labels never overlap.
    """
    from matplotlib import ticker

    class Plain(ticker.LogFormatter):
        def __call__(self, value, pos=None):
            return f"{value:.3g}" if super().__call__(value, pos) else ""

    axes.set_yscale("log")
    axes.yaxis.set_major_formatter(ticker.FormatStrFormatter("%.3g"))
    axes.yaxis.set_minor_formatter(Plain(labelOnlyBase=False, minor_thresholds=(1, 0.4)))


def metrics_figure(rows: list[dict], path: str) -> bool:
    """Draws every metric of ``rows`` against the step into ``path`` (PNG); False if no rows."""
    data = series(rows)
    if not data:
        return False
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    chosen = panels(data)
    columns = 3
    lines = math.ceil(len(chosen) / columns)
    figure = Figure(figsize=(4.2 * columns, 2.8 * lines), dpi=90, layout="constrained")
    for index, (title, members, log) in enumerate(chosen):
        axes = figure.add_subplot(lines, columns, index + 1)
        for name in members:
            steps, values = data[name]
            finite = np.isfinite(values)
            positive = bool(np.all(values[finite] > 0))
            axes.plot(steps[finite], values[finite], label=name, linewidth=1.0)
            if log and positive and finite.any():
                plain_log_axis(axes)
        axes.set_title(title, fontsize=9)
        axes.set_xlabel("step", fontsize=8)
        axes.tick_params(which="both", labelsize=7)
        axes.grid(alpha=0.3)
        if len(members) > 1:
            axes.legend(fontsize=7)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    atomic_write(path, buffer.getvalue())
    return True


def grids(sample_dir: str) -> list[tuple[int, str]]:
    """(step, path) of every sample grid in ``sample_dir``, by step."""
    found = []
    for name in os.listdir(sample_dir) if os.path.isdir(sample_dir) else ():
        match = SAMPLE_GRID_NAME.match(name)
        if match:
            found.append((int(match.group(1)), os.path.join(sample_dir, name)))
    return sorted(found)


def pick(items: list, count: int = 8) -> list:
    """Up to ``count`` items spread evenly, the first and the last always among them."""
    if len(items) <= count:
        return list(items)
    index = np.round(np.linspace(0, len(items) - 1, count)).astype(int)
    return [items[i] for i in sorted(set(index.tolist()))]


def timeline(sample_dir: str, path: str, count: int = 8) -> bool:
    """Up to ``count`` of the run's grids side by side, each with its step beneath, into
    ``path`` (PNG); False if there is no grid yet."""
    chosen = pick(grids(sample_dir), count)
    if not chosen:
        return False
    images = []
    for _, grid_path in chosen:
        with Image.open(grid_path) as grid:
            images.append(grid.convert("RGB"))
    width, height = max(i.width for i in images), max(i.height for i in images)
    gap, label = 6, 16
    sheet = Image.new("RGB", (len(images) * (width + gap) - gap, height + label), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for index, ((step, _), image) in enumerate(zip(chosen, images)):
        x = index * (width + gap)
        sheet.paste(image, (x, 0))
        draw.text((x + 2, height + 2), f"step {step}", fill=(0, 0, 0))
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG")
    atomic_write(path, buffer.getvalue())
    return True
