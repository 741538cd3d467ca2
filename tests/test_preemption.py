"""Nothing lost, nothing silent: signals, kill -9, NaN guard, corrupt checkpoints."""

import json
import os
import random
import signal
import time

import numpy as np
import pytest

from ganpipe.training import callbacks, writers
from tests import prestarted
from tests.conftest import REPO, logged_steps, make_trainer

pytestmark = pytest.mark.slow

TINY = [
    "--gin_file=gin/gan.gin",
    "--gin_file=gin/testing/tiny.gin",
    "--gin_param=BATCH_SIZE=8",
    "--gin_param=Intervals.log_every=1",
    "--gin_param=Intervals.sample_every=1000000",
    "--gin_param=Intervals.checkpoint_every=5",
]


def _start(run, num_steps, *extra):
    return prestarted.popen(
        ["-m", "ganpipe.main", *TINY, f"--gin_param=NUM_STEPS={num_steps}", f"--output_dir={run}",
         *extra],
        cwd=REPO,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )  # fmt: skip


def _wait_for_rows(run, count, process, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if len(logged_steps(run)) >= count:
            return
        if process.poll() is not None:
            raise AssertionError(f"exited early: {process.stderr.read()[-3000:]}")
        time.sleep(0.2)
    process.kill()
    raise AssertionError("no progress")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_checkpoints_and_exits_with_status_4_then_resumes(tmp_path, sig):
    run = tmp_path / "run"
    process = _start(run, 100_000)
    try:
        _wait_for_rows(run, 8, process)
        process.send_signal(sig)
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 4, stderr[-3000:]
    assert f"{sig.name} received" in stderr and "Rerun the same command to resume" in stderr
    stopped = logged_steps(run)[-1]
    assert (run / "checkpoints" / f"ckpt-{stopped}.index").exists()
    resumed = _start(run, stopped + 3)
    _, stderr = resumed.communicate(timeout=180)
    assert resumed.returncode == 0, stderr[-3000:]
    assert f"at step {stopped} " in stderr
    assert logged_steps(run) == list(range(1, stopped + 4))


def test_kill_9_at_random_moments_loses_nothing_but_recent_work(tmp_path):
    run = tmp_path / "run"
    rng = random.Random(0)
    total = 60
    for _ in range(4):
        process = _start(run, total)
        try:
            _wait_for_rows(run, min(len(logged_steps(run)) + 3, total), process)
            time.sleep(rng.uniform(0.0, 1.5))
        finally:
            process.send_signal(signal.SIGKILL)
            process.communicate(timeout=60)
        if logged_steps(run) and logged_steps(run)[-1] == total:
            break
    final = _start(run, total)
    _, stderr = final.communicate(timeout=300)
    assert final.returncode == 0, stderr[-3000:]
    # Every step once, in order: rows after the last complete checkpoint were replayed, not
    # duplicated; a torn line was dropped.
    assert logged_steps(run) == list(range(1, total + 1))
    assert (run / "generator.keras").exists()


def test_corrupt_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, caplog):
    run = tmp_path / "run"
    trainer = make_trainer("gan", "NUM_STEPS = 4", "Intervals.checkpoint_every = 2")
    trainer.fit(str(run))
    data = next((run / "checkpoints").glob("ckpt-4.data-*"))
    data.write_bytes(data.read_bytes()[: len(data.read_bytes()) // 3])  # truncated mid-write
    again = make_trainer("gan", "NUM_STEPS = 6", "Intervals.checkpoint_every = 2")
    with caplog.at_level("WARNING", logger="absl"):
        again.fit(str(run))
    assert "ckpt-4 is unreadable" in caplog.text and "falling back to" in caplog.text
    assert logged_steps(run) == [1, 2, 3, 4, 5, 6]


def test_signal_after_the_rounds_checks_still_checkpoints_the_last_step(tmp_path, monkeypatch):
    # The signal lands while step 3's row is being written, after the loop decided this round
    # needs no checkpoint (checkpoint_every=5): the stop must checkpoint step 3 all the same.
    run = tmp_path / "run"
    trainer = make_trainer("gan", "NUM_STEPS = 20", "Intervals.checkpoint_every = 5")
    write = writers.MetricsLog.write

    def write_then_signal(self, row):
        write(self, row)
        if row["step"] == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(writers.MetricsLog, "write", write_then_signal)
    with pytest.raises(callbacks.Preempted, match="after step 3; checkpoint .*ckpt-3 holds it"):
        trainer.fit(str(run))
    assert (run / "checkpoints" / "ckpt-3.index").exists()
    assert logged_steps(run) == [1, 2, 3]


def _inject_nan_in_round(trainer, round_index):
    original = trainer.train_round
    calls = {"n": 0}

    def train_round(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == round_index:
            variable = trainer.critic.trainable_variables[0]
            value = np.array(variable.numpy())
            value.flat[0] = np.nan
            variable.assign(value)
        return original(*args, **kwargs)

    trainer.train_round = train_round


def test_nan_stops_at_once_naming_side_step_and_last_checkpoint(tmp_path):
    run = tmp_path / "run"
    trainer = make_trainer("wgan", "NUM_STEPS = 5", "Intervals.checkpoint_every = 1")
    _inject_nan_in_round(trainer, 3)
    with pytest.raises(
        callbacks.NonFiniteLossError,
        match=r"step 3, on the (critic|generator).*last good checkpoint is .*ckpt-2",
    ):
        trainer.fit(str(run))
    assert sorted(p.name for p in (run / "checkpoints").glob("*.index")) == [
        "ckpt-1.index",
        "ckpt-2.index",
    ]
    assert logged_steps(run) == [1, 2]


def test_nan_skip_policy_undoes_the_round_and_goes_on(tmp_path, caplog):
    run = tmp_path / "run"
    trainer = make_trainer("wgan", "NUM_STEPS = 5", "Numerics.non_finite = 'skip'")
    _inject_nan_in_round(trainer, 3)
    with caplog.at_level("WARNING", logger="absl"):
        trainer.fit(str(run))
    assert "Skipped the round ending at step 3" in caplog.text
    assert logged_steps(run) == [1, 2, 3, 4, 5]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["critic_loss"]) for r in rows)
    assert all(np.all(np.isfinite(np.asarray(v))) for v in trainer.critic.variables)


def test_nan_gradient_with_finite_loss_is_caught():
    metrics = {
        "critic_loss": 0.5,
        "generator_loss": 0.1,
        "critic_nonfinite_grads": 3.0,
        "generator_nonfinite_grads": 0.0,
    }
    assert callbacks.non_finite(metrics) == {"critic_nonfinite_grads": 3.0}
    assert callbacks.non_finite({**metrics, "critic_nonfinite_grads": 0.0}) == {}
