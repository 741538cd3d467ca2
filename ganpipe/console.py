"""What the console shows: TensorFlow's C++ log lines are hidden unless asked for.

TensorFlow's C++ runtime prints lines a user cannot act on: the failed ``cuInit`` call on a machine
without a GPU, the oneDNN and CUDA-stub banners, grappler's remapper and layout-optimizer messages
(``remapper failed: ... Mutation::Apply error``, harmless, but they read like a crash). Its level is
read once, when TensorFlow is first imported, so every entry point calls ``quiet_tensorflow()``
before importing anything that imports TensorFlow. ganpipe's own lines (absl logging) are not
affected: fallbacks, device and strategy, data source, parameter counts, progress.

``TF_CPP_MIN_LOG_LEVEL`` alone does not do it: TensorFlow 2.21 writes these lines through absl
before its logging is initialized, whatever the level. So the entry points also pass file
descriptor 2 through a filter (``filter_stderr``) that drops exactly those lines (TensorFlow's
C++ info and warning lines, and its error lines from the CUDA probe and grappler) and forwards
everything else, Python's own output and tracebacks included, unchanged.

TensorFlow's own Python info lines (the checkpoint saver's timings, the SavedModel builder's
progress) are hidden too; its Python warnings stay.

The lines come back with ``GANPIPE_TF_LOG=1``, with absl's ``--verbosity=1`` (or ``-v 1``) or
higher, or with an explicit ``TF_CPP_MIN_LOG_LEVEL`` (which is then left as it is).
"""

from __future__ import annotations

import atexit
import logging as std_logging
import os
import re
import sys
import threading

ENV = "GANPIPE_TF_LOG"


def _verbosity(argv) -> int:
    for i, arg in enumerate(argv):
        for flag in ("--verbosity", "-v"):
            if arg == flag and i + 1 < len(argv):
                value = argv[i + 1]
            elif arg.startswith(flag + "="):
                value = arg.split("=", 1)[1]
            else:
                continue
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


def wants_tensorflow_log(argv=None, environ=None) -> bool:
    """True when the user asked for TensorFlow's C++ lines."""
    environ = os.environ if environ is None else environ
    argv = sys.argv if argv is None else argv
    return environ.get(ENV, "") not in ("", "0") or _verbosity(argv) >= 1


# A TensorFlow C++ log line ("I0000 00:00:1796139905.014286   29072 port.cc:153] ...") that a
# user cannot act on: any info or warning line, and error lines of the CUDA probe on a machine
# without a GPU and of grappler's optimizers (harmless fallbacks that read like crashes).
NOISE = re.compile(
    rb"^(WARNING: All log messages before absl::InitializeLog\(\) is called"
    rb"|[IW]\d{4} [\d:.]+ +\d+ [\w./-]+\.cc:\d+\]"
    rb"|E\d{4} [\d:.]+ +\d+ (cuda_\w+|meta_optimizer)\.cc:\d+\])"
)
_FILTERING: list = []


def is_noise(line: bytes) -> bool:
    return NOISE.match(line) is not None


def filter_stderr() -> None:
    """Routes file descriptor 2 through a thread that drops ``NOISE`` lines (once per process;
    the original descriptor is put back, and what is pending flushed, at exit)."""
    if _FILTERING:
        return
    real = os.dup(2)
    read_fd, write_fd = os.pipe()
    os.dup2(write_fd, 2)
    os.close(write_fd)

    def pump():
        pending = b""
        with os.fdopen(read_fd, "rb", buffering=0) as source:
            while chunk := source.read(65536):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                kept = b"".join(line + b"\n" for line in lines if not is_noise(line))
                if kept:
                    os.write(real, kept)
        if pending and not is_noise(pending):
            os.write(real, pending)

    thread = threading.Thread(target=pump, name="ganpipe-stderr-filter", daemon=True)
    thread.start()

    def restore():
        sys.stderr.flush()
        os.dup2(real, 2)  # closes the pipe's last write end: the pump reads to the end
        thread.join(timeout=5)

    atexit.register(restore)
    _FILTERING.append(thread)


class TensorFlowInfo(std_logging.Filter):
    """Drops info (and debug) records that TensorFlow's own modules log through absl."""

    def filter(self, record: std_logging.LogRecord) -> bool:
        inside = f"{os.sep}tensorflow{os.sep}" in record.pathname
        return record.levelno >= std_logging.WARNING or not inside


def quiet_tensorflow(argv=None) -> None:
    """Hides TensorFlow's C++ log lines unless asked for (see the module docstring); call it
    before TensorFlow is imported. An explicit ``TF_CPP_MIN_LOG_LEVEL`` is left as it is."""
    if "TF_CPP_MIN_LOG_LEVEL" in os.environ:
        return
    if wants_tensorflow_log(argv):
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    # TensorFlow's Python info lines (the saver's "Sharding callback duration: 10 microseconds"
    # at every checkpoint, the SavedModel builder's "Assets written to ...") go the same way,
    # whether they come through TensorFlow's logger or absl's; its warnings and errors stay.
    std_logging.getLogger("tensorflow").setLevel(std_logging.WARNING)
    from absl import logging as absl_logging  # absl makes its logger class; no TensorFlow

    absl_logger = absl_logging.get_absl_logger()
    if not any(isinstance(f, TensorFlowInfo) for f in absl_logger.filters):
        absl_logger.addFilter(TensorFlowInfo())
    filter_stderr()
