"""A training round as a pure function of an explicit state (JAX): ``Trainer.functional()``.

``Functional(trainer)`` gives ``round(state, batches) -> (state, metrics)``: the round that
training compiles (``Steps.round``), with the run's schedule. ``state`` holds every value a
round changes, as a pytree ``{part: [array, ...]}`` by the checkpoint's parts (generator,
average, critic, both optimizers' slots and counters, the augmentation's state, the step; a
part that is off is empty), and the call reads and writes no variable. So it can be jitted,
scanned, vmapped or differentiated; ``load`` writes a state back into the run (for samples,
checkpoints, export). TensorFlow refuses it, naming why (its state is the variables).
"""

from __future__ import annotations

from ganpipe import backend


class Functional:
    """``round``, ``state`` (the run's state now), ``next_batches()`` and ``load(state)``."""

    def __init__(self, trainer):
        self._trainer = trainer
        self._steps = trainer.settings.schedule.generator_steps
        self.state = backend.functional(trainer.state.parts())

    def round(self, state: dict, batches):
        """One round of the schedule on ``batches``: ``(new state, metrics)``."""
        return self._trainer.steps.round(state, batches, self._steps)

    def next_batches(self):
        """The next round's data batches from the run's stream, stacked on the host."""
        trainer = self._trainer
        return trainer.iterator.host_batches(trainer.steps.batches_per_round(self._steps))

    def load(self, state: dict) -> None:
        """Writes ``state`` into the run's variables."""
        backend.load_state(self._trainer.state.parts(), state)
