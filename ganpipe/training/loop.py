"""The training loop: train, then let the callbacks act, until one of them stops it."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ganpipe.training.callbacks import SKIP, Callback, Round, Stop


def run(
    train: Callable[[int], tuple[dict, int]],
    callbacks: Sequence[Callback],
    start_step: int,
) -> tuple[Round | None, Stop | None]:
    """Calls ``train(step) -> (metrics, new step)`` and then every callback, in order, until a
    callback returns a ``Stop``; returns the last round the callbacks saw and that stop.

    A callback returning ``SKIP`` undid the round: the callbacks after it do not see it and the
    next call starts from the same step. An ``immediate`` stop also hides the round from the
    callbacks after it. Every callback's ``end`` runs, whatever stopped the loop.
    """
    stop = None
    for callback in callbacks:  # every callback begins, even after one has stopped the run
        verdict = callback.begin(start_step)
        stop = stop or verdict
    step, last = start_step, None
    while stop is None:
        metrics, new_step = train(step)
        current = Round(previous=step, step=new_step, metrics=metrics, first=step == start_step)
        for callback in callbacks:
            verdict = callback.after_round(current)
            if verdict == SKIP:
                break
            if isinstance(verdict, Stop):
                stop = stop or verdict
                if verdict.immediate:
                    break
        else:
            step, last = new_step, current
    for callback in callbacks:
        callback.end(last, stop)
    return last, stop


def plan_call(
    current: int, limit: int, *, per_round: int, log_every: int, rounds_per_call: int
) -> tuple[int, int]:
    """(rounds, generator steps per round) of the next call from step ``current``: up to
    ``rounds_per_call`` rounds of ``per_round`` steps, never past ``limit`` or the next multiple
    of ``log_every``; the last round of a run is shortened to end exactly at ``limit``."""
    left = limit - current
    if left < per_round:
        return 1, left
    to_log = -(-((current // log_every + 1) * log_every - current) // per_round)
    return max(1, min(rounds_per_call, left // per_round, to_log)), per_round
