"""MultiWorkerMirroredStrategy for real: two worker processes on 127.0.0.1 train one model."""

import json
import os
import re
import shutil
import socket
import time

import keras
import pytest

from ganpipe.training import writers
from tests import prestarted
from tests.conftest import REPO

pytestmark = pytest.mark.slow

STEPS = 3
FINGERPRINT = re.compile(r"Weights fingerprint at step (\d+): generator (\w+), critic (\w+)\.")


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _start_workers(run, scratch, steps):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    processes = []
    for index in range(2):
        task = {"type": "worker", "index": index}
        env = {
            **os.environ,
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "TMPDIR": str(scratch),
            "TF_CONFIG": json.dumps({"cluster": cluster, "task": task}),
        }
        processes.append(
            prestarted.popen(
                [
                    "-m",
                    "ganpipe.main",
                    "--gin_file=gin/wgan.gin",
                    "--gin_file=gin/testing/tiny.gin",
                    "--gin_param=train.strategy = 'multi_worker_mirrored'",
                    f"--gin_param=NUM_STEPS = {steps}",
                    f"--output_dir={run}",
                ],
                cwd=REPO,
                env=env,
            )
        )
    return processes


def _finish(processes, timeout):
    """Waits for every process (all killed on timeout or error); returns their stderr."""
    deadline = time.time() + timeout
    outputs = []
    try:
        for process in processes:
            _, stderr = process.communicate(timeout=max(1.0, deadline - time.time()))
            outputs.append(stderr)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.communicate()
    return outputs


@pytest.fixture(scope="module")
def two_worker_run(tmp_path_factory):
    """One two-worker run of STEPS steps, shared by the tests below (each launch of two
    TensorFlow processes costs about 20 s here): (run, scratch, processes, logs, wall)."""
    folder = tmp_path_factory.mktemp("two_workers")
    run, scratch = folder / "run", folder / "scratch"
    scratch.mkdir()
    started = time.time()
    processes = _start_workers(run, scratch, STEPS)
    logs = _finish(processes, timeout=400)
    return run, scratch, processes, logs, time.time() - started


def test_two_workers_train_one_model_and_only_the_chief_writes(two_worker_run):
    run, scratch, processes, (chief_log, worker_log), wall = two_worker_run
    for process, log in zip(processes, (chief_log, worker_log)):
        assert process.returncode == 0, log[-4000:]
    assert "Using strategy multi_worker_mirrored" in chief_log
    assert "with 2 replica(s)" in chief_log
    assert "This process is worker 1, not the chief" in worker_log

    # Both workers end with the same weights, bit for bit.
    chief_prints, worker_prints = (FINGERPRINT.findall(log) for log in (chief_log, worker_log))
    assert chief_prints and chief_prints == worker_prints, (chief_prints, worker_prints)
    step, generator_print, critic_print = chief_prints[-1]
    assert int(step) == STEPS

    # The chief's run directory is complete, and what it saved is what both trained.
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == list(range(1, STEPS + 1))
    for name in ("config.gin", "operative_config.gin", "generator.keras"):
        assert (run / name).is_file(), name
    assert (run / "checkpoints" / f"ckpt-{STEPS}.index").is_file()
    assert (run / "samples" / f"step_{STEPS:06d}.png").is_file()
    assert len(list((run / "tensorboard").iterdir())) == 1  # one writer, no clashing files
    generator = keras.saving.load_model(run / "generator.keras")
    assert writers.fingerprint(generator.variables) == generator_print

    # The other worker wrote nothing that stayed: its scratch copies were removed.
    assert list(scratch.iterdir()) == []
    print(f"two-worker run of {STEPS} steps: {wall:.1f} s wall")


def test_a_stopped_multi_worker_run_resumes_from_the_chiefs_checkpoints(two_worker_run, tmp_path):
    # The shared run stopped at STEPS; a copy of it is resumed to STEPS + 2.
    first, _, processes, logs, _ = two_worker_run
    assert all(p.returncode == 0 for p in processes), logs[1][-3000:]
    run, scratch = tmp_path / "run", tmp_path / "scratch"
    shutil.copytree(first, run)
    scratch.mkdir()
    second = _finish(_start_workers(run, scratch, STEPS + 2), timeout=400)
    for log in second:
        assert "Resuming from" in log and f"at step {STEPS} " in log, log[-3000:]
    prints = [FINGERPRINT.findall(log) for log in second]
    assert prints[0] == prints[1] and prints[0][-1][0] == str(STEPS + 2)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == list(range(1, STEPS + 3))
