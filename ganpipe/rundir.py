"""The run directory: refuses to mix configs, holds a lock, and writes files atomically."""

from __future__ import annotations

import difflib
import fcntl
import json
import os
import re
import tempfile
from collections.abc import Iterable, Sequence

from ganpipe import settings

# Every name in a run directory's layout. Renaming one breaks existing runs.
CONFIG_FILE = "config.gin"  # what was asked; compared on resume
OPERATIVE_CONFIG_FILE = "operative_config.gin"  # what was used
LOCK_FILE = ".lock"
METRICS = "metrics.jsonl"
CHECKPOINTS = "checkpoints"
BEST = "best"  # checkpoints/best: the lowest FD during training
SAMPLES = "samples"
SAMPLE_GRID = "step_{step:06d}.png"  # samples/step_NNNNNN.png: one grid per sample interval
SAMPLE_GRID_NAME = re.compile(r"^step_(\d+)\.png$")  # SAMPLE_GRID's names, step in group 1
TIMELINE = "timeline.png"  # samples/timeline.png: up to 8 grids side by side
PLOTS = "plots"
METRICS_PLOT = "metrics.png"  # plots/metrics.png: every metric against the step
TENSORBOARD = "tensorboard"
GENERATOR = "generator.keras"  # the sampling generator (the weight average when there is one)
LIVE_GENERATOR = "generator_live.keras"  # the live weights, beside an average
SAVED_MODEL = "generator_savedmodel"  # generator.keras's model as a SavedModel (no Keras needed)
EVAL = "eval.json"
BACKEND_FILE = "backend"  # the Keras backend that trains the run (checkpoints are its format)
DATA_FILE = "data.json"  # the training data's image shape, classes, source and fingerprint
# The checkpoint's object keys are named in ganpipe/training/state.py.

# Bindings that may change between a run and its resumption: the budgets. Raising the step or
# time budget extends a run.
_RESUMABLE_CHANGES = (
    re.compile(r"^NUM_STEPS\s*="),
    re.compile(r"^train\.num_steps\s*="),
    re.compile(r"^train\.max_train_seconds\s*="),
)


# gin/'s folders of shared parts and overrides (data sets, models, losses, test sizes): a file in
# one of them is layered onto an experiment, so it does not name the run.
SHARED_PART_FOLDERS = ("data", "models", "losses", "testing")
RUNS = "runs"  # where a run goes without --output_dir: runs/<experiment>


def default_output_dir(gin_files: Sequence[str]) -> tuple[str, str]:
    """The run directory of a command without ``--output_dir``, and why: ``runs/<stem>`` of the
    first gin file outside the shared-part folders (``SHARED_PART_FOLDERS``), so that layering
    ``gin/data/folder.gin`` or ``gin/testing/tiny.gin`` after an experiment keeps the
    experiment's name. When every file is a shared part, the first one names the run.

    Raises:
        ValueError: ``gin_files`` is empty.
    """
    if not gin_files:
        raise ValueError("Give at least one --gin_file, e.g. --gin_file=gin/wgan.gin.")
    folders = ", ".join(f"{d}/" for d in SHARED_PART_FOLDERS)

    def shared(path: str) -> bool:
        return os.path.basename(os.path.dirname(os.path.normpath(path))) in SHARED_PART_FOLDERS

    experiment = next((f for f in gin_files if not shared(f)), None)
    if experiment is None:
        experiment = gin_files[0]
        why = f"named after the first --gin_file, {experiment} (every file is in {folders})"
    else:
        why = f"named after {experiment}, the first --gin_file outside gin's {folders}"
    stem = os.path.splitext(os.path.basename(experiment))[0]
    return os.path.join(RUNS, stem), why


def _backend_name() -> str:
    """The Keras backend's name, as a run directory records it (data, not a branch: the code
    that differs per backend is in ``ganpipe.backend``, which imports this module)."""
    import keras

    return keras.backend.backend()


class RunDirectoryError(RuntimeError):
    """The output directory cannot hold this run (another config, another process, not writable)."""


def read_metrics(path: str) -> list[dict]:
    """metrics.jsonl's rows; a half-written last line (a killed process) is skipped."""
    rows = []
    if os.path.isfile(path):
        with open(path) as f:
            for line in f:
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
    return rows


def write_data_record(directory: str, record: dict) -> None:
    """Writes ``data.json``: what evaluation and sampling need to know of the training data
    (a model family's generator is built for its image shape)."""
    atomic_write(os.path.join(directory, DATA_FILE), json.dumps(record, indent=2) + "\n")


