"""The training machinery behind ``ganpipe.trainer``.

settings (validated, frozen settings) -> state (models, optimizers, counters: what a checkpoint
holds) -> steps (one round of updates, run per replica) -> loop (rounds until a callback stops it)
-> callbacks (every side effect). ``backend`` is the one module that names TensorFlow's gradient
tape, ``tf.function`` and ``strategy.run``.
"""
