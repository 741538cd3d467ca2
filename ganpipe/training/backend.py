"""The backend adaptor of the Keras backend in use: ``backend_tf`` or ``backend_jax``.

``steps``, ``penalties`` and ``augment`` write the update math once, in ``keras.ops``, and call
these few functions for what differs between backends: ``gradients`` (and ``record``, a forward
pass kept for a later gradient), ``input_gradients`` (the penalties' second order), ``compile``,
``apply_gradients``, ``cond``, ``update_variables``, ``average_replica_copies``,
``count_nonfinite`` and the random streams (``ReplicaRandom``); and each backend's own way of
running rounds (``ONLY``).
Keras picks the backend (``KERAS_BACKEND`` or ``~/.keras/keras.json``); each adaptor imports only
its own framework.
"""

import importlib

import keras

from ganpipe.training.streams import (  # noqa: F401 (re-exported)
    AUGMENT,
    CRITIC_NOISE,
    CRITIC_SIDE,
    GENERATOR_NOISE,
    GENERATOR_SIDE,
    LABELS,
    PENALTY,
    STREAMS,
    add,
)

# What each adaptor supplies: the one list of the interface.
INTERFACE = (
    "RECORDS_PASSES", "ReplicaRandom", "apply_gradients", "average_replica_copies", "compile",
    "copy", "cond", "count_nonfinite", "gradients", "input_gradients", "is_floating",
    "record", "replica_sum", "update_variables",
)  # fmt: skip
# What one adaptor alone supplies: TensorFlow runs the rounds as graph loops of per-replica
# updates in ``steps`` (``run``, ``repeat``, ``mean_over``); JAX runs a call's rounds as one
# program (``compile_rounds``, and ``scan`` for each side's updates inside it).
ONLY = {
    "tensorflow": ("mean_over", "repeat", "run"),
    "jax": ("compile_rounds", "scan"),
}

NAME = keras.backend.backend()
if NAME not in ("jax", "tensorflow"):
    raise ImportError(
        f"ganpipe trains on the TensorFlow or JAX Keras backend; KERAS_BACKEND is {NAME!r}. "
        "Set KERAS_BACKEND=tensorflow or KERAS_BACKEND=jax."
    )
_adaptor = importlib.import_module(
    "ganpipe.training.backend_jax" if NAME == "jax" else "ganpipe.training.backend_tf"
)
globals().update({name: getattr(_adaptor, name) for name in (*INTERFACE, *ONLY[NAME])})
