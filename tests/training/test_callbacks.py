"""The callbacks that write a run's outputs, driven with fakes (no model, no graph). The loop's
contract, ``Round.due``, the non-finite guard and the budget are tested in tests/test_loop.py."""

import signal
import types

import numpy as np
import pytest
import tensorflow as tf

from ganpipe.timefmt import format_duration
from ganpipe.training import callbacks
from ganpipe.training.callbacks import Round


class Recorder:
    """Records every call of any method as (name, args)."""

    def __init__(self, **returns):
        self.calls, self.returns = [], returns

    def __getattr__(self, name):
        def method(*args):
            self.calls.append((name, *args))
            return self.returns.get(name)

        return method


def _round(previous, step, **kwargs):
    return Round(previous, step, {"critic_loss": 0.5}, first=previous == 0, **kwargs)


def test_the_clock_counts_training_time_across_resumes_and_leaves_out_evaluation(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(callbacks.time, "perf_counter", lambda: now[0])
    elapsed = tf.Variable(30.0, dtype=tf.float64)  # from before a resume
    clock = callbacks.Clock(elapsed)
    clock.begin(0)
    now[0] = 110.0
    clock.after_round(_round(0, 1))
    assert clock.seconds() == 40.0
    now[0] = 125.0
    clock.exclude(5.0)  # an evaluation took 5 of those 15 s
    clock.after_round(_round(1, 2))
    assert clock.seconds() == 50.0


def test_evaluation_runs_when_due_and_keeps_only_a_better_fd():
    fds = iter([3.0, 4.0, 2.0])

    def score(generator):
        assert generator == "sampler"
        return {"eval_fd": next(fds)}

    state = types.SimpleNamespace(sampling_generator="sampler", best_fd=tf.Variable(np.inf))
    best, clock = Recorder(), Recorder()
    evaluate = callbacks.Evaluate(score, 10, state, best, clock)
    rounds = [_round(0, 5), _round(5, 10), _round(10, 20), _round(20, 30)]
    assert [evaluate.after_round(r) for r in rounds] == [None] * 4
    assert [r.evaluated for r in rounds] == [
        {},
        {"eval_fd": 3.0},
        {"eval_fd": 4.0},
        {"eval_fd": 2.0},
    ]
    assert best.calls == [("save", 10), ("save", 30)]
    assert float(state.best_fd.numpy()) == 2.0
    assert [name for name, *_ in clock.calls] == ["exclude"] * 3


def test_a_metrics_row_is_written_when_due_or_evaluated_with_every_value():
    log, tensorboard = Recorder(), Recorder()
    clock = types.SimpleNamespace(seconds=lambda: 12.0)
    budget = types.SimpleNamespace(max_train_seconds=None)
    row = callbacks.MetricsRow(4, log, tensorboard, 100, 64, clock, budget)
    row.begin(0)
    row.after_round(_round(0, 2))
    row.after_round(_round(2, 3, evaluated={"eval_fd": 1.5}))
    row.after_round(_round(3, 4))
    written = [args[0] for name, *args in log.calls if name == "write"]
    assert [r["step"] for r in written] == [3, 4]
    assert written[0]["eval_fd"] == 1.5 and written[0]["critic_loss"] == 0.5
    assert written[1]["elapsed_seconds"] == 12.0
    assert written[1]["images_per_second"] == pytest.approx(64 * written[1]["steps_per_second"])
    assert [args[0] for name, *args in tensorboard.calls] == [3, 4]


def test_a_checkpoint_is_written_when_due_and_after_a_signal():
    checkpointer = Recorder()
    signals = types.SimpleNamespace(received=None)
    checkpoint = callbacks.Checkpoint(checkpointer, 5, signals)
    for r in (_round(0, 3), _round(3, 6), _round(6, 7)):
        checkpoint.after_round(r)
    signals.received = signal.SIGTERM
    checkpoint.after_round(_round(7, 8))
    checkpoint.after_round(_round(8, 9, final=True))
    assert checkpointer.calls == [("save", 6), ("save", 8), ("save", 9)]


def test_after_a_signal_the_run_stops_with_preempted_naming_the_checkpoint():
    signals = types.SimpleNamespace(received=None, restore=lambda: None)
    checkpointer = types.SimpleNamespace(latest="run/checkpoints/ckpt-8")
    preemption = callbacks.Preemption(signals, checkpointer)
    assert preemption.after_round(_round(0, 7)) is None
    signals.received = signal.SIGTERM
    stop = preemption.after_round(_round(7, 8))
    assert stop.reason == "signal" and not stop.immediate
    assert isinstance(stop.error, callbacks.Preempted)
    assert "SIGTERM after step 8" in str(stop.error) and "ckpt-8" in str(stop.error)


def test_the_operative_config_is_written_once_on_the_first_round(tmp_path):
    path = tmp_path / "operative_config.gin"
    texts = iter(["first", "second"])
    operative = callbacks.OperativeConfig(str(path), lambda: next(texts))
    operative.after_round(_round(0, 1))
    operative.after_round(_round(1, 2))
    assert path.read_text() == "first"


def test_the_progress_line_caps_the_time_left_at_the_budget():
    progress = callbacks.Progress(total_steps=1000, start_step=0)
    row = {"critic_loss": 0.25, "generator_loss": 1.5, "elapsed_seconds": 60.0}
    line = progress.line(250, 10.0, row)  # 750 steps at 10 steps/s: 75 s left
    assert line.startswith("step 250/1000 (25.0%) | 10.0 steps/s")
    assert "critic_loss 0.25 | generator_loss 1.5" in line
    assert line.endswith(f"elapsed {format_duration(60.0)} | left {format_duration(75.0)}")
    capped = progress.line(250, 10.0, row, budget_left=30.0)
    assert capped.endswith(f"left {format_duration(30.0)}")


def test_a_non_finite_message_names_the_side_the_step_and_the_checkpoint():
    bad = callbacks.non_finite({"critic_loss": float("nan"), "generator_loss": 1.0})
    assert list(bad) == ["critic_loss"]
    message = callbacks.non_finite_message(bad, 12, "run/checkpoints/ckpt-10")
    assert "step 12" in message and "critic side" in message and "ckpt-10" in message
    assert callbacks.non_finite({"generator_nonfinite_grads": 3.0}) == {
        "generator_nonfinite_grads": 3.0
    }
