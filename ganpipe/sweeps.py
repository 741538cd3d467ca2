"""Sweeps: grids of runs over gin bindings and seeds, scored and tabulated (``python -m
ganpipe.sweep`` is the command; this module is the library behind it).

A cell is one point of the grid: the product of every axis (a gin binding and the values it takes)
and of the ladder, if any (cumulative rungs of bindings). Each (cell, seed) is a normal run
directory trained by ``python -m ganpipe.main`` and scored by ``python -m ganpipe.evaluate``, each
in its own process.
"""

from __future__ import annotations

import concurrent.futures
import csv
import dataclasses
import io
import itertools
import json
import math
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence

from absl import logging

from ganpipe import hparams, rundir, settings, shipped
from ganpipe.eval import metric_table
from ganpipe.timefmt import format_duration
from ganpipe.validate import at_least

RESULT = "result.json"
STATUS_DONE, STATUS_NON_FINITE = "done", "non_finite"
# results.md's columns around the metric table's report columns: (title, results.csv key, format).
TRAINING_COLUMNS = (("steps", "steps", "{:.0f}"),)
ESTIMATE_COLUMNS = (
    ("W est. first", "w_estimate_first", "{:.3g}"),
    ("W est. last", "w_estimate_last", "{:.3g}"),
)


def metric_columns(metrics: Mapping) -> dict:
    """The columns of results.csv taken from a run's eval.json metrics: the metric table's sweep
    metrics, in its order."""
    return {m.name: metrics[m.name] for m in metric_table.sweep_metrics() if m.name in metrics}


def report_columns() -> tuple[tuple[str, str, str], ...]:
    """results.md's columns: (title, results.csv key, format of the mean and the std)."""
    reported = tuple(
        (m.label, m.name, m.report_fmt) for m in metric_table.sweep_metrics() if m.report_fmt
    )
    return (*TRAINING_COLUMNS, *reported, *ESTIMATE_COLUMNS)


class SweepError(ValueError):
    """A sweep that cannot run as asked; the message says why and how to fix it."""


class SweepInterrupted(RuntimeError):
    """A signal stopped the sweep; rerunning the same command resumes it."""


@dataclasses.dataclass(frozen=True)
class Rung:
    """One rung of a ladder: a name and the bindings it adds to every rung before it."""

    name: str
    bindings: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Sweep:
    """What a sweep runs. Registered in gin as ``sweep`` for sweep files.

    Args:
        gin_files: Experiment files every run starts from; relative names are looked up next to
            the sweep file, then in the shipped gin/ folder.
        gin_params: Bindings for every run (a budget such as ``train.max_train_seconds = 120``).
        axes: ``'<binding>=<v1>,<v2>,...'`` strings; the grid is their product.
        ladder: Rungs ``(name, [bindings])``: rung i runs with the bindings of rungs 0..i. A
            ladder is one more axis of the grid.
        seeds: Seeds per cell: ``train.seed = first_seed .. first_seed + seeds - 1``.
        first_seed: The first seed (0), so that more seeds can be run in another directory.
        eval_samples: Generated images scored per run.
        checkpoint: What is scored: ``final`` (the generator at the end of the run), ``best``
            (lowest FD during training; needs ``Intervals.eval_every``) or ``latest``.
    """

    gin_files: tuple[str, ...] = ()
    gin_params: tuple[str, ...] = ()
    axes: tuple[str, ...] = ()
    ladder: tuple[Rung, ...] = ()
    seeds: int = 3
    first_seed: int = 0
    eval_samples: int = 10000
    checkpoint: str = "final"

    def __post_init__(self):
        if not self.gin_files:
            raise SweepError("A sweep needs an experiment: give --gin_file (or sweep.gin_files).")
        for name, minimum in (("seeds", 1), ("first_seed", 0), ("eval_samples", 2)):
            at_least(name, getattr(self, name), minimum, error=SweepError)
        if self.checkpoint not in ("final", "best", "latest"):
            raise SweepError(
                f"checkpoint must be 'final', 'best' or 'latest', got {self.checkpoint!r}."
            )
        for axis in self.axes:
            parse_axis(axis)
        names = [rung.name for rung in self.ladder]
        if len(set(names)) != len(names):
            raise SweepError(f"Ladder rung names must be unique, got {names}.")
        for binding in self.gin_params:
            if re.match(r"\s*train\.seed\s*=", binding):
                raise SweepError("The sweep sets train.seed itself (--seeds); do not bind it.")

    def to_json(self) -> dict:
        return {
            "gin_files": list(self.gin_files),
            "gin_params": list(self.gin_params),
            "axes": list(self.axes),
            "ladder": [[rung.name, list(rung.bindings)] for rung in self.ladder],
            "seeds": self.seeds,
            "first_seed": self.first_seed,
            "eval_samples": self.eval_samples,
            "checkpoint": self.checkpoint,
        }