def read_data_record(directory: str) -> dict | None:
    """The run's ``data.json``, or None for a run trained before it was written."""
    path = os.path.join(directory, DATA_FILE)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def atomic_write(path: str, data: str | bytes) -> None:
    """Writes ``data`` to ``path`` via a temporary file and a rename: never half a file."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    mode = "wb" if isinstance(data, bytes) else "w"
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


# Bindings a config may hold or leave out to the same effect: a settings group bound to its own
# class, as config.parse binds each (a run written before the groups has none).
_GROUP_DEFAULTS = frozenset(
    f"train.{name} = @{group.__name__}()" for name, group in settings.GROUPS.items()
)


def _comparable(text: str) -> list[str]:
    """The config's bindings, each with its continuation lines, in sorted order: comments, the
    budgets and the groups' default bindings left out, and every moved flat binding of train
    (a run written before the settings were grouped) under its new name."""
    statements: list[list[str]] = []
    for line in settings.move_bindings(text)[0].splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if line[0].isspace() and statements:  # a value continued from the line above
            statements[-1].append(stripped)
        else:
            statements.append([stripped])
    kept = [
        s
        for s in statements
        if s[0] not in _GROUP_DEFAULTS and not any(p.match(s[0]) for p in _RESUMABLE_CHANGES)
    ]
    return [line for statement in sorted(kept) for line in statement]


def config_difference(saved: str, requested: str) -> list[str]:
    """Unified-diff lines between two configs, ignoring comments, the order of the bindings,
    the budgets and the names of moved bindings (``train.log_every`` is ``Intervals.log_every``)."""
    return list(
        difflib.unified_diff(
            _comparable(saved),
            _comparable(requested),
            "config.gin (in the run directory)",
            "config requested now",
            lineterm="",
            n=0,
        )
    )


class RunDirectory:
    """A run's output directory.

    Opening it checks that it is new, empty, or holds a run with the same config (ignoring
    NUM_STEPS, so a finished run can be extended), and takes an exclusive lock so a second process
    given the same directory is refused while the first runs.

    Args:
        path: The directory.
        config_text: The parsed config (``gin.config_str()``), compared and saved as config.gin.
        header: Comment lines written above the config (the command's gin files and params).
    """

    def __init__(self, path: str, config_text: str, header: Iterable[str] = ()):
        self.path = os.path.abspath(path)
        self.config_text = config_text
        self.header = list(header)
        self.resuming = False
        self._lock_fd: int | None = None

    def join(self, *parts: str) -> str:
        return os.path.join(self.path, *parts)

    def check(self) -> bool:
        """Validates the directory without writing anything; returns whether this is a resume."""
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise RunDirectoryError(f"--output_dir {self.path} exists and is not a directory.")
        parent = self.path
        while not os.path.exists(parent):
            parent = os.path.dirname(parent)
        if not os.path.isdir(parent):
            raise RunDirectoryError(
                f"--output_dir {self.path} is not writable: {parent} is not a directory. Choose "
                "another --output_dir."
            )
        if not os.access(parent, os.W_OK):
            raise RunDirectoryError(
                f"--output_dir {self.path} is not writable (no write permission on {parent}). "
                "Choose another --output_dir."
            )
        config_path = self.join(CONFIG_FILE)
        if os.path.isfile(config_path):
            with open(config_path) as f:
                saved = f.read()
            diff = config_difference(saved, self.config_text)
            if diff:
                shown = "\n".join(diff[:60]) + ("\n..." if len(diff) > 60 else "")
                raise RunDirectoryError(
                    f"{self.path} already holds a run with a different config; nothing was "
                    f"changed. Differences (- saved, + requested):\n{shown}\nUse another "
                    "--output_dir, or the saved config to resume this run."
                )
            self.resuming = True
            self._check_backend()
        elif os.path.isdir(self.path) and [n for n in os.listdir(self.path) if n != LOCK_FILE]:
            raise RunDirectoryError(
                f"{self.path} is not empty and holds no {CONFIG_FILE}: it is not a ganpipe run "
                "directory. Choose a new or empty --output_dir."
            )
        return self.resuming

    def _check_backend(self) -> None:
        """Refuses to resume a run under another Keras backend than the one that trained it
        (its checkpoints are in that backend's format). A run without the record is older than
        the JAX backend: TensorFlow trained it."""
        current = _backend_name()
        path = self.join(BACKEND_FILE)
        recorded = open(path).read().strip() if os.path.isfile(path) else "tensorflow"
        if recorded != current:
            raise RunDirectoryError(
                f"{self.path} was trained on the {recorded} backend and this process runs on "
                f"{current}; nothing was changed. Resume it with KERAS_BACKEND={recorded}, or "
                f"train on {current} in another --output_dir (generator.keras loads on either)."
            )

    def open(self) -> RunDirectory:
        """Checks, locks, and (for a new run) writes config.gin. Returns self."""
        self.check()
        os.makedirs(self.path, exist_ok=True)
        fd = os.open(self.join(LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            os.close(fd)
            raise RunDirectoryError(
                f"Another process is training in {self.path} (it holds {LOCK_FILE}). Wait for it "
                "to finish or choose another --output_dir."
            ) from error
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd
        if not self.resuming:
            header = "".join(f"# {line}\n" for line in self.header)
            atomic_write(self.join(CONFIG_FILE), header + self.config_text)
        if not os.path.isfile(self.join(BACKEND_FILE)):
            atomic_write(self.join(BACKEND_FILE), _backend_name() + "\n")
        return self

    def close(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> RunDirectory:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()
