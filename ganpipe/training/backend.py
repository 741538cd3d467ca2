"""The backend adaptor of the Keras backend in use: ``backend_tf`` or ``backend_jax``.

``steps``, ``penalties`` and ``augment`` write the update math once, in ``keras.ops``, and call
these few functions for what differs between backends: ``gradients`` (and ``record``, a forward
pass kept for a later gradient), ``input_gradients`` (the penalties' second order), ``compile``,
``run`` (per replica), ``apply_gradients``, ``repeat``, ``cond``, ``update_variables``,
``average_replica_copies``, ``count_nonfinite`` and the random streams (``ReplicaRandom``).
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
    "copy", "cond", "count_nonfinite", "gradients", "input_gradients", "is_floating", "mean_over",
    "record", "repeat", "replica_sum", "run", "update_variables",
)  # fmt: skip

NAME = keras.backend.backend()
if NAME not in ("jax", "tensorflow"):
    raise ImportError(
        f"ganpipe trains on the TensorFlow or JAX Keras backend; KERAS_BACKEND is {NAME!r}. "
        "Set KERAS_BACKEND=tensorflow or KERAS_BACKEND=jax."
    )
_adaptor = importlib.import_module(
    "ganpipe.training.backend_jax" if NAME == "jax" else "ganpipe.training.backend_tf"
)
globals().update({name: getattr(_adaptor, name) for name in INTERFACE})
# JAX only: many rounds as one program (TensorFlow's rounds are a graph loop in ``steps``).
compile_rounds = getattr(_adaptor, "compile_rounds", None)
scan = getattr(_adaptor, "scan", None)
