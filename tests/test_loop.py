"""The loop and the callbacks' interface, driven with fakes: no model, no TensorFlow graph."""

import math

import pytest

from ganpipe.training import callbacks, loop
from ganpipe.training.callbacks import SKIP, Callback, Round, Stop


class Recorder(Callback):
    """Records what it sees; returns the verdicts it is given, by step."""

    def __init__(self, verdicts=None):
        self.verdicts = verdicts or {}
        self.seen, self.begun, self.ended = [], None, None

    def begin(self, start_step):
        self.begun = start_step

    def after_round(self, r):
        self.seen.append((r.previous, r.step, r.first))
        return self.verdicts.get(r.step)

    def end(self, last, stop):
        self.ended = (None if last is None else last.step, stop)


def counting_train(per_call=2):
    calls = []

    def train(step):
        calls.append(step)
        return {"loss": float(step)}, step + per_call

    return train, calls


def test_the_loop_runs_until_a_callback_stops_it_and_every_callback_sees_each_round():
    train, calls = counting_train()
    stop_at_6 = Recorder({6: Stop("budget")})
    after = Recorder()
    last, stop = loop.run(train, [stop_at_6, after], start_step=0)
    assert calls == [0, 2, 4]
    assert stop.reason == "budget" and last.step == 6
    # A plain stop still lets the callbacks after it act on the round that stopped the run.
    assert after.seen == [(0, 2, True), (2, 4, False), (4, 6, False)]
    assert stop_at_6.begun == after.begun == 0
    assert after.ended == (6, stop)


def test_a_skipped_round_is_hidden_from_later_callbacks_and_retried_from_the_same_step():
    train, calls = counting_train()
    verdicts = iter([SKIP, None, Stop("done")])  # the first call is undone, then retried

    class Skipper(Callback):
        def after_round(self, r):
            return next(verdicts)

    skipper, after = Skipper(), Recorder()
    last, stop = loop.run(train, [skipper, after], start_step=0)
    assert calls == [0, 0, 2]  # the skipped call's step is tried again
    assert after.seen == [(0, 2, True), (2, 4, False)]  # the skip was not seen; first still holds


def test_an_immediate_stop_hides_the_round_from_later_callbacks():
    train, _ = counting_train()
    error = FloatingPointError("nan")
    guard = Recorder({4: Stop("non-finite", error=error, immediate=True)})
    after = Recorder()
    last, stop = loop.run(train, [guard, after], start_step=0)
    assert stop.error is error
    assert after.seen == [(0, 2, True)]
    assert last.step == 2  # the last round the callbacks saw in full
    assert after.ended == (2, stop)


def test_a_stop_at_begin_runs_no_round_but_every_callback_begins_and_ends():
    train, calls = counting_train()
    done, after = Recorder(), Recorder()
    done.begin = lambda start: Stop("finished")
    last, stop = loop.run(train, [done, after], start_step=10)
    assert calls == [] and last is None and stop.reason == "finished"
    assert after.begun == 10 and after.ended == (None, stop)


@pytest.mark.parametrize(
    "previous, step, every, final, due",
    [(0, 5, 5, False, True), (5, 9, 5, False, False), (9, 10, 5, False, True),
     (6, 8, 5, True, True), (0, 3, 1000, False, False), (999, 1001, 1000, False, True)],
)  # fmt: skip
def test_an_interval_is_due_when_a_multiple_was_crossed_or_the_run_ends(
    previous, step, every, final, due
):
    assert Round(previous, step, {}, first=False, final=final).due(every) is due


def test_plan_call_stops_at_log_boundaries_and_at_the_last_step():
    plan = loop.plan_call
    assert plan(0, 100, per_round=1, log_every=5, rounds_per_call=8) == (5, 1)
    assert plan(10, 13, per_round=1, log_every=5, rounds_per_call=8) == (3, 1)
    assert plan(0, 1000, per_round=50, log_every=100, rounds_per_call=8) == (2, 50)
    assert plan(990, 1000, per_round=50, log_every=100, rounds_per_call=8) == (1, 10)
    assert plan(0, 100, per_round=1, log_every=100, rounds_per_call=1) == (1, 1)


class FakeState:
    def __init__(self):
        self.value, self.restored = 0, []

    def snapshot(self):
        return self.value

    def restore_snapshot(self, value):
        self.restored.append(value)
        self.value = value


class FakeCheckpointer:
    latest = "ckpt-7"


def test_the_guard_skips_at_most_max_skips_rounds_in_a_row_then_stops():
    state = FakeState()
    guard = callbacks.NonFiniteGuard(state, "skip", 2, FakeCheckpointer())
    guard.begin(0)
    good = {"critic_loss": 1.0, "critic_nonfinite_grads": 0.0}
    bad = {"critic_loss": math.nan}
    r = Round(0, 1, dict(good), first=True)
    assert guard.after_round(r) is None
    assert "critic_nonfinite_grads" not in r.metrics  # popped before the row is written
    state.value = 1
    assert guard.after_round(Round(1, 2, dict(bad), first=False)) == SKIP
    assert guard.after_round(Round(1, 2, dict(bad), first=False)) == SKIP
    assert state.restored == [0, 0]  # back to the snapshot taken after the good round
    verdict = guard.after_round(Round(1, 2, dict(bad), first=False))
    assert isinstance(verdict, Stop) and verdict.immediate
    assert isinstance(verdict.error, callbacks.NonFiniteLossError)
    assert "ckpt-7" in str(verdict.error) and "critic" in str(verdict.error)


def test_the_guard_counts_nonfinite_gradients_even_when_the_losses_are_finite():
    guard = callbacks.NonFiniteGuard(FakeState(), "stop", 1, FakeCheckpointer())
    verdict = guard.after_round(Round(0, 1, {"g": 1.0, "generator_nonfinite_grads": 2.0}, True))
    assert isinstance(verdict, Stop) and "generator" in str(verdict.error)


class FakeVariable:
    def __init__(self, value=0.0):
        self.value = value

    def numpy(self):
        return self.value

    def assign(self, value):
        self.value = value


class FakeBudget:
    num_steps, max_train_seconds = 10, None

    def over_time(self, seconds):
        return False


def test_the_budget_marks_the_last_round_final_and_stops():
    signals = callbacks.SignalFlag.__new__(callbacks.SignalFlag)
    signals.received = None
    budget = callbacks.Budget(FakeBudget(), callbacks.Clock(FakeVariable()), signals)
    assert budget.begin(0) is None and budget.begin(10).reason == "finished"
    early, last = Round(0, 5, {}, True), Round(5, 10, {}, False)
    assert budget.after_round(early) is None and not early.final
    assert budget.after_round(last).reason == "budget" and last.final