def make_sweep(
    *,
    gin_files: Sequence[str],
    gin_params: Sequence[str] = (),
    axes: Sequence[str] = (),
    ladder: Sequence[tuple[str, Sequence[str]]] = (),
    seeds: int = 3,
    first_seed: int = 0,
    eval_samples: int = 10000,
    checkpoint: str = "final",
) -> Sweep:
    """The gin-facing constructor of ``Sweep`` (lists in, validated frozen spec out)."""
    rungs = []
    for entry in ladder:
        if (
            not isinstance(entry, (tuple, list))
            or len(entry) != 2
            or not isinstance(entry[0], str)
            or isinstance(entry[1], str)
        ):
            raise SweepError(
                f"A ladder rung must be ('name', ['binding', ...]), got {entry!r}; write a rung "
                "with no bindings as ('name', [])."
            )
        rungs.append(Rung(entry[0], tuple(entry[1])))
    return Sweep(
        gin_files=tuple(gin_files),
        gin_params=tuple(gin_params),
        axes=tuple(axes),
        ladder=tuple(rungs),
        seeds=seeds,
        first_seed=first_seed,
        eval_samples=eval_samples,
        checkpoint=checkpoint,
    )


def split_values(text: str) -> list[str]:
    """Splits ``a,b,(c,d),'e,f'`` at the commas outside brackets and quotes."""
    values, depth, quote, start = [], 0, None, 0
    for index, char in enumerate(text):
        if quote:
            if char == quote and text[index - 1] != "\\":
                quote = None
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
            if depth < 0:
                raise SweepError(f"Unbalanced brackets in {text!r}.")
        elif char == "," and depth == 0:
            values.append(text[start:index].strip())
            start = index + 1
    if quote or depth:
        raise SweepError(f"Unclosed quote or bracket in {text!r}.")
    values.append(text[start:].strip())
    if any(not v for v in values):
        raise SweepError(f"Empty value in {text!r}.")
    return values


def parse_axis(text: str) -> tuple[str, list[str]]:
    """``'train.loss=hinge,wasserstein'`` -> ``('train.loss', ['hinge', 'wasserstein'])``."""
    key, sep, values = text.partition("=")
    key = key.strip()
    if not sep or not key or not values.strip():
        raise SweepError(
            f"An axis is '<binding>=<v1>,<v2>,...', e.g. "
            f"\"train.loss='hinge','wasserstein'\"; got {text!r}."
        )
    parsed = split_values(values)
    if len(set(parsed)) != len(parsed):
        raise SweepError(f"Axis {key} repeats a value: {parsed}.")
    return key, parsed


def _slug(text: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9.+-]+", "_", text).strip("_")
    return slug[:60] or "x"


@dataclasses.dataclass(frozen=True)
class Cell:
    """One point of the grid."""

    name: str  # directory name, unique in the sweep
    label: str  # shown in tables and plots
    bindings: tuple[str, ...]
    coordinates: tuple[tuple[str, str], ...]  # (axis, value) pairs, for results.csv


