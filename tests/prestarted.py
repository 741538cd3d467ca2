"""Test subprocesses forked from a prestarted interpreter that has TensorFlow (or JAX) imported.

Most of the suite's subprocesses (``python -m ganpipe.main``, the sweep, the replica checks, the
JAX scripts) spent most of their CPU time importing TensorFlow and Keras: about 5 s of a tiny
training run's 6 s (2-core AMD EPYC). Here one interpreter per test process and environment
imports them once, and then forks a child for each command. The child is a process of its own
as before: its own pid, argv, environment, working directory, stdout and stderr pipes, signal
handling and exit status, and it runs the command's module, script or code as ``__main__``.
It differs from a fresh interpreter in one way: absl, gin, NumPy, TensorFlow (or JAX) and Keras
are already imported, and ganpipe is not.

How a child becomes the test's own: the server forks a short-lived intermediate that forks the
child and exits at once, so the kernel re-parents the child to the nearest "child subreaper"
ancestor, the test process (``prctl(PR_SET_CHILD_SUBREAPER)``), which then waits for it,
signals it and reads its exit status like any child of its own.

A server imports under the command's environment, and is keyed by all of it but the variables
read at run time (``_READ_LATE``; under JAX, ``XLA_FLAGS`` and the cluster's variables too, as
no server starts a backend), so a command with another backend, oneDNN setting or log
level gets a server of its own. The first command of an environment runs in a fresh process
(a server pays off from the second), as does any command past ``_MAX_SERVERS`` servers. Tests
of what happens at import (the modules a command imports, TensorFlow's C++ log lines, the oneDNN
default) run fresh (``fresh=True``, or plain ``subprocess``), and
``GANPIPE_TEST_FRESH_PROCESSES=1`` turns the servers off for a whole test run.
"""

from __future__ import annotations

import atexit
import ctypes
import json
import os
import runpy
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import types

_FRESH_ENV = "GANPIPE_TEST_FRESH_PROCESSES"
# Read by ganpipe or TensorFlow when they run, never when they are imported.
_READ_LATE = ("PYTEST_CURRENT_TEST", "TF_CONFIG", "TMPDIR")
_READ_LATE_PREFIXES = ("GANPIPE_",)
# JAX reads these when it first starts a backend, which a server never does.
_READ_LATE_BY_JAX = ("XLA_FLAGS", "JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")
_MAX_SERVERS = 5
_PR_SET_CHILD_SUBREAPER = 36


def _preload(backend: str) -> None:
    import absl.app  # noqa: F401
    import absl.flags  # noqa: F401
    import absl.logging  # noqa: F401
    import numpy  # noqa: F401

    import gin  # noqa: F401

    if backend == "jax":
        import jax  # noqa: F401
    else:
        import tensorflow  # noqa: F401
    import keras  # noqa: F401


# --- the server (a process of its own) --------------------------------------------------------


def _exit_code(error: SystemExit) -> int:
    if error.code is None:
        return 0
    if isinstance(error.code, int):
        return error.code
    print(error.code, file=sys.stderr)
    return 1


def _run_command(args: list[str]) -> int:
    """Runs ``python ARGS`` (``-m MODULE``, ``-c CODE`` or ``SCRIPT``) in this process as
    ``__main__``, as the interpreter would; returns the exit status."""
    try:
        if args[0] == "-m":
            sys.argv = [args[1], *args[2:]]  # runpy puts the module's path first
            sys.path[0] = os.getcwd()
            runpy.run_module(args[1], run_name="__main__", alter_sys=True)
        elif args[0] == "-c":
            sys.argv = ["-c", *args[2:]]
            sys.path[0] = ""
            main = types.ModuleType("__main__")
            sys.modules["__main__"] = main
            exec(compile(args[1], "<string>", "exec"), main.__dict__)
        else:
            sys.argv = list(args)
            sys.path[0] = os.path.dirname(os.path.realpath(args[0]))
            runpy.run_path(args[0], run_name="__main__")
        return 0
    except SystemExit as error:
        return _exit_code(error)
    except BaseException:
        traceback.print_exc()
        return 1


