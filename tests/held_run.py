"""Holds a training run at a step until a signal arrives, so that a test interrupts it at a
known step however fast the machine is. For a run in a subprocess; its gin file says
``import tests.held_run``, and its environment:

    GANPIPE_TEST_HOLD_AT=STEP        hold the first round that reaches STEP
    GANPIPE_TEST_HOLD_MARKER=PATH    written (the step) when the hold starts

The held round waits in the run's ``Budget`` callback until SIGTERM or SIGINT has arrived, then
goes on as any signalled round does: it finishes, checkpoints and the run stops. A run that finds
PATH already written (the resumed run) is not held. Without the two variables nothing changes.
"""

from __future__ import annotations

import os
import time

from ganpipe.training import callbacks

STEP, MARKER = "GANPIPE_TEST_HOLD_AT", "GANPIPE_TEST_HOLD_MARKER"


def _hold(after_round):
    def held(self, r):
        marker = os.environ[MARKER]
        if r.step >= int(os.environ[STEP]) and not os.path.exists(marker):
            with open(marker + ".tmp", "w") as f:
                f.write(str(r.step))
            os.replace(marker + ".tmp", marker)
            while self.signals.received is None:
                time.sleep(0.01)
        return after_round(self, r)

    return held


if os.environ.get(STEP) and os.environ.get(MARKER):
    callbacks.Budget.after_round = _hold(callbacks.Budget.after_round)