def cells(sweep: Sweep) -> list[Cell]:
    """The grid's cells, in order: the ladder (outermost), then each axis in turn."""
    dimensions = []
    if sweep.ladder:
        options, accumulated = [], []
        for index, rung in enumerate(sweep.ladder):
            accumulated = [*accumulated, *rung.bindings]
            options.append((("rung", f"{index}_{rung.name}"), tuple(accumulated)))
        dimensions.append(options)
    for axis in sweep.axes:
        key, values = parse_axis(axis)
        dimensions.append([((key, value), (f"{key} = {value}",)) for value in values])
    if not dimensions:
        return [Cell("base", "base", (), ())]
    result = []
    for index, combination in enumerate(itertools.product(*dimensions)):
        coordinates = tuple(coordinate for coordinate, _ in combination)
        bindings = tuple(b for _, group in combination for b in group)
        label = ", ".join(
            value if key == "rung" else f"{key.split('.')[-1]}={value}"
            for key, value in coordinates
        )
        name = f"{index:02d}_" + _slug("_".join(value for _, value in coordinates))
        result.append(Cell(name, label, bindings, coordinates))
    return result


def resolve_gin_file(path: str, relative_to: str | None = None) -> str:
    """A gin file path as given, next to ``relative_to``, or among the shipped experiments."""
    if relative_to and not os.path.isfile(path):
        beside = os.path.join(os.path.dirname(os.path.abspath(relative_to)), path)
        if os.path.isfile(beside):
            return os.path.abspath(beside)
    try:
        return shipped.resolve(path)
    except FileNotFoundError as error:
        raise SweepError(str(error)) from error


def load_sweep_file(path: str) -> Sweep:
    """Parses a sweep gin file (``sweep.*`` bindings) into a ``Sweep``."""
    import gin
    from ganpipe import config

    try:
        path = shipped.resolve(path)
    except FileNotFoundError:
        raise SweepError(
            f"Sweep file {path!r} not found, here or among the shipped sweeps "
            f"({os.path.join(shipped.folder(), 'sweeps')})."
        ) from None
    make = config.register_configurable("sweep", make_sweep)
    gin.clear_config()
    try:
        gin.parse_config_file(path, skip_unknown=False)
        spec = make()
    except SweepError:
        raise
    except Exception as error:  # gin raises ValueError, SyntaxError, KeyError, ...
        raise SweepError(f"Cannot read sweep file {path}: {error}") from error
    finally:
        gin.clear_config()
    files = tuple(resolve_gin_file(f, relative_to=path) for f in spec.gin_files)
    return dataclasses.replace(spec, gin_files=files)


def run_bindings(sweep: Sweep, cell: Cell, seed: int) -> list[str]:
    """Every binding of one run, in the order they apply."""
    return [*sweep.gin_params, *cell.bindings, f"train.seed = {seed}"]


def validate(sweep: Sweep) -> None:
    """Parses every cell's config once (seed 0), so a typo fails before any training."""
    from ganpipe import config

    for cell in cells(sweep):
        try:
            config.parse(list(sweep.gin_files), run_bindings(sweep, cell, 0))
        except config.ConfigError as error:
            raise SweepError(f"Cell {cell.label!r}: {error}") from error