def _child(request: dict, out_fd: int, err_fd: int) -> None:
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out_fd, 1)
    os.dup2(err_fd, 2)
    for fd in (null, out_fd, err_fd):
        os.close(fd)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for name in ("SIGTERM", "SIGCHLD", "SIGUSR1", "SIGUSR2", "SIGHUP"):
        signal.signal(getattr(signal, name), signal.SIG_DFL)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    tempfile.tempdir = None  # found again from TMPDIR, should an import have asked already
    code = _run_command(request["args"])
    try:
        threading._shutdown()  # what the interpreter does at exit: wait for non-daemon threads
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


def serve(fd: int, backend: str) -> None:
    """The server's loop: one request at a time (a JSON message with the child's stdout and
    stderr descriptors); replies with the child's pid. Ends when the test process closes the
    socket."""
    _preload(backend)
    connection = socket.socket(fileno=fd)
    connection.sendall(b"ready")
    while True:
        message, fds, _, _ = socket.recv_fds(connection, 1 << 20, 2)
        if not message:
            return
        request = json.loads(message)
        out_fd, err_fd = fds
        pid_read, pid_write = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        intermediate = os.fork()
        if intermediate == 0:
            child = os.fork()
            if child == 0:
                connection.close()
                os.close(pid_read)
                os.close(pid_write)
                _child(request, out_fd, err_fd)
            os.write(pid_write, str(child).encode())
            os._exit(0)
        os.close(pid_write)
        os.close(out_fd)
        os.close(err_fd)
        os.waitpid(intermediate, 0)  # the child is now the test process's
        with os.fdopen(pid_read) as f:
            pid = int(f.read())
        connection.sendall(str(pid).encode())


# --- the test process's side ------------------------------------------------------------------


class Child:
    """A child of this process (forked by a server, or a fresh ``subprocess.Popen``), as the
    tests use ``Popen``: ``pid``, ``returncode``, ``poll``, ``wait``, ``communicate``,
    ``send_signal``, ``terminate``, ``kill`` (text output). Its stdout and stderr are read as
    they come, so a child that writes much never waits on a full pipe."""

    def __init__(self, args, pid: int, out_read: int, err_read: int, fresh=None):
        self.args, self.pid, self.returncode = args, pid, None
        self._fresh = fresh  # the Popen of a fresh child, told its status once it is known
        self._chunks = {1: [], 2: []}
        self._readers = [
            threading.Thread(target=self._drain, args=(fd, self._chunks[n]), daemon=True)
            for n, fd in ((1, out_read), (2, err_read))
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _drain(fd: int, chunks: list) -> None:
        with os.fdopen(fd, "rb") as f:
            while data := f.read1(1 << 16):
                chunks.append(data)

    def _status(self, flags: int):
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, flags)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
                if self._fresh is not None:
                    self._fresh.returncode = self.returncode
        return self.returncode

    def poll(self):
        return self._status(os.WNOHANG)

    def wait(self, timeout: float | None = None):
        if timeout is None:
            return self._status(0)
        deadline = time.monotonic() + timeout
        while self.poll() is None:
            if time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self.args, timeout)
            time.sleep(0.02)
        return self.returncode

    def communicate(self, timeout: float | None = None):
        self.wait(timeout)
        for reader in self._readers:
            reader.join()
        text = [b"".join(self._chunks[n]).decode(errors="backslashreplace") for n in (1, 2)]
        return text[0], text[1]

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class _Server:
    def __init__(self, env: dict, backend: str):
        # Messages keep their boundaries (a request and its two descriptors arrive whole).
        here, there = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.prestarted", str(there.fileno()), backend],
            pass_fds=[there.fileno()],
            env=env,
            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        )
        there.close()
        self.socket = here
        self.lock = threading.Lock()
        if here.recv(64) != b"ready":
            raise RuntimeError("the prestarted interpreter did not start")

    def start(self, args, env: dict, cwd: str) -> Child:
        out_read, out_write = os.pipe()
        err_read, err_write = os.pipe()
        request = json.dumps({"args": list(args), "env": env, "cwd": str(cwd)}).encode()
        with self.lock:
            socket.send_fds(self.socket, [request], [out_write, err_write])
            os.close(out_write)
            os.close(err_write)
            pid = int(self.socket.recv(64))
        return Child(args, pid, out_read, err_read)

    def close(self) -> None:
        self.socket.close()
        self.process.wait(timeout=30)


_SERVERS: dict[tuple, _Server] = {}
_REQUESTS: dict[tuple, int] = {}
_SUBREAPER: list[bool] = []
_ONEDNN = "TF_ENABLE_ONEDNN_OPTS"


def _server_env(args, env: dict) -> dict:
    """The environment the server imports under: the command's, less what is read late. A
    ganpipe command sets TensorFlow's oneDNN default before TensorFlow loads (ganpipe's
    ``__init__``), so its server loads TensorFlow with that default too; the child still gets
    the command's own environment, and ganpipe's import sets (and logs) it as in any run."""
    late = _READ_LATE + (_READ_LATE_BY_JAX if env.get("KERAS_BACKEND") == "jax" else ())
    server_env = {
        k: v for k, v in env.items() if k not in late and not k.startswith(_READ_LATE_PREFIXES)
    }
    if args[0] == "-m" and args[1].startswith("ganpipe."):
        server_env.setdefault(_ONEDNN, "1")
    return server_env


def _subreaper() -> bool:
    if not _SUBREAPER:
        ok = False
        if sys.platform.startswith("linux"):
            libc = ctypes.CDLL(None, use_errno=True)
            ok = libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
        _SUBREAPER.append(ok)
    return _SUBREAPER[0]


def enabled() -> bool:
    """Whether commands may run in forked children (Linux, and not turned off)."""
    return os.environ.get(_FRESH_ENV) != "1" and _subreaper()


def _server_for(args, env: dict) -> _Server | None:
    """The server for this command's environment; None (a fresh process) for the first
    command of an environment (a server pays off from the second), past ``_MAX_SERVERS``, or
    when servers are off."""
    if not enabled():
        return None
    server_env = _server_env(args, env)
    key = tuple(sorted(server_env.items()))
    if key not in _SERVERS:
        _REQUESTS[key] = _REQUESTS.get(key, 0) + 1
        if _REQUESTS[key] < 2 or len(_SERVERS) >= _MAX_SERVERS:
            return None
        backend = "jax" if env.get("KERAS_BACKEND") == "jax" else "tensorflow"
        _SERVERS[key] = _Server(server_env, backend)
    return _SERVERS[key]


def close_servers() -> None:
    for server in _SERVERS.values():
        server.close()
    _SERVERS.clear()


def popen(args, *, env: dict | None = None, cwd, fresh: bool = False):
    """``python ARGS`` as a started ``Child``, forked or fresh, with its stdout and stderr
    piped; ``env`` is the whole environment (default: this one)."""
    env = dict(os.environ if env is None else env)
    server = None if fresh else _server_for(args, env)
    if server is not None:
        return server.start(args, env, cwd)
    process = subprocess.Popen(
        [sys.executable, *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    pipes = [os.dup(process.stdout.fileno()), os.dup(process.stderr.fileno())]
    process.stdout.close()
    process.stderr.close()
    return Child(args, process.pid, *pipes, fresh=process)


def run(args, *, env: dict | None = None, cwd, timeout: float, fresh: bool = False):
    """``python ARGS`` to its end, as ``subprocess.run(capture_output=True, text=True)``."""
    process = popen(args, env=env, cwd=cwd, fresh=fresh)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    return subprocess.CompletedProcess([sys.executable, *args], process.returncode, stdout, stderr)


if __name__ == "__main__":
    serve(int(sys.argv[1]), sys.argv[2])