def summarize_training(metrics_path: str) -> dict:
    """Steps, training time and the Wasserstein estimate's first and last values of a run.

    "First" and "last" are means over the first and last fifth of the logged rows (at least one
    row each), so one noisy row does not decide the trend.
    """
    rows = rundir.read_metrics(metrics_path)
    summary = {"steps": rows[-1]["step"] if rows else 0}
    if rows and "elapsed_seconds" in rows[-1]:
        summary["train_seconds"] = rows[-1]["elapsed_seconds"]
    estimates = [r["wasserstein_estimate"] for r in rows if "wasserstein_estimate" in r]
    if estimates:
        tail = max(1, len(estimates) // 5)
        summary["w_estimate_first"] = float(sum(estimates[:tail]) / tail)
        summary["w_estimate_last"] = float(sum(estimates[-tail:]) / tail)
    return summary


class Runner:
    """Trains and scores the runs of a sweep, one process each; resumable and interruptible."""

    def __init__(self, sweep: Sweep, output_dir: str, parallel: int = 1):
        if parallel < 1:
            raise SweepError(f"--parallel must be >= 1, got {parallel}.")
        self.sweep, self.output_dir, self.parallel = sweep, output_dir, parallel
        self.cells = cells(sweep)
        self._children: set[subprocess.Popen] = set()
        self._lock = threading.Lock()
        self.interrupted = False

    def run_dir(self, cell: Cell, seed: int) -> str:
        return os.path.join(self.output_dir, "runs", cell.name, f"seed{seed}")

    def _log_path(self, cell: Cell, seed: int, what: str) -> str:
        return os.path.join(self.output_dir, "logs", f"{cell.name}_seed{seed}.{what}.log")

    def check_directory(self) -> None:
        """Creates the sweep directory, or refuses one that holds another sweep.

        The same sweep with more seeds extends it: its finished runs are kept."""
        path = os.path.join(self.output_dir, "sweep.json")
        wanted = self.sweep.to_json()
        if os.path.isfile(path):
            with open(path) as f:
                saved = {"first_seed": 0, **json.load(f)}  # written before first_seed existed
            # A sweep of train's flat bindings (train.log_every) is the same with the new names.
            saved, now = settings.moved_names(saved), settings.moved_names(wanted)
            changed = sorted(k for k in wanted if saved.get(k) != now[k])
            if changed == ["seeds"] and wanted["seeds"] > saved["seeds"]:
                logging.info(
                    "Extending the sweep in %s from %d to %d seeds; its finished runs are kept.",
                    self.output_dir,
                    saved["seeds"],
                    wanted["seeds"],
                )
            elif changed:
                raise SweepError(
                    f"{self.output_dir} holds another sweep (different {', '.join(changed)}). "
                    "Use a new --output_dir, or rerun the original command to resume it."
                )
            logging.info("Resuming the sweep in %s.", self.output_dir)
        elif os.path.exists(self.output_dir) and os.listdir(self.output_dir):
            raise SweepError(
                f"{self.output_dir} exists and is not a sweep directory (no sweep.json). Use a "
                "new --output_dir."
            )
        os.makedirs(os.path.join(self.output_dir, "logs"), exist_ok=True)
        rundir.atomic_write(path, json.dumps(wanted, indent=2) + "\n")

    def jobs(self) -> list[tuple[Cell, int]]:
        """Every (cell, seed), seed-major: all cells of seed 0 first, so an early stop still
        has every cell, and slow drifts of the machine fall on every cell alike."""
        first = self.sweep.first_seed
        seeds = range(first, first + self.sweep.seeds)
        return [(cell, seed) for seed in seeds for cell in self.cells]

    def finished(self, cell: Cell, seed: int) -> dict | None:
        path = os.path.join(self.run_dir(cell, seed), RESULT)
        if not os.path.isfile(path):
            return None
        with open(path) as f:  # an axis of a moved binding under its new name, as the cell's
            return settings.moved_names(json.load(f))

    def _call(self, command: list[str], log_path: str) -> int:
        env = dict(os.environ)  # TensorFlow's log level as this process chose (ganpipe.console)
        if self.interrupted:  # no new process once a stop signal has arrived
            raise SweepInterrupted("The sweep was interrupted before its next run.")
        with open(log_path, "a") as log:
            log.write(f"$ {' '.join(command)}\n")
            log.flush()
            process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
            with self._lock:
                self._children.add(process)
            try:
                return process.wait()
            finally:
                with self._lock:
                    self._children.discard(process)

    def stop_children(self, signum: int) -> None:
        """Passes a stop signal on: each training run checkpoints and exits."""
        self.interrupted = True
        with self._lock:
            for process in self._children:
                try:
                    os.killpg(process.pid, signum)
                except ProcessLookupError:
                    pass

    def _tail(self, path: str, lines: int = 15) -> str:
        with open(path) as f:
            return "".join(f.readlines()[-lines:])

    def run_one(self, cell: Cell, seed: int) -> dict:
        """Trains (or resumes) and scores one run; returns its result row."""
        done = self.finished(cell, seed)
        if done is not None:
            return done
        run_dir = self.run_dir(cell, seed)
        train_log = self._log_path(cell, seed, "train")
        command = [sys.executable, "-m", "ganpipe.main"]
        command += [f"--gin_file={f}" for f in self.sweep.gin_files]
        command += [f"--gin_param={b}" for b in run_bindings(self.sweep, cell, seed)]
        command += [f"--output_dir={run_dir}"]
        started = time.monotonic()
        code = self._call(command, train_log)
        row = {"cell": cell.name, "label": cell.label, "seed": seed, "run_dir": run_dir}
        row.update({key: value for key, value in cell.coordinates})
        if code == 4 or self.interrupted:
            raise SweepInterrupted(f"Run {run_dir} was interrupted; it resumes on the next call.")
        if code == 2:
            raise SweepError(f"Run {run_dir} refused its input (exit 2):\n{self._tail(train_log)}")
        row.update(summarize_training(os.path.join(run_dir, rundir.METRICS)))
        if code == 3:
            row["status"] = STATUS_NON_FINITE
        elif code != 0:
            raise RuntimeError(
                f"Run {run_dir} failed (exit {code}); see {train_log}:\n{self._tail(train_log)}"
            )
        else:
            eval_log = self._log_path(cell, seed, "eval")
            code = self._call(
                [
                    sys.executable,
                    "-m",
                    "ganpipe.evaluate",
                    f"--run_dir={run_dir}",
                    f"--checkpoint={self.sweep.checkpoint}",
                    f"--num_samples={self.sweep.eval_samples}",
                    "--noinception",
                ],
                eval_log,
            )
            if self.interrupted:
                raise SweepInterrupted(f"Scoring {run_dir} was interrupted.")
            if code != 0:
                raise RuntimeError(
                    f"Scoring {run_dir} failed (exit {code}); see {eval_log}:\n"
                    f"{self._tail(eval_log)}"
                )
            with open(os.path.join(run_dir, rundir.EVAL)) as f:
                metrics = json.load(f)["metrics"]
            row.update(metric_columns(metrics))
            row["status"] = STATUS_DONE
        row["wall_seconds"] = round(time.monotonic() - started, 1)
        rundir.atomic_write(os.path.join(run_dir, RESULT), json.dumps(row, indent=2) + "\n")
        return row

    def run(self) -> list[dict]:
        """Runs every unfinished (cell, seed); returns every result row."""
        jobs = self.jobs()
        todo = [job for job in jobs if self.finished(*job) is None]
        logging.info(
            "Sweep: %d cells x %d seeds = %d runs; %d finished, %d to run, %d at a time.",
            len(self.cells),
            self.sweep.seeds,
            len(jobs),
            len(jobs) - len(todo),
            len(todo),
            self.parallel,
        )
        started, completed = time.monotonic(), 0
        fd = metric_table.get("fd")

        def one(job):
            cell, seed = job
            row = self.run_one(cell, seed)
            return job, row

        with concurrent.futures.ThreadPoolExecutor(self.parallel) as pool:
            futures = [pool.submit(one, job) for job in todo]
            try:
                for future in concurrent.futures.as_completed(futures):
                    (cell, seed), row = future.result()
                    completed += 1
                    elapsed = time.monotonic() - started
                    left = elapsed / completed * (len(todo) - completed)
                    logging.info(
                        "[%d/%d] %s, seed %d: %s, %s steps%s. Elapsed %s, about %s left.",
                        completed,
                        len(todo),
                        cell.label,
                        seed,
                        row["status"],
                        row.get("steps"),
                        f", {fd.label} {fd.report_fmt.format(row['fd'])}" if "fd" in row else "",
                        format_duration(elapsed),
                        format_duration(left),
                    )
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
        return [self.finished(cell, seed) for cell, seed in jobs]


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, float("nan")
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def aggregate(rows: Sequence[Mapping], cell_list: Sequence[Cell]) -> list[dict]:
    """Per cell: runs, finished runs, and mean/std of every results.md column: a metric over the
    finished seeds, a training column over every run."""
    summary, columns, scores = [], report_columns(), set(metric_table.names())
    for cell in cell_list:
        mine = [r for r in rows if r and r["cell"] == cell.name]
        ok = [r for r in mine if r["status"] == STATUS_DONE]
        entry = {
            "cell": cell.name,
            "label": cell.label,
            "runs": len(mine),
            "done": len(ok),
            "non_finite": sum(r["status"] == STATUS_NON_FINITE for r in mine),
        }
        for _, key, _ in columns:
            values = [float(r[key]) for r in (ok if key in scores else mine) if key in r]
            if values:
                entry[key] = _mean_std(values)
        summary.append(entry)
    return summary


def write_csv(path: str, rows: Sequence[Mapping]) -> None:
    columns = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    rundir.atomic_write(path, text.getvalue())


def _cell_text(value: tuple[float, float] | None, fmt: str) -> str:
    if value is None:
        return "-"
    mean, std = value
    if math.isnan(std):
        return fmt.format(mean)
    return f"{fmt.format(mean)} ± {fmt.format(std)}"


def markdown_table(summary: Sequence[Mapping]) -> str:
    """One row per cell: mean ± std over seeds (sample std, n - 1)."""
    columns = report_columns()
    header = ["cell", "runs ok", *[title for title, _, _ in columns]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for entry in summary:
        ok = f"{entry['done']}/{entry['runs']}"
        if entry["non_finite"]:
            ok += f" ({entry['non_finite']} NaN)"
        cells_text = [_cell_text(entry.get(key), fmt) for _, key, fmt in columns]
        lines.append("| " + " | ".join([entry["label"], ok, *cells_text]) + " |")
    return "\n".join(lines) + "\n"


def plot(path: str, rows: Sequence[Mapping], cell_list: Sequence[Cell], metric: str = "fd"):
    """Every seed's value per cell (dots), and the mean with one standard deviation (bar)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(figsize=(max(6.0, 1.1 * len(cell_list) + 2), 4.5))
    for index, cell in enumerate(cell_list):
        values = [
            float(r[metric])
            for r in rows
            if r and r["cell"] == cell.name and r["status"] == STATUS_DONE and metric in r
        ]
        if not values:
            axes.text(index, 0, "no run", ha="center", va="bottom", fontsize=8)
            continue
        mean, std = _mean_std(values)
        axes.errorbar(
            index, mean, yerr=0 if math.isnan(std) else std, fmt="s", color="C0", capsize=6
        )
        axes.scatter([index + 0.12] * len(values), values, color="C1", s=14, zorder=3)
    axes.set_xticks(range(len(cell_list)))
    axes.set_xticklabels([c.label for c in cell_list], rotation=30, ha="right", fontsize=8)
    shown = metric_table.get(metric)
    axes.set_ylabel(f"{shown.label} ({shown.hint})" if shown.hint else shown.label)
    axes.set_title(f"{shown.label} per cell: mean ± std over seeds (squares), each seed (dots)")
    axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    temporary = path + ".tmp.png"
    figure.savefig(temporary, dpi=110)
    plt.close(figure)
    os.replace(temporary, path)


def write_tables(
    rows: Sequence[Mapping], cell_list: Sequence[Cell], csv_path: str, md_path: str, png_path: str
) -> str:
    """Every row to ``csv_path``, mean ± std per cell to ``md_path`` and, once a run is done, the
    FD per cell to ``png_path``; returns the markdown table."""
    write_csv(csv_path, rows)
    table = markdown_table(aggregate(rows, cell_list))
    rundir.atomic_write(md_path, table)
    if any(r["status"] == STATUS_DONE for r in rows):
        plot(png_path, rows, cell_list)
    return table


def write_reports(output_dir: str, rows: Sequence[Mapping], cell_list: Sequence[Cell]) -> str:
    """results.csv, results.md, fd.png and hparams/ (TensorBoard's HParams view) from the
    finished runs; returns the markdown table."""
    present = [r for r in rows if r]
    paths = [os.path.join(output_dir, name) for name in ("results.csv", "results.md", "fd.png")]
    table = write_tables(present, cell_list, *paths)
    hparams.write(output_dir, present)
    return table
